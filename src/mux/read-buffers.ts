// Recycled 16 KiB read buffers for mux transports in per-socket direct-read mode (direct-reads.ts), so that a bulk
// transfer does not allocate a new ArrayBuffer per TLS record. HOT PATH: one lookup per DATA piece and per write done.
//
// Why: a large TLS record is handed to the mux in the buffer Node read it into, and the next read needs a new buffer.
// At ~600 MB/s that is ~15 MB of ArrayBuffers between two scavenges. V8 counts ArrayBuffer memory allocated since
// the last mark-compact against the old generation's limit, so a bulk upload could flip the agent into a mode with a
// mark-compact every ~50 ms (bench/RESULTS.md, 2026-11-29 session 6: 1 vs ~120 mark-compacts for the same 2 GiB).
// Reusing a buffer once every view handed out of it is done keeps the agent's ArrayBuffer allocation near zero.
//
// Ownership (one lease per buffer, counted):
//   * The reader holds a buffer while Node may read into it (acquireReadBuffer: count 1), and across the synchronous
//     delivery of a record read into it; then it lets go (releaseReadBuffer).
//   * Every DATA piece the mux hands to a stream is either retained (the stream's consumer promised to call
//     releaseReadBuffer once it is done with that piece: BatchedPipe after the write completed) or pins the buffer
//     (any other consumer may keep the piece for as long as it likes: the buffer is never reused, the GC frees it).
//   * A buffer goes back to the free list when its count reaches zero and it is not pinned.
// A lease that is never released (a stream destroyed with pieces queued, a write never made) only means the buffer is
// left to the GC, as without this module. Releasing more often than retaining would hand out memory still in use:
// every release matches one retain or the reader's own hold.
/** TLSWrap passes at most one SSL_read's output (16 KiB) per callback; a smaller buffer only splits it. */
export const READ_BUFFER_SIZE = 16 * 1024;
/**
 * Free buffers kept per thread (4 MiB). One agent stream may have its whole 2 MiB window (128 records) in flight
 * towards a slower upstream; with a cap of 64, a tcp-bulk upload still allocated one buffer in six and ran ~15
 * mark-compacts per GiB, at 256 it allocates ~140 in all and runs one. Beyond the cap, the GC frees.
 */
const MAX_FREE = 256;

class Lease {
  readonly buf: Buffer;
  count: number;
  pinned: boolean;

  constructor(buf: Buffer) {
    this.buf = buf;
    this.count = 1;
    this.pinned = false;
  }
}

/** Lease of every buffer this module handed out, by its ArrayBuffer (pieces are views of it). Weak: see above. */
const leases = new WeakMap<ArrayBufferLike, Lease>();
const free: Lease[] = [];
let allocated = 0;
let reused = 0;

/** A buffer for Node to read into, held by the caller (count 1) until releaseReadBuffer(buf.buffer). */
export function acquireReadBuffer(): Buffer {
  const lease = free.pop();
  if (lease !== undefined) {
    reused++;
    lease.count = 1;
    return lease.buf;
  }
  allocated++;
  const buf = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
  leases.set(buf.buffer, new Lease(buf));
  return buf;
}

/** The consumer of `piece` will call releaseReadBuffer(piece.buffer) when done with it. No-op for other buffers. */
export function retainReadBuffer(piece: Buffer): void {
  const lease = leases.get(piece.buffer);
  if (lease !== undefined) lease.count++;
}

/** `piece` may be kept indefinitely: its buffer is never reused. No-op for other buffers. */
export function pinReadBuffer(piece: Buffer): void {
  const lease = leases.get(piece.buffer);
  if (lease !== undefined) lease.pinned = true;
}

/** One holder of `ab` is done with it (see retainReadBuffer / acquireReadBuffer). No-op for other buffers. */
export function releaseReadBuffer(ab: ArrayBufferLike): void {
  const lease = leases.get(ab);
  if (lease === undefined || --lease.count !== 0 || lease.pinned) return;
  if (free.length < MAX_FREE) free.push(lease);
}

/** This thread's counts (tests, bench notes): buffers allocated, and acquisitions served from the free list. */
export function readBufferStats(): { allocated: number; reused: number; free: number } {
  return { allocated, reused, free: free.length };
}
