// The opossum 9 wiring both breakers share: the relay's per-pool-member breaker (member-breaker.ts) and the agent's
// per-upstream dial breaker (agent/upstream-dialer.ts). One place for the option mapping and the state names, so the
// two report states the same way. Construction only; not on the data path.
import CircuitBreaker from 'opossum';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerSettings {
  /** A call not settled after this long fails, ms; 0 = no timeout (the call waits for its outcome). */
  timeoutMs: number;
  /** Failure share (percent) within the rolling window that opens the breaker. */
  errorThresholdPercentage: number;
  /** Calls needed in the window before the share counts. */
  volumeThreshold: number;
  /** Open → half-open after this long, ms. */
  resetTimeoutMs: number;
  /** Rolling statistics window, ms (10 buckets). */
  rollingWindowMs: number;
}

/** An opossum breaker around `action` with `s`; `onState` hears every transition. */
export function createBreaker<A extends unknown[], R>(
  name: string,
  action: (...args: A) => Promise<R>,
  s: BreakerSettings,
  onState: (to: BreakerState) => void,
): CircuitBreaker<A, R> {
  const cb = new CircuitBreaker(action, {
    name,
    timeout: s.timeoutMs > 0 ? s.timeoutMs : false,
    errorThresholdPercentage: s.errorThresholdPercentage,
    volumeThreshold: s.volumeThreshold,
    resetTimeout: s.resetTimeoutMs,
    rollingCountTimeout: s.rollingWindowMs,
    rollingCountBuckets: 10,
    // Snapshots feed opossum's own dashboards; state is read on transitions instead (one timer less per breaker).
    enableSnapshots: false,
  });
  cb.on('open', () => onState('open'));
  cb.on('halfOpen', () => onState('half-open'));
  cb.on('close', () => onState('closed'));
  return cb;
}

/** The state of an opossum breaker, in the names both breakers report. */
export function breakerStateOf(cb: { readonly opened: boolean; readonly halfOpen: boolean }): BreakerState {
  return cb.opened ? 'open' : cb.halfOpen ? 'half-open' : 'closed';
}
