// Reads of a plain TCP socket laid out back to back in a slab, each with FRAME_HEADER_SIZE bytes of free headroom in
// front, so the mux can send a read as one DATA frame with its header written in place, and a turn's frames of one
// bulk stream reach TLS as one contiguous buffer. HOT PATH: one call per read of a relay tcp / tls-passthrough socket.
//
// Why: node:tls copies a writev of several buffers into one before SSL_write (TLSWrap::DoWrite joins them), and a TLS
// write always completes a turn later, so every batch of [header, payload, header, payload] the session wrote was
// copied once more on its way out: 8 % of the relay's CPU in a tcp-bulk upload (perf, bench/RESULTS.md). With the
// header in the gap in front of its payload, and the next read right behind, MuxSession.write merges the frames into
// one buffer (contiguous bytes of one ArrayBuffer) and OpenSSL encrypts straight from the read buffer.
//
//   slab:  | gap | read 1 ........ | gap | read 2 ........ | gap | read 3 ........ | ...   gap = FRAME_HEADER_SIZE
//
// Modes: a socket starts on one read buffer per thread and each read is copied out (nothing held per socket, like
// direct-reads.ts shared mode: thousands of these sit idle). A read of LARGE_READ bytes or more moves the socket to
// its own slab: that read is copied in, later ones are read in place. A shorter read (the burst is over), EOF or
// close moves it back. At most MAX_SLAB_SOCKETS sockets per thread hold a slab, so sockets that went idle right after
// a large read pin at most MAX_SLAB_SOCKETS × SLAB_SIZE; beyond that, each large read is copied into a buffer of its
// own with headroom (one copy, as the writev join it replaces).
//
// Ownership: every chunk emitted is the listener's to keep; a chunk pins its slab (256 KiB) until released, so what
// a consumer queues is bounded by the mux windows, in slabs. The gap in front of a chunk belongs to that chunk: only
// the mux writes it, once (claimHeadroom). A consumer may hand chunks back for reuse (see `slabs` below).
import type net from 'node:net';
import { FRAME_HEADER_SIZE } from '../protocol/frame.js';
import { deliver, forgetOnreadBuffer, installOnread, ownedCopy } from './direct-reads.js';
import { ReadBufferPool, releaseReadBuffer, retainReadBuffer } from './read-buffers.js';

/** libuv's own read size: a read never returns more. */
const READ_SIZE = 64 * 1024;
/** One region per read: the gap, then room for a whole read. */
const REGION = FRAME_HEADER_SIZE + READ_SIZE;
/** Four full reads per slab. */
const SLAB_SIZE = 4 * REGION;
/** Reads at least this long are bulk: they move a socket to its own slab, and are handed out with headroom. */
const LARGE_READ = 16 * 1024;
/** Sockets per thread that may hold a slab at once (bounds what idle sockets pin: 64 × 256 KiB). */
const MAX_SLAB_SOCKETS = 64;
/**
 * With `recycle`, slabs come from a pool (read-buffers.ts): the socket holds its current slab, each chunk handed out
 * retains it, and the consumer (MuxStream.releasesWrites: the agent's upstream sockets) releases a chunk once the
 * transport wrote it. 16 free slabs (4 MiB): a stream's 512 KiB relay window in flight is two or three slabs.
 */
const slabs = new ReadBufferPool(SLAB_SIZE, 16);

/** Chunks handed out with free headroom in front, until the mux claims it. */
const headroomChunks = new WeakSet<Buffer>();

/**
 * True once for a chunk that came from a headroom read with its FRAME_HEADER_SIZE bytes in front still free: the
 * caller may now write them (and must not write them again). Any other buffer (a slice of such a chunk included) is
 * false.
 */
export function claimHeadroom(chunk: Buffer): boolean {
  return headroomChunks.delete(chunk);
}

/** Per socket in slab mode: the slab and where the current read region starts. */
interface SlabState {
  slab: Buffer;
  /** From the pool, held by this socket, each chunk retained (enableHeadroomReads `recycle`). */
  readonly recycle: boolean;
  /** Offset of the current read region (just after its gap). */
  at: number;
}

const SLAB = Symbol('headroomSlab');
/** Set on sockets whose consumer releases chunks (enableHeadroomReads `recycle`). */
const RECYCLE = Symbol('headroomRecycle');

interface HeadroomSocket extends net.Socket {
  [SLAB]?: SlabState | null;
  [RECYCLE]?: boolean;
}

/** The thread's read buffer for sockets in the copying mode. */
let sharedRead: Buffer | null = null;
let slabSockets = 0;
/**
 * The buffer the callback chose for the socket's next read, taken by takeNext() right after it. Node calls a socket's
 * onread callback and then its buffer generator synchronously, one read at a time per thread (plain TCP reads never
 * nest), so a value set by one socket's callback is always taken by that same socket's generator.
 */
let next: Buffer | undefined;

function takeNext(): Buffer | undefined {
  const b = next;
  next = undefined;
  return b;
}

/** The region after a chunk of `n` bytes read at `at`, in the same slab if a whole region fits, else in a new one. */
function advance(st: SlabState, n: number): Buffer {
  let at = st.at + n + FRAME_HEADER_SIZE;
  if (at + READ_SIZE > SLAB_SIZE) {
    if (st.recycle) {
      releaseReadBuffer(st.slab.buffer); // the socket's hold: no read lands in it any more
      st.slab = slabs.acquire();
    } else {
      st.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    }
    at = FRAME_HEADER_SIZE;
  }
  st.at = at;
  return st.slab.subarray(at, at + READ_SIZE);
}

/** A copy of a large read with headroom of its own (over the slab cap): one copy, like the join it replaces. */
function headroomCopy(buf: Buffer, nread: number): Buffer {
  const own = Buffer.allocUnsafeSlow(FRAME_HEADER_SIZE + nread);
  buf.copy(own, FRAME_HEADER_SIZE, 0, nread);
  const chunk = own.subarray(FRAME_HEADER_SIZE);
  headroomChunks.add(chunk);
  return chunk;
}

/**
 * Give the socket's slab place back. The caller makes sure Node reads into the slab no more (next, or EOF). The
 * 'end' / 'close' listeners exist only while the socket holds a slab: an idle socket carries nothing of ours but the
 * handle's read listener (issue #7 counts bytes per idle connection).
 */
function dropSlab(socket: HeadroomSocket): void {
  const st = socket[SLAB]!;
  if (st.recycle) releaseReadBuffer(st.slab.buffer); // the socket's hold (callers: no further read lands in it)
  socket[SLAB] = null;
  slabSockets--;
  socket.off('end', onHeadroomEnd);
  socket.off('close', onHeadroomClose);
}

function takeSlab(socket: HeadroomSocket, st: SlabState): void {
  socket[SLAB] = st;
  slabSockets++;
  socket.on('end', onHeadroomEnd);
  socket.on('close', onHeadroomClose);
}

/** Node's onread callback, called as a method of the socket. */
function onHeadroomRead(this: HeadroomSocket, nread: number, buf: Buffer): boolean {
  next = undefined;
  const st = this[SLAB];
  if (st === null || st === undefined) return deliver(this, copiedRead(this, buf, nread));
  const chunk = st.slab.subarray(st.at, st.at + nread);
  headroomChunks.add(chunk);
  if (st.recycle) retainReadBuffer(chunk);
  if (nread < LARGE_READ) {
    dropSlab(this);
    next = sharedRead!;
  } else {
    next = advance(st, nread);
  }
  // The chunk is the region Node read into: until takeNext() runs, the next read would land on it again. A consumer
  // that throws skips takeNext(), so the socket is destroyed (no further read) before the error goes on.
  try {
    return deliver(this, chunk);
  } catch (err) {
    this.destroy(err as Error);
    throw err;
  }
}

/**
 * A read into the thread's shared buffer, copied out: small ones plainly, large ones with headroom. A large one starts
 * slab mode (if a place is free): it is copied into a new slab, and the next reads land there directly.
 */
function copiedRead(socket: HeadroomSocket, buf: Buffer, nread: number): Buffer {
  if (nread < LARGE_READ) return ownedCopy(buf, nread);
  if (slabSockets >= MAX_SLAB_SOCKETS) return headroomCopy(buf, nread);
  const recycle = socket[RECYCLE] === true;
  const st: SlabState = { slab: recycle ? slabs.acquire() : Buffer.allocUnsafeSlow(SLAB_SIZE), recycle, at: FRAME_HEADER_SIZE };
  buf.copy(st.slab, FRAME_HEADER_SIZE, 0, nread);
  const chunk = st.slab.subarray(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + nread);
  headroomChunks.add(chunk);
  if (recycle) retainReadBuffer(chunk);
  takeSlab(socket, st);
  next = advance(st, nread);
  return chunk;
}

/**
 * 'end' listener: after EOF Node reads no more, so a half-closed socket (still sending the other way, maybe for long)
 * gives its slab place back at once, and lets go of the slab region it would have read into next.
 */
function onHeadroomEnd(this: HeadroomSocket): void {
  if (!this[SLAB]) return;
  dropSlab(this);
  forgetOnreadBuffer(this, sharedRead!);
}

/** 'close' listener: a socket that closes while holding a slab gives its place back. */
function onHeadroomClose(this: HeadroomSocket): void {
  if (this[SLAB]) dropSlab(this);
}

/**
 * Switch a connected plain socket to headroom reads (see above): its 'data' listeners get owned chunks, large ones
 * with free headroom for claimHeadroom(). pause()/resume(), 'end', 'close' and 'error' behave as before. Call it once,
 * before the socket starts reading (a 'data' listener attached in the same tick is fine: reading starts on the next).
 * Returns false, changing nothing, when the socket cannot (destroyed, no handle, already in onread mode, or this Node
 * lacks the fields); it then reads as usual.
 */
export function enableHeadroomReads(socket: net.Socket, options: HeadroomReadOptions = {}): boolean {
  sharedRead ??= Buffer.allocUnsafeSlow(READ_SIZE);
  if (!installOnread(socket, sharedRead, onHeadroomRead, takeNext)) return false;
  if (options.recycle === true) (socket as HeadroomSocket)[RECYCLE] = true;
  return true;
}

export interface HeadroomReadOptions {
  /**
   * Take slabs from a pool and reuse one once every chunk read into it was released (read-buffers.ts). Only for a
   * consumer that releases every chunk it is done with and keeps none after (the agent's upstream socket piped into a
   * MuxStream with releasesWrites); chunks it never releases just leave their slab to the GC.
   */
  recycle?: boolean;
}

/** The slab pool's counts (tests, bench notes). */
export function headroomSlabStats(): { allocated: number; reused: number; free: number } {
  return slabs.stats();
}

/** Sockets of this thread holding a slab (tests). */
export function headroomSlabSockets(): number {
  return slabSockets;
}

/** The most sockets per thread that hold a slab at once (tests). */
export const HEADROOM_MAX_SLAB_SOCKETS = MAX_SLAB_SOCKETS;
