// Reconnect delays for the agent: exponential backoff with full jitter (delay = random(0, min(cap, base * 2^n))),
// reset once a session has stayed healthy for a while. Once per reconnect attempt; not on the data path.

export interface BackoffOptions {
  /** First ceiling, ms (default 1000). */
  baseMs?: number;
  /** Largest ceiling, ms (default 30000). */
  capMs?: number;
  /** A session that stayed up this long starts the sequence over (default 30000). */
  resetAfterMs?: number;
  /** Uniform [0, 1) source (tests). */
  random?: () => number;
}

/**
 * "Full jitter" (AWS architecture blog, Exponential Backoff And Jitter, 2015): spreading every retry over the whole
 * window keeps a fleet of agents that lost the same relay from reconnecting in lock-step when it comes back.
 */
export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  readonly resetAfterMs: number;
  private readonly random: () => number;
  /** Attempts since the last reset. */
  attempt: number;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 1000;
    this.capMs = options.capMs ?? 30_000;
    this.resetAfterMs = options.resetAfterMs ?? 30_000;
    this.random = options.random ?? Math.random;
    this.attempt = 0;
    if (!(this.baseMs > 0) || !(this.capMs >= this.baseMs)) {
      throw new RangeError(`Backoff needs 0 < baseMs <= capMs, got baseMs ${this.baseMs}, capMs ${this.capMs}`);
    }
  }

  /** The ceiling for the next attempt: min(cap, base * 2^attempt). */
  ceiling(): number {
    // 2^attempt overflows to Infinity long after it passed any cap; min() keeps it finite.
    return Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
  }

  /** Delay before the next attempt, in ms; advances the sequence. */
  next(): number {
    const d = Math.floor(this.random() * this.ceiling());
    this.attempt++;
    return d;
  }

  /** A session that was up for `upMs` ends: start over if it was healthy long enough. */
  sessionEnded(upMs: number): void {
    if (upMs >= this.resetAfterMs) this.attempt = 0;
  }
}
