// Rate limit of failed agent authentications per client IP (docs/security.md §Tokens): a token bucket per address,
// `perMinute` failures deep, refilled at `perMinute` per minute. While an address's bucket is empty, every Auth from
// it is refused without looking at the token, so guessing runs at most `perMinute` tries a minute. Main thread; once
// per Auth. Memory: at most MAX_TRACKED addresses (the oldest are forgotten first).

/** Addresses tracked at once; beyond that the least recently failed are dropped (they start afresh). */
const MAX_TRACKED = 10_000;
const MINUTE_MS = 60_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class AuthLimiter {
  private readonly perMinute: number;
  private readonly buckets: Map<string, Bucket>;

  constructor(perMinute: number) {
    this.perMinute = perMinute;
    this.buckets = new Map();
  }

  /** Milliseconds until `ip` may try again; 0 = not limited. */
  blockedFor(ip: string, now: number): number {
    const b = this.refill(ip, now);
    if (b === null || b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) * MINUTE_MS) / this.perMinute);
  }

  /** Record one failed authentication from `ip`. */
  fail(ip: string, now: number): void {
    const b = this.refill(ip, now) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.max(0, b.tokens - 1);
    // Re-insert: Map order is then "least recently failed first", which is what eviction drops.
    this.buckets.delete(ip);
    this.buckets.set(ip, b);
    if (this.buckets.size > MAX_TRACKED) this.buckets.delete(this.buckets.keys().next().value!);
  }

  get tracked(): number {
    return this.buckets.size;
  }

  private refill(ip: string, now: number): Bucket | null {
    const b = this.buckets.get(ip);
    if (b === undefined) return null;
    b.tokens = Math.min(this.perMinute, b.tokens + ((now - b.at) * this.perMinute) / MINUTE_MS);
    b.at = now;
    if (b.tokens >= this.perMinute) {
      this.buckets.delete(ip); // full again: nothing to remember
      return null;
    }
    return b;
  }
}
