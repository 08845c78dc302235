// Who owns a handed-off descriptor: the acceptor until a worker claims it, then that worker. One compare-and-swap on
// memory shared by every thread decides, so a task that fails has its descriptor closed exactly once: by the acceptor
// when no worker took it (the worker crashed with the task still in its message queue, or the pool was being
// destroyed), else by the worker's socket as the worker goes down. Before, the acceptor could not tell the two apart
// and left such descriptors open: the client's connection hung with nobody reading it. One CAS per connection.
//
//   slot:  -1 (free) ──post(fd)──► fd ──take(): worker owns it──► -1
//                                     └─reclaim(): acceptor owns it (closes it)──► -1
//
// Descriptor numbers are reused after close, so a slot is free (-1) between tasks and post() never reuses a slot whose
// task is still unclaimed.

/** Slots in the ring: far more than tasks ever wait unclaimed at once (a worker claims a task as it reads it). */
const SLOTS = 1 << 16;
const MASK = SLOTS - 1;
const FREE = -1;

export class FdClaims {
  /** Shared with the workers (workerData). */
  readonly buffer: SharedArrayBuffer;
  private readonly slots: Int32Array;
  private next: number;

  /** The acceptor creates the ring; a worker attaches to the acceptor's `buffer`. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT);
    this.slots = new Int32Array(this.buffer);
    if (buffer === undefined) this.slots.fill(FREE);
    this.next = 0;
  }

  /**
   * Acceptor: `fd` is about to be posted to a worker. Returns the slot the task carries, or -1 if every slot holds an
   * unclaimed descriptor (not seen in practice: the task then goes out untracked, as before this ring existed).
   */
  post(fd: number): number {
    for (let i = 0; i < SLOTS; i++) {
      const slot = (this.next + i) & MASK;
      if (Atomics.compareExchange(this.slots, slot, FREE, fd) === FREE) {
        this.next = (slot + 1) & MASK;
        return slot;
      }
    }
    return -1;
  }

  /** Worker: take `fd` over. False means the acceptor took it back first: the worker must not touch it. */
  take(slot: number, fd: number): boolean {
    return slot < 0 || Atomics.compareExchange(this.slots, slot, fd, FREE) === fd;
  }

  /** Acceptor, for a task that failed: true when no worker took `fd`; the caller owns it now and closes it. */
  reclaim(slot: number, fd: number): boolean {
    return slot >= 0 && Atomics.compareExchange(this.slots, slot, fd, FREE) === fd;
  }
}
