// What one relay worker (or the single-threaded runtime) records for /metrics: HDR latency histograms and plain
// counters in typed arrays, read by the main thread at scrape time (snapshot()). Imported by the data plane, so it
// imports no prom-client and no uWS. HOT PATH: the record/count methods run per connection or per request; label
// indexes are resolved when a connection opens, and nothing here allocates per call.
import { LatencyHistograms, type EncodedHistograms, type HistogramSlot } from './latency-histograms.js';

/** How a public connection reached the relay; the `endpoint_type` label. Index = position. */
export const ENDPOINT_TYPES = ['http', 'https', 'tls', 'tcp'] as const;
export type EndpointType = (typeof ENDPOINT_TYPES)[number];
export const TYPE_HTTP = 0;
export const TYPE_HTTPS = 1;

/**
 * Outcome of a public connection handled by a worker (the `outcome` label of burrow_connections_total), counted once
 * per connection by the worker that ends it. A connection a worker hands back for a pool member on another worker
 * (outcome 'rerouted' in its task result) is not counted there: the next worker counts it, or the acceptor
 * (burrow_acceptor_connections_total outcome `reroute-failed`) when no other member can take it.
 */
export const CONNECTION_OUTCOMES = [
  'ok',
  'no-response',
  'tls-failed',
  'rejected',
  'closed',
  'endpoint-gone',
  'draining',
  'stream-refused',
  'endpoint-limit',
  'ip-restricted',
  'evicted',
  'other',
] as const;
const OUTCOME_OTHER = CONNECTION_OUTCOMES.length - 1;

/**
 * Circuit breaker states of pool members; the `state` / `to` labels. The breakers live in the acceptor (main thread,
 * src/breaker/), so their metrics are read from the route table at scrape time, not from worker recorders.
 */
export const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;

/** Byte counters: one per endpoint type, then agent connections. */
export const BYTE_KINDS = [...ENDPOINT_TYPES, 'agent'] as const;
const BYTES_AGENT = ENDPOINT_TYPES.length;

// ---- histogram slots (fixed layout; the exporter groups them by metric) ----
const slots: HistogramSlot[] = [];
function slot(metric: string, labels: Record<string, string>): number {
  slots.push({ metric, labels });
  return slots.length - 1;
}
const STREAM_OPEN = ENDPOINT_TYPES.map((t) => slot('burrow_stream_open_seconds', { endpoint_type: t }));
const TTFB = ENDPOINT_TYPES.map((t) => slot('burrow_ttfb_seconds', { endpoint_type: t }));
const REQUEST = [slot('burrow_request_duration_seconds', { endpoint_type: 'http' }), slot('burrow_request_duration_seconds', { endpoint_type: 'https' })];
const AGENT_RTT = slot('burrow_agent_rtt_seconds', {});
const TLS_AGENT = slot('burrow_tls_handshake_seconds', { listener: 'agent' });
const TLS_HTTPS = slot('burrow_tls_handshake_seconds', { listener: 'https' });
export const RELAY_HISTOGRAM_SLOTS: readonly HistogramSlot[] = slots;

/** Per-endpoint counters (`--metrics-per-endpoint`), index = position: connections, requests, bytes in, bytes out. */
export const ENDPOINT_COUNTERS = ['connections', 'requests', 'bytesIn', 'bytesOut'] as const;
export const EP_CONNECTIONS = 0;
export const EP_REQUESTS = 1;
const EP_BYTES_IN = 2;
const EP_BYTES_OUT = 3;
/** Distinct endpoints counted per worker; later ones share the `_other` row, so memory stays bounded. */
export const MAX_ENDPOINT_ROWS = 1000;
export const OTHER_ENDPOINT = '_other';

/** Wall-clock ms with sub-ms precision, comparable across threads (acceptedAt is stamped with this). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Everything a worker reports on a scrape; structured-clone friendly. */
export interface RecorderSnapshot {
  histograms: EncodedHistograms;
  /** [type * CONNECTION_OUTCOMES.length + outcome] */
  connections: number[];
  /** Per BYTE_KINDS: bytes read from / written to the public (or agent) socket. */
  bytesIn: number[];
  bytesOut: number[];
  /** BurrowError code → count, for sessions and connections that ended with one. */
  errors: Record<string, number>;
  /** `--metrics-per-endpoint`: endpoint (hostname, or `tcp:<port>`) → ENDPOINT_COUNTERS; null when off. */
  perEndpoint: Record<string, number[]> | null;
}

export class RelayRecorder {
  /** false = `--metrics off`: every record call returns at once (the bench's baseline). */
  readonly enabled: boolean;
  private readonly histograms: LatencyHistograms;
  private readonly connections: Float64Array;
  private readonly bytesIn: Float64Array;
  private readonly bytesOut: Float64Array;
  private readonly errors: Map<string, number>;
  private readonly perEndpoint: Map<string, Float64Array> | null;

  constructor(enabled: boolean, perEndpoint = false) {
    this.enabled = enabled;
    this.perEndpoint = enabled && perEndpoint ? new Map() : null;
    this.histograms = new LatencyHistograms(RELAY_HISTOGRAM_SLOTS);
    this.connections = new Float64Array(ENDPOINT_TYPES.length * CONNECTION_OUTCOMES.length);
    this.bytesIn = new Float64Array(BYTE_KINDS.length);
    this.bytesOut = new Float64Array(BYTE_KINDS.length);
    this.errors = new Map();
  }

  /** Accept (acceptor, `acceptedAt`) → proxy stream opened on the worker. */
  streamOpened(type: number, acceptedAt: number): void {
    if (this.enabled) this.histograms.record(STREAM_OPEN[type]!, (wallMs() - acceptedAt) * 1000);
  }

  /** Request start (first request: accept) → first response byte from the agent. */
  ttfb(type: number, startedAt: number): void {
    if (this.enabled) this.histograms.record(TTFB[type]!, (wallMs() - startedAt) * 1000);
  }

  /** Request start → last response byte (HTTP and HTTPS endpoints only). */
  requestDone(type: number, startedAt: number, lastByteAt: number): void {
    if (this.enabled) this.histograms.record(REQUEST[type]!, (lastByteAt - startedAt) * 1000);
  }

  agentRtt(ms: number): void {
    if (this.enabled) this.histograms.record(AGENT_RTT, ms * 1000);
  }

  tlsHandshake(agent: boolean, startedAt: number): void {
    if (this.enabled) this.histograms.record(agent ? TLS_AGENT : TLS_HTTPS, (wallMs() - startedAt) * 1000);
  }

  /** A public connection ended: its outcome (one of CONNECTION_OUTCOMES, else 'other') and byte counts. */
  connectionEnded(type: number, outcome: string, bytesIn: number, bytesOut: number): void {
    if (!this.enabled) return;
    let o = CONNECTION_OUTCOMES.indexOf(outcome as (typeof CONNECTION_OUTCOMES)[number]);
    if (o < 0) o = OUTCOME_OTHER;
    this.connections[type * CONNECTION_OUTCOMES.length + o]! += 1;
    this.bytesIn[type]! += bytesIn;
    this.bytesOut[type]! += bytesOut;
  }

  agentConnectionEnded(bytesIn: number, bytesOut: number): void {
    if (!this.enabled) return;
    this.bytesIn[BYTES_AGENT]! += bytesIn;
    this.bytesOut[BYTES_AGENT]! += bytesOut;
  }

  /** Whether per-endpoint rows are kept (`--metrics-per-endpoint on`): callers skip building the key otherwise. */
  get perEndpointOn(): boolean {
    return this.perEndpoint !== null;
  }

  /**
   * The per-endpoint row for `key` (hostname, or `tcp:<port>`), or null when per-endpoint metrics are off. Resolved
   * once when a connection opens; the caller then bumps EP_* indexes directly.
   */
  endpointRow(key: string): Float64Array | null {
    const m = this.perEndpoint;
    if (m === null) return null;
    let row = m.get(key);
    if (row === undefined) {
      const k = m.size < MAX_ENDPOINT_ROWS ? key : OTHER_ENDPOINT;
      row = m.get(k) ?? new Float64Array(ENDPOINT_COUNTERS.length);
      m.set(k, row);
    }
    return row;
  }

  /** Per-endpoint totals of a connection that ended (its requests were counted as they happened). */
  endpointConnectionEnded(row: Float64Array | null, bytesIn: number, bytesOut: number): void {
    if (row === null) return;
    row[EP_CONNECTIONS]! += 1;
    row[EP_BYTES_IN]! += bytesIn;
    row[EP_BYTES_OUT]! += bytesOut;
  }

  /** A session or connection ended with BurrowError `code`. The code set is fixed (ERROR_CODES), so keys are bounded. */
  error(code: string): void {
    if (this.enabled) this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  snapshot(): RecorderSnapshot {
    return {
      histograms: this.histograms.encode(),
      connections: Array.from(this.connections),
      bytesIn: Array.from(this.bytesIn),
      bytesOut: Array.from(this.bytesOut),
      errors: Object.fromEntries(this.errors),
      perEndpoint: this.perEndpoint === null ? null : Object.fromEntries([...this.perEndpoint].map(([k, v]) => [k, Array.from(v)])),
    };
  }
}

/** Endpoint type index for a public entry ('http' | 'https' | 'tls' | 'tcp'). */
export function endpointTypeIndex(entry: EndpointType): number {
  return ENDPOINT_TYPES.indexOf(entry);
}
