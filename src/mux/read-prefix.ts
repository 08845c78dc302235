// Reads a length-delimited prefix (a stream type, a ProxyHeader) off the start of a stream and leaves every byte
// after it in the stream for the next consumer. Once per stream; not on the per-chunk path.
import { BurrowError, type ErrorCode } from '../core/errors.js';
import type { MuxStream } from './mux-stream.js';

/** Decodes the prefix from the bytes so far: null = need more; may throw a BurrowError for malformed input. */
export type PrefixParser<T> = (buf: Buffer) => { value: T; consumed: number } | null;

export interface ReadPrefixOptions {
  /** Error code for an early end, an overlong prefix or the deadline. */
  code: ErrorCode;
  /** What is being read, for messages ("its 4-byte type"). */
  what: string;
  /** Give up once this many bytes arrived without a complete prefix. */
  maxBytes: number;
  timeoutMs: number;
}

const READ_STEP = 4096;

export function readPrefix<T>(stream: MuxStream, parse: PrefixParser<T>, o: ReadPrefixOptions): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      if (timer !== undefined) clearTimeout(timer);
    };
    const fail = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      // Small reads: what is taken out is credited to the peer's window before the rest is pushed back, so taking
      // little keeps the stream within its window (PROTOCOL.md §Flow control).
      while (stream.readableLength > 0 && (chunk = stream.read(Math.min(stream.readableLength, READ_STEP)) as Buffer | null) !== null) {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        let r: { value: T; consumed: number } | null;
        try {
          r = parse(buf);
        } catch (err) {
          fail(err as Error);
          return;
        }
        if (r === null) {
          if (buf.length > o.maxBytes) {
            fail(new BurrowError(o.code, `stream ${stream.id}: no complete ${o.what} in ${buf.length} bytes`));
            return;
          }
          continue;
        }
        cleanup();
        if (r.consumed < buf.length) stream.unshift(buf.subarray(r.consumed));
        resolve(r.value);
        return;
      }
      stream.read(0); // with the buffer drained, lets a finished stream emit 'end'
    };
    const onEnd = (): void => fail(new BurrowError(o.code, `stream ${stream.id} ended after ${buf.length} bytes, before ${o.what} was complete`));
    const onError = (err: Error): void => fail(err);
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onError);
    if (o.timeoutMs > 0) {
      timer = setTimeout(() => fail(new BurrowError(o.code, `stream ${stream.id} sent no complete ${o.what} within ${o.timeoutMs} ms`)), o.timeoutMs);
      timer.unref();
    }
    // Bytes may already be buffered (they came in the SYN frame): 'readable' would report them only on a later tick.
    onReadable();
  });
}
