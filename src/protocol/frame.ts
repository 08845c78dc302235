// muxado frame constants and header encoding (docs/PROTOCOL.md §Frames). Pure: no sockets, no timers.
// Hot path: writeFrameHeader runs once per outgoing frame.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-----------------------------------------------+-------+-------+
//  |            payload length (24)                | type  | flags |
//  +-+-------------------------------------------------------------+
//  |R|                      stream id (31)                         |
//  +-+-------------------------------------------------------------+
//  |                      payload (length bytes) ...               |

export const FRAME_HEADER_SIZE = 8;

export const TYPE_RST = 0;
export const TYPE_DATA = 1;
export const TYPE_WNDINC = 2;
export const TYPE_GOAWAY = 3;
/** Number of defined frame types; a type >= this is unknown. */
export const FRAME_TYPE_COUNT = 4;

export const FLAG_FIN = 0x1;
export const FLAG_SYN = 0x2;

/** The largest length the 24-bit field can carry. */
export const MAX_FRAME_LENGTH = 0xffffff;
export const STREAM_ID_MASK = 0x7fffffff;
export const MAX_STREAM_ID = 0x7fffffff;
/** Largest window a WNDINC may grow a stream to (31-bit, as HTTP/2). */
export const MAX_WINDOW = 0x7fffffff;

/** Per-stream initial window, both directions (docs/PROTOCOL.md §Flow control). */
export const DEFAULT_WINDOW_SIZE = 256 * 1024;
/** Largest DATA payload we put in one frame by default. */
export const DEFAULT_MAX_WRITE_FRAME = 64 * 1024;

export const RST_PAYLOAD_SIZE = 4;
export const WNDINC_PAYLOAD_SIZE = 4;
export const GOAWAY_MIN_PAYLOAD_SIZE = 8;
/**
 * Largest GOAWAY payload accepted: 8 bytes + up to 64 KiB of debug text (PROTOCOL.md §1: larger is a
 * FRAME_SIZE_ERROR). Control payloads are buffered whole, so this caps what one announced header can make us allocate.
 */
export const GOAWAY_MAX_PAYLOAD_SIZE = GOAWAY_MIN_PAYLOAD_SIZE + 64 * 1024;

/** Write an 8-byte frame header at `buf[offset]`. Caller guarantees 0 <= length <= MAX_FRAME_LENGTH. */
export function writeFrameHeader(
  buf: Buffer,
  offset: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  buf[offset] = (length >>> 16) & 0xff;
  buf[offset + 1] = (length >>> 8) & 0xff;
  buf[offset + 2] = length & 0xff;
  buf[offset + 3] = ((type & 0xf) << 4) | (flags & 0xf);
  buf.writeUInt32BE(streamId & STREAM_ID_MASK, offset + 4);
}

/** A whole decoded frame; used by tests, tools and the (rare) control-frame paths, not by the DATA fast path. */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** Encode a whole frame into a fresh buffer (tests and control frames; the data path writes header + payload separately). */
export function encodeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): Buffer {
  const len = payload === undefined ? 0 : payload.length;
  if (len > MAX_FRAME_LENGTH) throw new RangeError(`frame payload of ${len} bytes exceeds the 24-bit length field`);
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + len);
  writeFrameHeader(out, 0, len, type, flags, streamId);
  if (payload !== undefined && len > 0) out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

export function encodeRst(streamId: number, code: number): Buffer {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(code >>> 0, 0);
  return encodeFrame(TYPE_RST, 0, streamId, p);
}

export function encodeWndInc(streamId: number, increment: number): Buffer {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(increment >>> 0, 0);
  return encodeFrame(TYPE_WNDINC, 0, streamId, p);
}

export function encodeGoAway(lastStreamId: number, code: number, debug: string | Uint8Array = ''): Buffer {
  const d = typeof debug === 'string' ? Buffer.from(debug, 'utf8') : debug;
  const p = Buffer.allocUnsafe(GOAWAY_MIN_PAYLOAD_SIZE + d.length);
  p.writeUInt32BE(lastStreamId & STREAM_ID_MASK, 0);
  p.writeUInt32BE(code >>> 0, 4);
  p.set(d, 8);
  return encodeFrame(TYPE_GOAWAY, 0, 0, p);
}
