// JSON RPC over typed streams (PROTOCOL.md §RPC): the caller writes one JSON object and does not half-close; the
// callee reads until one complete JSON value has arrived (bounded), writes one JSON answer and closes.
// Once per RPC; not on the data path.
import { BurrowError } from '../core/errors.js';
import { JSON_INVALID, JSON_NEED_MORE, JsonValueScanner } from '../protocol/json-scanner.js';
import { MUX_STREAM_CANCELLED } from '../protocol/error-codes.js';
import type { MuxSession } from './mux-session.js';
import type { MuxStream } from './mux-stream.js';
import { openTypedStream } from './typed-stream.js';

/** Default cap on one RPC message (requests and responses are a few KiB). */
export const DEFAULT_MAX_RPC_SIZE = 256 * 1024;
export const DEFAULT_RPC_TIMEOUT_MS = 30_000;
/** First size of the buffer a message is read into (Auth and Bind messages are well under it). */
const RPC_FIRST_BUFFER = 4 * 1024;

export interface ReadJsonOptions {
  maxSize?: number;
  timeoutMs?: number;
}

/** 'data' listener of an RPC stream whose message has been read. */
function discard(): void {}

/**
 * Read one JSON object from `stream` without waiting for its end. Rejects with BURROW_ERR_RPC_TOO_LARGE above
 * maxSize, BURROW_ERR_RPC_BAD_JSON for anything that is not one JSON object, BURROW_ERR_RPC_INCOMPLETE if the stream
 * ends or times out first. On rejection the stream is reset; on success bytes after the value are read and dropped.
 */
export function readJsonMessage(stream: MuxStream, options: ReadJsonOptions = {}): Promise<Record<string, unknown>> {
  const maxSize = options.maxSize ?? DEFAULT_MAX_RPC_SIZE;
  const timeoutMs = options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const scanner = new JsonValueScanner();
    // The message is copied into one buffer as it arrives, grown by doubling up to maxSize. Keeping each chunk as its
    // own view would let a peer that sends its message as 1-byte DATA frames make this side hold a Buffer object and
    // an array slot per byte (~15 times the bytes sent, for every RPC stream open at once).
    let acc = Buffer.allocUnsafe(maxSize < RPC_FIRST_BUFFER ? maxSize : RPC_FIRST_BUFFER);
    let size = 0;
    let opened = false; // the first non-whitespace byte was '{'
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      if (timer !== undefined) clearTimeout(timer);
    };
    const fail = (err: BurrowError): void => {
      cleanup();
      stream.reset(MUX_STREAM_CANCELLED);
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      if (!opened) {
        // An RPC message is one JSON object. Anything else is refused at its first byte: a bare number or word would
        // otherwise not end until more bytes came, holding the stream until the timeout.
        let i = 0;
        while (i < chunk.length && (chunk[i] === 0x20 || chunk[i] === 0x09 || chunk[i] === 0x0a || chunk[i] === 0x0d)) i++;
        if (i < chunk.length) {
          if (chunk[i] !== 0x7b) {
            return fail(new BurrowError('BURROW_ERR_RPC_BAD_JSON', `RPC on stream ${stream.id} must be one JSON object ({...}); it starts with byte 0x${chunk[i]!.toString(16)}`));
          }
          opened = true;
        }
      }
      const end = scanner.scan(chunk);
      if (end === JSON_INVALID) {
        return fail(new BurrowError('BURROW_ERR_RPC_BAD_JSON', `RPC on stream ${stream.id} is not JSON (first bad byte 0x${chunk[0]?.toString(16)})`));
      }
      const take = end === JSON_NEED_MORE ? chunk.length : end;
      size += take;
      if (size > maxSize) {
        return fail(new BurrowError('BURROW_ERR_RPC_TOO_LARGE', `RPC on stream ${stream.id} exceeds ${maxSize} bytes`));
      }
      if (size > acc.length) {
        let cap = acc.length * 2;
        while (cap < size) cap *= 2;
        const grown = Buffer.allocUnsafe(cap < maxSize ? cap : maxSize);
        acc.copy(grown, 0, 0, size - take);
        acc = grown;
      }
      chunk.copy(acc, size - take, 0, take);
      if (end === JSON_NEED_MORE) return;
      cleanup();
      // Bytes after the message are read and dropped, not queued: a peer that keeps writing on an answered RPC
      // stream must not fill this side's memory up to the stream window (and the window credit keeps flowing).
      stream.on('data', discard);
      let value: unknown;
      try {
        value = JSON.parse(acc.toString('utf8', 0, size));
      } catch (err) {
        stream.reset(MUX_STREAM_CANCELLED);
        reject(new BurrowError('BURROW_ERR_RPC_BAD_JSON', `RPC on stream ${stream.id} does not parse: ${(err as Error).message}`));
        return;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        stream.reset(MUX_STREAM_CANCELLED);
        reject(new BurrowError('BURROW_ERR_RPC_BAD_JSON', `RPC on stream ${stream.id} must be a JSON object`));
        return;
      }
      resolve(value as Record<string, unknown>);
    };
    const onEnd = (): void =>
      fail(new BurrowError('BURROW_ERR_RPC_INCOMPLETE', `stream ${stream.id} ended after ${size} bytes, before a complete RPC message`));
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    if (timeoutMs > 0) {
      timer = setTimeout(
        () => fail(new BurrowError('BURROW_ERR_RPC_INCOMPLETE', `no complete RPC message on stream ${stream.id} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      timer.unref();
    }
  });
}

/** Callee side: write the one JSON answer and close our half; the stream finishes when the caller closes too. */
export function respondRpc(stream: MuxStream, response: object): void {
  stream.end(JSON.stringify(response));
}

/**
 * Caller side: open a typed stream, send `request`, read the answer, close. An answer with a non-empty `Error`
 * field rejects with BURROW_ERR_RPC_REMOTE carrying that text.
 */
export async function callRpc<T extends object>(
  session: MuxSession,
  type: number,
  request: object,
  options: ReadJsonOptions = {},
): Promise<T> {
  const s = openTypedStream(session, type);
  s.on('error', () => {}); // failures surface through readJsonMessage's rejection
  s.write(JSON.stringify(request));
  const resp = await readJsonMessage(s, options);
  s.end();
  const e = resp['Error'];
  if (typeof e === 'string' && e !== '') {
    throw new BurrowError('BURROW_ERR_RPC_REMOTE', `RPC type ${type} failed at the peer: ${e}`);
  }
  return resp as T;
}
