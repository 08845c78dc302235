// Everything one worker owns: agent sessions, their endpoints, and the public connections routed to them, plus the
// worker's control channel to the acceptor. Runs on a worker thread, or on the main thread in the single-threaded
// fallback. Per-connection path: adoptPublic (one Map lookup, then the pump).
import tls from 'node:tls';
import type net from 'node:net';
import { BurrowError } from '../../core/errors.js';
import type { TokenEntry } from '../../config/token-rules.js';
import { tokenMatcher } from '../../config/tokens.js';
import type { RelayLimits } from '../../config/relay-limits.js';
import type {
  AcceptorToWorker,
  AuthReply,
  AuthRequest,
  PublicTask,
  ReserveReply,
  ReserveRequest,
  TaskResult,
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
  draining: boolean;
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
    this.secureContext = tls.createSecureContext({ key: settings.keyPem, cert: settings.certPem });
    this.sessions = new Map();
    this.endpoints = new Map();
    this.draining = false;
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
    }
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

  /** An agent connection: terminate TLS and run the mux session; resolves when the session ends. */
  adoptAgent(socket: net.Socket, head: Buffer, meta: AdoptMeta): Promise<TaskResult> {
    if (head.length > 0) socket.unshift(head);
    prepareSocket(socket, this.settings.tcpKeepaliveMs);
    const session = new AgentSession(this, socket, meta);
    this.sessions.set(session.id, session);
    return session.done.finally(() => this.sessions.delete(session.id));
  }

  /** A public connection routed to one of our endpoints. */
  adoptPublic(socket: net.Socket, head: Buffer, task: Omit<PublicTask, 'kind' | 'fd' | 'head'>): Promise<TaskResult> {
    prepareSocket(socket, this.settings.tcpKeepaliveMs);
    const idle = this.settings.limits.idleTimeoutMs;
    // No bytes either way for `idle` ms: close (a keep-alive connection parked between requests, a dead peer).
    if (idle > 0) socket.setTimeout(idle, () => socket.destroy());
    return pumpPublic(this, socket, head, task);
  }

  /** Stop taking new sessions; tell agents to go away so they reconnect elsewhere once their streams finish. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const s of this.sessions.values()) s.goAway();
  }

  async destroy(): Promise<void> {
    for (const s of this.sessions.values()) s.destroy(new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'relay shutting down'));
    this.closedResolve?.();
  }
}

export function prepareSocket(socket: net.Socket, keepaliveMs: number): void {
  socket.setNoDelay(true);
  if (keepaliveMs > 0) socket.setKeepAlive(true, keepaliveMs);
}
