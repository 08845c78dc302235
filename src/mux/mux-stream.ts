// One muxado stream as a node Duplex: send window, lazy SYN, FIN half-close, RST, and receive-window credit
// returned only as the consumer drains (PROTOCOL.md §Streams, §Flow control). HOT PATH: _write and receive.
import { Duplex, Readable } from 'node:stream';
import { BurrowError } from '../core/errors.js';
import {
  MUX_FLOW_CONTROL_ERROR,
  MUX_STREAM_CANCELLED,
  MUX_STREAM_CLOSED,
  burrowCodeForMux,
  muxErrorName,
} from '../protocol/error-codes.js';
import { FLAG_FIN, FLAG_SYN, MAX_WINDOW } from '../protocol/frame.js';
import { deliversNow, emitNow } from './direct-reads.js';
import { pinReadBuffer, retainReadBuffer } from './read-buffers.js';

const EMPTY = Buffer.alloc(0);

/**
 * Queued DATA pieces below this size are copied into the stream's gather buffer instead of being queued as views.
 * A queued view costs a Buffer object and a queue entry (~150 bytes of heap) and keeps its whole read buffer alive,
 * while the window counts only its payload: a peer sending 1-byte frames to a paused stream would otherwise make it
 * hold ~100 times its window. Copied, a queued byte costs a byte; a larger piece pins at most 4 × its length (16 KiB
 * record buffers, direct-reads.ts).
 */
const GATHER_BELOW = 4 * 1024;
const GATHER_SIZE = 16 * 1024;

/** What a stream needs from its session (implemented by MuxSession; kept narrow so layers stay testable). */
export interface StreamOwner {
  readonly maxWriteFrame: number;
  /**
   * Write one DATA frame. `release`: pass it to releaseReadBuffer (read-buffers.ts) once the transport has written the
   * frame (null: nothing to release).
   */
  writeData(streamId: number, flags: number, payload: Buffer, release: ArrayBufferLike | null): void;
  writeWndInc(streamId: number, increment: number): void;
  writeRst(streamId: number, code: number): void;
  /** Call `cb` now, or once the transport drains if it is over its high-water mark. */
  afterWrite(cb: (err?: Error | null) => void): void;
  /** The stream no longer needs frames routed to it. */
  streamDone(stream: MuxStream): void;
  /**
   * Receive window above the protocol's initial one, from the session's budget: up to `want` bytes, 0 when the
   * budget is spent. What a stream took goes back with returnExtraWindow when it is destroyed (read to the end, reset).
   */
  takeExtraWindow(want: number): number;
  returnExtraWindow(n: number): void;
}

export class MuxStream extends Duplex {
  readonly id: number;
  /** True when this side opened the stream. */
  readonly local: boolean;
  private readonly owner: StreamOwner;
  // Send side.
  private sendWindow: number;
  private synPending: boolean;
  private pendingChunk: Buffer | null;
  private pendingOffset: number;
  private pendingCb: ((err?: Error | null) => void) | null;
  private localFin: boolean;
  // Receive side.
  private recvAvailable: number; // bytes the peer may still send before our next WNDINC
  private readonly creditThreshold: number;
  private received: number; // payload bytes received in total
  private credited: number; // consumed bytes already returned to the peer as window credit
  private remoteFin: boolean;
  /** Where small queued pieces are copied (see GATHER_BELOW); null when none is being filled. */
  private gather: Buffer | null;
  /** End of the bytes written into `gather`. */
  private gatherOff: number;
  /** Bytes at the end of `gather` not yet pushed: received, not in the Readable queue, not consumed. */
  private gathered: number;
  /** Pieces are retained for a consumer that releases them (see releasesReads); else they pin their read buffer. */
  private releasing: boolean;
  /** Chunks written to this stream are released once sent (see releasesWrites). */
  private releasingWrites: boolean;
  // Lifecycle.
  private detached: boolean; // removed from the session's stream table
  private resetByPeer: boolean;
  /** Receive window above the initial one not granted yet (waits for the consumer to drain, and for budget). */
  private extraWindow: number;
  /** Extra window taken from the session's budget; returned when the stream is destroyed (its buffer is gone). */
  private extraHeld: number;

  /**
   * @param initialWindow the protocol's initial window, assumed by both sides (PROTOCOL.md §Flow control)
   * @param recvWindow our receive window; the difference above initialWindow is granted once the consumer has
   *   drained a first credit's worth, as far as the session's budget allows (see maybeCredit)
   */
  constructor(owner: StreamOwner, id: number, local: boolean, initialWindow: number, recvWindow: number) {
    super({ allowHalfOpen: true, decodeStrings: true, emitClose: true, autoDestroy: true });
    this.id = id;
    this.local = local;
    this.owner = owner;
    this.sendWindow = initialWindow;
    this.synPending = local;
    this.pendingChunk = null;
    this.pendingOffset = 0;
    this.pendingCb = null;
    this.localFin = false;
    this.recvAvailable = initialWindow;
    // Half of the smaller of the two windows: the SDK caps the peer's credit at the protocol's initial window
    // (PROTOCOL.md §Flow control), so waiting for half of a larger window would wait for bytes it never sends
    // (seen as a stalled tcp/tls download once the relay's window went above 256 KiB).
    this.creditThreshold = (recvWindow < initialWindow ? recvWindow : initialWindow) >>> 1;
    this.received = 0;
    this.credited = 0;
    this.remoteFin = false;
    this.gather = null;
    this.gatherOff = 0;
    this.gathered = 0;
    this.releasing = false;
    this.releasingWrites = false;
    this.detached = false;
    this.resetByPeer = false;
    // A window above the protocol's initial one is granted with the first WNDINC (maybeCredit), not at open: a
    // stream whose consumer never reads (a stalled upstream, a client that does not read) then holds at most the
    // initial window, and the session's budget goes to streams that move data.
    this.extraWindow = recvWindow > initialWindow ? recvWindow - initialWindow : 0;
    this.extraHeld = 0;
  }

  /**
   * The consumer's promise (read-buffers.ts): every chunk this stream emits from now on is passed to
   * releaseReadBuffer(chunk.buffer) once, when the consumer is done with it (BatchedPipe with `releaseReads`). Lets the
   * transport's read buffers be reused. Chunks queued before this call pin their buffers as before.
   */
  releasesReads(): void {
    this.releasing = true;
  }

  /**
   * The writer's promise (read-buffers.ts): it keeps no reference to the chunks it writes to this stream from now on,
   * so each chunk's buffer is passed to releaseReadBuffer(chunk.buffer) once the transport has written its last byte
   * (a socket piped in with headroom reads: its slabs are reused). A chunk never sent (stream destroyed) is left to
   * the GC.
   */
  releasesWrites(): void {
    this.releasingWrites = true;
  }

  /** Bytes of send window left (the peer's receive window for this stream). */
  get sendWindowAvailable(): number {
    return this.sendWindow;
  }

  /**
   * Abort the stream with a muxado error code sent in RST (e.g. MUX_STREAM_REFUSED). Locally the stream is destroyed
   * without an 'error' event: the caller chose this, as with http2's stream.close(code).
   */
  reset(code: number = MUX_STREAM_CANCELLED): void {
    if (this.destroyed) return;
    this.sendReset(code);
    this.destroy();
  }

  // ---- send side ----

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.detached) {
      cb(new BurrowError('BURROW_ERR_MUX_STREAM_CLOSED', `stream ${this.id} is closed; write refused`));
      return;
    }
    this.pendingChunk = chunk;
    this.pendingOffset = 0;
    this.pendingCb = cb;
    this.flush();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.detached) {
      const flags = this.synPending ? FLAG_FIN | FLAG_SYN : FLAG_FIN;
      this.synPending = false;
      this.owner.writeData(this.id, flags, EMPTY, null);
    }
    this.localFin = true;
    this.maybeDone();
    cb();
  }

  /** Send as much of the pending chunk as the window allows; complete the write when all of it is out. */
  private flush(): void {
    const chunk = this.pendingChunk;
    if (chunk === null) return;
    const len = chunk.length;
    const max = this.owner.maxWriteFrame;
    let off = this.pendingOffset;
    while (off < len) {
      const win = this.sendWindow;
      if (win <= 0) {
        this.pendingOffset = off; // stall until WNDINC (onWndInc calls flush)
        return;
      }
      let n = len - off;
      if (n > win) n = win;
      if (n > max) n = max;
      const flags = this.synPending ? FLAG_SYN : 0;
      this.synPending = false;
      const end = off + n;
      // The chunk is done with once its last piece is written: pieces of one stream reach the transport in order.
      const release = end === len && this.releasingWrites ? chunk.buffer : null;
      this.owner.writeData(this.id, flags, off === 0 && end === len ? chunk : chunk.subarray(off, end), release);
      this.sendWindow = win - n;
      off += n;
    }
    const cb = this.pendingCb!;
    this.pendingChunk = null;
    this.pendingCb = null;
    this.owner.afterWrite(cb);
  }

  private grant(n: number): void {
    this.recvAvailable += n;
    this.owner.writeWndInc(this.id, n);
  }

  // ---- receive side (called by the session's frame handler) ----

  /** A piece of a DATA frame for this stream; a window overrun or data after FIN resets the stream instead. */
  onDataPiece(flags: number, piece: Buffer, first: boolean, last: boolean, frameLength: number): void {
    if (first) {
      if (this.remoteFin) {
        this.resetWith(MUX_STREAM_CLOSED, `stream ${this.id}: peer sent DATA after its FIN`);
        return;
      }
      if (frameLength > this.recvAvailable) {
        this.resetWith(
          MUX_FLOW_CONTROL_ERROR,
          `stream ${this.id}: peer sent a ${frameLength}-byte frame with only ${this.recvAvailable} bytes of window left`,
        );
        return;
      }
      this.recvAvailable -= frameLength;
    }
    const n = piece.length;
    if (n > 0) {
      this.received += n;
      if (deliversNow(this)) {
        // A flowing consumer with nothing queued or gathered (readableLength counts both) gets the piece at once,
        // without push()'s bookkeeping and nextTick (maybeReadMore → _read → maybeCredit, which runs below anyway):
        // direct-reads.ts deliver().
        if (this.releasing) retainReadBuffer(piece);
        else pinReadBuffer(piece);
        emitNow(this, piece);
      } else {
        this.queuePiece(piece);
      }
    }
    if (last && (flags & FLAG_FIN) !== 0) {
      this.remoteFin = true;
      if (this.gathered > 0) this.pushGathered();
      this.push(null);
      this.maybeDone();
    } else if (n > 0) {
      this.maybeCredit();
    }
  }

  onWndInc(increment: number): void {
    const next = this.sendWindow + increment;
    if (next > MAX_WINDOW) {
      this.resetWith(MUX_FLOW_CONTROL_ERROR, `stream ${this.id}: WNDINC of ${increment} overflows the window`);
      return;
    }
    this.sendWindow = next;
    if (this.pendingChunk !== null) this.flush();
  }

  onRst(code: number): void {
    this.resetByPeer = true;
    this.detach();
    this.destroy(
      new BurrowError(burrowCodeForMux(code), `stream ${this.id} reset by peer (${muxErrorName(code)})`),
    );
  }

  /** The session is gone: fail the stream without sending anything. */
  onSessionEnd(err: Error): void {
    this.detached = true; // the session clears its table itself
    if (!this.destroyed) this.destroy(err);
  }

  /**
   * A piece the consumer cannot take now (paused, behind, 'readable' mode, a decoder): queued after what is already
   * queued. A small one behind others is copied into the gather buffer (GATHER_BELOW), pushed as one chunk when it is
   * full, before a larger piece or the FIN, or when the consumer has read everything queued (read(), _read()).
   */
  private queuePiece(piece: Buffer): void {
    const n = piece.length;
    if (n < GATHER_BELOW && this.readableLength > 0) {
      let g = this.gather;
      if (g === null || this.gatherOff + n > g.length) {
        if (this.gathered > 0) this.pushGathered();
        g = this.gather = Buffer.allocUnsafeSlow(GATHER_SIZE);
        this.gatherOff = 0;
      }
      piece.copy(g, this.gatherOff);
      this.gatherOff += n;
      this.gathered += n;
      return; // copied: the read buffer is neither retained nor pinned
    }
    if (this.gathered > 0) this.pushGathered();
    if (this.releasing) retainReadBuffer(piece);
    else pinReadBuffer(piece);
    this.push(piece);
  }

  /**
   * Queue the gathered bytes as one chunk. Later pieces fill the rest of the gather buffer after them, unless it is
   * nearly full or `drop` (the consumer has caught up: a stream that may now sit idle keeps no partly filled buffer).
   */
  private pushGathered(drop = false): void {
    const end = this.gatherOff;
    const chunk = this.gather!.subarray(end - this.gathered, end);
    this.gathered = 0;
    if (drop || end + GATHER_BELOW > GATHER_SIZE) this.gather = null;
    this.push(chunk);
  }

  override _read(): void {
    if (this.gathered > 0) this.pushGathered(true); // Node wants more: the consumer has caught up
    this.maybeCredit();
  }

  /**
   * Node calls _read() once and then not again until the next push(), so a consumer that drains the buffer with read()
   * ('readable' mode, async iteration) would never return the credit for what it took after that first call: with
   * the peer out of window nothing is pushed, and both sides wait. Every read() re-checks the credit instead.
   */
  override read(size?: number): Buffer | null {
    const chunk = super.read(size) as Buffer | null;
    if (this.gathered > 0 && (chunk === null || this.readableLength === this.gathered)) {
      // Everything queued was taken (or not enough for `size`): the gathered bytes are next. _read() may not run
      // (Node calls it once until the next push), so they are queued here; a waiting consumer gets 'readable'.
      this.pushGathered(true);
    }
    if (chunk !== null) this.maybeCredit();
    return chunk;
  }

  /**
   * Return window credit for what the consumer has taken out of our buffer, in batches of half the initial window.
   * The first batches also carry the extra window, as much as the session's budget has (a stream that finds it
   * spent asks again at its next batch, so budget freed by ended streams reaches streams still open).
   */
  private maybeCredit(): void {
    if (this.remoteFin || this.detached) return;
    const consumed = this.received - this.readableLength; // gathered bytes included (see below the class)
    const pending = consumed - this.credited;
    if (pending >= this.creditThreshold) {
      this.credited = consumed;
      let n = pending;
      if (this.extraWindow > 0) {
        const got = this.owner.takeExtraWindow(this.extraWindow);
        this.extraWindow -= got;
        this.extraHeld += got;
        n += got;
      }
      this.grant(n);
    }
  }

  private resetWith(code: number, message: string): void {
    this.sendReset(code);
    this.destroy(new BurrowError(burrowCodeForMux(code), message));
  }

  /**
   * Abort towards the peer. The ngrok SDK treats RST as closing only its write side and would keep waiting to read,
   * so an empty FIN goes first when we have not sent one (PROTOCOL.md §Interop traps).
   */
  private sendReset(code: number): void {
    if (this.detached) return;
    if (!this.localFin && !this.synPending) {
      this.localFin = true;
      this.owner.writeData(this.id, FLAG_FIN, EMPTY, null);
    }
    // A stream whose SYN never went out is unknown to the peer: nothing to tell it.
    if (!this.synPending) this.owner.writeRst(this.id, code);
    this.detach();
  }

  private maybeDone(): void {
    if (this.localFin && this.remoteFin) this.detach();
  }

  private detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.owner.streamDone(this);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.detached) {
      // Abandoned before both FINs: tell the peer so it stops sending and frees its side.
      if (this.resetByPeer) this.detach();
      else this.sendReset(MUX_STREAM_CANCELLED);
    }
    // The extra window goes back only now, not when both FINs are out (detach): until the consumer has read to the end
    // or dropped the stream, its buffer may still hold what that window let in (review finding: four streams with
    // both FINs and unread data held 2.8 MB against a 1.8 MB bound).
    if (this.extraHeld > 0) {
      this.owner.returnExtraWindow(this.extraHeld);
      this.extraHeld = 0;
    }
    const pcb = this.pendingCb;
    if (pcb !== null) {
      this.pendingCb = null;
      this.pendingChunk = null;
      pcb(err ?? new BurrowError('BURROW_ERR_MUX_STREAM_CLOSED', `stream ${this.id} destroyed during a write`));
    }
    cb(err);
  }
}

// readableLength counts the gathered bytes too: they were received and are the consumer's to read, only not yet in
// Node's queue. Callers that size or pace their reads by it (and maybeCredit, and deliversNow) see every byte. An
// accessor on the prototype because @types/node declares readableLength as a plain property.
const readableLength = Object.getOwnPropertyDescriptor(Readable.prototype, 'readableLength')!.get!;
Object.defineProperty(MuxStream.prototype, 'readableLength', {
  configurable: true,
  enumerable: false,
  get(this: MuxStream): number {
    return (readableLength.call(this) as number) + (this as unknown as { gathered: number }).gathered;
  },
});
