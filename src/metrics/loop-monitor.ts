// Event-loop health of one thread (worker or main): delay percentiles from perf_hooks.monitorEventLoopDelay and the
// loop utilisation, over fixed windows of WINDOW_MS. A scrape reads the last complete window, so every reader (two
// Prometheus replicas, a dashboard's ad-hoc query) sees the same values whatever its rate, and no reader resets what
// another would have seen. Not on the hot path (one timer per window).
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';

export interface LoopSample {
  p50Seconds: number;
  p99Seconds: number;
  maxSeconds: number;
  /** Share of the window the loop was busy, 0..1. */
  utilization: number;
}

const RESOLUTION_MS = 10;
/** The histogram records the whole interval between samples; the delay is what exceeds the sampling period. */
const PERIOD_S = RESOLUTION_MS / 1000;
/** Window length: under the usual scrape intervals (15–60 s), so each scrape sees a recent complete window. */
export const LOOP_WINDOW_MS = 10_000;

function overPeriod(ns: number): number {
  return Math.max(0, ns / 1e9 - PERIOD_S);
}

export class LoopMonitor {
  private readonly delay: IntervalHistogram;
  private windowStartElu: EventLoopUtilization;
  /** The last complete window; null until the first one ends (sample() then reads the window so far). */
  private last: LoopSample | null;
  private timer: NodeJS.Timeout | null;

  /** `windowMs` 0: no timer; windows end only when rotate() is called. */
  constructor(windowMs = LOOP_WINDOW_MS) {
    // 10 ms sampling: fine enough for the p99 of a loop that should stay under a few ms, cheap enough to leave on.
    this.delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.delay.enable();
    this.windowStartElu = performance.eventLoopUtilization();
    this.last = null;
    this.timer = null;
    if (windowMs > 0) {
      this.timer = setInterval(() => this.rotate(), windowMs);
      this.timer.unref();
    }
  }

  /** The last complete window's values (before the first one ends: the window so far). Resets nothing. */
  sample(): LoopSample {
    return this.last ?? this.measure();
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.delay.disable();
  }

  /** End the current window: sample() reads it from now on, and a new one begins. */
  rotate(): void {
    this.last = this.measure();
    this.windowStartElu = performance.eventLoopUtilization();
    this.delay.reset();
  }

  private measure(): LoopSample {
    const d = this.delay;
    const has = d.count > 0;
    return {
      p50Seconds: has ? overPeriod(d.percentile(50)) : 0,
      p99Seconds: has ? overPeriod(d.percentile(99)) : 0,
      maxSeconds: has ? overPeriod(d.max) : 0,
      utilization: performance.eventLoopUtilization(performance.eventLoopUtilization(), this.windowStartElu).utilization,
    };
  }
}
