// Counters and the relay RTT histogram (HDR, from heartbeats) of one agent, read by the status view and by library
// users. Updated once per connection and once per heartbeat; never per chunk.
import { build, type Histogram } from 'hdr-histogram-js';

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
  /** Heartbeat round-trip times in microseconds; 1 µs .. 60 s at 3 significant digits. */
  private readonly rtt: Histogram;

  constructor() {
    this.connections = newCounters();
    this.sessions = 0;
    this.reconnectAttempts = 0;
    this.lastRttMs = Number.NaN;
    this.rtt = build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  }

  recordRtt(ms: number): void {
    this.lastRttMs = ms;
    const us = Math.round(ms * 1000);
    this.rtt.recordValue(Math.min(60_000_000, Math.max(1, us)));
  }

  /** Heartbeats measured so far. */
  get rttCount(): number {
    return this.rtt.totalCount;
  }

  /** RTT at `percentile` (0..100) in ms; NaN before the first heartbeat. */
  rttPercentileMs(percentile: number): number {
    if (this.rtt.totalCount === 0) return Number.NaN;
    return this.rtt.getValueAtPercentile(percentile) / 1000;
  }
}
