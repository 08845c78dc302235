// Agent side of a proxy stream's start (PROTOCOL.md §10): after the 4-byte type, read the i64 little-endian length and
// the ProxyHeader JSON; the connection bytes after it stay in the stream for the forwarder. Once per proxied connection.
import { BurrowError } from '../core/errors.js';
import type { MuxStream } from '../mux/mux-stream.js';
import type { ProxyHeader } from '../protocol/messages.js';
import { DEFAULT_MAX_PROXY_HEADER, decodeProxyHeader } from '../protocol/proxy-header.js';

/**
 * Resolves with the ProxyHeader; bytes read past it are pushed back (unshift) so the stream yields exactly the
 * connection payload. Rejects with BURROW_ERR_PROXY_HEADER (malformed, too large, ended early, or not complete
 * within `timeoutMs`). The relay sends the header whole in the SYN frame, so the deadline only catches broken peers.
 */
export function readProxyHeader(stream: MuxStream, timeoutMs = 10_000): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      if (timer !== undefined) clearTimeout(timer);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = stream.read() as Buffer | null) !== null) {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        let decoded;
        try {
          decoded = decodeProxyHeader(buf, DEFAULT_MAX_PROXY_HEADER);
        } catch (err) {
          cleanup();
          reject(err);
          return;
        }
        if (decoded === null) {
          if (buf.length > DEFAULT_MAX_PROXY_HEADER + 8) {
            cleanup();
            reject(new BurrowError('BURROW_ERR_PROXY_HEADER', `stream ${stream.id}: no complete ProxyHeader in ${buf.length} bytes`));
            return;
          }
          continue;
        }
        cleanup();
        const h = decoded.header;
        if (typeof h.Id !== 'string') {
          reject(new BurrowError('BURROW_ERR_PROXY_HEADER', `stream ${stream.id}: ProxyHeader has no string Id`));
          return;
        }
        if (decoded.consumed < buf.length) stream.unshift(buf.subarray(decoded.consumed));
        resolve(h);
        return;
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(new BurrowError('BURROW_ERR_PROXY_HEADER', `stream ${stream.id} ended after ${buf.length} bytes, inside its ProxyHeader`));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onError);
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        cleanup();
        reject(new BurrowError('BURROW_ERR_PROXY_HEADER', `stream ${stream.id}: no complete ProxyHeader within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
    }
    // Bytes may already be buffered (they came in the SYN frame with the type): 'readable' fires for them too, but
    // only on a later tick, so look now.
    onReadable();
  });
}
