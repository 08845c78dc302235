// Messages between the acceptor (main thread) and the workers: handoff tasks and the control channel used to
// reserve routes. Types only; structured-clone friendly (no classes, no functions).
import type { MessagePort } from 'node:worker_threads';
import type { LoopSample } from '../metrics/loop-monitor.js';
import type { RecorderSnapshot } from '../metrics/relay-recorder.js';
import type { PortRange } from '../config/token-rules.js';

/** Public endpoint kinds a Bind can create. http covers the http listener and TLS-terminated https. */
export type EndpointProto = 'http' | 'https' | 'tcp' | 'tls';

/** How a handed-off connection reached the relay. */
export type PublicEntry = 'http' | 'https' | 'tls' | 'tcp';

/** A connection handed to a worker: its own fd (from dup) or, single-threaded, nothing (the socket is passed in). */
export interface AgentTask {
  kind: 'agent';
  fd: number;
  /** The fd's ownership claim (fd-claims.ts): its slot and ticket, set when the task is posted. */
  claimSlot: number;
  claimTicket: number;
  head: Uint8Array;
  remoteAddress: string;
  remotePort: number;
  acceptedAt: number;
}

export interface PublicTask {
  kind: 'public';
  fd: number;
  /** The fd's ownership claim (fd-claims.ts): its slot and ticket, set when the task is posted. */
  claimSlot: number;
  claimTicket: number;
  head: Uint8Array;
  entry: PublicEntry;
  /** endpointKey(): session id + the agent's Id. */
  endpointKey: string;
  /** Hostname the acceptor routed by (Host or SNI), '' for tcp. */
  hostname: string;
  /** SNI seen by the acceptor on https (for the SNI = Host check), '' otherwise. */
  sni: string;
  remoteAddress: string;
  remotePort: number;
  acceptedAt: number;
  /**
   * Non-zero for connections routed to a pooled endpoint: the worker reports the first outcome under this id
   * (MemberReport) so the acceptor can settle the member's breaker call. 0 = nothing to report.
   */
  connId: number;
  /**
   * The connection was already handed back once by a worker (reroute) and dispatched again: its one retry is spent,
   * so the new worker neither retries nor hands it back (else a request could bounce between failing members).
   */
  rerouted: boolean;
}

/** What the acceptor decides about a public connection; the dispatcher adds kind, fd and head. */
export type PublicTaskMeta = Omit<PublicTask, 'kind' | 'fd' | 'claimSlot' | 'claimTicket' | 'head'>;

export interface ControlTask {
  kind: 'control';
  port: MessagePort;
  /** The worker (threadId) this channel was made for; any other worker closes the port and ends the task at once. */
  workerId: number;
}

/**
 * Never reaches a worker: the dispatcher submits it and aborts it at once, only so that piscina starts a missing worker
 * (see ThreadedDispatcher.ensureWorkers). A worker that got one anyway ends it at once.
 */
export interface SpawnTask {
  kind: 'spawn';
}

export type RelayTask = AgentTask | PublicTask | ControlTask | SpawnTask;

/** What a connection task resolves with when its connection ends. */
export interface TaskResult {
  bytesIn: number;
  bytesOut: number;
  outcome: string;
  /**
   * Pooled connections (connId ≠ 0): every member report the worker sent for this connection, in order. The reports
   * also go out at once on the control port (breakers react while the connection lives), but that port and the one
   * the task's end arrives on are not ordered against each other: the acceptor applies here whatever it has not seen.
   */
  reports?: MemberOutcome[];
}

/** How a pool member did with one connection (MemberReport without the envelope). */
export interface MemberOutcome {
  /** endpointKey(): session id + the agent's Id. */
  endpointKey: string;
  ok: boolean;
  /** Time from stream open to the first response byte, µs (0 when there was none). */
  ttfbUs: number;
  /** Why it failed (for logs and breaker errors). */
  reason: string;
}

// ---- control channel: worker → acceptor ----

export interface ReserveRequest {
  op: 'reserve';
  reqId: number;
  sessionId: string;
  /** endpointKey(): session id + the agent's Id. */
  endpointKey: string;
  proto: EndpointProto;
  /** http/https/tls: the hostname wanted ('' = pick a random name). tcp: ignored. */
  hostname: string;
  /** tcp: the port wanted (0 = any free port in --tcp-ports). */
  port: number;
  /** Token identity of the session (never the token): names and pools belong to one owner. */
  owner: string;
  /** The Bind asked for pooling (PoolingEnabled): it may join, or later be joined by, other members. */
  pooling: boolean;
  /** Balancing strategy asked for by the endpoint ('' = the relay's --lb-strategy). */
  strategy: string;
  /** tcp with port 0: pick only within these ranges (the token's tcp= rule); absent = all of --tcp-ports. */
  portRanges?: PortRange[];
  /**
   * BasicAuthCheck.key of the endpoint's credentials ('' = none; a digest, never the credentials): a connection
   * handed back (reroute) goes only to a member with the same, since its bytes carry the client's Authorization.
   */
  authKey: string;
}

export interface ReleaseRequest {
  op: 'release';
  /** endpointKey(): session id + the agent's Id, so a stale session never drops a route its owner has reclaimed. */
  endpointKey: string;
}

export interface SessionGone {
  op: 'session-gone';
  sessionId: string;
}

/**
 * An agent sent Auth: the acceptor applies the per-IP failure rate limit and the per-token session limit (it sees every
 * worker's sessions). `tokenId` is '' when the token was missing or unknown.
 */
export interface AuthRequest {
  op: 'auth';
  reqId: number;
  sessionId: string;
  remoteAddress: string;
  tokenId: string;
  /** Session limit for this token (its sessions= rule, else --max-sessions-per-token). */
  maxSessions: number;
  /** Why the token was refused (when tokenId is ''), for the answer. */
  reason: string;
  /**
   * The ClientId the agent sent: '' for a new session, the previous AuthResp.ClientId when it reconnects. A live
   * session of the same token with that ClientId is superseded (ended, its routes freed) by this one.
   */
  clientId: string;
}


/**
 * First outcome of a public connection on a pooled endpoint: ok once the first response byte arrived, failure when
 * the stream was refused or reset before it, or the agent answered with its own dial-failure page (502/503/504).
 * A worker that retried on another member reports that member's outcome under the same connId.
 */
export interface MemberReport extends MemberOutcome {
  op: 'member-report';
  connId: number;
}

/**
 * Hand a public connection back for a retry on a pool member of another worker: its member failed before any
 * response byte, and no other member lives on this worker. `fd` is a dup of the connection (the worker closed its
 * own); `head` is every byte the client sent so far, which the new worker reads again from scratch.
 */
export interface RerouteRequest {
  op: 'reroute';
  fd: number;
  head: Uint8Array;
  /** Route key of the pool (`h:<hostname>` / `p:<port>`). */
  poolKey: string;
  /** endpointKey() of the member that failed: the acceptor picks another one. */
  failedEndpointKey: string;
  /** The failed member's ReserveRequest.authKey: the other one must have the same. */
  authKey: string;
  entry: PublicEntry;
  hostname: string;
  sni: string;
  remoteAddress: string;
  remotePort: number;
  acceptedAt: number;
}

/** One agent session as /api/sessions lists it. */
export interface SessionInfo {
  id: string;
  workerId: number;
  clientId: string;
  remoteAddress: string;
  authed: boolean;
  /** Wall-clock ms when the agent connection was accepted. */
  acceptedAt: number;
  endpoints: number;
  streams: number;
}

/** A worker's answer to a scrape: its recorder, live gauges and event-loop sample. */
export interface WorkerStats {
  /** Only for detail 'metrics': encoding the histograms costs the worker's loop, and a scrape owns the window. */
  recorder: RecorderSnapshot | null;
  sessions: number;
  streams: number;
  endpoints: number;
  /** Only for detail 'metrics': the loop monitor's last complete window (loop-monitor.ts). */
  loop: LoopSample | null;
  /** Filled only when the request asked for it (/api/sessions). */
  sessionList: SessionInfo[] | null;
}

export interface StatsReply {
  op: 'stats-reply';
  reqId: number;
  stats: WorkerStats;
}

/** The worker's control channel is up (sent once per worker start; /readyz counts these). */
export interface ControlReady {
  op: 'control-ready';
}

export type WorkerToAcceptor =
  | ReserveRequest
  | ReleaseRequest
  | SessionGone
  | MemberReport
  | RerouteRequest
  | StatsReply
  | ControlReady
  | AuthRequest;

// ---- control channel: acceptor → worker ----

export interface ReserveReply {
  op: 'reserve-reply';
  reqId: number;
  ok: boolean;
  /** Public URL parts on success. */
  hostname?: string;
  port?: number;
  url?: string;
  /** Error text and code on failure. */
  error?: string;
  code?: string;
}

export interface AuthReply {
  op: 'auth-reply';
  reqId: number;
  ok: boolean;
  /** On success: the ClientId to answer with (the one asked for, or a fresh one when it is not this token's). */
  clientId?: string;
  error?: string;
  code?: string;
}

/**
 * End a session at once: its agent reconnected on a new session with the same ClientId and token (the acceptor has
 * already dropped its routes and stopped counting it), so this one is the abandoned side of a dead link.
 */
export interface EndSessionCommand {
  op: 'end-session';
  sessionId: string;
  /** Who replaced it, for the log line and the GOAWAY's debug text. */
  reason: string;
}

export interface DrainCommand {
  op: 'drain';
}

/** A pool member's breaker opened (available = false) or let traffic through again: workers skip it on retries. */
export interface MemberState {
  op: 'member-state';
  /** endpointKey(): session id + the agent's Id. */
  endpointKey: string;
  available: boolean;
}

/**
 * What a stats request needs: 'metrics' (a /metrics scrape: recorder snapshot and loop sample), 'probe' (/readyz: the
 * live counts only, so a frequent probe neither costs histogram encoding nor resets the scrape's loop window), or
 * 'sessions' (/api/sessions: the counts and the session list).
 */
export type StatsDetail = 'metrics' | 'probe' | 'sessions';

/** Answer with a StatsReply carrying the same reqId. */
export interface StatsRequest {
  op: 'stats';
  reqId: number;
  detail: StatsDetail;
}

/**
 * Test hook (honoured only with BURROW_TEST_HOOKS=1 in the environment): the worker throws an uncaught error, or with
 * `hangMs` blocks its event loop that long (a live worker that does not answer), or with `onNextConnection` crashes
 * when the next connection task reaches it, before taking its descriptor (fd-claims.ts).
 */
export interface TestCrashCommand {
  op: 'test-crash';
  hangMs?: number;
  onNextConnection?: boolean;
}

export type AcceptorToWorker = ReserveReply | AuthReply | DrainCommand | MemberState | StatsRequest | TestCrashCommand | EndSessionCommand;

/**
 * Relay-wide key of an endpoint: its session's id + the Id its agent knows it by. Agents choose Ids (the SDKs send
 * the old one again when they re-bind), so one Id may be live on several sessions at once; routes, pools, tasks and
 * member reports carry this key, and only ProxyHeaders and RPC replies carry the Id.
 */
export function endpointKey(sessionId: string, id: string): string {
  return `${sessionId}/${id}`;
}

/** The agent's Id inside an endpointKey() (session ids and Ids never contain '/'). */
export function endpointIdOfKey(key: string): string {
  return key.slice(key.indexOf('/') + 1);
}
