// Counters and latency histograms (HDR: relay RTT from heartbeats, upstream dial, time to first upstream byte) of one
// agent, read by the status view, library users and the agent's --metrics-addr server. Updated once per connection
// and once per heartbeat; never per chunk.
import { LatencyHistograms, type HistogramSlot } from '../metrics/latency-histograms.js';

/** Histogram slots of an agent (the agent's /metrics renders them). */
export const AGENT_HISTOGRAM_SLOTS: readonly HistogramSlot[] = [
  { metric: 'burrow_agent_relay_rtt_seconds', labels: {} },
  { metric: 'burrow_agent_upstream_dial_seconds', labels: {} },
  { metric: 'burrow_agent_ttfb_seconds', labels: {} },
];
const RTT = 0;
const DIAL = 1;
const TTFB = 2;

/** Totals for the agent, or for one endpoint. Plain numbers so readers can snapshot them cheaply. */
export interface ConnectionCounters {
  /** Proxied connections currently open. */
  open: number;
  /** Proxied connections since start. */
  total: number;
  /** Bytes from the public clients to the upstreams, and back (upstream socket counts). */
  bytesToUpstream: number;
  bytesFromUpstream: number;
  /** Connections answered without an upstream (dial failed, breaker open). */
  upstreamErrors: number;
}

export function newCounters(): ConnectionCounters {
  return { open: 0, total: 0, bytesToUpstream: 0, bytesFromUpstream: 0, upstreamErrors: 0 };
}

export class AgentStats {
  readonly connections: ConnectionCounters;
  /** Sessions established (the first one included) and reconnect attempts made. */
  sessions: number;
  reconnectAttempts: number;
  /** Last heartbeat RTT in ms (NaN before the first). */
  lastRttMs: number;
  /** Heartbeat RTT, upstream dial and TTFB in microseconds (AGENT_HISTOGRAM_SLOTS). */
  readonly latency: LatencyHistograms;

  constructor() {
    this.connections = newCounters();
    this.sessions = 0;
    this.reconnectAttempts = 0;
    this.lastRttMs = Number.NaN;
    this.latency = new LatencyHistograms(AGENT_HISTOGRAM_SLOTS);
  }

  recordRtt(ms: number): void {
    this.lastRttMs = ms;
    this.latency.record(RTT, ms * 1000);
  }

  /** Proxy stream accepted → upstream connected. */
  recordDial(ms: number): void {
    this.latency.record(DIAL, ms * 1000);
  }

  /** Proxy stream accepted → first byte from the upstream. */
  recordTtfb(ms: number): void {
    this.latency.record(TTFB, ms * 1000);
  }

  /** Heartbeats measured so far. */
  get rttCount(): number {
    return this.latency.count(RTT);
  }

  /** RTT at `percentile` (0..100) in ms; NaN before the first heartbeat. */
  rttPercentileMs(percentile: number): number {
    return this.latency.percentile(RTT, percentile) / 1000;
  }
}
