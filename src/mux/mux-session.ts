// A muxado session over one byte-stream transport (TCP, TLS or in-memory): frame dispatch, stream table, accept
// backlog, GOAWAY, batching of outgoing frames (PROTOCOL.md). HOT PATH: onTransportData, onData, writeData.
//
// Roles: the agent is the "client" (opens odd stream ids), the relay the "server" (even ids).
// close() drains: GOAWAY, wait for open streams to finish, then end the transport. destroy(err) aborts at once.
// Both are idempotent. A protocol violation by the peer sends GOAWAY with the muxado code and destroys the session;
// nothing throws out of the frame loop.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { BurrowError } from '../core/errors.js';
import {
  MUX_ACCEPT_QUEUE_FULL,
  MUX_ENHANCE_YOUR_CALM,
  MUX_INTERNAL_ERROR,
  MUX_NO_ERROR,
  MUX_PROTOCOL_ERROR,
  MUX_STREAM_REFUSED,
  burrowCodeForMux,
  muxErrorName,
} from '../protocol/error-codes.js';
import {
  DEFAULT_MAX_WRITE_FRAME,
  DEFAULT_WINDOW_SIZE,
  FLAG_SYN,
  FRAME_HEADER_SIZE,
  MAX_FRAME_LENGTH,
  MAX_STREAM_ID,
  MAX_WINDOW,
  TYPE_DATA,
  TYPE_GOAWAY,
  TYPE_RST,
  TYPE_WNDINC,
  writeFrameHeader,
} from '../protocol/frame.js';
import { FrameDecoder, type FrameHandler } from '../protocol/frame-decoder.js';
import { MuxStream, type StreamOwner } from './mux-stream.js';
import { claimHeadroom } from './headroom-reads.js';
import { ReleaseQueue } from './read-buffers.js';

export type MuxRole = 'client' | 'server';

export interface MuxSessionOptions {
  /** 'client' (agent, odd stream ids) or 'server' (relay, even stream ids). */
  role: MuxRole;
  /**
   * Receive window per stream. Above the protocol's 256 KiB the extra is granted once the stream's consumer has
   * drained its first half window (a stream nobody reads holds at most 256 KiB), from extraWindowBudget.
   */
  windowSize?: number;
  /**
   * Receive window above the protocol's initial one, summed over the session's open streams (default: no limit).
   * Bounds what streams whose consumers read and then stall can make this side hold to
   * streams × 256 KiB + this budget; streams past it stay at 256 KiB until budget is returned.
   */
  extraWindowBudget?: number;
  /** Largest DATA payload written per frame (default 64 KiB). */
  maxWriteFrame?: number;
  /** Largest frame length accepted from the peer (default 1 MiB; the 24-bit field allows 16 MiB - 1). */
  maxFrameLength?: number;
  /** Concurrent streams; a SYN above this is refused with RST StreamRefused (default 4096). */
  maxStreams?: number;
  /**
   * Concurrent streams the peer opened; a SYN above this is refused with RST StreamRefused (default: maxStreams).
   * Raised or lowered later with setMaxRemoteStreams (the relay allows an agent more once it has authenticated).
   */
  maxRemoteStreams?: number;
  /** Incoming streams waiting for accept() when nobody listens to 'stream' (default 128). */
  acceptBacklog?: number;
  /**
   * Called before each chunk read from the transport is decoded (one per TLS record on a TLS transport). For
   * transport-level work per read (the relay re-arms TCP_QUICKACK) without a second 'data' listener per chunk.
   */
  onTransportChunk?: () => void;
}

export interface GoAwayInfo {
  lastStreamId: number;
  code: number;
  message: string;
}

const HEADER_SLAB_SIZE = 16 * 1024;

/**
 * Peer SYNs answered while the transport is over its high-water mark (the peer is not reading) before the session is
 * ended with GOAWAY EnhanceYourCalm. Each costs the peer 8 bytes and us an answer (an RST when refused, a WNDINC for
 * the extra window when accepted), and a peer may keep sending them without reading the answers: that queue must not
 * grow without bound. Only streams the peer opens count — our own SYNs, credit and resets are paced by our streams
 * — and an agent opens a handful (the relay allows it 2 × endpoints + 8 at once), so 8192 between two drains is a
 * flood. 8192 answers = at most 96 KiB queued.
 */
const REPLY_FLOOD_FRAMES = 8192;

/** Payloads up to this size are copied next to their header (one buffer) instead of a second writev entry. */
const SMALL_PAYLOAD = 256;
/**
 * A turn's batch goes to the transport early once this many bytes of small frames were written in it (write()). A relay turn that
 * reads 50 keep-alive requests used to send them in one write at its end, so the agent sat idle while the relay read
 * the rest; with the first ones out after ~2 KiB (8 or so requests) the two work at once. Relay keep-alive +2 % with
 * the SDK agent (A/B, three sittings; 1 KiB +1 %, 512 B −2 %, 4 KiB +2 %), bulk transfers unchanged
 * (bench/RESULTS.md, 2026-11-29 session 11).
 */
const EARLY_FLUSH_BYTES = 2048;
/** How long a closed session's transport may take to flush and close before it is destroyed. */
const TRANSPORT_LINGER_MS = 2000;

type AcceptWaiter = { resolve: (s: MuxStream) => void; reject: (e: Error) => void };

/**
 * Events: 'stream' (MuxStream) for each incoming stream when listened to (else they queue for accept());
 * 'goaway' (GoAwayInfo) when the peer sends GOAWAY; 'close' (err | undefined) once, when the session is finished.
 */
export class MuxSession extends EventEmitter implements FrameHandler, StreamOwner {
  readonly role: MuxRole;
  readonly maxWriteFrame: number;
  readonly windowSize: number;
  /** Extra receive window (above the initial one) still free to grant, see MuxSessionOptions.extraWindowBudget. */
  private extraWindowFree: number;
  readonly maxStreams: number;
  private maxRemote: number;
  /** Streams in the table that the peer opened. */
  private remoteOpen: number;
  readonly acceptBacklog: number;
  /** Transport bytes read, frames included (the relay's liveness check watches it). */
  bytesIn: number;
  /**
   * Transport write batches started so far (one per event-loop turn that wrote anything, see write()). With
   * `batchPending`, tells a caller whether frames went, or will go, to the transport after a given moment of this
   * turn: the relay skips its TCP_QUICKACK re-arm when they carry the ACK anyway.
   */
  writeBatches: number;
  /** The GOAWAY the peer sent, if any. */
  remoteGoAway: GoAwayInfo | null;
  /** Why the session ended (undefined while open or after a clean close). */
  closeError: Error | undefined;

  private readonly transport: Duplex;
  private readonly decoder: FrameDecoder;
  private readonly streams: Map<number, MuxStream>;
  private readonly backlog: MuxStream[];
  private readonly acceptWaiters: AcceptWaiter[];
  private drainWaiters: Array<(err?: Error | null) => void>;
  private nextId: number;
  private lastRemoteId: number;
  private goAwaySent: boolean;
  private closing: boolean;
  private closed: boolean;
  private blocked: boolean;
  /** Peer SYNs answered since the transport went over its high-water mark (see REPLY_FLOOD_FRAMES). */
  private synsWhileBlocked: number;
  private corked: boolean;
  /**
   * The last buffer of this turn, not yet handed to the transport: the next one is merged into it when it continues
   * it in memory (frames carved one after another from the header slab, reads of one bulk stream laid out by
   * headroom-reads.ts), so the transport sees one buffer instead of a writev (see write()).
   */
  private held: Buffer | null;
  /** Bytes of small frames in this turn's batch since it began or last went out early (EARLY_FLUSH_BYTES). */
  private batchBytes: number;
  /** The ArrayBuffer `held` is a view of, when it may be merged with (else null). */
  private heldAb: ArrayBufferLike | null;
  /**
   * The buffer to pass to releaseReadBuffer (read-buffers.ts) once the transport has written `held`, and how many
   * times (one per frame merged into it that ends a released chunk); null when none.
   */
  private heldRelease: ArrayBufferLike | null;
  private heldReleases: number;
  /** Release tokens of transport writes in flight. */
  private readonly releases: ReleaseQueue;
  private slab: Buffer;
  /**
   * slab.buffer, read once per slab: `.buffer` is a call into V8's C++ runtime on every access (perf showed it on
   * the keep-alive path), so write() compares these instead. Every frame() buffer is a view of it.
   */
  private slabAb: ArrayBufferLike;
  private slabOff: number;
  private closePromise: Promise<void> | null;
  private readonly onTransportData: (chunk: Buffer) => void;
  private readonly onTransportChunk: (() => void) | null;
  private readonly onTransportDrain: () => void;
  private readonly uncorkFn: () => void;

  constructor(transport: Duplex, options: MuxSessionOptions) {
    super();
    this.role = options.role;
    this.maxWriteFrame = clampInt(options.maxWriteFrame ?? DEFAULT_MAX_WRITE_FRAME, 1, MAX_FRAME_LENGTH, 'maxWriteFrame');
    this.windowSize = clampInt(options.windowSize ?? DEFAULT_WINDOW_SIZE, DEFAULT_WINDOW_SIZE, MAX_WINDOW, 'windowSize');
    this.extraWindowFree =
      options.extraWindowBudget === undefined
        ? Number.MAX_SAFE_INTEGER
        : clampInt(options.extraWindowBudget, 0, Number.MAX_SAFE_INTEGER, 'extraWindowBudget');
    this.maxStreams = clampInt(options.maxStreams ?? 4096, 1, MAX_STREAM_ID, 'maxStreams');
    this.maxRemote = clampInt(options.maxRemoteStreams ?? this.maxStreams, 0, MAX_STREAM_ID, 'maxRemoteStreams');
    this.remoteOpen = 0;
    this.acceptBacklog = clampInt(options.acceptBacklog ?? 128, 0, 1 << 20, 'acceptBacklog');
    const maxFrameLength = clampInt(options.maxFrameLength ?? 1024 * 1024, 8, MAX_FRAME_LENGTH, 'maxFrameLength');
    this.bytesIn = 0;
    this.writeBatches = 0;
    this.remoteGoAway = null;
    this.closeError = undefined;
    this.transport = transport;
    this.decoder = new FrameDecoder(this, maxFrameLength);
    this.streams = new Map();
    this.backlog = [];
    this.acceptWaiters = [];
    this.drainWaiters = [];
    // The ngrok SDKs' first client stream is 3 (id 1 is never used); the server starts at 2 (PROTOCOL.md §Streams).
    this.nextId = options.role === 'client' ? 3 : 2;
    this.lastRemoteId = 0;
    this.goAwaySent = false;
    this.closing = false;
    this.closed = false;
    this.blocked = false;
    this.synsWhileBlocked = 0;
    this.corked = false;
    this.held = null;
    this.batchBytes = 0;
    this.heldAb = null;
    this.heldRelease = null;
    this.heldReleases = 0;
    this.releases = new ReleaseQueue();
    this.slab = Buffer.allocUnsafeSlow(HEADER_SLAB_SIZE);
    this.slabAb = this.slab.buffer;
    this.slabOff = 0;
    this.closePromise = null;
    this.onTransportChunk = options.onTransportChunk ?? null;
    this.onTransportData = (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      if (this.onTransportChunk !== null) this.onTransportChunk();
      // The session boundary (STYLE.md §Errors): frame handlers run stream consumers synchronously ('data', 'stream');
      // a bug in one must end this session with GOAWAY InternalError, not the worker and every session on it.
      // One try per transport chunk, not per frame.
      try {
        this.decoder.push(chunk);
        if (this.synsWhileBlocked > REPLY_FLOOD_FRAMES) {
          this.protocolError(
            MUX_ENHANCE_YOUR_CALM,
            `control frame flood: ${this.synsWhileBlocked} SYNs while the answers to them (RST or WNDINC) go unread`,
          );
        }
      } catch (err) {
        const why = `internal error while handling the peer's frames: ${(err as Error).message}`;
        // The consumer that threw may not have attached its 'error' listener yet: ending its stream must not turn
        // into an uncaught 'error' as well.
        for (const s of this.streams.values()) if (s.listenerCount('error') === 0) s.on('error', ignoreError);
        this.protocolError(MUX_INTERNAL_ERROR, why, new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', `mux session ended: ${why}`));
      }
    };
    this.onTransportDrain = () => this.releaseDrainWaiters();
    this.uncorkFn = () => this.flush();
    // Frames are already batched per event-loop turn (see write()), so Nagle only adds delay; without it a single
    // stream moves ~1.4x faster on loopback (bench/RESULTS.md, 2026-11-28).
    const sock = transport as Duplex & { setNoDelay?: (on: boolean) => unknown };
    if (typeof sock.setNoDelay === 'function') sock.setNoDelay(true);
    transport.on('data', this.onTransportData);
    transport.on('drain', this.onTransportDrain);
    transport.on('end', () => this.onTransportEnd());
    transport.on('error', (err: Error) =>
      this.destroy(new BurrowError('BURROW_ERR_MUX_TRANSPORT', `mux transport failed: ${err.message}`, { cause: err })),
    );
    transport.on('close', () => {
      if (!this.closed) {
        this.destroy(
          this.closing && this.streams.size === 0
            ? undefined
            : new BurrowError('BURROW_ERR_MUX_TRANSPORT', 'mux transport closed while the session was open'),
        );
      }
    });
  }

  /** Number of open streams. */
  get streamCount(): number {
    return this.streams.size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** close() began: open streams are finishing, no new ones. */
  get isClosing(): boolean {
    return this.closing;
  }

  /** Frames of this turn are waiting for the batch's write (at setImmediate), and the transport took every earlier one. */
  get batchPending(): boolean {
    return this.corked && !this.blocked;
  }

  /** The transport is over its high-water mark: what is written now waits in its queue, not in the kernel. */
  get transportBlocked(): boolean {
    return this.blocked;
  }

  // ---- public API ----

  /** Open a stream. Its SYN rides on the first frame written to it (write or end). */
  openStream(): MuxStream {
    if (this.closed || this.closing) {
      throw new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'cannot open a stream: the mux session is closing or closed');
    }
    if (this.remoteGoAway !== null) {
      throw new BurrowError(
        'BURROW_ERR_MUX_GOAWAY',
        `cannot open a stream: the peer sent GOAWAY (${muxErrorName(this.remoteGoAway.code)}: ${this.remoteGoAway.message})`,
      );
    }
    const id = this.nextId;
    if (id > MAX_STREAM_ID) {
      throw new BurrowError('BURROW_ERR_MUX_STREAMS_EXHAUSTED', 'no stream ids left on this session; open a new one');
    }
    this.nextId = id + 2;
    const s = new MuxStream(this, id, true, DEFAULT_WINDOW_SIZE, this.windowSize);
    this.streams.set(id, s);
    return s;
  }

  /** Change the limit on concurrent peer-opened streams; streams already open are not affected. */
  setMaxRemoteStreams(n: number): void {
    this.maxRemote = clampInt(n, 0, MAX_STREAM_ID, 'maxRemoteStreams');
  }

  /** The next incoming stream (used when no 'stream' listener is attached). */
  accept(): Promise<MuxStream> {
    const s = this.backlog.shift();
    if (s !== undefined) return Promise.resolve(s);
    if (this.closed) return Promise.reject(this.sessionClosedError());
    return new Promise((resolve, reject) => this.acceptWaiters.push({ resolve, reject }));
  }

  /** Tell the peer no further streams will be accepted. Streams already open carry on. */
  goAway(code: number = MUX_NO_ERROR, message = ''): void {
    if (this.goAwaySent || this.closed) return;
    this.goAwaySent = true;
    const debug = Buffer.from(message.slice(0, 1024), 'utf8');
    const frame = this.frame(8 + debug.length, TYPE_GOAWAY, 0, 0);
    frame.writeUInt32BE(this.lastRemoteId, FRAME_HEADER_SIZE);
    frame.writeUInt32BE(code >>> 0, FRAME_HEADER_SIZE + 4);
    debug.copy(frame, FRAME_HEADER_SIZE + 8);
    this.writeFrame(frame);
  }

  /** End the session because the peer misbehaved at a layer above framing: GOAWAY with `code`, then destroy. */
  terminate(code: number, message: string): void {
    this.protocolError(code, message);
  }

  /** Graceful: GOAWAY, let open streams finish, then end the transport. Resolves when the session is closed. */
  close(): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    this.closePromise = new Promise((resolve) => {
      if (this.closed) return resolve();
      this.once('close', () => resolve());
      this.goAway(MUX_NO_ERROR, 'session closing');
      this.closing = true;
      this.emit('closing'); // streams that only the session's end would end (heartbeat) end themselves now
      this.rejectAcceptors(this.sessionClosedError());
      this.maybeFinishClose();
    });
    return this.closePromise;
  }

  /**
   * Abortive: fail every stream at once with `err` (or a session-closed error); the transport is ended (flushing a
   * GOAWAY already written) and destroyed if it has not closed within TRANSPORT_LINGER_MS.
   */
  destroy(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err;
    this.decoder.stop();
    const streamErr = err ?? this.sessionClosedError();
    for (const s of this.streams.values()) s.onSessionEnd(streamErr);
    this.streams.clear();
    for (const s of this.backlog) s.onSessionEnd(streamErr);
    this.backlog.length = 0;
    this.rejectAcceptors(streamErr);
    this.releaseDrainWaiters();
    const t = this.transport;
    t.off('data', this.onTransportData);
    this.flush();
    // End rather than destroy so a GOAWAY written just before still reaches the peer; a peer that does not take
    // it within TRANSPORT_LINGER_MS is cut off.
    if (!t.destroyed) {
      t.end();
      const timer = setTimeout(() => t.destroy(), TRANSPORT_LINGER_MS);
      timer.unref();
      t.once('close', () => clearTimeout(timer));
      t.resume(); // keep reading (and discarding) so the peer's FIN is seen and the transport can close
    }
    this.emit('close', err);
  }

  // ---- frame handler (called by FrameDecoder) ----

  onData(streamId: number, flags: number, payload: Buffer, first: boolean, last: boolean, frameLength: number): void {
    let s = this.streams.get(streamId);
    if (first) {
      if ((flags & FLAG_SYN) !== 0) {
        // Ids are taken at open but SYN rides on the first write, so SYNs may arrive out of id order
        // (PROTOCOL.md §Streams): only a live id or the wrong parity is an error.
        if (s !== undefined || streamId === 0 || !this.isRemoteId(streamId)) {
          return this.protocolError(
            MUX_PROTOCOL_ERROR,
            s !== undefined
              ? `SYN for stream ${streamId}, which is already open (stream id reuse)`
              : streamId === 0
              ? 'SYN for stream 0, which is reserved for the session'
              : `SYN for stream ${streamId}: wrong id parity for a ${this.role === 'client' ? 'server' : 'client'} (must be ${this.role === 'client' ? 'even' : 'odd'})`,
          );
        }
        if (streamId > this.lastRemoteId) this.lastRemoteId = streamId;
        // Every SYN costs us an answer (an RST, or a WNDINC for the extra window): count them while the peer is not
        // reading what we write (REPLY_FLOOD_FRAMES).
        if (this.blocked) this.synsWhileBlocked++;
        const refusal = this.refuseReason();
        if (refusal !== 0) {
          this.writeRst(streamId, refusal);
          return;
        }
        s = new MuxStream(this, streamId, false, DEFAULT_WINDOW_SIZE, this.windowSize);
        this.streams.set(streamId, s);
        this.remoteOpen++;
        s.onDataPiece(flags, payload, first, last, frameLength);
        this.deliver(s);
        return;
      }
      if (s === undefined) {
        // Late frames for a stream we already closed are normal; frames for an id never opened are not.
        if (streamId === 0 || (this.isRemoteId(streamId) ? streamId > this.lastRemoteId : streamId >= this.nextId)) {
          return this.protocolError(MUX_PROTOCOL_ERROR, `DATA for stream ${streamId}, which was never opened`);
        }
        return;
      }
    }
    if (s !== undefined) s.onDataPiece(flags, payload, first, last, frameLength);
  }

  onRst(streamId: number, code: number): void {
    const s = this.streams.get(streamId);
    if (s !== undefined) s.onRst(code);
  }

  onWndInc(streamId: number, increment: number): void {
    const s = this.streams.get(streamId);
    if (s !== undefined) s.onWndInc(increment);
  }

  onGoAway(lastStreamId: number, code: number, debug: Buffer): void {
    // The decoder already refused a GOAWAY longer than GOAWAY_MAX_PAYLOAD_SIZE, so `debug` is bounded here.
    const info: GoAwayInfo = { lastStreamId, code, message: debug.toString('utf8') };
    this.remoteGoAway = info;
    // An error GOAWAY means the peer is dying; the ngrok SDK also writes its error GOAWAY with a length that does not
    // cover the payload, so nothing after it can be parsed reliably (PROTOCOL.md §Interop traps).
    if (code !== MUX_NO_ERROR) this.decoder.stop();
    // Our streams above lastStreamId were never seen by the peer: fail them so callers can retry elsewhere.
    for (const s of this.streams.values()) {
      if (s.local && s.id > lastStreamId) {
        s.onSessionEnd(
          new BurrowError('BURROW_ERR_MUX_GOAWAY', `stream ${s.id} not processed: peer sent GOAWAY (${muxErrorName(code)})`),
        );
        this.streams.delete(s.id);
      }
    }
    // Those streams leave the table without streamDone() (onSessionEnd detaches them), so a close() waiting for the
    // last of them is finished here.
    if (this.closing) this.maybeFinishClose();
    this.emit('goaway', info);
    // After an error GOAWAY nothing more is read (above), so no WNDINC, FIN or RST can reach the open streams: they
    // would stall until some deadline, holding their public connections and routes. The peer is gone; so is this
    // session. (A NO_ERROR GOAWAY is a drain: open streams finish, the peer closes the transport.)
    if (code !== MUX_NO_ERROR) {
      this.destroy(new BurrowError('BURROW_ERR_MUX_GOAWAY', `the peer sent GOAWAY (${muxErrorName(code)}${info.message === '' ? '' : `: ${info.message}`}); the session is over`));
    }
  }

  onProtocolError(code: number, message: string): void {
    this.protocolError(code, message);
  }

  // ---- stream owner (called by MuxStream) ----

  writeData(streamId: number, flags: number, payload: Buffer, release: ArrayBufferLike | null): void {
    if (this.closed) return;
    const n = payload.length;
    if (n <= SMALL_PAYLOAD) {
      const f = this.frame(n, TYPE_DATA, flags, streamId);
      if (n > 0) payload.copy(f, FRAME_HEADER_SIZE);
      // Copied, but the token still waits for this write: it may be the tail of a chunk whose earlier pieces went out
      // as views of its buffer and are not written yet (a window stall split it).
      this.write(f, this.slabAb, release);
      return;
    }
    if (claimHeadroom(payload)) {
      // The header goes into the free bytes in front of the payload (headroom-reads.ts): one buffer for the frame.
      // (One `.buffer` read per frame of up to 64 KiB; the per-frame cost that matters is on small frames.)
      const ab = payload.buffer;
      const f = Buffer.from(ab, payload.byteOffset - FRAME_HEADER_SIZE, n + FRAME_HEADER_SIZE);
      writeFrameHeader(f, 0, n, TYPE_DATA, flags, streamId);
      this.write(f, ab, release);
      return;
    }
    this.writeFrame(this.frame(-n, TYPE_DATA, flags, streamId));
    this.write(payload, null, release);
  }

  writeWndInc(streamId: number, increment: number): void {
    if (this.closed) return;
    const f = this.frame(4, TYPE_WNDINC, 0, streamId);
    f.writeUInt32BE(increment >>> 0, FRAME_HEADER_SIZE);
    this.writeFrame(f);
  }

  writeRst(streamId: number, code: number): void {
    if (this.closed) return;
    const f = this.frame(4, TYPE_RST, 0, streamId);
    f.writeUInt32BE(code >>> 0, FRAME_HEADER_SIZE);
    this.writeFrame(f);
  }

  afterWrite(cb: (err?: Error | null) => void): void {
    if (this.blocked && !this.closed) this.drainWaiters.push(cb);
    else cb();
  }

  takeExtraWindow(want: number): number {
    const got = want < this.extraWindowFree ? want : this.extraWindowFree;
    this.extraWindowFree -= got;
    return got;
  }

  returnExtraWindow(n: number): void {
    this.extraWindowFree += n;
  }

  /** Extra receive window still free to grant (tests, diagnostics). */
  get extraWindowAvailable(): number {
    return this.extraWindowFree;
  }

  streamDone(stream: MuxStream): void {
    if (this.streams.get(stream.id) === stream) {
      this.streams.delete(stream.id);
      if (!stream.local) this.remoteOpen--;
    }
    if (this.backlog.length > 0) {
      // Reset before anyone accepted it: do not hand out a dead stream, and free its backlog slot.
      const i = this.backlog.indexOf(stream);
      if (i >= 0) this.backlog.splice(i, 1);
    }
    if (this.closing) this.maybeFinishClose();
  }

  // ---- internals ----

  /**
   * A frame buffer carved from the header slab: the header and, for length >= 0, room for `length` payload bytes
   * right after it. length < 0 means "header only, announcing -length payload bytes written separately". Always a
   * view of `slabAb` (the largest frame, a GOAWAY with its debug text, is ~3 KiB; a larger one gets a slab of its
   * size), so write() may merge it with the frame carved before it.
   */
  private frame(length: number, type: number, flags: number, streamId: number): Buffer {
    const payloadLen = length < 0 ? -length : length;
    const size = FRAME_HEADER_SIZE + (length < 0 ? 0 : length);
    if (this.slabOff + size > this.slab.length) {
      // The old slab stays alive only as long as the transport still holds writes that point into it.
      this.slab = Buffer.allocUnsafeSlow(size > HEADER_SLAB_SIZE ? size : HEADER_SLAB_SIZE);
      this.slabAb = this.slab.buffer;
      this.slabOff = 0;
    }
    const f = this.slab.subarray(this.slabOff, this.slabOff + size);
    this.slabOff += size;
    writeFrameHeader(f, 0, payloadLen, type, flags, streamId);
    return f;
  }

  /**
   * Write to the transport, batching every frame produced in this event-loop turn into one write: the flush runs in
   * setImmediate, after all I/O callbacks of the turn, so frames of many streams fed by separate sockets (the
   * relay's case) and their WNDINCs share one syscall. The cost is at most the rest of the current turn.
   *
   * `ab` is the ArrayBuffer `buf` views when it may be merged (a header-slab frame, a headroom frame), else null.
   * Buffers that continue each other in memory are merged before they reach the transport. node:tls copies a writev
   * of several buffers into one before encrypting (TLSWrap::DoWrite), and a TLS write completes only a turn later,
   * so whatever a turn writes is one writev; merged frames make it one buffer that OpenSSL reads in place. Only the
   * last buffer is held back, so the transport's backpressure still shows at once for all but that one; it grows
   * only while buffers stay contiguous, which bounds it by a slab (16 KiB of headers, or 256 KiB of headroom reads).
   */
  private write(buf: Buffer, ab: ArrayBufferLike | null, release: ArrayBufferLike | null): void {
    const t = this.transport;
    if (!this.corked) {
      this.corked = true;
      this.writeBatches++;
      t.cork();
      setImmediate(this.uncorkFn);
    }
    const h = this.held;
    if (
      h !== null &&
      ab !== null &&
      ab === this.heldAb &&
      h.byteOffset + h.length === buf.byteOffset &&
      (release === null || this.heldRelease === null || release === this.heldRelease)
    ) {
      this.held = Buffer.from(ab, h.byteOffset, h.length + buf.length);
      if (release !== null) {
        this.heldRelease = release;
        this.heldReleases++;
      }
    } else {
      if (h !== null) {
        this.held = null; // before write(): nothing re-entered from it may write h a second time
        this.writeHeld(h);
      }
      this.held = buf;
      this.heldAb = ab;
      this.heldRelease = release;
      this.heldReleases = release === null ? 0 : 1;
    }
    // Small frames only (requests, answers, WNDINCs): bulk data gains nothing from a head start and would pay a
    // syscall per frame instead of one per turn.
    if (buf.length < EARLY_FLUSH_BYTES && (this.batchBytes += buf.length) >= EARLY_FLUSH_BYTES && !this.blocked) this.sendEarly();
  }

  /** Enough of this turn's batch for the peer to start on: out now; the rest of the turn stays corked behind it. */
  private sendEarly(): void {
    this.batchBytes = 0;
    const h = this.held!;
    this.held = null;
    this.writeHeld(h);
    const t = this.transport;
    t.uncork();
    t.cork();
  }

  /** write() for a frame() buffer: a view of the header slab, so it may merge with the frame carved before it. */
  private writeFrame(f: Buffer): void {
    this.write(f, this.slabAb, null);
  }

  /** Hand `h` (the held buffer, already unset) to the transport, with its release token if it has one. */
  private writeHeld(h: Buffer): void {
    const r = this.heldRelease;
    let ok: boolean;
    if (r === null) {
      ok = this.transport.write(h);
    } else {
      this.heldRelease = null;
      this.releases.push(r, this.heldReleases);
      ok = this.transport.write(h, this.releases.onDone);
    }
    if (!ok) this.blocked = true;
  }

  /** Hand the held buffer to the transport and end this turn's batch (setImmediate, or at once on destroy). */
  private flush(): void {
    if (!this.corked) return; // destroy() already flushed
    this.corked = false;
    this.batchBytes = 0;
    const t = this.transport;
    const h = this.held;
    if (h !== null) {
      this.held = null;
      this.writeHeld(h);
    }
    t.uncork();
  }

  private releaseDrainWaiters(): void {
    this.blocked = false;
    this.synsWhileBlocked = 0;
    if (this.drainWaiters.length === 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (let i = 0; i < waiters.length; i++) waiters[i]!();
  }

  private deliver(s: MuxStream): void {
    const w = this.acceptWaiters.shift();
    if (w !== undefined) {
      // The consumer gets the stream a promise tick later; an RST or session end in the same read must not surface
      // as an unhandled 'error' (which would crash the process). Errors stay visible via listeners and s.errored.
      s.on('error', ignoreError);
      w.resolve(s);
    } else if (this.listenerCount('stream') > 0) {
      this.emit('stream', s); // synchronous: the listener attaches its own 'error' handler
    } else {
      s.on('error', ignoreError); // as above: nobody owns a queued stream yet
      this.backlog.push(s);
    }
  }

  /** 0 when a new incoming stream may be accepted, else the RST code to refuse it with. */
  private refuseReason(): number {
    if (this.goAwaySent || this.closing) return MUX_STREAM_REFUSED;
    if (this.streams.size >= this.maxStreams || this.remoteOpen >= this.maxRemote) return MUX_STREAM_REFUSED;
    if (this.acceptWaiters.length === 0 && this.listenerCount('stream') === 0 && this.backlog.length >= this.acceptBacklog) {
      return MUX_ACCEPT_QUEUE_FULL;
    }
    return 0;
  }

  private isRemoteId(id: number): boolean {
    // Client (agent) ids are odd, server (relay) ids even.
    return this.role === 'client' ? (id & 1) === 0 : (id & 1) === 1;
  }

  /** GOAWAY with `code` and end the session; `err` defaults to "the peer broke protocol". */
  private protocolError(code: number, message: string, err?: BurrowError): void {
    if (this.closed) return;
    this.decoder.stop();
    this.goAwaySent = false; // a protocol error GOAWAY replaces any graceful one
    this.goAway(code, message);
    this.destroy(err ?? new BurrowError(burrowCodeForMux(code), `mux session ended, peer broke protocol: ${message}`));
  }

  private onTransportEnd(): void {
    if (this.closed) return;
    // A clean end: ours, or the peer's after its graceful GOAWAY, with no stream cut. (Not an error to count.)
    const peerClosing = this.remoteGoAway !== null && this.remoteGoAway.code === MUX_NO_ERROR;
    if ((this.closing || peerClosing) && this.streams.size === 0) {
      this.destroy();
      return;
    }
    this.destroy(new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'peer closed the mux transport (EOF)'));
  }

  private maybeFinishClose(): void {
    if (this.closing && !this.closed && this.streams.size === 0 && this.backlog.length === 0) this.destroy();
  }

  private rejectAcceptors(err: Error): void {
    const ws = this.acceptWaiters.splice(0);
    for (const w of ws) w.reject(err);
  }

  private sessionClosedError(): BurrowError {
    return new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'the mux session is closed');
  }
}

/** 'error' listener for streams not yet handed to a consumer (see deliver). */
function ignoreError(): void {}

function clampInt(v: number, min: number, max: number, name: string): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`MuxSession option ${name} must be an integer in ${min}..${max}, got ${v}`);
  }
  return v;
}

