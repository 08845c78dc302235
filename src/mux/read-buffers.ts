// Pools of read buffers that are reused once every view handed out of them is done, so that bulk transfers through
// the agent allocate almost no ArrayBuffers: the 16 KiB buffers its relay connection reads TLS records into
// (direct-reads.ts `recycle`), and the 256 KiB slabs its upstream sockets read into (headroom-reads.ts `recycle`).
// HOT PATH: one WeakMap lookup per DATA piece, per chunk read, and per write done.
//
// Why: without a pool every large record and every fourth upstream read needs a new ArrayBuffer: ~15 MB between two
// scavenges at ~600 MB/s. V8 counts ArrayBuffer memory allocated since the last mark-compact against the old
// generation's limit, so bulk transfers could flip the agent into a mode with a mark-compact every ~50 ms
// (bench/RESULTS.md, 2026-11-29 sessions 6 and 7: ~40 to ~120 mark-compacts per run; one with the pools).
//
// Ownership (one lease per buffer, counted):
//   * The reader holds a buffer while Node may read into it (ReadBufferPool.acquire: count 1), and across the
//     synchronous delivery of what was read into it; then it lets go (releaseReadBuffer).
//   * Each view handed on is either retained (its consumer promised to call releaseReadBuffer once done with it:
//     BatchedPipe after the socket write completed, MuxSession after the transport write of the chunk's last frame)
//     or pins the buffer (any other consumer may keep the view as long as it likes: the buffer is never reused).
//   * A buffer goes back to its pool's free list when its count reaches zero and it is not pinned.
// A lease that is never released (a stream destroyed with pieces queued, a write never made) only means the buffer is
// left to the GC, as without this module. Releasing more often than retaining would hand out memory still in use:
// every release matches one retain or the reader's own hold.
/** TLSWrap passes at most one SSL_read's output (16 KiB) per callback; a smaller buffer only splits it. */
export const READ_BUFFER_SIZE = 16 * 1024;

class Lease {
  readonly buf: Buffer;
  readonly pool: ReadBufferPool;
  count: number;
  pinned: boolean;

  constructor(buf: Buffer, pool: ReadBufferPool) {
    this.buf = buf;
    this.pool = pool;
    this.count = 1;
    this.pinned = false;
  }
}

/** Lease of every buffer a pool handed out, by its ArrayBuffer (pieces are views of it). Weak: see above. */
const leases = new WeakMap<ArrayBufferLike, Lease>();
/**
 * False until a pool of this thread hands out its first buffer. The relay's threads never do (only the agent reads
 * into pools), yet every DATA piece there goes through pinReadBuffer: this spares them a WeakMap lookup each.
 */
let leasing = false;

/** Buffers of one size, per thread; a free list capped at `maxFree` (beyond, the GC frees). */
export class ReadBufferPool {
  readonly size: number;
  private readonly maxFree: number;
  private readonly free: Lease[];
  private allocated: number;
  private reused: number;

  constructor(size: number, maxFree: number) {
    this.size = size;
    this.maxFree = maxFree;
    this.free = [];
    this.allocated = 0;
    this.reused = 0;
  }

  /** A buffer for Node to read into, held by the caller (count 1) until releaseReadBuffer(buf.buffer). */
  acquire(): Buffer {
    const lease = this.free.pop();
    if (lease !== undefined) {
      this.reused++;
      lease.count = 1;
      return lease.buf;
    }
    this.allocated++;
    leasing = true;
    const buf = Buffer.allocUnsafeSlow(this.size);
    leases.set(buf.buffer, new Lease(buf, this));
    return buf;
  }

  /** A lease nobody holds any more (releaseReadBuffer). */
  giveBack(lease: Lease): void {
    if (this.free.length < this.maxFree) this.free.push(lease);
  }

  /** Counts for tests and bench notes: buffers allocated, acquisitions served from the free list, free now. */
  stats(): { allocated: number; reused: number; free: number } {
    return { allocated: this.allocated, reused: this.reused, free: this.free.length };
  }
}

/**
 * The 16 KiB buffers of direct reads, 256 kept free (4 MiB). One agent stream may have its whole 2 MiB window (128
 * records) in flight towards a slower upstream; with 64 kept, a tcp-bulk upload still allocated one buffer in six
 * and ran ~15 mark-compacts per GiB, with 256 it allocates ~140 in all and runs one.
 */
export const recordBuffers = new ReadBufferPool(READ_BUFFER_SIZE, 256);

/** The caller's consumer of `piece` will call releaseReadBuffer(piece.buffer) when done with it. No-op for other buffers. */
export function retainReadBuffer(piece: Buffer): void {
  if (!leasing) return;
  const lease = leases.get(piece.buffer);
  if (lease !== undefined) lease.count++;
}

/** `piece` may be kept indefinitely: its buffer is never reused. No-op for other buffers. */
export function pinReadBuffer(piece: Buffer): void {
  if (!leasing) return;
  const lease = leases.get(piece.buffer);
  if (lease !== undefined) lease.pinned = true;
}

/** One holder of `ab` is done with it (see retainReadBuffer / ReadBufferPool.acquire). No-op for other buffers. */
export function releaseReadBuffer(ab: ArrayBufferLike): void {
  if (!leasing) return;
  const lease = leases.get(ab);
  if (lease === undefined || --lease.count !== 0 || lease.pinned) return;
  lease.pool.giveBack(lease);
}

/** Finished entries at the front of a ReleaseQueue that are dropped at once. */
const COMPACT_AT = 1024;

/**
 * Buffers to release once writes complete, oldest first (BatchedPipe's socket writes, MuxSession's transport writes).
 * The writer pushes a write's buffer, and how many releases that write owes, as it issues the write with `onDone` as
 * its callback. Write callbacks run in write order, once each (with an error too when the stream is destroyed, after
 * which nothing reads the buffer), so each call of onDone belongs to the oldest entry.
 */
export class ReleaseQueue {
  private readonly abs: Array<ArrayBufferLike | null>;
  private readonly counts: number[];
  private head: number;
  /** The write callback: releases the oldest entry's buffer. Bound once (no closure per write). */
  readonly onDone: () => void;

  constructor() {
    this.abs = [];
    this.counts = [];
    this.head = 0;
    this.onDone = () => this.releaseOldest();
  }

  push(ab: ArrayBufferLike, count: number): void {
    this.abs.push(ab);
    this.counts.push(count);
  }

  private releaseOldest(): void {
    const q = this.abs;
    const h = this.head;
    const ab = q[h]!;
    let n = this.counts[h]!;
    q[h] = null; // hold no buffer past its write
    if (h + 1 === q.length) {
      q.length = 0;
      this.counts.length = 0;
      this.head = 0;
    } else if (h + 1 === COMPACT_AT) {
      q.splice(0, COMPACT_AT); // a writer that never catches up fully: keep the arrays short
      this.counts.splice(0, COMPACT_AT);
      this.head = 0;
    } else {
      this.head = h + 1;
    }
    while (n-- > 0) releaseReadBuffer(ab);
  }
}
