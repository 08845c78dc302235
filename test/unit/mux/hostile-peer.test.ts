// A real MuxSession (role 'server' unless stated) driven by a raw peer that writes hand-built frames and decodes what
// the session answers: DESIGN.md §6 "Mux" line, one named test per case, each checking the exact answer frame and
// code, whether the session lives on or is closed, and that nothing is left behind (streamCount, memory).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MuxSession, type MuxSessionOptions } from '../../../src/mux/mux-session.js';
import type { MuxStream } from '../../../src/mux/mux-stream.js';
import { readJsonMessage } from '../../../src/mux/rpc.js';
import { readStreamType } from '../../../src/mux/typed-stream.js';
import { serveHeartbeat } from '../../../src/mux/heartbeat.js';
import { FrameDecoder, type FrameHandler } from '../../../src/protocol/frame-decoder.js';
import {
  DEFAULT_WINDOW_SIZE,
  FLAG_FIN,
  FLAG_SYN,
  MAX_FRAME_LENGTH,
  MAX_WINDOW,
  TYPE_DATA,
  TYPE_GOAWAY,
  encodeFrame,
  encodeRst,
  encodeWndInc,
  writeFrameHeader,
} from '../../../src/protocol/frame.js';
import {
  MUX_ACCEPT_QUEUE_FULL,
  MUX_ENHANCE_YOUR_CALM,
  MUX_FLOW_CONTROL_ERROR,
  MUX_FRAME_SIZE_ERROR,
  MUX_PROTOCOL_ERROR,
  MUX_STREAM_CANCELLED,
  MUX_STREAM_REFUSED,
  MUX_STREAM_RESET,
} from '../../../src/protocol/error-codes.js';
import { STREAM_TYPE_AUTH, STREAM_TYPE_HEARTBEAT } from '../../../src/protocol/messages.js';
import { isBurrowError, type ErrorCode } from '../../../src/core/errors.js';
import { transportPair, type TransportPair } from '../../helpers/transport-pair.js';

const KINDS = ['memory', 'tcp'] as const;
type Kind = (typeof KINDS)[number];
/** Every test here is event-driven; this only turns a hang into a failure. */
const T = { timeout: 5000 };
const KiB = 1024;
const noop = (): void => {};

/**
 * Every wait in this file is for an event; this bound only makes a missing event fail the test with a name (and lets
 * its `finally` close the session so the process can still exit) instead of hanging until the runner's timeout.
 */
function within<R>(p: Promise<R>, what: string, ms = 3000): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

// ---- the raw peer ----

type Frame =
  | { t: 'DATA'; streamId: number; flags: number; payload: Buffer }
  | { t: 'RST'; streamId: number; code: number }
  | { t: 'WNDINC'; streamId: number; increment: number }
  | { t: 'GOAWAY'; lastStreamId: number; code: number; debug: string };

/**
 * The hostile side: writes raw bytes, decodes every frame the session sends (DATA pieces joined per frame), tracks
 * its own send window per stream, and lets a test wait for a condition re-checked on every frame and on EOF.
 */
class RawPeer implements FrameHandler {
  readonly frames: Frame[] = [];
  ended = false;
  closed = false;
  decodeError: string | null = null;
  private readonly decoder: FrameDecoder;
  private pieces: Buffer[] = [];
  private readonly windows = new Map<number, number>();
  private waiters: Array<() => boolean> = [];

  constructor(readonly sock: Duplex) {
    this.decoder = new FrameDecoder(this, MAX_FRAME_LENGTH);
    sock.on('data', (c: Buffer) => this.decoder.push(c));
    sock.on('end', () => {
      this.ended = true;
      this.poke();
    });
    sock.on('close', () => {
      this.closed = true;
      this.poke();
    });
    sock.on('error', noop);
  }

  // FrameHandler
  onData(streamId: number, flags: number, payload: Buffer, first: boolean, last: boolean): void {
    if (first) this.pieces = [];
    this.pieces.push(Buffer.from(payload));
    if (last) {
      this.frames.push({ t: 'DATA', streamId, flags, payload: Buffer.concat(this.pieces) });
      this.poke();
    }
  }
  onRst(streamId: number, code: number): void {
    this.frames.push({ t: 'RST', streamId, code });
    this.poke();
  }
  onWndInc(streamId: number, increment: number): void {
    this.windows.set(streamId, (this.windows.get(streamId) ?? 0) + increment);
    this.frames.push({ t: 'WNDINC', streamId, increment });
    this.poke();
  }
  onGoAway(lastStreamId: number, code: number, debug: Buffer): void {
    this.frames.push({ t: 'GOAWAY', lastStreamId, code, debug: debug.toString('utf8') });
    this.poke();
  }
  onProtocolError(code: number, message: string): void {
    this.decodeError = `${code}: ${message}`;
    this.poke();
  }

  send(...bufs: Buffer[]): void {
    this.sock.write(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs));
  }

  /** DATA|SYN on `id` carrying `payload`; the stream's send window starts at the protocol's 256 KiB. */
  open(id: number, payload: Buffer = Buffer.alloc(0)): void {
    this.windows.set(id, DEFAULT_WINDOW_SIZE - payload.length);
    this.send(encodeFrame(TYPE_DATA, FLAG_SYN, id, payload));
  }

  window(id: number): number {
    return this.windows.get(id) ?? 0;
  }

  /** Send `data` on `id` in pieces, never beyond the window the session granted; stops early on RST. */
  async sendWithinWindow(id: number, data: Buffer, piece = 16 * KiB): Promise<'sent' | 'reset'> {
    let off = 0;
    while (off < data.length) {
      if (this.rst(id) !== undefined) return 'reset';
      const win = this.window(id);
      if (win === 0) {
        await this.until(`window or RST on ${id}`, () => this.window(id) > 0 || this.rst(id) !== undefined);
        continue;
      }
      const n = Math.min(piece, win, data.length - off);
      this.send(encodeFrame(TYPE_DATA, 0, id, data.subarray(off, off + n)));
      this.windows.set(id, win - n);
      off += n;
    }
    return 'sent';
  }

  on(id: number): Frame[] {
    return this.frames.filter((f) => f.t !== 'GOAWAY' && f.streamId === id);
  }
  dataOn(id: number): Buffer {
    return Buffer.concat(this.frames.flatMap((f) => (f.t === 'DATA' && f.streamId === id ? [f.payload] : [])));
  }
  rst(id: number): { code: number } | undefined {
    return this.frames.find((f): f is Frame & { t: 'RST' } => f.t === 'RST' && f.streamId === id);
  }
  finOn(id: number): boolean {
    return this.frames.some((f) => f.t === 'DATA' && f.streamId === id && (f.flags & FLAG_FIN) !== 0);
  }
  goAway(): (Frame & { t: 'GOAWAY' }) | undefined {
    return this.frames.find((f): f is Frame & { t: 'GOAWAY' } => f.t === 'GOAWAY');
  }

  /** Resolve once `check()` is truthy; re-checked on every frame. Rejects if the transport closes first. */
  until<R>(what: string, check: () => R | undefined | false): Promise<R> {
    return within(this.untilUnbounded(what, check), what);
  }

  private untilUnbounded<R>(what: string, check: () => R | undefined | false): Promise<R> {
    return new Promise((resolve, reject) => {
      const run = (): boolean => {
        const r = check();
        if (r !== undefined && r !== false) {
          resolve(r);
          return true;
        }
        if (this.ended || this.closed || this.decodeError !== null) {
          reject(new Error(`transport ended while waiting for ${what} (decode error: ${this.decodeError})`));
          return true;
        }
        return false;
      };
      if (!run()) this.waiters.push(run);
    });
  }

  waitEnd(): Promise<void> {
    const ended = new Promise<void>((resolve) => {
      const run = (): boolean => {
        if (this.ended || this.closed) resolve();
        return this.ended || this.closed;
      };
      if (!run()) this.waiters.push(run);
    });
    return within(ended, 'end of the transport');
  }

  private poke(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) if (!w()) this.waiters.push(w);
  }
}

// ---- the session under test, and what it does with incoming streams ----

/**
 * Routes the session's incoming streams: by default each is echoed back (FIN answered with FIN); `custom` may take a
 * stream over; ids in `hold` are kept and never read.
 */
class Router {
  readonly hold = new Set<number>();
  readonly seen = new Map<number, MuxStream>();
  custom: ((s: MuxStream) => boolean) | null = null;
  private readonly waiting = new Map<number, (s: MuxStream) => void>();

  constructor(server: MuxSession) {
    server.on('stream', (s: MuxStream) => {
      s.on('error', noop); // tests read s.errored
      this.seen.set(s.id, s);
      this.waiting.get(s.id)?.(s);
      if (this.custom !== null && this.custom(s)) return;
      if (!this.hold.has(s.id)) s.pipe(s);
    });
  }

  stream(id: number): Promise<MuxStream> {
    const s = this.seen.get(id);
    if (s !== undefined) return Promise.resolve(s);
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }
}

interface Rig {
  t: TransportPair;
  server: MuxSession;
  peer: RawPeer;
  closed: Promise<Error | undefined>;
  close(): Promise<void>;
}

async function rig(kind: Kind, opts: Partial<MuxSessionOptions> = {}): Promise<Rig> {
  const t = await transportPair(kind);
  const server = new MuxSession(t.server, { role: 'server', ...opts });
  const closed = new Promise<Error | undefined>((r) => server.once('close', r));
  const peer = new RawPeer(t.client);
  // An in-memory pair holds no libuv handle and the session's own timers are unref'd, so while a test waits for one
  // of those timers (heartbeat liveness) nothing would keep the event loop alive.
  const keepAlive = kind === 'memory' ? setInterval(noop, 60_000) : null;
  return {
    t,
    server,
    peer,
    closed,
    async close() {
      if (keepAlive !== null) clearInterval(keepAlive);
      server.destroy();
      await t.close();
    },
  };
}

/**
 * Round trip through a fresh stream `id` (SYN, echo, FIN both ways). Proves the session still serves streams, and —
 * since frames are answered in order — that everything the session wrote before has reached the peer.
 */
async function echoCheck(peer: RawPeer, id: number, prefix: Buffer = Buffer.alloc(0)): Promise<void> {
  const msg = Buffer.from(`ping on ${id}`);
  peer.open(id, Buffer.concat([prefix, msg]));
  await peer.until(`echo on ${id}`, () => peer.dataOn(id).equals(msg));
  peer.send(encodeFrame(TYPE_DATA, FLAG_FIN, id));
  await peer.until(`FIN on ${id}`, () => peer.finOn(id));
  assert.equal(peer.rst(id), undefined, `stream ${id} was reset`);
}

/** Poll a condition that no frame announces (session-internal state), one event-loop turn at a time. */
async function waitFor(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 20_000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

function assertCode(err: unknown, code: ErrorCode): void {
  assert.ok(isBurrowError(err, code), `expected ${code}, got ${String(err)} (${(err as { code?: string })?.code})`);
}

/** The answer to a stream-level violation: an empty DATA|FIN (the SDK needs it, PROTOCOL.md Q3), then RST with `code`. */
function assertFinThenRst(peer: RawPeer, id: number, code: number, before: Frame[] = []): void {
  assert.deepEqual(
    peer.on(id).map(fmt),
    [...before.map(fmt), `DATA s${id} f${FLAG_FIN} len0`, `RST s${id} code${code}`],
    `frames on stream ${id}`,
  );
}

function fmt(f: Frame): string {
  switch (f.t) {
    case 'DATA':
      return `DATA s${f.streamId} f${f.flags} len${f.payload.length}`;
    case 'RST':
      return `RST s${f.streamId} code${f.code}`;
    case 'WNDINC':
      return `WNDINC s${f.streamId} +${f.increment}`;
    default:
      return `GOAWAY last${f.lastStreamId} code${f.code}`;
  }
}

/** A session-level violation: exactly one GOAWAY with `code`, nothing after it, the transport ends, the session closes. */
async function expectGoAway(
  r: Rig,
  code: number,
  lastStreamId: number,
  debug: RegExp,
  closeCode: ErrorCode | null,
): Promise<void> {
  const g = await r.peer.until('GOAWAY', () => r.peer.goAway());
  assert.equal(g.code, code, `GOAWAY code (debug: ${g.debug})`);
  assert.equal(g.lastStreamId, lastStreamId);
  assert.match(g.debug, debug);
  await r.peer.waitEnd();
  assert.equal(r.peer.frames.at(-1), g, 'nothing after the GOAWAY');
  const err = await within(r.closed, 'session close');
  if (closeCode !== null) assertCode(err, closeCode);
  else assert.ok(isBurrowError(err), String(err));
  assert.match(String(err), debug, 'the session error says why');
  assert.equal(r.server.isClosed, true);
  assert.equal(r.server.streamCount, 0);
}

/** global.gc, switched on at run time (node:test runs without --expose-gc). */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const hbType = Buffer.from('ffffffff', 'hex');
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};

for (const kind of KINDS) {
  describe(`hostile peer over ${kind}`, () => {
    // ---------------------------------------------------------------------------------------------------------
    test('window overflow: WNDINC past 2^31-1 → RST FlowControlError on that stream; the session serves on', T, async () => {
      const r = await rig(kind);
      try {
        const router = new Router(r.server);
        router.hold.add(3);
        r.peer.open(3, Buffer.from('x'));
        const s3 = await within(router.stream(3), 'stream 3');
        // Up to exactly 2^31-1 is allowed.
        r.peer.send(encodeWndInc(3, MAX_WINDOW - DEFAULT_WINDOW_SIZE));
        await echoCheck(r.peer, 5);
        assert.deepEqual(r.peer.on(3), [], 'no answer to a WNDINC that reaches the maximum');
        assert.equal(s3.sendWindowAvailable, MAX_WINDOW);
        // One more byte of window overflows.
        r.peer.send(encodeWndInc(3, 1));
        await r.peer.until('RST on 3', () => r.peer.rst(3));
        assertFinThenRst(r.peer, 3, MUX_FLOW_CONTROL_ERROR);
        assertCode(s3.errored, 'BURROW_ERR_MUX_FLOW_CONTROL');
        assert.equal(r.server.streamCount, 0);
        await echoCheck(r.peer, 7);
        assert.equal(r.server.isClosed, false);
        assert.equal(r.server.streamCount, 0);
        assert.equal(r.peer.goAway(), undefined);
      } finally {
        await r.close();
      }
    });

    // ---------------------------------------------------------------------------------------------------------
    test('data beyond window: 256 KiB + 1 byte with no WNDINC to a paused reader → RST FlowControlError; session usable', T, async () => {
      const r = await rig(kind);
      try {
        const router = new Router(r.server);
        router.hold.add(3);
        router.hold.add(9);
        r.peer.open(3);
        const s3 = await within(router.stream(3), 'stream 3');
        for (let i = 0; i < 4; i++) r.peer.send(encodeFrame(TYPE_DATA, 0, 3, Buffer.alloc(64 * KiB, i)));
        await echoCheck(r.peer, 5); // everything up to here was processed
        assert.deepEqual(r.peer.on(3), [], 'a full window is legal: no RST and (nothing read) no WNDINC');
        assert.equal(s3.readableLength, DEFAULT_WINDOW_SIZE, 'the paused reader holds exactly one window');
        r.peer.send(encodeFrame(TYPE_DATA, 0, 3, Buffer.from([0xee])));
        await r.peer.until('RST on 3', () => r.peer.rst(3));
        assertFinThenRst(r.peer, 3, MUX_FLOW_CONTROL_ERROR);
        assertCode(s3.errored, 'BURROW_ERR_MUX_FLOW_CONTROL');
        // One frame announcing more than the whole window is refused at its first piece.
        r.peer.open(9);
        r.peer.send(encodeFrame(TYPE_DATA, 0, 9, Buffer.alloc(DEFAULT_WINDOW_SIZE + 1)));
        await r.peer.until('RST on 9', () => r.peer.rst(9));
        assertFinThenRst(r.peer, 9, MUX_FLOW_CONTROL_ERROR);
        // Late frames for the reset streams are dropped quietly; the session carries on.
        r.peer.send(encodeFrame(TYPE_DATA, 0, 3, Buffer.from('late')));
        await echoCheck(r.peer, 7);
        assert.equal(r.server.isClosed, false);
        assert.equal(r.server.streamCount, 0);
      } finally {
        await r.close();
      }
    });

    // ---------------------------------------------------------------------------------------------------------
    test('stream id reuse: a second SYN for a live id → GOAWAY ProtocolError, session closed', T, async () => {
      const r = await rig(kind);
      try {
        const router = new Router(r.server);
        router.hold.add(3);
        r.peer.open(3, Buffer.from('a'));
        const s3 = await within(router.stream(3), 'stream 3');
        r.peer.open(3, Buffer.from('b'));
        await expectGoAway(r, MUX_PROTOCOL_ERROR, 3, /stream 3, which is already open/, 'BURROW_ERR_MUX_PROTOCOL');
        assert.ok(s3.destroyed, 'the open stream was failed');
      } finally {
        await r.close();
      }
    });

    test('stream id reuse after the stream finished is allowed (SYNs may come out of order, PROTOCOL.md §3)', T, async () => {
      const r = await rig(kind);
      try {
        new Router(r.server);
        await echoCheck(r.peer, 5);
        r.peer.frames.length = 0;
        await echoCheck(r.peer, 5);
        await echoCheck(r.peer, 3); // below the highest id seen
        assert.equal(r.peer.goAway(), undefined);
        assert.equal(r.server.streamCount, 0);
      } finally {
        await r.close();
      }
    });

    // ---------------------------------------------------------------------------------------------------------
    test('wrong parity: client SYN on an even id → GOAWAY ProtocolError', T, async () => {
      const r = await rig(kind);
      try {
        new Router(r.server);
        r.peer.open(4, Buffer.from('x'));
        await expectGoAway(r, MUX_PROTOCOL_ERROR, 0, /wrong id parity/, 'BURROW_ERR_MUX_PROTOCOL');
      } finally {
        await r.close();
      }
    });

    test('wrong parity, client role: server SYN on an odd id → GOAWAY ProtocolError', T, async () => {
      const r = await rig(kind, { role: 'client' });
      try {
        new Router(r.server);
        r.peer.open(2, Buffer.from('fine'));
        await r.peer.until('echo on 2', () => r.peer.dataOn(2).toString() === 'fine');
        r.peer.open(5, Buffer.from('x'));
        await expectGoAway(r, MUX_PROTOCOL_ERROR, 2, /wrong id parity/, 'BURROW_ERR_MUX_PROTOCOL');
      } finally {
        await r.close();
      }
    });

    // ---------------------------------------------------------------------------------------------------------
    for (const type of [4, 15]) {
      test(`unknown frame type ${type} → GOAWAY ProtocolError`, T, async () => {
        const r = await rig(kind);
        try {
          new Router(r.server);
          await echoCheck(r.peer, 3);
          const bad = Buffer.alloc(12);
          writeFrameHeader(bad, 0, 4, type, 0, 3);
          r.peer.send(bad);
          await expectGoAway(r, MUX_PROTOCOL_ERROR, 3, new RegExp(`unknown frame type ${type}`), 'BURROW_ERR_MUX_PROTOCOL');
        } finally {
          await r.close();
        }
      });
    }

    // ---------------------------------------------------------------------------------------------------------
    for (const [what, id] of [
      ['an odd id above any seen', 7],
      ['stream 0', 0],
      ['an even id the server never opened', 2],
    ] as const) {
      test(`DATA for a stream never opened (${what}) → GOAWAY ProtocolError`, T, async () => {
        const r = await rig(kind);
        try {
          new Router(r.server);
          await echoCheck(r.peer, 3);
          // Late DATA for stream 3, which was opened and has finished, is dropped quietly.
          r.peer.send(encodeFrame(TYPE_DATA, 0, 3, Buffer.from('late')));
          await echoCheck(r.peer, 5);
          assert.equal(r.peer.goAway(), undefined);
          r.peer.send(encodeFrame(TYPE_DATA, 0, id, Buffer.from('who?')));
          await expectGoAway(r, MUX_PROTOCOL_ERROR, 5, new RegExp(`stream ${id}, which was never opened`), 'BURROW_ERR_MUX_PROTOCOL');
        } finally {
          await r.close();
        }
      });
    }

    // ---------------------------------------------------------------------------------------------------------
    test('SYN flood, nobody accepting: backlog 16 queue, the other 984 get RST AcceptQueueFull; memory bounded', T, async () => {
      const r = await rig(kind, { acceptBacklog: 16 });
      try {
        const ids = Array.from({ length: 1000 }, (_, i) => 3 + 2 * i);
        r.peer.send(...ids.map((id) => encodeFrame(TYPE_DATA, FLAG_SYN, id, u32(id))));
        const last = ids.at(-1)!;
        await r.peer.until('RST for the last SYN', () => r.peer.rst(last));
        // The session answers in order, so every SYN has been answered by now.
        const rsts = r.peer.frames.filter((f) => f.t === 'RST');
        assert.deepEqual(
          rsts.map((f) => f.streamId),
          ids.slice(16),
        );
        assert.ok(rsts.every((f) => f.t === 'RST' && f.code === MUX_ACCEPT_QUEUE_FULL));
        assert.equal(r.peer.frames.length, 984, 'nothing but the RSTs');
        assert.equal(r.server.streamCount, 16);
        assert.equal(r.server.isClosed, false);
        // The queued ones are the first 16, in order, with their data.
        for (const id of ids.slice(0, 16)) {
          const s = await within(r.server.accept(), 'accept');
          s.on('error', noop);
          assert.equal(s.id, id);
          assert.equal((s.read(4) as Buffer).readUInt32BE(0), id);
          s.reset(MUX_STREAM_CANCELLED);
        }
        assert.equal(r.server.streamCount, 0);
        new Router(r.server);
        await echoCheck(r.peer, last + 2);
        assert.equal(r.server.streamCount, 0);
      } finally {
        await r.close();
      }
    });

    test('SYN flood with a stream listener: above maxStreams each SYN gets RST StreamRefused; freed slots are reused', T, async () => {
      const r = await rig(kind, { maxStreams: 8 });
      try {
        const router = new Router(r.server);
        const ids = Array.from({ length: 100 }, (_, i) => 3 + 2 * i);
        for (const id of ids) router.hold.add(id);
        r.peer.send(...ids.map((id) => encodeFrame(TYPE_DATA, FLAG_SYN, id)));
        await r.peer.until('RST for the last SYN', () => r.peer.rst(ids.at(-1)!));
        const rsts = r.peer.frames.filter((f) => f.t === 'RST');
        assert.deepEqual(
          rsts.map((f) => f.streamId),
          ids.slice(8),
        );
        assert.ok(rsts.every((f) => f.t === 'RST' && f.code === MUX_STREAM_REFUSED));
        assert.deepEqual([...router.seen.keys()], ids.slice(0, 8));
        assert.equal(r.server.streamCount, 8);
        // Close one: its slot takes the next stream.
        router.seen.get(3)!.reset(MUX_STREAM_CANCELLED);
        assert.equal(r.server.streamCount, 7);
        await echoCheck(r.peer, 301);
        assert.equal(r.server.streamCount, 7, 'echo stream done, 7 held');
        // Fill the free slot; the next one is refused again.
        router.hold.add(303);
        r.peer.open(303);
        r.peer.open(305);
        await r.peer.until('RST on 305', () => r.peer.rst(305));
        assert.equal(r.peer.rst(305)!.code, MUX_STREAM_REFUSED);
        assert.equal(r.peer.rst(303), undefined);
        assert.ok(router.seen.has(303));
        assert.equal(r.server.streamCount, 8);
      } finally {
        await r.close();
      }
    });


    test('maxRemoteStreams: peer-opened streams above it get RST StreamRefused, our own do not count; setMaxRemoteStreams raises it', T, async () => {
      const r = await rig(kind, { maxRemoteStreams: 2 });
      try {
        const router = new Router(r.server);
        const ours = [r.server.openStream(), r.server.openStream(), r.server.openStream()];
        for (const s of ours) s.on('error', noop);
        const ids = [3, 5, 7, 9];
        for (const id of ids) router.hold.add(id);
        r.peer.send(...ids.map((id) => encodeFrame(TYPE_DATA, FLAG_SYN, id)));
        await r.peer.until('RST for 9', () => r.peer.rst(9));
        assert.deepEqual(
          r.peer.frames.filter((f) => f.t === 'RST').map((f) => f.t === 'RST' && [f.streamId, f.code]),
          [
            [7, MUX_STREAM_REFUSED],
            [9, MUX_STREAM_REFUSED],
          ],
        );
        assert.equal(r.server.streamCount, 5, 'two of the peer, three of ours');
        r.server.setMaxRemoteStreams(3);
        router.hold.add(11);
        r.peer.open(11);
        r.peer.open(13);
        await r.peer.until('RST on 13', () => r.peer.rst(13));
        assert.equal(r.peer.rst(11), undefined);
        assert.ok(router.seen.has(11));
        // A finished peer stream frees its slot.
        router.seen.get(3)!.reset(MUX_STREAM_CANCELLED);
        router.hold.add(15);
        r.peer.open(15);
        await within(router.stream(15), 'stream 15');
        assert.equal(r.peer.rst(15), undefined);
      } finally {
        await r.close();
      }
    });

    test('tiny-frame flood to a paused stream: 64 Ki one-byte DATA frames are queued as a few chunks, not 64 Ki', T, async () => {
      const r = await rig(kind);
      try {
        const router = new Router(r.server);
        router.hold.add(3); // nobody reads it: every piece is queued
        r.peer.open(3, Buffer.from('a'));
        const s = await within(router.stream(3), 'stream 3');
        const N = 64 * KiB;
        const frames: Buffer[] = [];
        for (let i = 1; i < N; i++) frames.push(encodeFrame(TYPE_DATA, 0, 3, Buffer.from([i & 0xff])));
        frames.push(encodeFrame(TYPE_DATA, FLAG_FIN, 3));
        const before = r.server.bytesIn;
        const wire = frames.reduce((n, f) => n + f.length, 0);
        r.peer.send(...frames);
        await within(
          new Promise<void>((resolve) => {
            const poll = (): void => void (r.server.bytesIn - before >= wire ? resolve() : setImmediate(poll));
            poll();
          }),
          'the flood to arrive',
        );
        // Each queued view would cost a Buffer and a queue entry (~150 bytes of heap for one byte of window).
        let chunks = 0;
        const got: Buffer[] = [];
        s.on('data', (c: Buffer) => {
          chunks++;
          got.push(c);
        });
        await within(new Promise((resolve) => s.once('end', resolve)), "the stream's end");
        const all = Buffer.concat(got);
        assert.equal(all.length, N);
        assert.equal(all[0], 0x61);
        for (let i = 1; i < N; i++) if (all[i] !== (i & 0xff)) assert.fail(`byte ${i} is ${all[i]}, expected ${i & 0xff}`);
        assert.ok(chunks <= 8, `${chunks} chunks queued for ${N} bytes`);
      } finally {
        await r.close();
      }
    });
    // ---------------------------------------------------------------------------------------------------------
    test('zero-window stall: a peer that never grants credit gets exactly 256 KiB; WNDINC 64 KiB releases exactly 64 KiB', T, async () => {
      const r = await rig(kind);
      try {
        const router = new Router(r.server);
        router.hold.add(3);
        r.peer.open(3, Buffer.from('go'));
        const s3 = await within(router.stream(3), 'stream 3');
        const big = Buffer.alloc(1024 * KiB, 0xab);
        let writeDone: Error | null | undefined;
        assert.equal(
          s3.write(big, (err) => (writeDone = err)),
          false,
          'write() reports backpressure',
        );
        await r.peer.until('256 KiB on 3', () => r.peer.dataOn(3).length >= DEFAULT_WINDOW_SIZE);
        await echoCheck(r.peer, 5); // anything more the session wrote on 3 would have arrived before this echo
        assert.equal(r.peer.dataOn(3).length, DEFAULT_WINDOW_SIZE);
        const data3 = r.peer.on(3);
        assert.ok(data3.every((f) => f.t === 'DATA' && f.flags === 0 && f.payload.length <= 64 * KiB), 'DATA frames of at most 64 KiB');
        assert.equal(s3.sendWindowAvailable, 0);
        assert.equal(s3.writableNeedDrain, true);
        assert.equal(s3.writableLength, big.length, 'only the caller’s own buffer is held (no copies queued)');
        assert.equal(writeDone, undefined, 'the write is not complete');
        assert.ok(r.t.server.writableLength <= 64 * KiB, `transport queue ${r.t.server.writableLength}`);

        r.peer.send(encodeWndInc(3, 64 * KiB));
        await r.peer.until('64 KiB more on 3', () => r.peer.dataOn(3).length >= DEFAULT_WINDOW_SIZE + 64 * KiB);
        await echoCheck(r.peer, 7);
        assert.equal(r.peer.dataOn(3).length, DEFAULT_WINDOW_SIZE + 64 * KiB);
        assert.ok(r.peer.dataOn(3).equals(big.subarray(0, DEFAULT_WINDOW_SIZE + 64 * KiB)));
        assert.equal(s3.sendWindowAvailable, 0);
        assert.equal(writeDone, undefined);

        // Odd-sized credit near the end of the write: all but 1000 bytes, then 10, then the rest.
        const sent = DEFAULT_WINDOW_SIZE + 64 * KiB;
        r.peer.send(encodeWndInc(3, big.length - sent - 1000));
        await r.peer.until('all but 1000 bytes', () => r.peer.dataOn(3).length >= big.length - 1000);
        r.peer.send(encodeWndInc(3, 10));
        await r.peer.until('10 more bytes', () => r.peer.dataOn(3).length >= big.length - 990);
        await echoCheck(r.peer, 9);
        assert.equal(r.peer.dataOn(3).length, big.length - 990, 'exactly the 10 bytes granted');
        assert.equal(writeDone, undefined);
        r.peer.send(encodeWndInc(3, 990));
        await r.peer.until('the whole megabyte', () => r.peer.dataOn(3).length >= big.length);
        await waitFor('the write to complete', () => writeDone !== undefined);
        assert.equal(writeDone, null, 'the write completed without error');
        await echoCheck(r.peer, 11);
        assert.ok(r.peer.dataOn(3).equals(big), 'every byte, in order');
        assert.equal(s3.sendWindowAvailable, 0);

        // A second write stalls at once (no window left); the peer gives up: that write fails, the stream is gone.
        let write2: Error | null | undefined;
        s3.write(Buffer.alloc(100), (err) => (write2 = err));
        await echoCheck(r.peer, 13);
        assert.equal(r.peer.dataOn(3).length, big.length, 'nothing beyond the window');
        r.peer.send(encodeRst(3, MUX_STREAM_RESET));
        await echoCheck(r.peer, 15);
        await waitFor('the stalled write to fail', () => write2 !== undefined);
        assertCode(write2, 'BURROW_ERR_MUX_STREAM_RESET');
        assert.equal(r.server.streamCount, 0);
      } finally {
        await r.close();
      }
    });

    // ---------------------------------------------------------------------------------------------------------
    test('RST reflection: a peer that does not read and keeps sending refused SYNs → session ended, answers bounded', T, async () => {
      const r = await rig(kind, { maxRemoteStreams: 0 });
      try {
        r.peer.sock.pause(); // reads nothing: every RST answer stays queued on the session's side
        const syns = (from: number, n: number): Buffer =>
          Buffer.concat(Array.from({ length: n }, (_, i) => encodeFrame(TYPE_DATA, FLAG_SYN, from + 2 * i)));
        let id = 1;
        let peak = 0;
        const track = setInterval(() => (peak = Math.max(peak, r.t.server.writableLength)), 1);
        try {
          // Over TCP the kernel's socket buffers take several MB of answers before the session's own queue grows.
          for (let round = 0; round < 1500 && !r.server.isClosed; round++) {
            r.peer.send(syns(id, 2000)); // 16 KB of SYNs, 24 KB of RST answers
            id = id + 4000 > 0x7fff0000 ? 1 : id + 4000;
            await new Promise((resolve) => setImmediate(resolve));
          }
          const err = await within(r.closed, 'session close');
          assert.ok(isBurrowError(err), String(err));
          assert.match(err.message, /control frame flood/);
        } finally {
          clearInterval(track);
        }
        // Without the limit the session queues an RST for every SYN, without end.
        assert.ok(peak < 512 * KiB, `queued answers peaked at ${peak} bytes`);
      } finally {
        await r.close();
      }
    });

    test('heartbeat flood: beats are echoed byte for byte; 10 000 ids at once → GOAWAY EnhanceYourCalm, session closed', T, async () => {
      const r = await rig(kind);
      try {
        const router = new Router(r.server);
        router.custom = (s) => {
          void readStreamType(s).then((type) => {
            if (type === STREAM_TYPE_HEARTBEAT) serveHeartbeat(r.server, s, { maxPerSecond: 20, burst: 50 });
            else s.pipe(s);
          }, noop);
          return true;
        };
        r.peer.open(3, hbType);
        const beats: Buffer[] = [];
        const beat = Buffer.from('9a017c22', 'hex');
        r.peer.send(encodeFrame(TYPE_DATA, 0, 3, beat));
        beats.push(beat);
        await r.peer.until('first echo', () => r.peer.dataOn(3).length === 4);
        assert.ok(r.peer.dataOn(3).equals(beat));
        // An id split across two frames comes back whole.
        r.peer.send(encodeFrame(TYPE_DATA, 0, 3, Buffer.from('0102', 'hex')));
        r.peer.send(encodeFrame(TYPE_DATA, 0, 3, Buffer.from('0304', 'hex')));
        beats.push(Buffer.from('01020304', 'hex'));
        // A burst inside the allowance (40 < 50) is echoed too.
        const burst = Buffer.concat(Array.from({ length: 40 }, (_, i) => u32(0xa0000000 + i)));
        r.peer.send(encodeFrame(TYPE_DATA, 0, 3, burst));
        beats.push(burst);
        const want = Buffer.concat(beats);
        await r.peer.until('all echoes', () => r.peer.dataOn(3).length >= want.length);
        assert.ok(r.peer.dataOn(3).equals(want), 'echoed byte for byte');
        assert.equal(r.peer.goAway(), undefined);

        const flood = Buffer.concat(Array.from({ length: 10_000 }, (_, i) => u32(i)));
        r.peer.send(encodeFrame(TYPE_DATA, 0, 3, flood));
        // (The session's own error code for EnhanceYourCalm is not pinned here; see the report.)
        await expectGoAway(r, MUX_ENHANCE_YOUR_CALM, 3, /heartbeat flood/, null);
      } finally {
        await r.close();
      }
    });

    // ---------------------------------------------------------------------------------------------------------
    test('heartbeat liveness: one beat then silence → session destroyed with BURROW_ERR_MUX_HEARTBEAT_TIMEOUT', T, async () => {
      const r = await rig(kind);
      try {
        const router = new Router(r.server);
        router.custom = (s) => {
          void readStreamType(s).then(() => serveHeartbeat(r.server, s, { livenessMs: 200 }), noop);
          return true;
        };
        r.peer.open(3, Buffer.concat([hbType, u32(42)]));
        await r.peer.until('echo', () => r.peer.dataOn(3).equals(u32(42)));
        const lastBeat = performance.now();
        const err = await within(r.closed, 'session close');
        const silentFor = performance.now() - lastBeat;
        assertCode(err, 'BURROW_ERR_MUX_HEARTBEAT_TIMEOUT');
        assert.ok(silentFor >= 150, `closed after only ${silentFor.toFixed(0)} ms of silence`);
        await r.peer.waitEnd();
        assert.equal(r.server.streamCount, 0);
      } finally {
        await r.close();
      }
    });

    test('heartbeat liveness: regular beats keep the session alive past the deadline', T, async () => {
      const r = await rig(kind);
      try {
        const router = new Router(r.server);
        router.custom = (s) => {
          void readStreamType(s).then(() => serveHeartbeat(r.server, s, { livenessMs: 300 }), noop);
          return true;
        };
        r.peer.open(3, hbType);
        const start = performance.now();
        // Beat every 50 ms for 8 beats (~350 ms, past the 300 ms deadline), waiting for each echo. The 250 ms of slack
        // per beat keeps this steady on a loaded machine.
        for (let i = 1; i <= 8; i++) {
          r.peer.send(encodeFrame(TYPE_DATA, 0, 3, u32(i)));
          await r.peer.until(`echo ${i}`, () => r.peer.dataOn(3).length === 4 * i);
          if (i < 8) await new Promise((res) => setTimeout(res, 50)); // the beat interval under test, not a sync
        }
        assert.ok(performance.now() - start > 300);
        assert.equal(r.server.isClosed, false);
        const err = await within(r.closed, 'session close'); // then silence
        assertCode(err, 'BURROW_ERR_MUX_HEARTBEAT_TIMEOUT');
      } finally {
        await r.close();
      }
    });

    // ---------------------------------------------------------------------------------------------------------
    for (const [name, type] of [
      ['DATA', TYPE_DATA],
      ['GOAWAY', TYPE_GOAWAY],
    ] as const) {
      test(`16 MiB frame length (${name} header announcing 0xFFFFFF) → GOAWAY FrameSizeError, no large allocation`, T, async () => {
        const r = await rig(kind);
        try {
          new Router(r.server);
          await echoCheck(r.peer, 3);
          const h = Buffer.alloc(8);
          writeFrameHeader(h, 0, 0xffffff, type, type === TYPE_DATA ? FLAG_SYN : 0, type === TYPE_DATA ? 5 : 0);
          const before = process.memoryUsage().arrayBuffers;
          r.peer.send(h, Buffer.alloc(1000, 0x41)); // a little of the "payload" too
          await expectGoAway(r, MUX_FRAME_SIZE_ERROR, 3, /frame length 16777215 exceeds/, 'BURROW_ERR_MUX_FRAME_SIZE');
          const grew = process.memoryUsage().arrayBuffers - before;
          assert.ok(grew < 4 * 1024 * KiB, `arrayBuffers grew by ${grew}`);
        } finally {
          await r.close();
        }
      });
    }

    test('GOAWAY announcing 1 MiB of debug text, then silence → GOAWAY FrameSizeError at once, nothing buffered', T, async () => {
      // 9 bytes from the peer must not pin a megabyte per session (10k sessions would pin 10 GiB).
      const r = await rig(kind);
      try {
        new Router(r.server);
        await echoCheck(r.peer, 3);
        const h = Buffer.alloc(9);
        writeFrameHeader(h, 0, 1024 * KiB, TYPE_GOAWAY, 0, 0);
        const before = process.memoryUsage().arrayBuffers;
        r.peer.send(h);
        await expectGoAway(r, MUX_FRAME_SIZE_ERROR, 3, /GOAWAY frame with length 1048576\b/, 'BURROW_ERR_MUX_FRAME_SIZE');
        const grew = process.memoryUsage().arrayBuffers - before;
        assert.ok(grew < 512 * KiB, `arrayBuffers grew by ${grew}`);
      } finally {
        await r.close();
      }
    });

    // ---------------------------------------------------------------------------------------------------------
    describe('RPC garbage', () => {
      /** Server: Auth streams go to readJsonMessage (maxSize 256 KiB); other types are echoed after their type. */
      function rpcRig(r: Rig): Map<number, Promise<unknown>> {
        const results = new Map<number, Promise<unknown>>();
        const router = new Router(r.server);
        router.custom = (s) => {
          results.set(
            s.id,
            readStreamType(s).then((type) => {
              if (type === STREAM_TYPE_AUTH) return readJsonMessage(s, { maxSize: 256 * KiB });
              s.pipe(s);
              return null;
            }),
          );
          results.get(s.id)!.catch(noop);
          return true;
        };
        return results;
      }
      const echoType = u32(0x63);

      test('"not json" on an Auth stream → BURROW_ERR_RPC_BAD_JSON, RST on that stream, session alive', T, async () => {
        const r = await rig(kind);
        try {
          const results = rpcRig(r);
          for (const [id, body] of [
            [3, 'not json'],
            [5, '<html>'],
            [7, '[1,2,3]'],
            [9, '1'], // a bare number is refused at once, not when the RPC timeout ends the wait for more
          ] as const) {
            r.peer.open(id, u32(STREAM_TYPE_AUTH));
            r.peer.send(encodeFrame(TYPE_DATA, 0, id, Buffer.from(body)));
            await r.peer.until(`RST on ${id}`, () => r.peer.rst(id));
            assertFinThenRst(r.peer, id, MUX_STREAM_CANCELLED);
            await assert.rejects(results.get(id)!, (e: unknown) => isBurrowError(e, 'BURROW_ERR_RPC_BAD_JSON'), body);
            assert.equal(r.server.streamCount, 0);
          }
          await echoCheck(r.peer, 11, echoType);
          assert.equal(r.server.isClosed, false);
          assert.equal(r.server.streamCount, 0);
        } finally {
          await r.close();
        }
      });

      test('1 MiB JSON object sent within the window → BURROW_ERR_RPC_TOO_LARGE, RST, session alive', T, async () => {
        const r = await rig(kind);
        try {
          const results = rpcRig(r);
          const huge = Buffer.from(`{"AuthToken":"${'x'.repeat(1024 * KiB)}"}`);
          r.peer.open(3, u32(STREAM_TYPE_AUTH));
          const outcome = await r.peer.sendWithinWindow(3, huge);
          assert.equal(outcome, 'reset', 'the peer was stopped before it could send the whole megabyte');
          await assert.rejects(results.get(3)!, (e: unknown) => isBurrowError(e, 'BURROW_ERR_RPC_TOO_LARGE'));
          const frames3 = r.peer.on(3);
          assert.deepEqual(frames3.slice(-2).map(fmt), [`DATA s3 f${FLAG_FIN} len0`, `RST s3 code${MUX_STREAM_CANCELLED}`]);
          assert.ok(frames3.slice(0, -2).every((f) => f.t === 'WNDINC'), 'only window credit before the reset');
          await echoCheck(r.peer, 5, echoType);
          assert.equal(r.server.isClosed, false);
          assert.equal(r.server.streamCount, 0);
        } finally {
          await r.close();
        }
      });

      test('RPC messages sent as 1-byte DATA frames are held as one buffer each, not a view per frame; they parse', { timeout: 30_000 }, async () => {
        const r = await rig(kind);
        try {
          const results = rpcRig(r);
          const gc = exposeGc();
          const ids = [3, 5, 7, 9];
          const body = 60 * KiB; // bytes of each message sent one per frame while the message is still open
          for (const id of ids) {
            r.peer.open(id, u32(STREAM_TYPE_AUTH));
            r.peer.send(encodeFrame(TYPE_DATA, 0, id, Buffer.from('{"A":"')));
          }
          gc();
          const before = process.memoryUsage();
          const wireBefore = r.server.bytesIn;
          const one = Buffer.from('x');
          for (const id of ids) {
            const frames: Buffer[] = [];
            for (let i = 0; i < body; i++) frames.push(encodeFrame(TYPE_DATA, 0, id, one));
            r.peer.send(Buffer.concat(frames));
          }
          await waitFor('every frame read', () => r.server.bytesIn - wireBefore >= ids.length * body * 9);
          await new Promise((res) => setImmediate(res));
          gc();
          const after = process.memoryUsage();
          const held = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);
          // One growing buffer per message: ~4 × 64 KiB. A view per frame was ~100 bytes of heap per byte sent (~24 MiB).
          assert.ok(held < 4 * 1024 * KiB, `held ${Math.round(held / KiB)} KiB for ${ids.length} × ${body / KiB} KiB of 1-byte frames`);
          for (const id of ids) r.peer.send(encodeFrame(TYPE_DATA, 0, id, Buffer.from('"}')));
          for (const id of ids) {
            const msg = (await within(results.get(id)!, `message on ${id}`)) as { A: string };
            assert.equal(msg.A, 'x'.repeat(body));
          }
        } finally {
          await r.close();
        }
      });

      test('a stream that ends before a complete JSON → BURROW_ERR_RPC_INCOMPLETE, RST', T, async () => {
        const r = await rig(kind);
        try {
          const results = rpcRig(r);
          r.peer.open(3, u32(STREAM_TYPE_AUTH));
          r.peer.send(encodeFrame(TYPE_DATA, FLAG_FIN, 3, Buffer.from('{"Version":["3",')));
          await r.peer.until('RST on 3', () => r.peer.rst(3));
          assertFinThenRst(r.peer, 3, MUX_STREAM_CANCELLED);
          await assert.rejects(results.get(3)!, (e: unknown) => isBurrowError(e, 'BURROW_ERR_RPC_INCOMPLETE'));
          await echoCheck(r.peer, 5, echoType);
          assert.equal(r.server.streamCount, 0);
        } finally {
          await r.close();
        }
      });
    });

    // ---------------------------------------------------------------------------------------------------------
    describe('streams nobody has accepted yet cannot crash the process', () => {
      test('RST for a stream waiting in the accept backlog', T, async () => {
        const r = await rig(kind);
        try {
          r.peer.open(3, Buffer.from('a'));
          r.peer.open(5, Buffer.from('b'));
          r.peer.send(encodeRst(3, MUX_STREAM_RESET));
          await waitFor('stream 3 gone', () => r.server.streamCount === 1);
          await new Promise((res) => setImmediate(res)); // an unhandled 'error' would be thrown by now
          const s = await within(r.server.accept(), 'accept');
          assert.equal(s.id, 5, 'the reset stream is not handed out');
          assert.equal((s.read() as Buffer).toString(), 'b');
          s.on('error', noop);
          new Router(r.server);
          await echoCheck(r.peer, 7);
        } finally {
          await r.close();
        }
      });

      test('SYN and RST in one read while accept() is pending', T, async () => {
        const r = await rig(kind);
        try {
          const accepted = r.server.accept();
          r.peer.send(encodeFrame(TYPE_DATA, FLAG_SYN, 3, Buffer.from('a')), encodeRst(3, MUX_STREAM_RESET));
          const s = await within(accepted, 'accept');
          assert.equal(s.id, 3);
          await waitFor('stream 3 destroyed', () => s.destroyed);
          assertCode(s.errored, 'BURROW_ERR_MUX_STREAM_RESET');
          assert.equal(r.server.streamCount, 0);
        } finally {
          await r.close();
        }
      });

      for (const how of ['destroy()', 'peer EOF', 'protocol error'] as const) {
        test(`session ends (${how}) with streams in the backlog`, T, async () => {
          const r = await rig(kind);
          try {
            r.peer.open(3, Buffer.from('a'));
            r.peer.open(5, Buffer.from('b'));
            await waitFor('2 streams queued', () => r.server.streamCount === 2);
            if (how === 'destroy()') r.server.destroy();
            else if (how === 'peer EOF') r.peer.sock.end();
            else r.peer.open(6);
            await within(r.closed, 'session close');
            await new Promise((res) => setImmediate(res)); // an unhandled 'error' would be thrown by now
            await assert.rejects(r.server.accept(), (e: unknown) => isBurrowError(e, 'BURROW_ERR_MUX_SESSION_CLOSED'));
          } finally {
            await r.close();
          }
        });
      }
    });
  });
}
