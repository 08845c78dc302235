// Typed streams: the first 4 bytes of a stream are a big-endian u32 naming what it carries (PROTOCOL.md §Typed
// streams). Once per stream; not on the per-chunk path.
import { BurrowError } from '../core/errors.js';
import { STREAM_TYPE_SIZE } from '../protocol/messages.js';
import type { MuxSession } from './mux-session.js';
import type { MuxStream } from './mux-stream.js';

/** Open a stream on `session` and write its type; the SYN carries the type bytes. */
export function openTypedStream(session: MuxSession, type: number): MuxStream {
  const s = session.openStream();
  const t = Buffer.allocUnsafe(STREAM_TYPE_SIZE);
  t.writeUInt32BE(type >>> 0, 0);
  s.write(t);
  return s;
}

/**
 * Read the 4-byte type at the start of an accepted stream. The bytes after it stay in the stream for the consumer.
 * Rejects with BURROW_ERR_TYPED_STREAM if the stream ends first or `timeoutMs` passes.
 */
export function readStreamType(stream: MuxStream, timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      if (timer !== undefined) clearTimeout(timer);
    };
    const onReadable = (): void => {
      const b = stream.read(STREAM_TYPE_SIZE) as Buffer | null;
      if (b === null) return;
      cleanup();
      if (b.length < STREAM_TYPE_SIZE) {
        reject(new BurrowError('BURROW_ERR_TYPED_STREAM', `stream ${stream.id} ended after ${b.length} of 4 type bytes`));
        return;
      }
      resolve(b.readUInt32BE(0));
    };
    const onEnd = (): void => {
      cleanup();
      reject(new BurrowError('BURROW_ERR_TYPED_STREAM', `stream ${stream.id} ended before its 4-byte type`));
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
        reject(new BurrowError('BURROW_ERR_TYPED_STREAM', `stream ${stream.id} sent no type within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
    }
  });
}
