// Pure pool-member pickers (random, round-robin, least-outstanding, power-of-two-choices over EWMA latency).
// Runs once per public connection routed to a pool, on the acceptor: no allocation, no timers, no I/O; the caller
// passes the randomness so tests can pin it.

/** What a picker may look at for one member. `available` is false while the member's breaker is open. */
export interface PickCandidate {
  readonly available: boolean;
  /** Connections dispatched to this member that have not ended yet (counted by the acceptor). */
  readonly outstanding: number;
  /** Smoothed time to first response byte, microseconds; 0 = no sample yet. */
  readonly ewmaUs: number;
}

export type BalanceStrategy = 'random' | 'round-robin' | 'least-outstanding' | 'p2c-ewma';

export const BALANCE_STRATEGIES: readonly BalanceStrategy[] = ['random', 'round-robin', 'least-outstanding', 'p2c-ewma'];

export function isBalanceStrategy(s: string): s is BalanceStrategy {
  return (BALANCE_STRATEGIES as readonly string[]).includes(s);
}

/** Per-pool picker state (round-robin cursor). */
export interface PickState {
  cursor: number;
}

/**
 * Index of the member to use, or -1 when none is available.
 * `rand()` returns a float in [0, 1) like Math.random.
 */
export function pickMember(
  strategy: BalanceStrategy,
  members: readonly PickCandidate[],
  state: PickState,
  rand: () => number,
): number {
  const n = members.length;
  let avail = 0;
  for (let i = 0; i < n; i++) if (members[i]!.available) avail++;
  if (avail === 0) return -1;
  switch (strategy) {
    case 'round-robin':
      return pickRoundRobin(members, state);
    case 'least-outstanding':
      return pickLeastOutstanding(members, state);
    case 'p2c-ewma':
      return avail === 1 ? nthAvailable(members, 0) : pickP2c(members, avail, rand);
    case 'random':
    default:
      return nthAvailable(members, Math.floor(rand() * avail));
  }
}

/** The k-th available member (0-based). */
function nthAvailable(members: readonly PickCandidate[], k: number): number {
  for (let i = 0; i < members.length; i++) {
    if (members[i]!.available && k-- === 0) return i;
  }
  return -1;
}

function pickRoundRobin(members: readonly PickCandidate[], state: PickState): number {
  const n = members.length;
  for (let step = 0; step < n; step++) {
    const i = (state.cursor + step) % n;
    if (members[i]!.available) {
      state.cursor = (i + 1) % n;
      return i;
    }
  }
  return -1;
}

/**
 * Fewest outstanding connections. Ties rotate with the cursor, so equally idle members share new work instead of
 * the first one taking every connection (members leave and join, so "first" is arbitrary anyway).
 */
function pickLeastOutstanding(members: readonly PickCandidate[], state: PickState): number {
  const n = members.length;
  let best = -1;
  for (let step = 0; step < n; step++) {
    const i = (state.cursor + step) % n;
    const m = members[i]!;
    if (m.available && (best < 0 || m.outstanding < members[best]!.outstanding)) best = i;
  }
  if (best >= 0) state.cursor = (best + 1) % n;
  return best;
}

/**
 * Power of two choices (Mitzenmacher): sample two distinct available members, keep the one with the lower expected
 * cost = EWMA latency × (outstanding + 1). A member without samples borrows the other's latency, so its open
 * connections still count (a cost of 0 would send it every connection until its first answer came back, however
 * slow that is); on a tie it is preferred, which is how it gets its first samples. Two random samples avoid the herd
 * effect of always picking the global minimum.
 */
function pickP2c(members: readonly PickCandidate[], avail: number, rand: () => number): number {
  const a = Math.floor(rand() * avail);
  let b = Math.floor(rand() * (avail - 1));
  if (b >= a) b++;
  const ia = nthAvailable(members, a);
  const ib = nthAvailable(members, b);
  const ma = members[ia]!;
  const mb = members[ib]!;
  const ea = ma.ewmaUs || mb.ewmaUs || 1;
  const eb = mb.ewmaUs || ma.ewmaUs || 1;
  const ca = ea * (ma.outstanding + 1);
  const cb = eb * (mb.outstanding + 1);
  if (ca !== cb) return ca < cb ? ia : ib;
  return mb.ewmaUs === 0 && ma.ewmaUs !== 0 ? ib : ia;
}

/**
 * Exponentially weighted moving average with weight `alpha` for the new sample; the first sample is taken as is.
 * Samples and result in microseconds.
 */
export function updateEwma(prev: number, sampleUs: number, alpha: number): number {
  return prev === 0 ? sampleUs : prev + alpha * (sampleUs - prev);
}
