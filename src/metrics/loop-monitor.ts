// Event-loop health of one thread (worker or main): delay percentiles from perf_hooks.monitorEventLoopDelay and the
// loop utilisation, both over the interval since the previous sample (one sample per scrape). Not on the hot path.
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';

export interface LoopSample {
  p50Seconds: number;
  p99Seconds: number;
  maxSeconds: number;
  /** Share of the interval the loop was busy, 0..1. */
  utilization: number;
}

const RESOLUTION_MS = 10;
/** The histogram records the whole interval between samples; the delay is what exceeds the sampling period. */
const PERIOD_S = RESOLUTION_MS / 1000;

function overPeriod(ns: number): number {
  return Math.max(0, ns / 1e9 - PERIOD_S);
}

export class LoopMonitor {
  private readonly delay: IntervalHistogram;
  private lastElu: EventLoopUtilization;

  constructor() {
    // 10 ms sampling: fine enough for the p99 of a loop that should stay under a few ms, cheap enough to leave on.
    this.delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.delay.enable();
    this.lastElu = performance.eventLoopUtilization();
  }

  /** Values since the previous sample; resets the delay histogram. */
  sample(): LoopSample {
    const d = this.delay;
    const has = d.count > 0;
    const s: LoopSample = {
      p50Seconds: has ? overPeriod(d.percentile(50)) : 0,
      p99Seconds: has ? overPeriod(d.percentile(99)) : 0,
      maxSeconds: has ? overPeriod(d.max) : 0,
      utilization: 0,
    };
    const now = performance.eventLoopUtilization();
    s.utilization = performance.eventLoopUtilization(now, this.lastElu).utilization;
    this.lastElu = now;
    d.reset();
    return s;
  }

  close(): void {
    this.delay.disable();
  }
}
