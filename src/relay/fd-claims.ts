// Who owns a handed-off descriptor: the acceptor until a worker claims it, then that worker. One compare-and-swap on
// memory shared by every thread decides, so a task that fails has its descriptor closed exactly once: by the acceptor
// when no worker took it (the worker crashed with the task still in its message queue, or the pool was being
// destroyed), else by the worker (its socket, or its own close if wrapping failed). Before, the acceptor could not tell
// the two apart and left such descriptors open: the client's connection hung with nobody reading it. One CAS per
// connection on each side.
//
//   slot:  FREE ──post()──► ticket ──claim() by the worker: it owns the fd──► FREE
//                                  └─claim() by the acceptor, for a failed task: it closes the fd──► FREE
//
// A slot holds a ticket (a per-post sequence number), not the fd: descriptor numbers are reused at once after close,
// so "slot s holds fd 35" could describe two different connections; a ticket is not reused until 2^31 posts later.

/** Slots in the ring: far more than tasks ever wait unclaimed at once (a worker claims a task as it reads it). */
const SLOTS = 1 << 16;
const MASK = SLOTS - 1;
const FREE = -1;
/**
 * Occupied slots post() steps over before giving up. Slots ahead of the cursor were posted 65 536 handoffs ago and
 * are free unless that many are still unclaimed; a run of this many taken ones means the workers are not reading.
 */
const MAX_PROBES = 1024;

/** A posted descriptor's claim: the slot and the ticket in it. */
export interface FdClaim {
  slot: number;
  ticket: number;
}

export class FdClaims {
  /** Shared with the workers (workerData). */
  readonly buffer: SharedArrayBuffer;
  private readonly slots: Int32Array;
  private next: number;
  private ticket: number;

  /** The acceptor creates the ring; a worker attaches to the acceptor's `buffer`. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT);
    this.slots = new Int32Array(this.buffer);
    if (buffer === undefined) this.slots.fill(FREE);
    this.next = 0;
    this.ticket = 0;
  }

  /**
   * Acceptor: a descriptor is about to be posted to a worker. Returns its claim, or null when MAX_PROBES slots in a
   * row hold unclaimed descriptors (the workers are not reading): the caller then turns the connection away.
   */
  post(): FdClaim | null {
    for (let i = 0; i < MAX_PROBES; i++) {
      const slot = (this.next + i) & MASK;
      if (Atomics.load(this.slots, slot) !== FREE) continue;
      const ticket = this.ticket;
      if (Atomics.compareExchange(this.slots, slot, FREE, ticket) !== FREE) continue;
      this.ticket = (ticket + 1) & 0x7fffffff; // never FREE (-1)
      this.next = (slot + 1) & MASK;
      return { slot, ticket };
    }
    return null;
  }

  /**
   * Take the descriptor over: the worker before wrapping it, the acceptor for a task that failed. True for the first
   * caller only, who then owns (and eventually closes) it; false means the other side already did.
   */
  claim(slot: number, ticket: number): boolean {
    return Atomics.compareExchange(this.slots, slot, ticket, FREE) === ticket;
  }
}
