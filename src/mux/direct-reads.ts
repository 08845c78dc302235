// Reads of a TLS socket delivered straight to its 'data' listener, without Node's per-read ArrayBuffer allocation and
// Readable push machinery: a mux session's transport (relay agent sessions, the agent) and the relay's public HTTPS
// sockets. HOT PATH: one call per TLS record read.
//
// Why: node:tls hands JS one chunk per TLS record (one SSL_read each). The ngrok SDK sends a WNDINC record and a
// response record per request, so the relay runs this path twice per request; by default each chunk is a fresh
// native allocation wrapped in an ArrayBuffer, then pushed through Readable (push, emit, maybeReadMore on nextTick).
// net.Socket's `onread` option (a caller-supplied read buffer and callback) avoids both, but Node honours it only for
// sockets it creates itself (tls.connect without `socket`): a TLSSocket wrapped around a handed-off descriptor ignores
// it. enableDirectReads() sets the same three fields the `onread` option sets, on a socket that already exists.
//
// Ownership: every chunk emitted is the listener's to keep (the mux passes payload views on to streams, which may
// queue them). Per-socket mode: a record under SMALL_RECORD bytes is copied out of the read buffer (a slice of
// Node's 8 KiB pool); a larger record is handed out in the read buffer itself, and the next read gets another one
// from read-buffers.ts, which takes a buffer back once every view of it was released (or leaves it to the GC when a
// view is kept). So a kept chunk pins at most max(8 KiB, 4 × its length), where Node's own read path pins about its
// length; what the mux keeps is bounded by its windows. Shared mode (many idle sockets) copies every record out of
// one buffer per thread, so an idle socket holds no read buffer at all.
import type net from 'node:net';
import type { Readable } from 'node:stream';
import { READ_BUFFER_SIZE, pinReadBuffer, recordBuffers, releaseReadBuffer } from './read-buffers.js';
/** Records below this size are copied (Node pools allocations under half its 8 KiB pool size). */
const SMALL_RECORD = 4 * 1024;

interface InternalSocket {
  _handle: { useUserBuffer?: (buf: Buffer) => void } | null;
  [key: symbol]: unknown;
}

interface OnreadSymbols {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

/** The private symbols net.Socket keeps its `onread` state under (Node 12+: kBuffer, kBufferCb, kBufferGen). */
let symbols: OnreadSymbols | null | undefined;

/** Looked up once (they are module-level symbols in node:net, the same on every socket). */
function onreadSymbols(socket: net.Socket): OnreadSymbols | null {
  if (symbols !== undefined) return symbols;
  let buffer: symbol | undefined;
  let callback: symbol | undefined;
  let generator: symbol | undefined;
  for (const s of Object.getOwnPropertySymbols(socket)) {
    if (s.description === 'kBuffer') buffer = s;
    else if (s.description === 'kBufferCb') callback = s;
    else if (s.description === 'kBufferGen') generator = s;
  }
  symbols = buffer === undefined || callback === undefined || generator === undefined ? null : { buffer, callback, generator };
  return symbols;
}

/**
 * Hand a chunk to the stream's consumer. A flowing byte consumer with nothing queued gets it at once; otherwise
 * (paused, earlier chunks still queued, 'readable' mode or a string decoder) it goes through push(), so pause() holds
 * it and order is kept. TLSWrap delivers every record of one socket read in a loop, after a pause() too, so this check
 * is what makes pause() hold. Also MuxStream's path for DATA pieces (one per TLS record on the keep-alive path).
 * Returns false (Node then stops reading) when the queue is over its high-water mark.
 */
export function deliver(stream: Readable, chunk: Buffer): boolean {
  if (deliversNow(stream)) {
    emitNow(stream, chunk);
    return true;
  }
  return stream.push(chunk);
}

/** Whether deliver() would hand a chunk to the listener synchronously (flowing, nothing queued, no decoder). */
export function deliversNow(stream: Readable): boolean {
  return stream.readableFlowing === true && stream.readableLength === 0 && stream.readableEncoding === null && !stream.destroyed;
}

/**
 * What push() does for a chunk it hands over at once, minus its per-chunk bookkeeping and the nextTick it schedules
 * (maybeReadMore, which only calls _read): `dataEmitted` is what readableDidRead (stream.isDisturbed) reports.
 */
export function emitNow(stream: Readable, chunk: Buffer): void {
  (stream as unknown as { _readableState: { dataEmitted: boolean } })._readableState.dataEmitted = true;
  stream.emit('data', chunk);
}

/** A copy of a record that is the consumer's to keep: small ones from Node's buffer pool (length < 4 KiB). */
export function ownedCopy(buf: Buffer, nread: number): Buffer {
  const chunk = Buffer.allocUnsafe(nread);
  buf.copy(chunk, 0, 0, nread);
  return chunk;
}

/**
 * Per-socket reads: a large record is handed out in the read buffer itself and the next read gets another buffer. With
 * `recycle`, the buffers are leased from read-buffers.ts: this reader holds the current one, and a handed-out one
 * across its synchronous delivery.
 */
class DirectReader {
  private readonly socket: net.Socket;
  private readonly recycle: boolean;
  /** The buffer Node reads into; null after it was handed out with a large record. */
  private current: Buffer | null;
  readonly onRead: (nread: number, buf: Buffer) => boolean;
  readonly nextBuffer: () => Buffer | undefined;

  constructor(socket: net.Socket, recycle: boolean) {
    this.socket = socket;
    this.recycle = recycle;
    this.current = null; // the first buffer comes from nextBuffer(), as every later one
    this.onRead = (nread, buf) => {
      if (nread < SMALL_RECORD) return deliver(this.socket, ownedCopy(buf, nread));
      const chunk = buf.subarray(0, nread);
      this.current = null;
      if (!this.recycle) return deliver(this.socket, chunk);
      const s = this.socket;
      if (deliversNow(s)) {
        // Delivered synchronously (deliver()'s first case): the listener has retained or pinned every piece it kept
        // by now, so this reader's hold can go.
        emitNow(s, chunk);
        releaseReadBuffer(buf.buffer);
        return true;
      }
      // Queued in the socket's Readable buffer, parsed later: nobody has claimed its pieces yet, so it is never reused.
      pinReadBuffer(chunk);
      return s.push(chunk);
    };
    // Called by Node after each callback; undefined keeps the current buffer.
    this.nextBuffer = () => {
      if (this.current !== null) return undefined;
      this.current = this.newBuffer();
      return this.current;
    };
  }

  private newBuffer(): Buffer {
    return this.recycle ? recordBuffers.acquire() : Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
  }
}

/** One read buffer for every shared-mode socket of this thread: each record is copied out before the next read. */
let sharedBuffer: Buffer | null = null;

/** Shared-mode callback, called by Node as a method of the socket: no closure per socket. */
function onSharedRead(this: net.Socket, nread: number, buf: Buffer): boolean {
  return deliver(this, ownedCopy(buf, nread));
}

/** Whether this Node has the private fields enableDirectReads relies on, on this (connected) socket. */
export function directReadsSupported(socket: net.Socket): boolean {
  return onreadSymbols(socket) !== null && typeof (socket as unknown as InternalSocket)._handle?.useUserBuffer === 'function';
}

export interface DirectReadOptions {
  /**
   * Read into one buffer per thread and copy every record out, instead of a 16 KiB buffer per socket that large
   * records are handed out in. For sockets that are many and mostly idle (public HTTPS connections): nothing is held
   * per socket between reads. The default suits few sockets carrying bulk data (mux transports).
   */
  shared?: boolean;
  /**
   * Per-socket mode only: take read buffers from read-buffers.ts and reuse one once every view of it was released.
   * Only for a listener that follows that module's rules for everything it keeps of a chunk (a MuxSession: its
   * streams retain or pin each DATA piece); any other listener would see kept chunks overwritten.
   */
  recycle?: boolean;
}

/**
 * Switch a connected socket (net or TLS) to direct reads: from now on its 'data' listeners get owned chunks from
 * the callbacks above instead of Readable's allocation per read; pause()/resume(), 'end', 'close' and 'error' behave
 * as before (see deliver()). Call it once, before the 'data' listener is attached. Returns false, changing nothing,
 * when the socket is destroyed or has no handle, or this Node lacks the fields (the caller carries on with ordinary
 * reads).
 */
export function enableDirectReads(socket: net.Socket, options: DirectReadOptions = {}): boolean {
  if (options.shared === true) {
    sharedBuffer ??= Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
    return installOnread(socket, sharedBuffer, onSharedRead, null);
  }
  if (socket.destroyed || !directReadsSupported(socket)) return false;
  const reader = new DirectReader(socket, options.recycle === true);
  return installOnread(socket, reader.nextBuffer()!, reader.onRead, reader.nextBuffer);
}

/**
 * Put a connected socket in Node's `onread` mode: reads go into `first`, then into whatever `generator` returns after
 * each `callback(nread, buf)` (called as a method of the socket; undefined keeps the buffer). The shared core of
 * enableDirectReads and enableHeadroomReads (headroom-reads.ts). Returns false, changing nothing, when the socket is
 * destroyed, has no handle, is already in onread mode, or this Node lacks the fields.
 */
export function installOnread(
  socket: net.Socket,
  first: Buffer,
  callback: (this: net.Socket, nread: number, buf: Buffer) => boolean,
  generator: (() => Buffer | undefined) | null,
): boolean {
  if (socket.destroyed || !directReadsSupported(socket)) return false;
  const syms = symbols!;
  const internal = socket as unknown as InternalSocket;
  if (internal[syms.buffer]) return false; // already in onread mode (created with `onread`, or called twice)
  internal[syms.callback] = callback;
  internal[syms.generator] = generator;
  internal[syms.buffer] = first;
  internal._handle!.useUserBuffer!(first);
  return true;
}

/**
 * Point a socket's `onread` buffer field at `buf` without telling the handle. Only for a socket that will not read
 * again (after EOF): it drops the JS reference to the old buffer so that memory can be collected.
 */
export function forgetOnreadBuffer(socket: net.Socket, buf: Buffer): void {
  const syms = symbols;
  if (syms === null || syms === undefined) return;
  const internal = socket as unknown as InternalSocket;
  if (internal[syms.buffer]) internal[syms.buffer] = buf;
}
