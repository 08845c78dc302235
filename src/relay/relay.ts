// Starts and stops a relay process: acceptor listeners on the main thread, the worker pool (or the single-threaded
// fallback), and the wiring between them. Not on the data path.
import { X509Certificate } from 'node:crypto';
import { Acceptor, type HostPort } from './acceptor/acceptor.js';
import { createDispatcher, type ConnectionDispatcher } from './acceptor/worker-pool.js';
import type { WorkerSettings } from './worker/worker-runtime.js';
import type { BalanceStrategy } from '../balancer/pick-member.js';
import { DEFAULT_MEMBER_BREAKER } from '../breaker/member-breaker.js';
import { AdminServer, json, text } from '../metrics/admin-server.js';
import { CONTENT_TYPE } from '../metrics/prom-families.js';
import { RelayMetrics } from '../metrics/relay-metrics.js';
import { FULL_RIGHTS, tokenIdOf, type TokenEntry } from '../config/token-rules.js';
import { DEFAULT_LIMITS, type RelayLimits } from '../config/relay-limits.js';

export interface RelayStartOptions {
  domain: string;
  httpAddr: HostPort | null;
  httpsAddr: HostPort | null;
  agentAddr: HostPort | null;
  tcpPorts: { from: number; to: number };
  /** Host named in tcp:// URLs (TCP listeners bind where the public listeners do: http's host, else https', else agent's). */
  tcpHost: string;
  /** Worker threads; 0 forces the single-threaded runtime. */
  workers: number;
  prereadMax: number;
  prereadTimeoutMs: number;
  tcpKeepaliveMs: number;
  graceMs: number;
  certPem: string;
  keyPem: string;
  /** SHA-256 hex of more accepted agent tokens, with full rights (API callers; the CLI passes `tokens`). */
  tokenHashes?: string[];
  /** Tokens with their identities and rules (the tokens file); joins tokenHashes. */
  tokens?: TokenEntry[];
  /** Resource limits; missing fields take DEFAULT_LIMITS. */
  limits?: Partial<RelayLimits>;
  version: string;
  /** Pools: strategy when the endpoint asks for none (default random, as ngrok). */
  lbStrategy?: BalanceStrategy;
  /** Reserve a name/port for its owner this long after its last endpoint left, ms (default 30 000). */
  reclaimGraceMs?: number;
  /** Pool member breakers: open → half-open, ms (default 5000). */
  breakerResetMs?: number;
  /** Pool member breakers: no first response byte after this long = failure, ms (default 15 000). */
  breakerTimeoutMs?: number;
  /** Admin server (/metrics, /healthz, /readyz, /api/*); null or absent = off. */
  adminAddr?: HostPort | null;
  /** Required when adminAddr is not loopback. */
  adminToken?: string | null;
  /** false = record nothing (`--metrics off`); default true. */
  metrics?: boolean;
  /** Also export counters per endpoint hostname / TCP port (`--metrics-per-endpoint`); default false. */
  metricsPerEndpoint?: boolean;
  /** How long a scrape waits for each worker, ms (default 1000). */
  statsTimeoutMs?: number;
  /** Relay heartbeats to agents for burrow_agent_rtt_seconds, ms (default 10000; 0 = off). */
  agentRttIntervalMs?: number;
}

export interface Relay {
  readonly acceptor: Acceptor;
  readonly dispatcher: ConnectionDispatcher;
  readonly threaded: boolean;
  address(name: 'http' | 'https' | 'agent'): HostPort | null;
  /** Where the admin server listens (port 0 resolved), or null when it is off. */
  adminAddress(): HostPort | null;
  readonly metrics: RelayMetrics;
  /** Graceful: stop accepting, GOAWAY agents, wait up to graceMs for sessions to end, then stop everything. */
  close(): Promise<void>;
}

export async function startRelay(o: RelayStartOptions): Promise<Relay> {
  const limits: RelayLimits = { ...DEFAULT_LIMITS, ...o.limits };
  const tokens = new Map<string, TokenEntry>();
  for (const t of o.tokens ?? []) if (!tokens.has(t.hash)) tokens.set(t.hash, t);
  for (const h of o.tokenHashes ?? []) if (!tokens.has(h)) tokens.set(h, { hash: h, id: tokenIdOf(h), rules: FULL_RIGHTS });
  // TCP endpoint listeners bind where the public listeners do; with both off, where agents connect — the same chain
  // relay-config uses for the host named in tcp:// URLs (they must agree, or URLs name a host nobody listens on).
  const bindHost = (o.httpAddr ?? o.httpsAddr ?? o.agentAddr)?.host ?? '127.0.0.1';
  // The leaf (first certificate of the chain): the one every https client checks the endpoint's name against.
  const leaf = new X509Certificate(o.certPem);
  const acceptor = new Acceptor({
    domain: o.domain,
    httpAddr: o.httpAddr,
    httpsAddr: o.httpsAddr,
    agentAddr: o.agentAddr,
    tcpBindHost: bindHost,
    tcpPublicHost: o.tcpHost,
    tcpPorts: o.tcpPorts,
    certCovers: (hostname) => leaf.checkHost(hostname) !== undefined,
    prereadMax: o.prereadMax,
    prereadTimeoutMs: o.prereadTimeoutMs,
    defaultStrategy: o.lbStrategy ?? 'random',
    reclaimGraceMs: o.reclaimGraceMs ?? 30_000,
    breaker: {
      ...DEFAULT_MEMBER_BREAKER,
      resetTimeoutMs: o.breakerResetMs ?? DEFAULT_MEMBER_BREAKER.resetTimeoutMs,
      openTimeoutMs: o.breakerTimeoutMs ?? DEFAULT_MEMBER_BREAKER.openTimeoutMs,
    },
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
    metrics: o.metrics ?? true,
    metricsPerEndpoint: o.metricsPerEndpoint ?? false,
    agentRttIntervalMs: o.agentRttIntervalMs ?? 10_000,
    breakerTimeoutMs: o.breakerTimeoutMs ?? DEFAULT_MEMBER_BREAKER.openTimeoutMs,
  };
  const dispatcher = await createDispatcher({
    workers: o.workers,
    settings,
    onControl: (id, msg, reply) => acceptor.onControl(id, msg, reply),
    onWorkerGone: (id) => acceptor.onWorkerGone(id),
    onTaskDone: (ip, connId, reports) => acceptor.onConnectionDone(ip, connId, reports),
  });
  acceptor.setDispatcher(dispatcher);
  const metrics = new RelayMetrics(acceptor, dispatcher, { statsTimeoutMs: o.statsTimeoutMs ?? 1000, version: o.version });
  let admin: AdminServer | null = null;
  try {
    await acceptor.listen();
    if (o.adminAddr !== undefined && o.adminAddr !== null) {
      admin = await AdminServer.start(
        {
          host: o.adminAddr.host,
          port: o.adminAddr.port,
          token: o.adminToken ?? null,
          routes: {
            '/metrics': async () => ({ status: 200, contentType: CONTENT_TYPE, body: await metrics.scrape() }),
            '/healthz': async () => text(200, 'ok\n'),
            '/readyz': async () => {
              const r = await metrics.readiness();
              return r.ready ? text(200, 'ready\n') : text(503, `not ready: ${r.reasons.join('; ')}\n`);
            },
            '/api/sessions': async () => json(200, await metrics.sessions()),
            '/api/endpoints': async () => json(200, { endpoints: metrics.endpoints() }),
          },
        },
        '--admin-addr',
        '--admin-token (or BURROW_RELAY_ADMIN_TOKEN)',
      );
    }
  } catch (err) {
    await acceptor.stopListening();
    metrics.close();
    await dispatcher.destroy();
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    acceptor,
    dispatcher,
    metrics,
    threaded: dispatcher.threaded,
    address: (name) => acceptor.address(name),
    adminAddress: () => (admin === null ? null : { host: admin.host, port: admin.port }),
    close(): Promise<void> {
      if (closing !== null) return closing;
      closing = (async () => {
        admin?.close();
        metrics.close();
        await acceptor.stopListening();
        dispatcher.drain();
        // Sessions end once their public connections are done; their routes drop with them.
        await acceptor.whenDrained(o.graceMs);
        await dispatcher.destroy();
        acceptor.destroy();
      })();
      return closing;
    },
  };
}

