// Starts and stops a relay process: acceptor listeners on the main thread, the worker pool (or the single-threaded
// fallback), and the wiring between them. Not on the data path.
import { Acceptor, type HostPort } from './acceptor/acceptor.js';
import { createDispatcher, type ConnectionDispatcher } from './acceptor/worker-pool.js';
import type { WorkerSettings } from './worker/worker-runtime.js';
import { FULL_RIGHTS, tokenIdOf, type TokenEntry } from '../config/token-rules.js';
import { DEFAULT_LIMITS, type RelayLimits } from '../config/relay-limits.js';

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
  /** SHA-256 hex of each accepted agent token with full rights (plain token lines). */
  tokenHashes: string[];
  /** Tokens with their identities and rules (the tokens file); joins tokenHashes. */
  tokens?: TokenEntry[];
  /** Resource limits; missing fields take DEFAULT_LIMITS. */
  limits?: Partial<RelayLimits>;
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
  const limits: RelayLimits = { ...DEFAULT_LIMITS, ...o.limits };
  const tokens = new Map<string, TokenEntry>();
  for (const t of o.tokens ?? []) if (!tokens.has(t.hash)) tokens.set(t.hash, t);
  for (const h of o.tokenHashes) if (!tokens.has(h)) tokens.set(h, { hash: h, id: tokenIdOf(h), rules: FULL_RIGHTS });
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
    limits,
  });
  const settings: WorkerSettings = {
    domain: o.domain,
    certPem: o.certPem,
    keyPem: o.keyPem,
    tokens: [...tokens.values()],
    tcpKeepaliveMs: o.tcpKeepaliveMs,
    limits,
    handshakeTimeoutMs: 10_000,
    version: o.version,
  };
  const dispatcher = await createDispatcher({
    workers: o.workers,
    settings,
    onControl: (id, msg, reply) => acceptor.onControl(id, msg, reply),
    onWorkerGone: (id) => acceptor.onWorkerGone(id),
    onTaskDone: (_kind, _result, _err, ip) => acceptor.onConnectionDone(ip),
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

