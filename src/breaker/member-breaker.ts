// One opossum 9 circuit breaker per pool member at the relay (acceptor side). Each public connection dispatched to
// the member is one breaker call that settles when the worker reports the first response (or the failure before it).
// Open → the member is skipped by the pickers; after resetTimeout one probe connection is let through (half-open).
// Once per public connection on pooled endpoints; not per chunk.
import type CircuitBreaker from 'opossum';
import { breakerStateOf, createBreaker, type BreakerSettings, type BreakerState } from './opossum-breaker.js';

export type { BreakerState };

/** The breaker settings (opossum-breaker.ts), with the call timeout named for what it times here. */
export interface MemberBreakerOptions extends Omit<BreakerSettings, 'timeoutMs'> {
  /**
   * A call with no first response byte after this long is a failure (the member accepted the stream and hung); 0 = no
   * such deadline (TCP members: see the acceptor's newMember).
   */
  openTimeoutMs: number;
}

export const DEFAULT_MEMBER_BREAKER: MemberBreakerOptions = {
  errorThresholdPercentage: 50,
  volumeThreshold: 3,
  resetTimeoutMs: 5_000,
  rollingWindowMs: 10_000,
  openTimeoutMs: 15_000,
};

/** One in-flight breaker call: settle it exactly once with ok() or fail(). */
export class BreakerCall {
  private res: (() => void) | null;
  private rej: ((e: Error) => void) | null;
  readonly promise: Promise<void>;

  constructor() {
    this.res = null;
    this.rej = null;
    this.promise = new Promise<void>((resolve, reject) => {
      this.res = resolve;
      this.rej = reject;
    });
  }

  ok(): void {
    const r = this.res;
    this.res = this.rej = null;
    r?.();
  }

  fail(reason: string): void {
    const r = this.rej;
    this.res = this.rej = null;
    r?.(new Error(reason));
  }
}

const passThrough = (call: BreakerCall): Promise<void> => call.promise;
const ignore = (): void => {};

export class MemberBreaker {
  /** Transitions so far, by target state (tests read it; metrics count through onTransition in the acceptor). */
  readonly transitions: Record<BreakerState, number>;
  private readonly cb: CircuitBreaker<[BreakerCall], void>;

  constructor(name: string, opts: MemberBreakerOptions, onTransition: (to: BreakerState) => void) {
    this.transitions = { closed: 0, open: 0, 'half-open': 0 };
    this.cb = createBreaker(name, passThrough, { ...opts, timeoutMs: opts.openTimeoutMs }, (to) => {
      this.transitions[to]++;
      onTransition(to);
    });
  }

  get state(): BreakerState {
    return breakerStateOf(this.cb);
  }

  /**
   * May a new connection go to this member? Closed: yes. Half-open: only while the single probe slot is free
   * (opossum lets exactly one call through and decides on its outcome). Open: no.
   */
  get admits(): boolean {
    return this.cb.closed || this.cb.pendingClose;
  }

  /** Start a call for one connection; null when the breaker refuses it (open, or half-open probe taken). */
  begin(): BreakerCall | null {
    if (!this.admits) return null;
    const call = new BreakerCall();
    this.cb.fire(call).then(ignore, ignore);
    return call;
  }

  /** An outcome not tied to a dispatched call (a retry on this member, decided by its worker). */
  record(ok: boolean, reason: string): void {
    if (!this.cb.closed) return; // only the probe decides a half-open breaker; an open one takes nothing
    const call = this.begin();
    if (call === null) return;
    if (ok) call.ok();
    else call.fail(reason);
  }

  shutdown(): void {
    this.cb.shutdown();
  }
}
