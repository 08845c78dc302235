// Typed streams: the first 4 bytes of a stream are a big-endian u32 naming what it carries (PROTOCOL.md §Typed
// streams). Once per stream; not on the per-chunk path.
import { STREAM_TYPE_SIZE } from '../protocol/messages.js';
import type { MuxSession } from './mux-session.js';
import type { MuxStream } from './mux-stream.js';
import { readPrefix } from './read-prefix.js';

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
  return readPrefix(stream, (b) => (b.length < STREAM_TYPE_SIZE ? null : { value: b.readUInt32BE(0), consumed: STREAM_TYPE_SIZE }), {
    code: 'BURROW_ERR_TYPED_STREAM',
    what: 'its 4-byte type',
    maxBytes: STREAM_TYPE_SIZE,
    timeoutMs,
  });
}
