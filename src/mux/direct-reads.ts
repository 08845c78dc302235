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
// queue them). A record of up to SMALL_RECORD bytes is copied out of the read buffer (Buffer.from: a slice of Node's
// 8 KiB pool, no allocation); a larger record is handed out in the read buffer itself, and the next read gets a new
// one. So a kept chunk pins at most max(8 KiB, 4 × its length), where Node's own read path pins about its length;
// what the mux keeps is bounded by its windows, so the worst case stays bounded too.
import type net from 'node:net';

/** TLSWrap passes at most one SSL_read's output (16 KiB) per callback; a smaller buffer only splits it. */
const READ_BUFFER_SIZE = 16 * 1024;
/** Records up to this size are copied (pooled); see the header comment. */
const SMALL_RECORD = 4 * 1024;

interface InternalSocket {
  _handle: { useUserBuffer?: (buf: Buffer) => void } | null;
  [key: symbol]: unknown;
}

/** The private symbols net.Socket keeps its `onread` state under (Node 12+: kBuffer, kBufferCb, kBufferGen). */
function onreadSymbols(socket: net.Socket): { buffer: symbol; callback: symbol; generator: symbol } | null {
  let buffer: symbol | undefined;
  let callback: symbol | undefined;
  let generator: symbol | undefined;
  for (const s of Object.getOwnPropertySymbols(socket)) {
    if (s.description === 'kBuffer') buffer = s;
    else if (s.description === 'kBufferCb') callback = s;
    else if (s.description === 'kBufferGen') generator = s;
  }
  return buffer === undefined || callback === undefined || generator === undefined ? null : { buffer, callback, generator };
}

class DirectReader {
  private readonly socket: net.Socket;
  /** The buffer Node reads into; null after it was handed out with a large record. */
  private current: Buffer | null;
  readonly onRead: (nread: number, buf: Buffer) => void;
  readonly nextBuffer: () => Buffer | undefined;

  constructor(socket: net.Socket, first: Buffer) {
    this.socket = socket;
    this.current = first;
    this.onRead = (nread, buf) => {
      let chunk: Buffer;
      if (nread <= SMALL_RECORD) {
        chunk = Buffer.from(buf.subarray(0, nread));
      } else {
        chunk = buf.subarray(0, nread);
        this.current = null;
      }
      this.socket.emit('data', chunk);
    };
    // Called by Node after each callback; undefined keeps the current buffer.
    this.nextBuffer = () => {
      if (this.current !== null) return undefined;
      this.current = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
      return this.current;
    };
  }
}

/** Whether this Node has the private fields enableDirectReads relies on (checked once, on a socket not connected). */
export function directReadsSupported(socket: net.Socket): boolean {
  return onreadSymbols(socket) !== null && typeof (socket as unknown as InternalSocket)._handle?.useUserBuffer === 'function';
}

/**
 * Switch a connected socket (net or TLS) to direct reads: from now on its 'data' listeners get owned chunks from
 * the callback above, and Readable's own 'data' delivery is bypassed ('end', 'close', 'error', pause() and resume()
 * behave as before). Call it before attaching the 'data' listener and only once. Returns false, changing nothing,
 * when the socket is destroyed or has no handle, or this Node lacks the fields (the caller carries on with ordinary reads).
 */
export function enableDirectReads(socket: net.Socket): boolean {
  if (socket.destroyed || !directReadsSupported(socket)) return false;
  const syms = onreadSymbols(socket)!;
  const internal = socket as unknown as InternalSocket;
  if (internal[syms.buffer]) return false; // already in onread mode (created with `onread`, or called twice)
  const first = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
  const reader = new DirectReader(socket, first);
  internal[syms.buffer] = first;
  internal[syms.callback] = reader.onRead;
  internal[syms.generator] = reader.nextBuffer;
  internal._handle!.useUserBuffer!(first);
  return true;
}
