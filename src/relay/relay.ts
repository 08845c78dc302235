// Starts and stops a relay process: acceptor listeners on the main thread, the worker pool (or the single-threaded
// fallback), and the wiring between them. Not on the data path.
import { Acceptor, type HostPort } from './acceptor/acceptor.js';
import { createDispatcher, type ConnectionDispatcher } from './acceptor/worker-pool.js';
import type { WorkerSettings } from './worker/worker-runtime.js';
import type { BalanceStrategy } from '../balancer/pick-member.js';
import { DEFAULT_MEMBER_BREAKER } from '../breaker/member-breaker.js';

export interface RelayStartOptions {
  domain: string;
  httpAddr: HostPort | null;
  httpsAddr: HostPort | null;
  agentAddr: HostPort | null;
  tcpPorts: { from: number; to: number };
  /** Host named in tcp:// URLs (TCP listeners bind on the http listener's host). */
  tcpHost: string;
  /** Worker threads; 0 forces the single-threaded runtime. */
  workers: number;
  prereadMax: number;
  prereadTimeoutMs: number;
  tcpKeepaliveMs: number;
  graceMs: number;
  certPem: string;
  keyPem: string;
  /** SHA-256 hex of each accepted agent token. */
  tokenHashes: string[];
  version: string;
  /** Pools: strategy when the endpoint asks for none (default random, as ngrok). */
  lbStrategy?: BalanceStrategy;
  /** Reserve a name/port for its owner this long after its last endpoint left, ms (default 30 000). */
  reclaimGraceMs?: number;
  /** Pool member breakers: open → half-open, ms (default 5000). */
  breakerResetMs?: number;
  /** Pool member breakers: no first response byte after this long = failure, ms (default 15 000). */
  breakerTimeoutMs?: number;
}

export interface Relay {
  readonly acceptor: Acceptor;
  readonly dispatcher: ConnectionDispatcher;
  readonly threaded: boolean;
  address(name: 'http' | 'https' | 'agent'): HostPort | null;
  /** Graceful: stop accepting, GOAWAY agents, wait up to graceMs for sessions to end, then stop everything. */
  close(): Promise<void>;
}

export async function startRelay(o: RelayStartOptions): Promise<Relay> {
  const bindHost = o.httpAddr?.host ?? o.httpsAddr?.host ?? '127.0.0.1';
  const acceptor = new Acceptor({
    domain: o.domain,
    httpAddr: o.httpAddr,
    httpsAddr: o.httpsAddr,
    agentAddr: o.agentAddr,
    tcpBindHost: bindHost,
    tcpPublicHost: o.tcpHost,
    tcpPorts: o.tcpPorts,
    prereadMax: o.prereadMax,
    prereadTimeoutMs: o.prereadTimeoutMs,
    defaultStrategy: o.lbStrategy ?? 'random',
    reclaimGraceMs: o.reclaimGraceMs ?? 30_000,
    breaker: {
      ...DEFAULT_MEMBER_BREAKER,
      resetTimeoutMs: o.breakerResetMs ?? DEFAULT_MEMBER_BREAKER.resetTimeoutMs,
      openTimeoutMs: o.breakerTimeoutMs ?? DEFAULT_MEMBER_BREAKER.openTimeoutMs,
    },
  });
  const settings: WorkerSettings = {
    domain: o.domain,
    certPem: o.certPem,
    keyPem: o.keyPem,
    tokenHashes: o.tokenHashes,
    tcpKeepaliveMs: o.tcpKeepaliveMs,
    headTimeoutMs: o.prereadTimeoutMs,
    maxHeadSize: 64 * 1024,
    handshakeTimeoutMs: 10_000,
    version: o.version,
  };
  const dispatcher = await createDispatcher({
    workers: o.workers,
    settings,
    onControl: (id, msg, reply) => acceptor.onControl(id, msg, reply),
    onWorkerGone: (id) => acceptor.onWorkerGone(id),
  });
  acceptor.setDispatcher(dispatcher);
  try {
    await acceptor.listen();
  } catch (err) {
    await dispatcher.destroy();
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    acceptor,
    dispatcher,
    threaded: dispatcher.threaded,
    address: (name) => acceptor.address(name),
    close(): Promise<void> {
      if (closing !== null) return closing;
      closing = (async () => {
        await acceptor.stopListening();
        dispatcher.drain();
        // Sessions end once their public connections are done; their routes drop with them.
        await acceptor.whenNoRoutes(o.graceMs);
        await dispatcher.destroy();
        acceptor.destroy();
      })();
      return closing;
    },
  };
}

