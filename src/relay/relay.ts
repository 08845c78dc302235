// Starts and stops a relay process: acceptor listeners on the main thread, the worker pool (or the single-threaded
// fallback), and the wiring between them. Not on the data path.
import { Acceptor, type HostPort } from './acceptor/acceptor.js';
import { createDispatcher, type ConnectionDispatcher } from './acceptor/worker-pool.js';
import type { WorkerSettings } from './worker/worker-runtime.js';

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
      })();
      return closing;
    },
  };
}

