// Incremental muxado frame decoder (docs/PROTOCOL.md §Frames). Pure: no sockets, no timers. HOT PATH.
//
// Accepts input in any chunk split. Nothing is reported until a whole 8-byte header is there ("need more").
// DATA payloads are handed on as subarrays of the caller's chunks, never copied: a DATA frame whose payload spans
// several chunks arrives as several onData calls (first/last mark the frame boundaries; flags are repeated on each).
// Control payloads (RST, WNDINC, GOAWAY) are small and are assembled before their handler runs.
// A framing violation calls onProtocolError once and the decoder ignores all further input.
import {
  FRAME_HEADER_SIZE,
  FRAME_TYPE_COUNT,
  GOAWAY_MAX_PAYLOAD_SIZE,
  GOAWAY_MIN_PAYLOAD_SIZE,
  MAX_WINDOW,
  RST_PAYLOAD_SIZE,
  STREAM_ID_MASK,
  TYPE_DATA,
  TYPE_GOAWAY,
  TYPE_RST,
  TYPE_WNDINC,
  WNDINC_PAYLOAD_SIZE,
} from './frame.js';
import { MUX_FRAME_SIZE_ERROR, MUX_PROTOCOL_ERROR } from './error-codes.js';

/** Receives decoded frames. One object with methods (no closure per frame). */
export interface FrameHandler {
  /**
   * A piece of a DATA frame's payload. `first` is true for the first piece (the place to handle SYN and check the
   * window against `frameLength`), `last` for the final one (the place to handle FIN). A zero-length frame is one call
   * with an empty payload and first = last = true. `payload` is a view into the caller's chunk.
   */
  onData(streamId: number, flags: number, payload: Buffer, first: boolean, last: boolean, frameLength: number): void;
  onRst(streamId: number, code: number): void;
  onWndInc(streamId: number, increment: number): void;
  onGoAway(lastStreamId: number, code: number, debug: Buffer): void;
  /** The input broke framing rules; `code` is the muxado code to send in GOAWAY. Called at most once. */
  onProtocolError(code: number, message: string): void;
}

const EMPTY = Buffer.alloc(0);

// Decoder states.
const S_HEADER = 0;
const S_DATA = 1;
const S_CONTROL = 2;
const S_DEAD = 3;

export class FrameDecoder {
  private readonly handler: FrameHandler;
  private readonly maxFrameLength: number;
  private readonly headerBuf: Buffer;
  private headerFill: number;
  private state: number;
  private type: number;
  private flags: number;
  private streamId: number;
  private frameLength: number;
  private remaining: number;
  private firstPiece: boolean;
  private control: Buffer;
  private controlFill: number;

  /** @param maxFrameLength largest payload length accepted; a larger announced length is a FrameSizeError. */
  constructor(handler: FrameHandler, maxFrameLength: number) {
    this.handler = handler;
    this.maxFrameLength = maxFrameLength;
    this.headerBuf = Buffer.alloc(FRAME_HEADER_SIZE);
    this.headerFill = 0;
    this.state = S_HEADER;
    this.type = 0;
    this.flags = 0;
    this.streamId = 0;
    this.frameLength = 0;
    this.remaining = 0;
    this.firstPiece = false;
    this.control = EMPTY;
    this.controlFill = 0;
  }

  /** True once a protocol error was reported; further input is ignored. */
  get failed(): boolean {
    return this.state === S_DEAD;
  }

  /** Stop decoding: all further input is ignored (the session is closing or saw a fatal error). */
  stop(): void {
    this.state = S_DEAD;
  }

  /** Feed the next chunk of the byte stream. */
  push(chunk: Buffer): void {
    let off = 0;
    const end = chunk.length;
    while (off < end || (this.state === S_DATA && this.remaining === 0)) {
      const state = this.state;
      if (state === S_HEADER) {
        if (this.headerFill === 0 && end - off >= FRAME_HEADER_SIZE) {
          // Fast path: the whole header is in this chunk.
          this.startFrame(chunk, off);
          off += FRAME_HEADER_SIZE;
        } else {
          const n = Math.min(FRAME_HEADER_SIZE - this.headerFill, end - off);
          chunk.copy(this.headerBuf, this.headerFill, off, off + n);
          this.headerFill += n;
          off += n;
          if (this.headerFill < FRAME_HEADER_SIZE) return; // need more
          this.headerFill = 0;
          this.startFrame(this.headerBuf, 0);
        }
      } else if (state === S_DATA) {
        const n = Math.min(this.remaining, end - off);
        this.remaining -= n;
        const last = this.remaining === 0;
        const first = this.firstPiece;
        this.firstPiece = false;
        if (last) this.state = S_HEADER;
        const piece = n === 0 ? EMPTY : chunk.subarray(off, off + n);
        off += n;
        this.handler.onData(this.streamId, this.flags, piece, first, last, this.frameLength);
        if (!last) return; // need more
      } else if (state === S_CONTROL) {
        const rem = this.remaining;
        if (this.controlFill === 0 && end - off >= rem) {
          // Usual case (WNDINC, RST): the whole payload is in this chunk, read it in place.
          this.remaining = 0;
          this.state = S_HEADER;
          const p = chunk.subarray(off, off + rem);
          off += rem;
          this.finishControl(p);
          continue;
        }
        if (this.controlFill === 0) this.control = Buffer.allocUnsafe(this.frameLength);
        const n = Math.min(rem, end - off);
        chunk.copy(this.control, this.controlFill, off, off + n);
        this.controlFill += n;
        this.remaining -= n;
        off += n;
        if (this.remaining > 0) return; // need more
        this.state = S_HEADER;
        const p = this.control;
        this.control = EMPTY;
        this.finishControl(p);
      } else {
        return; // S_DEAD: ignore everything after a protocol error
      }
    }
  }

  private startFrame(buf: Buffer, at: number): void {
    const length = (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
    const tf = buf[at + 3]!;
    const type = tf >>> 4;
    this.type = type;
    this.flags = tf & 0x0f;
    this.streamId = buf.readUInt32BE(at + 4) & STREAM_ID_MASK; // reserved bit ignored (PROTOCOL.md §Frames)
    this.frameLength = length;
    this.remaining = length;
    if (type >= FRAME_TYPE_COUNT) {
      return this.fail(MUX_PROTOCOL_ERROR, `unknown frame type ${type} (stream ${this.streamId}, length ${length})`);
    }
    if (length > this.maxFrameLength) {
      return this.fail(
        MUX_FRAME_SIZE_ERROR,
        `frame length ${length} exceeds the accepted maximum of ${this.maxFrameLength} bytes`,
      );
    }
    if (type === TYPE_DATA) {
      this.state = S_DATA;
      this.firstPiece = true;
      return;
    }
    if (type === TYPE_RST || type === TYPE_WNDINC) {
      const want = type === TYPE_RST ? RST_PAYLOAD_SIZE : WNDINC_PAYLOAD_SIZE;
      if (length !== want) {
        return this.fail(MUX_FRAME_SIZE_ERROR, `${type === TYPE_RST ? 'RST' : 'WNDINC'} frame with length ${length}, want ${want}`);
      }
    } else if (type === TYPE_GOAWAY && (length < GOAWAY_MIN_PAYLOAD_SIZE || length > GOAWAY_MAX_PAYLOAD_SIZE)) {
      // Checked before the payload buffer is allocated: a bare header must not pin up to maxFrameLength bytes.
      return this.fail(
        MUX_FRAME_SIZE_ERROR,
        `GOAWAY frame with length ${length}, want ${GOAWAY_MIN_PAYLOAD_SIZE}..${GOAWAY_MAX_PAYLOAD_SIZE}`,
      );
    }
    this.controlFill = 0; // the payload buffer is allocated only if the payload spans chunks
    this.state = S_CONTROL;
  }

  private finishControl(p: Buffer): void {
    switch (this.type) {
      case TYPE_RST:
        this.handler.onRst(this.streamId, p.readUInt32BE(0));
        break;
      case TYPE_WNDINC:
        // Increment is 31 bits; the top bit is reserved and masked off on receipt, as the SDK does (PROTOCOL.md §1).
        this.handler.onWndInc(this.streamId, p.readUInt32BE(0) & MAX_WINDOW);
        break;
      default:
        this.handler.onGoAway(p.readUInt32BE(0) & STREAM_ID_MASK, p.readUInt32BE(4), p.subarray(8));
    }
  }

  private fail(code: number, message: string): void {
    this.state = S_DEAD;
    this.handler.onProtocolError(code, message);
  }
}
