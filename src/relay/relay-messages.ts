// Messages between the acceptor (main thread) and the workers: handoff tasks and the control channel used to
// reserve routes. Types only; structured-clone friendly (no classes, no functions).
import type { MessagePort } from 'node:worker_threads';
import type { LoopSample } from '../metrics/loop-monitor.js';
import type { RecorderSnapshot } from '../metrics/relay-recorder.js';

/** Public endpoint kinds a Bind can create. http covers the http listener and TLS-terminated https. */
export type EndpointProto = 'http' | 'https' | 'tcp' | 'tls';

/** How a handed-off connection reached the relay. */
export type PublicEntry = 'http' | 'https' | 'tls' | 'tcp';

/** A connection handed to a worker: its own fd (from dup) or, single-threaded, nothing (the socket is passed in). */
export interface AgentTask {
  kind: 'agent';
  fd: number;
  head: Uint8Array;
  remoteAddress: string;
  remotePort: number;
  acceptedAt: number;
}

export interface PublicTask {
  kind: 'public';
  fd: number;
  head: Uint8Array;
  entry: PublicEntry;
  endpointId: string;
  /** Hostname the acceptor routed by (Host or SNI), '' for tcp. */
  hostname: string;
  /** SNI seen by the acceptor on https (for the SNI = Host check), '' otherwise. */
  sni: string;
  remoteAddress: string;
  remotePort: number;
  acceptedAt: number;
}

export interface ControlTask {
  kind: 'control';
  port: MessagePort;
}

export type RelayTask = AgentTask | PublicTask | ControlTask;

/** What a connection task resolves with when its connection ends. */
export interface TaskResult {
  bytesIn: number;
  bytesOut: number;
  outcome: string;
}

// ---- control channel: worker → acceptor ----

export interface ReserveRequest {
  op: 'reserve';
  reqId: number;
  sessionId: string;
  endpointId: string;
  proto: EndpointProto;
  /** http/https/tls: the hostname wanted ('' = pick a random name). tcp: ignored. */
  hostname: string;
  /** tcp: the port wanted (0 = any free port in --tcp-ports). */
  port: number;
}

export interface ReleaseRequest {
  op: 'release';
  endpointId: string;
  /** The session releasing it: a stale session must never drop a route its owner has since reclaimed. */
  sessionId: string;
}

export interface SessionGone {
  op: 'session-gone';
  sessionId: string;
}

export interface SessionStarted {
  op: 'session-started';
  sessionId: string;
  remoteAddress: string;
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
  recorder: RecorderSnapshot;
  sessions: number;
  streams: number;
  endpoints: number;
  loop: LoopSample;
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

export type WorkerToAcceptor = ReserveRequest | ReleaseRequest | SessionGone | SessionStarted | StatsReply | ControlReady;

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

export interface DrainCommand {
  op: 'drain';
}

/** Scrape: answer with a StatsReply carrying the same reqId. */
export interface StatsRequest {
  op: 'stats';
  reqId: number;
  sessions: boolean;
}

/**
 * Test hook (honoured only with BURROW_TEST_HOOKS=1 in the environment): the worker throws an uncaught error, or with
 * `hangMs` blocks its event loop that long (a live worker that does not answer).
 */
export interface TestCrashCommand {
  op: 'test-crash';
  hangMs?: number;
}

export type AcceptorToWorker = ReserveReply | DrainCommand | StatsRequest | TestCrashCommand;
