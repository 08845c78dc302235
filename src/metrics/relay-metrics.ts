// The relay's /metrics, /readyz and /api data (main thread, scrape time): asks every worker for its recorder over
// the control channel, merges histograms and counters, adds the acceptor's counters and the main thread's own loop
// sample, and renders Prometheus text. A worker that does not answer in time is reported (burrow_worker_up 0),
// never waited on; the numbers of a worker that died are kept so counters never go backwards.
import type { Acceptor } from '../relay/acceptor/acceptor.js';
import type { ConnectionDispatcher, WorkerReport } from '../relay/acceptor/worker-pool.js';
import type { SessionInfo } from '../relay/relay-messages.js';
import { endpointIdOfKey } from '../relay/relay-messages.js';
import { addEncodedHistograms, mergeHistograms, type EncodedHistograms } from './latency-histograms.js';
import { LoopMonitor, type LoopSample } from './loop-monitor.js';
import { renderMetrics, type Family, type HistogramHelp, type Sample } from './prom-families.js';
import {
  BREAKER_STATES,
  BYTE_KINDS,
  CONNECTION_OUTCOMES,
  ENDPOINT_COUNTERS,
  ENDPOINT_TYPES,
  MAX_ENDPOINT_ROWS,
  OTHER_ENDPOINT,
  RELAY_HISTOGRAM_SLOTS,
  type RecorderSnapshot,
} from './relay-recorder.js';

export const RELAY_HISTOGRAM_HELP: HistogramHelp = {
  burrow_stream_open_seconds: 'Public connection accepted by the acceptor until its proxy stream to the agent is opened on the worker.',
  burrow_ttfb_seconds: 'Request start (first request of a connection: accept) until the first byte back from the agent.',
  burrow_request_duration_seconds: 'HTTP request start until the last response byte before the next request or the close.',
  burrow_agent_rtt_seconds: 'Round-trip time of the relay\'s heartbeats to agents.',
  burrow_tls_handshake_seconds: 'TLS handshakes terminated by the relay (agent connections and https endpoints).',
};

export interface RelayMetricsOptions {
  /** How long a scrape waits for each worker. */
  statsTimeoutMs: number;
  version: string;
}

export interface ReadyState {
  ready: boolean;
  reasons: string[];
}

/** One bound endpoint as /api/endpoints lists it. */
export interface EndpointInfo {
  endpointId: string;
  sessionId: string;
  workerId: number;
  proto: string;
  /** '' for tcp. */
  hostname: string;
  /** 0 unless tcp. */
  port: number;
  pooled: boolean;
  /** Members serving the same URL (1 without pooling). */
  poolSize: number;
  strategy: string;
  /** Breaker state of a pooled member, null otherwise. */
  breaker: string | null;
  /** Connections dispatched to it and still open (pooled members). */
  outstanding: number;
  /** Smoothed time to first response byte, ms (pooled members; 0 = no sample). */
  ttfbEwmaMs: number;
}

export class RelayMetrics {
  private readonly acceptor: Acceptor;
  private readonly dispatcher: ConnectionDispatcher;
  private readonly opts: RelayMetricsOptions;
  /** Main-thread loop (threaded mode only; in-thread, worker 0 is the main thread and samples itself). */
  private readonly mainLoop: LoopMonitor | null;
  /** Last snapshot of every worker seen, so a silent worker's counters stay in the totals. */
  private readonly last: Map<number, RecorderSnapshot>;
  /**
   * The last numbers of every worker that is gone, added into one snapshot: counters must never go backwards
   * (Prometheus reads a drop as a counter reset), however many workers a long-running relay replaces.
   */
  private retired: RecorderSnapshot | null;

  constructor(acceptor: Acceptor, dispatcher: ConnectionDispatcher, opts: RelayMetricsOptions) {
    this.acceptor = acceptor;
    this.dispatcher = dispatcher;
    this.opts = opts;
    this.mainLoop = dispatcher.threaded ? new LoopMonitor() : null;
    this.last = new Map();
    this.retired = null;
  }

  close(): void {
    this.mainLoop?.close();
  }

  /** The Prometheus text for one scrape. */
  async scrape(): Promise<string> {
    const reports = await this.dispatcher.collectStats(this.opts.statsTimeoutMs, 'metrics');
    this.remember(reports);
    const snaps = [...this.last.values()];
    if (this.retired !== null) snaps.push(this.retired);
    const families: Family[] = [];
    const counter = (name: string, help: string, samples: Sample[]): void => {
      families.push({ name, help, type: 'counter', samples });
    };
    const gauge = (name: string, help: string, samples: Sample[]): void => {
      families.push({ name, help, type: 'gauge', samples });
    };

    gauge('burrow_info', 'Constant 1; the version label names the running relay.', [{ labels: { version: this.opts.version }, value: 1 }]);

    // ---- connections, bytes, errors (summed over workers, dead ones included) ----
    const conn: Sample[] = [];
    ENDPOINT_TYPES.forEach((t, ti) => {
      CONNECTION_OUTCOMES.forEach((o, oi) => {
        conn.push({ labels: { endpoint_type: t, outcome: o }, value: sum(snaps, (s) => s.connections[ti * CONNECTION_OUTCOMES.length + oi]) });
      });
    });
    counter('burrow_connections_total', 'Public connections handled by workers, by endpoint type and outcome (counted when they end).', conn);
    const acc: Sample[] = [];
    for (const [key, value] of [...this.acceptor.counters].sort(([a], [b]) => a.localeCompare(b))) {
      const i = key.indexOf(':');
      acc.push({ labels: { listener: key.slice(0, i), outcome: key.slice(i + 1) }, value });
    }
    counter('burrow_acceptor_connections_total', 'Connections seen by the acceptor, by listener and sniff/routing outcome.', acc);
    const bytes = (pick: (s: RecorderSnapshot) => number[]): Sample[] =>
      BYTE_KINDS.map((k, i) => ({ labels: { endpoint_type: k }, value: sum(snaps, (s) => pick(s)[i]) }));
    counter('burrow_received_bytes_total', 'Bytes read from public clients (endpoint types) and from agents (agent), counted when the connection ends.', bytes((s) => s.bytesIn));
    counter('burrow_sent_bytes_total', 'Bytes written to public clients (endpoint types) and to agents (agent), counted when the connection ends.', bytes((s) => s.bytesOut));
    const codes = new Map<string, number>();
    for (const s of snaps) for (const [code, n] of Object.entries(s.errors)) codes.set(code, (codes.get(code) ?? 0) + n);
    counter(
      'burrow_errors_total',
      'Sessions and connections that ended with a BurrowError, by code (docs/errors.md).',
      [...codes].sort(([a], [b]) => a.localeCompare(b)).map(([code, value]) => ({ labels: { code }, value })),
    );

    // ---- workers ----
    counter('burrow_worker_restarts_total', 'Worker threads that died and were replaced.', [{ labels: {}, value: this.dispatcher.restarts }]);
    gauge('burrow_worker_up', '1 if the worker answered this scrape in time, else 0.', reports.map((r) => ({ labels: { worker: String(r.workerId) }, value: r.stats === null ? 0 : 1 })));
    gauge('burrow_workers_expected', 'Worker threads configured (--workers; 1 when single-threaded).', [{ labels: {}, value: this.dispatcher.expectedWorkers }]);
    const answered = reports.filter((r) => r.stats !== null);
    const perWorker = (pick: (r: WorkerReport) => number): Sample[] => answered.map((r) => ({ labels: { worker: String(r.workerId) }, value: pick(r) }));
    gauge('burrow_active_sessions', 'Agent sessions open, per worker.', perWorker((r) => r.stats!.sessions));
    gauge('burrow_active_streams', 'Mux streams open (proxy, heartbeat and RPC), per worker.', perWorker((r) => r.stats!.streams));
    gauge('burrow_active_endpoints', 'Endpoints bound, per worker.', perWorker((r) => r.stats!.endpoints));

    const loops: Array<{ worker: string; loop: LoopSample }> = answered.map((r) => ({ worker: String(r.workerId), loop: r.stats!.loop! })); // a 'metrics' request always carries the loop sample
    if (this.mainLoop !== null) loops.push({ worker: 'main', loop: this.mainLoop.sample() });
    const loopGauge = (name: string, help: string, pick: (l: LoopSample) => number): void =>
      gauge(name, help, loops.map((l) => ({ labels: { worker: l.worker }, value: pick(l.loop) })));
    loopGauge('burrow_event_loop_delay_p50_seconds', 'Event-loop delay median over the last 10 s window, per thread.', (l) => l.p50Seconds);
    loopGauge('burrow_event_loop_delay_p99_seconds', 'Event-loop delay 99th percentile over the last 10 s window, per thread.', (l) => l.p99Seconds);
    loopGauge('burrow_event_loop_delay_max_seconds', 'Event-loop delay maximum over the last 10 s window, per thread.', (l) => l.maxSeconds);
    loopGauge('burrow_event_loop_utilization_ratio', 'Share of time the event loop was busy over the last 10 s window (0..1), per thread.', (l) => l.utilization);

    // ---- pools and breakers (acceptor: the route table and each pool member's breaker) ----
    const members = new Map<string, number>(reports.map((r) => [String(r.workerId), 0]));
    const states = new Map<string, number>(BREAKER_STATES.map((st) => [st, 0]));
    for (const route of this.acceptor.routes.all()) {
      if (!route.pooled) continue;
      for (const m of route.members) {
        members.set(String(m.workerId), (members.get(String(m.workerId)) ?? 0) + 1);
        if (m.breaker !== null) states.set(m.breaker.state, (states.get(m.breaker.state) ?? 0) + 1);
      }
    }
    gauge('burrow_pool_members', 'Endpoints serving pooled URLs, by the worker that owns their agent session.',
      [...members].map(([worker, value]) => ({ labels: { worker }, value })));
    gauge('burrow_breakers', 'Circuit breakers of pool members currently in each state.',
      BREAKER_STATES.map((st) => ({ labels: { state: st }, value: states.get(st) ?? 0 })));
    counter('burrow_breaker_transitions_total', 'Circuit breaker transitions of pool members, by the state entered.',
      BREAKER_STATES.map((st) => ({ labels: { to: st }, value: this.acceptor.breakerTransitions[st] })));

    // ---- per endpoint (--metrics-per-endpoint; hostnames as labels, so opt-in) ----
    const perEndpoint = new Map<string, number[]>();
    for (const s of snaps) {
      for (const [ep, row] of Object.entries(s.perEndpoint ?? {})) {
        const acc = perEndpoint.get(ep) ?? ENDPOINT_COUNTERS.map(() => 0);
        row.forEach((v, i) => (acc[i]! += v));
        perEndpoint.set(ep, acc);
      }
    }
    if (perEndpoint.size > 0) {
      const eps = [...perEndpoint].sort(([a], [b]) => a.localeCompare(b));
      const col = (i: number): Sample[] => eps.map(([endpoint, row]) => ({ labels: { endpoint }, value: row[i]! }));
      counter('burrow_endpoint_connections_total', 'Public connections per endpoint (hostname, or tcp:<port>), counted when they end.', col(0));
      counter('burrow_endpoint_requests_total', 'HTTP requests per endpoint hostname.', col(1));
      counter('burrow_endpoint_received_bytes_total', 'Bytes read from public clients per endpoint, counted when the connection ends.', col(2));
      counter('burrow_endpoint_sent_bytes_total', 'Bytes written to public clients per endpoint, counted when the connection ends.', col(3));
    }

    const encoded: EncodedHistograms[] = snaps.map((s) => s.histograms);
    const histograms = mergeHistograms(RELAY_HISTOGRAM_SLOTS, encoded);
    return renderMetrics(families, histograms, RELAY_HISTOGRAM_HELP);
  }

  /** /readyz: listeners bound and every configured worker up and answering within the stats timeout. */
  async readiness(): Promise<ReadyState> {
    const reasons: string[] = [];
    if (!this.acceptor.listening) reasons.push('listeners are not bound');
    const expected = this.dispatcher.expectedWorkers;
    const ready = this.dispatcher.readyWorkers();
    if (ready < expected) reasons.push(`${ready} of ${expected} workers are running (a worker is down or being replaced)`);
    const reports = await this.dispatcher.collectStats(this.opts.statsTimeoutMs, 'probe');
    for (const r of reports) if (r.stats === null) reasons.push(`worker ${r.workerId} did not answer within ${this.opts.statsTimeoutMs} ms`);
    return { ready: reasons.length === 0, reasons };
  }

  async sessions(): Promise<{ sessions: SessionInfo[]; workersDown: number[] }> {
    const reports = await this.dispatcher.collectStats(this.opts.statsTimeoutMs, 'sessions');
    return {
      sessions: reports.flatMap((r) => r.stats?.sessionList ?? []),
      workersDown: reports.filter((r) => r.stats === null).map((r) => r.workerId),
    };
  }

  /** /api/endpoints: one entry per bound endpoint (a pooled URL lists each member), plain JSON. */
  endpoints(): EndpointInfo[] {
    const out: EndpointInfo[] = [];
    for (const r of this.acceptor.routes.all()) {
      for (const m of r.members) {
        out.push({
          endpointId: endpointIdOfKey(m.endpointKey),
          sessionId: m.sessionId,
          workerId: m.workerId,
          proto: r.proto,
          hostname: r.hostname,
          port: r.port,
          pooled: r.pooled,
          poolSize: r.members.length,
          strategy: r.strategy,
          breaker: m.breaker === null ? null : m.breaker.state,
          outstanding: m.outstanding,
          ttfbEwmaMs: Math.round(m.ewmaUs) / 1000,
        });
      }
    }
    return out;
  }

  /** Keep each answering worker's latest numbers; fold the last numbers of workers that are gone into `retired`. */
  private remember(reports: WorkerReport[]): void {
    for (const r of reports) if (r.stats?.recorder != null) this.last.set(r.workerId, r.stats.recorder);
    const live = new Set(this.dispatcher.workerIds());
    for (const [id, snap] of this.last) {
      if (live.has(id)) continue;
      this.last.delete(id);
      this.retired = this.retired === null ? snap : addSnapshots(this.retired, snap, this.liveEndpointRows());
    }
  }

  /** Endpoints that live workers still count (`--metrics-per-endpoint`): their retired share keeps its own row. */
  private liveEndpointRows(): Set<string> {
    const keys = new Set<string>();
    for (const snap of this.last.values()) for (const k of Object.keys(snap.perEndpoint ?? {})) keys.add(k);
    return keys;
  }
}

/**
 * a + b, field by field (both from workers of this relay: same slots, outcomes and byte kinds). Per-endpoint rows stay
 * within MAX_ENDPOINT_ROWS, the rest shared in one row, except endpoints in `live` (still counted by live workers):
 * moving their share into the shared row would make their series go down, which Prometheus reads as a reset. So the
 * bound is MAX_ENDPOINT_ROWS plus what live workers hold (each at most MAX_ENDPOINT_ROWS).
 */
export function addSnapshots(a: RecorderSnapshot, b: RecorderSnapshot, live: ReadonlySet<string> = new Set()): RecorderSnapshot {
  const add = (x: readonly number[], y: readonly number[]): number[] =>
    Array.from({ length: Math.max(x.length, y.length) }, (_, i) => (x[i] ?? 0) + (y[i] ?? 0));
  const errors: Record<string, number> = { ...a.errors };
  for (const [code, n] of Object.entries(b.errors)) errors[code] = (errors[code] ?? 0) + n;
  let perEndpoint: Record<string, number[]> | null = null;
  if (a.perEndpoint !== null || b.perEndpoint !== null) {
    const rows = new Map(Object.entries(a.perEndpoint ?? {}));
    for (const [ep, row] of Object.entries(b.perEndpoint ?? {})) {
      // The bound a worker keeps (MAX_ENDPOINT_ROWS, then one shared row), so replaced workers do not add up to more.
      const k = rows.has(ep) || rows.size < MAX_ENDPOINT_ROWS || live.has(ep) ? ep : OTHER_ENDPOINT;
      rows.set(k, add(rows.get(k) ?? [], row));
    }
    perEndpoint = Object.fromEntries(rows);
  }
  return {
    histograms: addEncodedHistograms(a.histograms, b.histograms),
    connections: add(a.connections, b.connections),
    bytesIn: add(a.bytesIn, b.bytesIn),
    bytesOut: add(a.bytesOut, b.bytesOut),
    errors,
    perEndpoint,
  };
}

function sum<T>(list: readonly T[], pick: (x: T) => number | undefined): number {
  let n = 0;
  for (const x of list) n += pick(x) ?? 0;
  return n;
}
