// Everything one worker owns: agent sessions, their endpoints, and the public connections routed to them, plus the
// worker's control channel to the acceptor. Runs on a worker thread, or on the main thread in the single-threaded
// fallback. Per-connection path: adoptPublic (one Map lookup, then the pump).
import { constants } from 'node:crypto';
import tls from 'node:tls';
import type net from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { BurrowError } from '../../core/errors.js';
import { nativeAddon } from '../../native/native-addon.js';
import { LoopMonitor } from '../../metrics/loop-monitor.js';
import { RelayRecorder, endpointTypeIndex } from '../../metrics/relay-recorder.js';
import type { TokenEntry } from '../../config/token-rules.js';
import { tokenMatcher } from '../../config/tokens.js';
import type { RelayLimits } from '../../config/relay-limits.js';
import type {
  AcceptorToWorker,
  AuthReply,
  AuthRequest,
  MemberOutcome,
  PublicTaskMeta,
  ReserveReply,
  ReserveRequest,
  SessionInfo,
  StatsDetail,
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
  /** Every accepted agent token: hash, identity, rules. */
  tokens: TokenEntry[];
  /** TCP keepalive initial delay for public and agent sockets, ms (0 = off). */
  tcpKeepaliveMs: number;
  limits: RelayLimits;
  /** Agent TLS handshake deadline, ms. */
  handshakeTimeoutMs: number;
  version: string;
  /** false = `--metrics off`: nothing is recorded (counters and histograms stay at 0). */
  metrics: boolean;
  /** `--metrics-per-endpoint`: also count connections, requests and bytes per endpoint hostname / TCP port. */
  metricsPerEndpoint: boolean;
  /** Interval of the relay's own heartbeats to each agent (RTT measurement), ms; 0 = off. */
  agentRttIntervalMs: number;
  /**
   * --breaker-timeout, ms: a pooled TCP connection older than this has been counted a success by its member's breaker
   * (acceptor beginConn), so its stream ending without a byte is no failure and no reason to retry (BytePipe).
   */
  breakerTimeoutMs: number;
}

/** What the pool passes each worker thread (workerData): the settings and the descriptor ownership ring. */
export interface WorkerData extends WorkerSettings {
  /** FdClaims.buffer (relay/fd-claims.ts). */
  fdClaims: SharedArrayBuffer;
}

export interface ControlSink {
  post(msg: WorkerToAcceptor): void;
}

/** An open HTTP(S) connection as the runtime sees it (public-pump.ts HttpPump). */
export interface HttpConnection {
  drain(): void;
  /** `ep` was unbound: if it is this connection's, close it as drain() does. */
  endpointDropped(ep: Endpoint): void;
  /** Between requests with a live stream: how long since its last byte (in ticks, WorkerRuntime.tick), else -1. */
  idleTicks(): number;
  /** Close it and free its stream now (only when idleTicks() >= 0). */
  evict(): void;
}

/** Length of one WorkerRuntime.tick. */
const TICK_MS = 250;
/** How often sockets paused by backpressure are polled for a client that reset them. */
const PAUSED_SWEEP_MS = 5_000;

/** What a reroute carries about the connection besides its bytes. */
export type RerouteMeta = Pick<PublicTaskMeta, 'entry' | 'hostname' | 'sni' | 'remoteAddress' | 'remotePort' | 'acceptedAt'>;

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
  /** Every bound endpoint of this worker, by endpointKey() (agent-chosen Ids repeat across sessions). */
  readonly endpoints: Map<string, Endpoint>;
  /** Member reports of pooled connections still open, by conn id; moved into the task's result when it ends. */
  private readonly memberReports: Map<number, MemberOutcome[]>;
  /** Pooled endpoints on this worker by pool key (retries pick another local member). */
  readonly pools: Map<string, Endpoint[]>;
  draining: boolean;
  /**
   * Connections can be handed back to the acceptor for a retry on another worker's pool member (worker threads with
   * the native addon). False in the single-threaded fallback, where every member is local anyway.
   */
  canReroute: boolean;
  /** Test hook (TestCrashCommand.onNextConnection): crash on the next connection task, before taking its fd. */
  crashOnNextConnection: boolean;
  /** What /metrics reads from this thread (collected on a 'stats' control message). */
  readonly recorder: RelayRecorder;
  private readonly loop: LoopMonitor;
  /** Public sockets not read because their stream has no room: polled for a peer that reset them (sweepPaused). */
  private readonly pausedSockets: Set<net.Socket>;
  private readonly pausedSweep: NodeJS.Timeout | null;
  /** A coarse clock for idle ages (TICK_MS per tick): a field read per response instead of a clock read. */
  tick: number;
  private readonly ticker: NodeJS.Timeout;
  /** The token entry for an AuthToken, or null (constant time). */
  readonly lookupToken: (token: string) => TokenEntry | null;
  private control: ControlSink | null;
  private nextReqId: number;
  private readonly pending: Map<number, (r: ReserveReply | AuthReply) => void>;
  private closedResolve: (() => void) | null;
  private readonly closed: Promise<void>;

  constructor(settings: WorkerSettings, workerId: number) {
    this.settings = settings;
    this.workerId = workerId;
    // No TLS 1.2 renegotiation: Node's limit on it (ERR_TLS_SESSION_ATTACK) reaches only sockets a tls.Server made, and
    // these TLSSockets wrap handed-off descriptors, so a client could make the worker run handshakes without end on
    // one connection (the agent port needs no token for that).
    this.secureContext = tls.createSecureContext({ key: settings.keyPem, cert: settings.certPem, secureOptions: constants.SSL_OP_NO_RENEGOTIATION });
    this.sessions = new Map();
    this.endpoints = new Map();
    this.memberReports = new Map();
    this.pools = new Map();
    this.recorder = new RelayRecorder(settings.metrics, settings.metricsPerEndpoint);
    this.loop = new LoopMonitor();
    this.pausedSockets = new Set();
    this.pausedSweep = nativeAddon.available ? setInterval(() => this.sweepPaused(), PAUSED_SWEEP_MS) : null;
    this.pausedSweep?.unref();
    this.tick = 0;
    this.ticker = setInterval(() => this.tick++, TICK_MS);
    this.ticker.unref();
    this.draining = false;
    this.canReroute = false;
    this.crashOnNextConnection = false;
    this.lookupToken = tokenMatcher(settings.tokens);
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
    if (msg.op === 'reserve-reply' || msg.op === 'auth-reply') {
      const cb = this.pending.get(msg.reqId);
      if (cb !== undefined) {
        this.pending.delete(msg.reqId);
        cb(msg);
      }
    } else if (msg.op === 'drain') {
      this.drain();
    } else if (msg.op === 'end-session') {
      this.sessions.get(msg.sessionId)?.supersede(msg.reason);
    } else if (msg.op === 'member-state') {
      const ep = this.endpoints.get(msg.endpointKey);
      if (ep !== undefined) ep.available = msg.available;
    } else if (msg.op === 'stats') {
      this.control?.post({ op: 'stats-reply', reqId: msg.reqId, stats: this.stats(msg.detail) });
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
        if (msg.onNextConnection === true) {
          this.crashOnNextConnection = true; // worker-entry.ts checks it before taking the task's descriptor
          return;
        }
        setImmediate(() => {
          throw new Error('test-crash: worker crashed on request (BURROW_TEST_HOOKS=1)');
        });
      }
    }
  }

  addEndpoint(ep: Endpoint): void {
    this.endpoints.set(ep.key, ep);
    if (!ep.pooled) return;
    const list = this.pools.get(ep.poolKey);
    if (list === undefined) this.pools.set(ep.poolKey, [ep]);
    else list.push(ep);
  }

  removeEndpoint(ep: Endpoint): void {
    if (this.endpoints.get(ep.key) === ep) this.endpoints.delete(ep.key);
    const list = this.pools.get(ep.poolKey);
    if (list === undefined) return;
    const i = list.indexOf(ep);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.pools.delete(ep.poolKey);
  }

  /**
   * Another member of `ep`'s pool on this worker for a retry (one retry per request): available, live, admitting
   * `clientIp` (its IP restrictions), with the same basic auth credentials and request header rules as `ep`, the
   * least busy.
   * Null when there is none (members on other workers are out of reach once the connection is here).
   */
  alternateMember(ep: Endpoint, clientIp: string): Endpoint | null {
    const list = this.pools.get(ep.poolKey);
    if (list === undefined) return null;
    let best: Endpoint | null = null;
    for (const m of list) {
      if (m === ep || !m.available || m.session.mux === null || m.session.mux.isClosed) continue;
      if (m.ipPolicy !== null && !m.ipPolicy.allows(clientIp)) continue; // each member's own IP restrictions hold
      if ((m.basicAuth?.key ?? '') !== (ep.basicAuth?.key ?? '')) continue; // the request passed ep's credentials only
      if ((m.requestHeaders?.key ?? '') !== (ep.requestHeaders?.key ?? '')) continue; // and was rewritten by ep's rules
      if (best === null || m.active < best.active) best = m;
    }
    return best;
  }

  /** Live gauges; with 'metrics' the recorder snapshot and the last event-loop window too. */
  stats(detail: StatsDetail): WorkerStats {
    let streams = 0;
    let list: SessionInfo[] | null = detail === 'sessions' ? [] : null;
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
      recorder: detail === 'metrics' ? this.recorder.snapshot() : null,
      sessions: this.sessions.size,
      streams,
      endpoints: this.endpoints.size,
      loop: detail === 'metrics' ? this.loop.sample() : null,
      sessionList: list,
    };
  }

  /** Ask the acceptor to reserve a hostname or TCP port for an endpoint. */
  reserve(req: Omit<ReserveRequest, 'op' | 'reqId'>): Promise<ReserveReply> {
    return this.ask((reqId) => ({ op: 'reserve', reqId, ...req }), 'reserve-reply') as Promise<ReserveReply>;
  }

  /** Ask the acceptor to admit an authenticating session (per-IP failure rate limit, per-token session limit). */
  admit(req: Omit<AuthRequest, 'op' | 'reqId'>): Promise<AuthReply> {
    return this.ask((reqId) => ({ op: 'auth', reqId, ...req }), 'auth-reply') as Promise<AuthReply>;
  }

  private ask(build: (reqId: number) => WorkerToAcceptor, replyOp: 'reserve-reply' | 'auth-reply'): Promise<ReserveReply | AuthReply> {
    const sink = this.control;
    if (sink === null) {
      return Promise.resolve({ op: replyOp, reqId: 0, ok: false, error: 'worker has no control channel yet; retry', code: 'BURROW_ERR_RELAY_HANDOFF' });
    }
    const reqId = this.nextReqId++;
    return new Promise((resolve) => {
      this.pending.set(reqId, resolve);
      sink.post(build(reqId));
    });
  }

  notify(msg: WorkerToAcceptor): void {
    this.control?.post(msg);
  }

  /**
   * How a pool member did with pooled connection `connId`: sent now (breakers react while the connection lives) and
   * kept for the task's result, which the acceptor also reads (the two arrive on different ports, in either order).
   */
  reportMember(connId: number, outcome: MemberOutcome): void {
    this.control?.post({ op: 'member-report', connId, ...outcome });
    const list = this.memberReports.get(connId);
    if (list === undefined) this.memberReports.set(connId, [outcome]);
    else list.push(outcome);
  }

  /**
   * Give a public connection back to the acceptor for a retry on a member of another worker. Stops reading first
   * (pause() would not stop libuv), dups the descriptor for the acceptor; the caller then destroys its socket, which
   * closes only its own descriptor. False when not possible here (the caller answers the client itself).
   */
  reroute(raw: net.Socket, head: Buffer, meta: RerouteMeta, ep: Endpoint): boolean {
    if (!this.canReroute || this.control === null || raw.destroyed) return false;
    const handle = (raw as unknown as { _handle?: { fd?: number; readStop?: () => number } })._handle;
    const fd = handle?.fd ?? -1;
    if (fd < 0) return false;
    let dupFd: number;
    try {
      dupFd = nativeAddon.dup(fd);
    } catch {
      return false; // EMFILE and the like: still reading, so the caller's answer and the client's FIN go through
    }
    handle!.readStop?.(); // only once the acceptor will get it: a stopped socket would never see the client's FIN
    this.control.post({
      op: 'reroute',
      fd: dupFd,
      head,
      poolKey: ep.poolKey,
      failedEndpointKey: ep.key,
      authKey: ep.basicAuth?.key ?? '',
      entry: meta.entry,
      hostname: meta.hostname,
      sni: meta.sni,
      remoteAddress: meta.remoteAddress,
      remotePort: meta.remotePort,
      acceptedAt: meta.acceptedAt,
    });
    return true;
  }

  /** An agent connection: terminate TLS and run the mux session; resolves when the session ends. */
  adoptAgent(socket: net.Socket, head: Buffer, meta: AdoptMeta): Promise<TaskResult> {
    if (head.length > 0) socket.unshift(head);
    prepareSocket(socket, this.settings.tcpKeepaliveMs);
    const session = new AgentSession(this, socket, meta);
    this.sessions.set(session.id, session);
    // Handed off before the acceptor stopped listening but arrived after the drain (the task and the drain message
    // travel on different channels): drain it too, else it would authenticate and hold close() for the whole grace.
    if (this.draining) session.goAway();
    return session.done.then((r) => {
      this.sessions.delete(session.id);
      this.recorder.agentConnectionEnded(r.bytesIn, r.bytesOut);
      return r;
    });
  }

  /** A public connection routed to one of our endpoints. */
  adoptPublic(socket: net.Socket, head: Buffer, task: PublicTaskMeta): Promise<TaskResult> {
    prepareSocket(socket, this.settings.tcpKeepaliveMs);
    const opaque = task.entry === 'tcp' || task.entry === 'tls';
    const idle = opaque ? this.settings.limits.tcpIdleTimeoutMs : this.settings.limits.idleTimeoutMs;
    // No bytes either way for `idle` ms: close (a keep-alive connection parked between requests, a dead peer).
    // TCP/TLS endpoints have their own setting, off by default (long quiet sessions are normal there).
    // A shared listener, not a closure plus setTimeout's `once` wrapper per socket (idle connections are many).
    if (idle > 0) {
      socket.setTimeout(idle);
      socket.on('timeout', destroyOnTimeout);
    }
    const type = endpointTypeIndex(task.entry);
    // Bytes from the client = what the acceptor read (head) + what this socket reads from here on (in the
    // single-threaded fallback the socket's own count already includes the head).
    const readBefore = socket.bytesRead;
    // The per-endpoint key (a string built per connection) only when those metrics are on.
    const row = !this.recorder.perEndpointOn
      ? null
      : this.recorder.endpointRow(task.entry === 'tcp' ? `tcp:${this.endpoints.get(task.endpointKey)?.port ?? 0}` : task.hostname);
    const headLen = head.length; // not `head`: the closure would keep the bytes alive as long as the connection
    return pumpPublic(this, socket, head, task, row).then((r) => {
      if (task.connId !== 0) {
        const reports = this.memberReports.get(task.connId);
        if (reports !== undefined) {
          this.memberReports.delete(task.connId);
          r.reports = reports;
        }
      }
      // Handed back to the acceptor: whoever ends the connection counts it, with the head this leg got (RelayRecorder).
      if (r.outcome === 'rerouted') return r;
      const bytesIn = r.bytesIn - readBefore + headLen;
      this.recorder.connectionEnded(type, r.outcome, bytesIn, r.bytesOut);
      this.recorder.endpointConnectionEnded(row, bytesIn, r.bytesOut);
      return r;
    });
  }

  /**
   * `session` is at its stream limit: close the one of its keep-alive HTTP connections that has been idle the longest
   * (between requests, no byte either way), whose stream is then free for a new connection. False when none is idle.
   * Without this, idle keep-alive connections (browsers keep several per site) would hold the session's streams and
   * new clients get 502 until those idle out. Scans only that session's connections, and only at its limit.
   */
  evictIdle(session: AgentSession): boolean {
    let pick: HttpConnection | null = null;
    let longest = -1;
    for (const c of session.httpConnections) {
      const idle = c.idleTicks();
      if (idle > longest) {
        longest = idle;
        pick = c;
      }
    }
    if (pick === null) return false;
    pick.evict(); // counted as outcome 'evicted' when it closes
    return true;
  }

  /** Stop taking new sessions; tell agents to go away so they reconnect elsewhere once their streams finish. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    // Connections between requests close now, the others after their response: the sessions then end as soon as
    // the requests in flight are answered, not when the grace period runs out.
    // Each session keeps its own HTTP(S) connections (AgentSession.httpConnections).
    for (const s of this.sessions.values()) for (const c of [...s.httpConnections]) c.drain();
    for (const s of this.sessions.values()) s.goAway();
  }

  /** `socket` is not read because its stream has no room (backpressure): watched for a reset meanwhile. */
  watchPaused(socket: net.Socket): void {
    if (this.pausedSweep !== null) this.pausedSockets.add(socket);
  }

  /** `socket` is read again, or closed. */
  unwatchPaused(socket: net.Socket): void {
    this.pausedSockets.delete(socket);
  }

  /**
   * libuv does not watch a socket whose reading is stopped and that has nothing to write, so a client that resets a
   * connection paused by backpressure (an upload to a slow upstream) was never noticed: its stream, the agent's
   * buffers for it and its upstream connection were held for good. Each paused socket is polled (peerGone, no read);
   * a reset one is destroyed, which resets its stream.
   */
  private sweepPaused(): void {
    for (const s of this.pausedSockets) {
      const fd = (s as unknown as { _handle?: { fd?: number } | null })._handle?.fd ?? -1;
      if (s.destroyed || fd < 0) {
        this.pausedSockets.delete(s);
      } else if (nativeAddon.peerGone(fd)) {
        this.pausedSockets.delete(s);
        s.destroy();
      }
    }
  }

  async destroy(): Promise<void> {
    for (const s of this.sessions.values()) s.destroy(new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'relay shutting down'));
    this.loop.close();
    if (this.pausedSweep !== null) clearInterval(this.pausedSweep);
    clearInterval(this.ticker);
    this.closedResolve?.();
  }
}

/** 'timeout' listener shared by every public socket: the socket idled past --idle-timeout. */
function destroyOnTimeout(this: net.Socket): void {
  this.destroy();
}

export function prepareSocket(socket: net.Socket, keepaliveMs: number): void {
  socket.setNoDelay(true);
  if (keepaliveMs > 0) socket.setKeepAlive(true, keepaliveMs);
}
