// Everything one worker owns: agent sessions, their endpoints, and the public connections routed to them, plus the
// worker's control channel to the acceptor. Runs on a worker thread, or on the main thread in the single-threaded
// fallback. Per-connection path: adoptPublic (one Map lookup, then the pump).
import tls from 'node:tls';
import type net from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import { isMainThread } from 'node:worker_threads';
import { BurrowError } from '../../core/errors.js';
import { LoopMonitor } from '../../metrics/loop-monitor.js';
import { RelayRecorder, endpointTypeIndex } from '../../metrics/relay-recorder.js';
import type {
  AcceptorToWorker,
  PublicTask,
  ReserveReply,
  ReserveRequest,
  SessionInfo,
  TaskResult,
  WorkerStats,
  WorkerToAcceptor,
} from '../relay-messages.js';
import { AgentSession, type Endpoint } from './agent-session.js';
import { pumpPublic } from './public-pump.js';

/** Static settings every worker gets (piscina workerData; structured-clone friendly). */
export interface WorkerSettings {
  domain: string;
  certPem: string;
  keyPem: string;
  /** SHA-256 (hex) of every accepted agent token. */
  tokenHashes: string[];
  /** TCP keepalive initial delay for public and agent sockets, ms (0 = off). */
  tcpKeepaliveMs: number;
  /** Deadline for a complete HTTP request head after the first, ms (slowloris). */
  headTimeoutMs: number;
  /** Largest HTTP request head accepted on later requests of a connection. */
  maxHeadSize: number;
  /** Agent TLS handshake deadline, ms. */
  handshakeTimeoutMs: number;
  version: string;
  /** false = `--metrics off`: nothing is recorded (counters and histograms stay at 0). */
  metrics: boolean;
  /** `--metrics-per-endpoint`: also count connections, requests and bytes per endpoint hostname / TCP port. */
  metricsPerEndpoint: boolean;
  /** Interval of the relay's own heartbeats to each agent (RTT measurement), ms; 0 = off. */
  agentRttIntervalMs: number;
}

export interface ControlSink {
  post(msg: WorkerToAcceptor): void;
}

export interface AdoptMeta {
  remoteAddress: string;
  remotePort: number;
  acceptedAt: number;
}

export class WorkerRuntime {
  readonly settings: WorkerSettings;
  readonly workerId: number;
  readonly secureContext: tls.SecureContext;
  readonly sessions: Map<string, AgentSession>;
  readonly endpoints: Map<string, Endpoint>;
  /** What /metrics reads from this thread (collected on a 'stats' control message). */
  readonly recorder: RelayRecorder;
  draining: boolean;
  private readonly loop: LoopMonitor;
  private readonly tokenHashes: Buffer[];
  private control: ControlSink | null;
  private nextReqId: number;
  private readonly pending: Map<number, (r: ReserveReply) => void>;
  private closedResolve: (() => void) | null;
  private readonly closed: Promise<void>;

  constructor(settings: WorkerSettings, workerId: number) {
    this.settings = settings;
    this.workerId = workerId;
    this.secureContext = tls.createSecureContext({ key: settings.keyPem, cert: settings.certPem });
    this.sessions = new Map();
    this.endpoints = new Map();
    this.recorder = new RelayRecorder(settings.metrics, settings.metricsPerEndpoint);
    this.loop = new LoopMonitor();
    this.draining = false;
    this.tokenHashes = settings.tokenHashes.map((h) => Buffer.from(h, 'hex'));
    this.control = null;
    this.nextReqId = 1;
    this.pending = new Map();
    this.closedResolve = null;
    this.closed = new Promise((r) => (this.closedResolve = r));
  }

  attachControlSink(sink: ControlSink): void {
    this.control = sink;
  }

  /** Resolves when the runtime is destroyed (the control task's lifetime). */
  untilClosed(): Promise<void> {
    return this.closed;
  }

  onControlMessage(msg: AcceptorToWorker): void {
    if (msg.op === 'reserve-reply') {
      const cb = this.pending.get(msg.reqId);
      if (cb !== undefined) {
        this.pending.delete(msg.reqId);
        cb(msg);
      }
    } else if (msg.op === 'drain') {
      this.drain();
    } else if (msg.op === 'stats') {
      this.control?.post({ op: 'stats-reply', reqId: msg.reqId, stats: this.stats(msg.sessions) });
    } else if (msg.op === 'test-crash') {
      // Test-only (readiness tests need a worker to die): off unless the environment opts in, never on the main thread.
      if (process.env['BURROW_TEST_HOOKS'] === '1' && !isMainThread) {
        const hangMs = msg.hangMs ?? 0;
        if (hangMs > 0) {
          // Right here, before any message queued behind this one (a stats request) can be answered.
          const until = Date.now() + hangMs;
          while (Date.now() < until); // busy on purpose: nothing else runs on this thread meanwhile
          return;
        }
        setImmediate(() => {
          throw new Error('test-crash: worker crashed on request (BURROW_TEST_HOOKS=1)');
        });
      }
    }
  }

  /** Recorder snapshot, live gauges and the event-loop sample since the previous call. */
  stats(withSessions: boolean): WorkerStats {
    let streams = 0;
    let list: SessionInfo[] | null = withSessions ? [] : null;
    for (const s of this.sessions.values()) {
      const n = s.mux?.streamCount ?? 0;
      streams += n;
      list?.push({
        id: s.id,
        workerId: this.workerId,
        clientId: s.clientId,
        remoteAddress: s.meta.remoteAddress,
        authed: s.authed,
        acceptedAt: s.meta.acceptedAt,
        endpoints: s.endpoints.size,
        streams: n,
      });
    }
    return {
      recorder: this.recorder.snapshot(),
      sessions: this.sessions.size,
      streams,
      endpoints: this.endpoints.size,
      loop: this.loop.sample(),
      sessionList: list,
    };
  }

  /** Ask the acceptor to reserve a hostname or TCP port for an endpoint. */
  reserve(req: Omit<ReserveRequest, 'op' | 'reqId'>): Promise<ReserveReply> {
    const sink = this.control;
    if (sink === null) {
      return Promise.resolve({ op: 'reserve-reply', reqId: 0, ok: false, error: 'worker has no control channel yet; retry', code: 'BURROW_ERR_RELAY_HANDOFF' });
    }
    const reqId = this.nextReqId++;
    return new Promise((resolve) => {
      this.pending.set(reqId, resolve);
      sink.post({ op: 'reserve', reqId, ...req });
    });
  }

  notify(msg: WorkerToAcceptor): void {
    this.control?.post(msg);
  }

  /** Constant-time token check against the configured hashes. */
  checkToken(token: string): boolean {
    const h = createHash('sha256').update(token, 'utf8').digest();
    let ok = false;
    for (const t of this.tokenHashes) if (timingSafeEqual(h, t)) ok = true;
    return ok;
  }

  /** An agent connection: terminate TLS and run the mux session; resolves when the session ends. */
  adoptAgent(socket: net.Socket, head: Buffer, meta: AdoptMeta): Promise<TaskResult> {
    if (head.length > 0) socket.unshift(head);
    prepareSocket(socket, this.settings.tcpKeepaliveMs);
    const session = new AgentSession(this, socket, meta);
    this.sessions.set(session.id, session);
    return session.done.then((r) => {
      this.sessions.delete(session.id);
      this.recorder.agentConnectionEnded(r.bytesIn, r.bytesOut);
      return r;
    });
  }

  /** A public connection routed to one of our endpoints. */
  adoptPublic(socket: net.Socket, head: Buffer, task: Omit<PublicTask, 'kind' | 'fd' | 'head'>): Promise<TaskResult> {
    prepareSocket(socket, this.settings.tcpKeepaliveMs);
    const type = endpointTypeIndex(task.entry);
    // Bytes from the client = what the acceptor read (head) + what this socket reads from here on (in the
    // single-threaded fallback the socket's own count already includes the head).
    const readBefore = socket.bytesRead;
    const row = this.recorder.endpointRow(task.entry === 'tcp' ? `tcp:${this.endpoints.get(task.endpointId)?.port ?? 0}` : task.hostname);
    return pumpPublic(this, socket, head, task, row).then((r) => {
      const bytesIn = r.bytesIn - readBefore + head.length;
      this.recorder.connectionEnded(type, r.outcome, bytesIn, r.bytesOut);
      this.recorder.endpointConnectionEnded(row, bytesIn, r.bytesOut);
      return r;
    });
  }

  /** Stop taking new sessions; tell agents to go away so they reconnect elsewhere once their streams finish. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const s of this.sessions.values()) s.goAway();
  }

  async destroy(): Promise<void> {
    for (const s of this.sessions.values()) s.destroy(new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'relay shutting down'));
    this.loop.close();
    this.closedResolve?.();
  }
}

export function prepareSocket(socket: net.Socket, keepaliveMs: number): void {
  socket.setNoDelay(true);
  if (keepaliveMs > 0) socket.setKeepAlive(true, keepaliveMs);
}
