// Sockets on handed-off descriptors in a worker. Plain-HTTP public sockets read into one buffer per worker thread
// instead of a fresh 64 KiB allocation per read. HOT PATH (every client read on an http endpoint).
//
// Why: a keep-alive request is ~100 bytes; Node's default read path allocates a 64 KiB ArrayBuffer for it, shrinks
// it, wraps it and pushes it through the Readable machinery. The request filter copies what it keeps anyway (heads are
// rewritten into a new buffer, split heads are assembled in its own buffer), so for heads nothing has to own the read
// bytes. Measured: relay CPU per keep-alive request 29 → 27 µs, SDK-agent RPS +5 % (bench/RESULTS.md, 2026-11-28).
//
// Contract: a 'data' chunk of such a socket is BORROWED: valid only until the listener returns (the next read on any
// socket of this thread overwrites it). Whoever keeps or queues bytes of it must call ownChunk() first. Reads run one
// at a time on the thread's event loop, so sharing one buffer is safe for synchronous consumers.
// Only the worker's own sockets use it (HttpPump is the only 'data' consumer there); the single-threaded fallback's
// sockets come from the acceptor and read as usual (ownChunk is then a no-op).
import net from 'node:net';
import { PIPE_WRITE_HIGH_WATER_MARK, type WritableHighWaterMarkOption } from '../../mux/batched-pipe.js';

/** libuv's own read size; one read never returns more. */
const SHARED_READ_SIZE = 64 * 1024;
const SHARED_READ = Buffer.allocUnsafe(SHARED_READ_SIZE);
/** Its ArrayBuffer, read once: `.buffer` calls into V8's C++ runtime on every access. */
const SHARED_AB = SHARED_READ.buffer;

/** Called by Node for each read, as a method of the socket (net.Socket `onread.callback`): no closure per socket. */
function emitBorrowed(this: net.Socket, nread: number, buf: Buffer): void {
  this.emit('data', buf.subarray(0, nread));
}

/**
 * What every socket on a handed-off descriptor gets: half-close (forwarded both ways) and the pipe write mark, which
 * matters where a proxy stream is piped into the socket (http responses, tcp and tls endpoints); under a TLSSocket
 * (https, agent sessions) writes go to the handle directly and it has no effect.
 */
function fdSocketOptions(fd: number): net.SocketConstructorOpts & WritableHighWaterMarkOption {
  return { fd, readable: true, writable: true, allowHalfOpen: true, writableHighWaterMark: PIPE_WRITE_HIGH_WATER_MARK };
}

/** A socket on a handed-off descriptor whose 'data' chunks are views of the shared read buffer (see the contract). */
export function sharedReadSocketFromFd(fd: number): net.Socket {
  // `onread` is a documented net.Socket constructor option (Node ≥ 12) that @types/node lists for net.connect only.
  const options: net.SocketConstructorOpts & WritableHighWaterMarkOption & { onread: net.OnReadOpts } = {
    ...fdSocketOptions(fd),
    onread: { buffer: SHARED_READ, callback: emitBorrowed as unknown as net.OnReadOpts['callback'] },
  };
  return new net.Socket(options);
}

/** A socket on a handed-off descriptor that reads as usual (tcp, tls and https endpoints, agent sessions). */
export function socketFromFd(fd: number): net.Socket {
  return new net.Socket(fdSocketOptions(fd));
}

/** `buf` itself if it may be kept, else a copy (it is a view of this thread's shared read buffer). */
export function ownChunk(buf: Buffer): Buffer {
  return buf.buffer === SHARED_AB ? Buffer.from(buf) : buf;
}
