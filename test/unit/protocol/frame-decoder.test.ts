// muxado frame codec: header bytes checked against hand-written wire bytes, round trips for every type and flag
// combination, any chunk split (fast-check), zero-copy DATA pieces, and every framing violation (PROTOCOL.md §1).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FLAG_FIN,
  FLAG_SYN,
  FRAME_HEADER_SIZE,
  MAX_FRAME_LENGTH,
  MAX_STREAM_ID,
  TYPE_DATA,
  TYPE_GOAWAY,
  TYPE_RST,
  TYPE_WNDINC,
  encodeFrame,
  encodeGoAway,
  encodeRst,
  encodeWndInc,
  writeFrameHeader,
} from '../../../src/protocol/frame.js';
import { FrameDecoder, type FrameHandler } from '../../../src/protocol/frame-decoder.js';
import { MUX_FRAME_SIZE_ERROR, MUX_PROTOCOL_ERROR } from '../../../src/protocol/error-codes.js';

// ---- a recording FrameHandler ----

/** One decoded frame, DATA pieces joined; `pieces` keeps what the decoder handed over, in order. */
type Decoded =
  | { t: 'DATA'; streamId: number; flags: number; payload: Buffer; pieces: Buffer[] }
  | { t: 'RST'; streamId: number; code: number }
  | { t: 'WNDINC'; streamId: number; increment: number }
  | { t: 'GOAWAY'; lastStreamId: number; code: number; debug: Buffer }
  | { t: 'ERROR'; code: number; message: string };

/**
 * Records every callback. Checks the onData contract on the fly: pieces of one frame are contiguous, the first has
 * first=true, only the final one last=true, flags and frameLength repeat, and the piece lengths add up to frameLength.
 */
class Recorder implements FrameHandler {
  readonly out: Decoded[] = [];
  private open: { streamId: number; flags: number; frameLength: number; pieces: Buffer[]; got: number } | null = null;

  onData(streamId: number, flags: number, payload: Buffer, first: boolean, last: boolean, frameLength: number): void {
    assert.ok(Buffer.isBuffer(payload), 'DATA piece is a Buffer');
    if (first) {
      assert.equal(this.open, null, 'a new DATA frame began before the previous one ended');
      this.open = { streamId, flags, frameLength, pieces: [], got: 0 };
    } else {
      assert.notEqual(this.open, null, 'a DATA piece with first=false but no frame in progress');
      assert.equal(streamId, this.open!.streamId, 'stream id changes within one DATA frame');
      assert.equal(flags, this.open!.flags, 'flags change within one DATA frame');
      assert.equal(frameLength, this.open!.frameLength, 'frameLength changes within one DATA frame');
      assert.ok(payload.length > 0, 'a non-first DATA piece is never empty');
    }
    const f = this.open!;
    f.pieces.push(payload);
    f.got += payload.length;
    assert.ok(f.got <= f.frameLength, 'more payload than the frame announced');
    if (last) {
      assert.equal(f.got, f.frameLength, 'last piece came before the whole payload');
      this.out.push({
        t: 'DATA',
        streamId: f.streamId,
        flags: f.flags,
        payload: Buffer.concat(f.pieces),
        pieces: f.pieces,
      });
      this.open = null;
    }
  }
  onRst(streamId: number, code: number): void {
    this.out.push({ t: 'RST', streamId, code });
  }
  onWndInc(streamId: number, increment: number): void {
    this.out.push({ t: 'WNDINC', streamId, increment });
  }
  onGoAway(lastStreamId: number, code: number, debug: Buffer): void {
    this.out.push({ t: 'GOAWAY', lastStreamId, code, debug: Buffer.from(debug) });
  }
  onProtocolError(code: number, message: string): void {
    this.out.push({ t: 'ERROR', code, message });
  }
  get inProgress(): boolean {
    return this.open !== null;
  }
}

/** Compare without the `pieces` detail (that depends on the chunk split). */
function plain(ds: Decoded[]): unknown[] {
  return ds.map((d) => {
    if (d.t === 'DATA') return { t: d.t, streamId: d.streamId, flags: d.flags, payload: d.payload.toString('hex') };
    if (d.t === 'GOAWAY') return { ...d, debug: d.debug.toString('hex') };
    return { ...d }; // fast-check records have a null prototype; compare plain objects
  });
}

function decodeAll(chunks: Buffer[], maxFrameLength = MAX_FRAME_LENGTH): { rec: Recorder; dec: FrameDecoder } {
  const rec = new Recorder();
  const dec = new FrameDecoder(rec, maxFrameLength);
  for (const c of chunks) dec.push(c);
  return { rec, dec };
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// ---- header layout against hand-written bytes ----

describe('frame encoding matches the wire layout byte for byte', () => {
  const cases: Array<{ name: string; frame: Buffer; wire: string; decoded: Decoded }> = [
    {
      name: 'DATA|SYN stream 3, heartbeat type ffffffff',
      frame: encodeFrame(TYPE_DATA, FLAG_SYN, 3, hex('ffffffff')),
      wire: '000004 12 00000003 ffffffff',
      decoded: { t: 'DATA', streamId: 3, flags: FLAG_SYN, payload: hex('ffffffff'), pieces: [] },
    },
    {
      name: 'DATA stream 5, 4-byte heartbeat id',
      frame: encodeFrame(TYPE_DATA, 0, 5, hex('9a017c22')),
      wire: '000004 10 00000005 9a017c22',
      decoded: { t: 'DATA', streamId: 5, flags: 0, payload: hex('9a017c22'), pieces: [] },
    },
    {
      name: 'empty DATA|FIN stream 7',
      frame: encodeFrame(TYPE_DATA, FLAG_FIN, 7),
      wire: '000000 11 00000007',
      decoded: { t: 'DATA', streamId: 7, flags: FLAG_FIN, payload: Buffer.alloc(0), pieces: [] },
    },
    {
      name: 'DATA|SYN|FIN on an even (server) stream 2',
      frame: encodeFrame(TYPE_DATA, FLAG_SYN | FLAG_FIN, 2, Buffer.from('ab')),
      wire: '000002 13 00000002 6162',
      decoded: { t: 'DATA', streamId: 2, flags: FLAG_SYN | FLAG_FIN, payload: Buffer.from('ab'), pieces: [] },
    },
    {
      name: 'RST stream 9 FlowControlError',
      frame: encodeRst(9, 3),
      wire: '000004 00 00000009 00000003',
      decoded: { t: 'RST', streamId: 9, code: 3 },
    },
    {
      name: 'RST with a code above 2^31 (codes are full u32)',
      frame: encodeRst(11, 0xdeadbeef),
      wire: '000004 00 0000000b deadbeef',
      decoded: { t: 'RST', streamId: 11, code: 0xdeadbeef },
    },
    {
      name: 'WNDINC stream 0x7fffffff (largest id) by 64 KiB',
      frame: encodeWndInc(MAX_STREAM_ID, 0x10000),
      wire: '000004 20 7fffffff 00010000',
      decoded: { t: 'WNDINC', streamId: MAX_STREAM_ID, increment: 0x10000 },
    },
    {
      name: 'GOAWAY last=3 ProtocolError "bye"',
      frame: encodeGoAway(3, 1, 'bye'),
      wire: '00000b 30 00000000 00000003 00000001 627965',
      decoded: { t: 'GOAWAY', lastStreamId: 3, code: 1, debug: Buffer.from('bye') },
    },
    {
      name: 'GOAWAY with no debug text is exactly 8 payload bytes',
      frame: encodeGoAway(0, 0),
      wire: '000008 30 00000000 00000000 00000000',
      decoded: { t: 'GOAWAY', lastStreamId: 0, code: 0, debug: Buffer.alloc(0) },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(c.frame.toString('hex'), hex(c.wire).toString('hex'));
      const { rec, dec } = decodeAll([c.frame]);
      assert.deepEqual(plain(rec.out), plain([c.decoded]));
      assert.equal(dec.failed, false);
    });
  }

  test('the 24-bit length is big-endian across bytes 0..2', () => {
    const payload = Buffer.alloc(0x011170, 0x5a); // 70000 bytes
    const f = encodeFrame(TYPE_DATA, 0, 1, payload);
    assert.equal(f.subarray(0, 8).toString('hex'), '0111701000000001');
    const { rec } = decodeAll([f]);
    assert.equal(rec.out.length, 1);
    assert.equal((rec.out[0] as { payload: Buffer }).payload.length, 70000);
  });

  test('writeFrameHeader at an offset writes the largest length and masks the reserved bit', () => {
    const buf = Buffer.alloc(12, 0xee);
    writeFrameHeader(buf, 2, MAX_FRAME_LENGTH, TYPE_DATA, FLAG_FIN, 0xffffffff);
    assert.equal(buf.toString('hex'), 'eeee' + 'ffffff11' + '7fffffff' + 'eeee');
  });

  test('encodeFrame refuses a payload that does not fit 24 bits', () => {
    assert.throws(() => encodeFrame(TYPE_DATA, 0, 1, new Uint8Array(MAX_FRAME_LENGTH + 1)), RangeError);
  });
});

describe('every frame type with every flag nibble', () => {
  for (let type = 0; type <= 3; type++) {
    test(`type ${type}: flags 0..15 are carried in the low nibble and decode`, () => {
      for (let flags = 0; flags <= 15; flags++) {
        const payload =
          type === TYPE_GOAWAY ? hex('00000005 00000002 6869') : type === TYPE_DATA ? Buffer.from([flags]) : hex('00000007');
        const id = type === TYPE_GOAWAY ? 0 : 2 * flags + 1;
        const f = encodeFrame(type, flags, id, payload);
        assert.equal(f[3], (type << 4) | flags, `byte 3 for type ${type} flags ${flags}`);
        const { rec, dec } = decodeAll([f]);
        assert.equal(dec.failed, false);
        assert.equal(rec.out.length, 1);
        const d = rec.out[0]!;
        switch (type) {
          case TYPE_DATA:
            // DATA reports all four flag bits unchanged; the session looks only at FIN and SYN.
            assert.deepEqual(plain([d]), [{ t: 'DATA', streamId: id, flags, payload: payload.toString('hex') }]);
            break;
          case TYPE_RST:
            assert.deepEqual(d, { t: 'RST', streamId: id, code: 7 });
            break;
          case TYPE_WNDINC:
            assert.deepEqual(d, { t: 'WNDINC', streamId: id, increment: 7 });
            break;
          default:
            assert.deepEqual(plain([d]), [{ t: 'GOAWAY', lastStreamId: 5, code: 2, debug: '6869' }]);
        }
      }
    });
  }
});

describe('reserved bits are ignored on receipt', () => {
  test('the top bit of the stream id', () => {
    const f = hex('000002 10 80000003 6869');
    const { rec } = decodeAll([f]);
    assert.deepEqual(plain(rec.out), [{ t: 'DATA', streamId: 3, flags: 0, payload: '6869' }]);
    const r = decodeAll([hex('000004 00 ffffffff 00000001')]).rec;
    assert.deepEqual(r.out, [{ t: 'RST', streamId: MAX_STREAM_ID, code: 1 }]);
  });

  test('the top bit of GOAWAY last-stream-id', () => {
    const { rec } = decodeAll([hex('000008 30 00000000 80000009 0000000a')]);
    assert.deepEqual(plain(rec.out), [{ t: 'GOAWAY', lastStreamId: 9, code: 10, debug: '' }]);
  });

  test('the top bit of a WNDINC increment (PROTOCOL.md §1: masked off on receipt, as the SDK does)', () => {
    const { rec } = decodeAll([hex('000004 20 00000003 80010000')]);
    assert.deepEqual(rec.out, [{ t: 'WNDINC', streamId: 3, increment: 0x10000 }]);
  });
});

// ---- any chunk split ----

type Model =
  | { t: 'DATA'; streamId: number; flags: number; payload: Uint8Array }
  | { t: 'RST'; streamId: number; code: number }
  | { t: 'WNDINC'; streamId: number; increment: number }
  | { t: 'GOAWAY'; lastStreamId: number; code: number; debug: Uint8Array };

const streamIdArb = fc.integer({ min: 1, max: MAX_STREAM_ID });
const u32Arb = fc.integer({ min: 0, max: 0xffffffff });
const bytesArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
  { weight: 4, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 3000 }) },
);
const frameArb: fc.Arbitrary<Model> = fc.oneof(
  fc.record({ t: fc.constant('DATA' as const), streamId: streamIdArb, flags: fc.integer({ min: 0, max: 15 }), payload: bytesArb }),
  fc.record({ t: fc.constant('RST' as const), streamId: streamIdArb, code: u32Arb }),
  fc.record({ t: fc.constant('WNDINC' as const), streamId: streamIdArb, increment: fc.integer({ min: 0, max: 0x7fffffff }) }),
  fc.record({ t: fc.constant('GOAWAY' as const), lastStreamId: fc.integer({ min: 0, max: MAX_STREAM_ID }), code: u32Arb, debug: bytesArb }),
);

function encodeModel(m: Model): Buffer {
  switch (m.t) {
    case 'DATA':
      return encodeFrame(TYPE_DATA, m.flags, m.streamId, m.payload);
    case 'RST':
      return encodeRst(m.streamId, m.code);
    case 'WNDINC':
      return encodeWndInc(m.streamId, m.increment);
    default:
      return encodeGoAway(m.lastStreamId, m.code, m.debug);
  }
}

function expectedOf(ms: Model[]): unknown[] {
  return plain(
    ms.map((m): Decoded => {
      if (m.t === 'DATA') return { ...m, payload: Buffer.from(m.payload), pieces: [] };
      if (m.t === 'GOAWAY') return { ...m, debug: Buffer.from(m.debug) };
      return m;
    }),
  );
}

/** Cut `buf` at the given points (any order, duplicates give empty chunks). */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = cuts.map((c) => c % (buf.length + 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

describe('decoding is independent of how the input is chunked', () => {
  test('property: random frames, concatenated, cut at random points (empty chunks included), decode to the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 0, maxLength: 25 }),
        fc.array(fc.nat(), { maxLength: 60 }),
        (frames, cuts) => {
          const wire = Buffer.concat(frames.map(encodeModel));
          const { rec, dec } = decodeAll(split(wire, cuts));
          assert.equal(dec.failed, false);
          assert.equal(rec.inProgress, false);
          assert.deepEqual(plain(rec.out), expectedOf(frames));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('property: the same frames fed one byte at a time', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 6 }), (frames) => {
        const wire = Buffer.concat(frames.map(encodeModel));
        const chunks: Buffer[] = [];
        for (let i = 0; i < wire.length; i++) chunks.push(wire.subarray(i, i + 1));
        const { rec } = decodeAll(chunks);
        assert.deepEqual(plain(rec.out), expectedOf(frames));
        // A DATA frame arrives as one piece per input byte (never copied into a reassembly buffer).
        for (const d of rec.out) {
          if (d.t === 'DATA' && d.payload.length > 0) assert.equal(d.pieces.length, d.payload.length);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('nothing is reported until the 8-byte header is complete', () => {
    const f = encodeRst(3, 4);
    const rec = new Recorder();
    const dec = new FrameDecoder(rec, MAX_FRAME_LENGTH);
    for (let i = 0; i < FRAME_HEADER_SIZE + 3; i++) {
      dec.push(f.subarray(i, i + 1));
      assert.equal(rec.out.length, 0, `reported after ${i + 1} bytes`);
    }
    dec.push(f.subarray(FRAME_HEADER_SIZE + 3));
    assert.deepEqual(rec.out, [{ t: 'RST', streamId: 3, code: 4 }]);
  });
});

describe('zero-length DATA frames', () => {
  test('one onData call with an empty payload, first and last both true, frameLength 0', () => {
    const calls: unknown[] = [];
    const handler: FrameHandler = {
      onData: (streamId, flags, payload, first, last, frameLength) =>
        calls.push({ streamId, flags, len: payload.length, first, last, frameLength }),
      onRst: () => assert.fail('onRst'),
      onWndInc: () => assert.fail('onWndInc'),
      onGoAway: () => assert.fail('onGoAway'),
      onProtocolError: (code, msg) => assert.fail(`onProtocolError ${code} ${msg}`),
    };
    const dec = new FrameDecoder(handler, MAX_FRAME_LENGTH);
    const a = encodeFrame(TYPE_DATA, FLAG_FIN, 5);
    const b = encodeFrame(TYPE_DATA, FLAG_SYN, 7);
    // a arrives whole at the end of a chunk; b's header is split, its last byte alone in a chunk; then an empty chunk.
    dec.push(Buffer.concat([a, b.subarray(0, 5)]));
    dec.push(b.subarray(5, 7));
    assert.equal(calls.length, 1);
    dec.push(b.subarray(7));
    dec.push(Buffer.alloc(0));
    assert.deepEqual(calls, [
      { streamId: 5, flags: FLAG_FIN, len: 0, first: true, last: true, frameLength: 0 },
      { streamId: 7, flags: FLAG_SYN, len: 0, first: true, last: true, frameLength: 0 },
    ]);
  });

  test('many empty DATA frames back to back in one chunk', () => {
    const frames = Array.from({ length: 100 }, (_, i) => encodeFrame(TYPE_DATA, i % 4, 2 * i + 1));
    const { rec } = decodeAll([Buffer.concat(frames)]);
    assert.equal(rec.out.length, 100);
    rec.out.forEach((d, i) => assert.deepEqual(plain([d]), [{ t: 'DATA', streamId: 2 * i + 1, flags: i % 4, payload: '' }]));
  });
});

describe('DATA payloads are views into the input, never copies', () => {
  test('a frame inside one chunk arrives as one piece over the same memory', () => {
    // Buffer.alloc never uses the shared pool, so `buffer` identity really means "this chunk's memory".
    const frames = [encodeRst(1, 0), encodeFrame(TYPE_DATA, 0, 3, Buffer.from('hello world')), encodeWndInc(3, 9)];
    const chunk = Buffer.alloc(frames.reduce((n, f) => n + f.length, 0));
    Buffer.concat(frames).copy(chunk);
    const { rec } = decodeAll([chunk]);
    const d = rec.out[1];
    assert.ok(d !== undefined && d.t === 'DATA');
    assert.equal(d.pieces.length, 1);
    const piece = d.pieces[0]!;
    assert.equal(piece.buffer, chunk.buffer);
    assert.equal(piece.byteOffset, chunk.byteOffset + 12 + 8);
    assert.equal(piece.length, 11);
    chunk[12 + 8] = 0x48; // 'H': visible through the piece, so nothing was copied
    assert.equal(piece.toString(), 'Hello world');
  });

  test('a frame spanning chunks arrives as one view per chunk', () => {
    const f = encodeFrame(TYPE_DATA, 0, 3, Buffer.alloc(1000, 7));
    const c1 = Buffer.alloc(300);
    const c2 = Buffer.alloc(f.length - 300);
    f.copy(c1, 0, 0, 300);
    f.copy(c2, 0, 300);
    const { rec } = decodeAll([c1, c2]);
    const d = rec.out[0];
    assert.ok(d !== undefined && d.t === 'DATA');
    assert.equal(d.pieces.length, 2);
    assert.equal(d.pieces[0]!.buffer, c1.buffer);
    assert.equal(d.pieces[0]!.byteOffset, c1.byteOffset + 8);
    assert.equal(d.pieces[1]!.buffer, c2.buffer);
    assert.equal(d.pieces[1]!.byteOffset, c2.byteOffset);
  });
});

// ---- violations ----

describe('framing violations: reported once, then all input ignored', () => {
  function runViolation(chunks: Buffer[], maxFrameLength = 1024 * 1024): Recorder {
    const { rec, dec } = decodeAll(chunks, maxFrameLength);
    assert.equal(dec.failed, true, 'decoder is dead after a violation');
    // Further valid input is ignored.
    const before = rec.out.length;
    dec.push(encodeFrame(TYPE_DATA, FLAG_SYN, 99, Buffer.from('late')));
    dec.push(encodeRst(99, 1));
    assert.equal(rec.out.length, before, 'frames after the violation were reported');
    const errors = rec.out.filter((d) => d.t === 'ERROR');
    assert.equal(errors.length, 1, 'onProtocolError exactly once');
    assert.equal(rec.out.at(-1)!.t, 'ERROR', 'nothing reported after the error');
    return rec;
  }

  for (let type = 4; type <= 15; type++) {
    test(`unknown type ${type} → MUX_PROTOCOL_ERROR; frames before it still arrive, frames after it do not`, () => {
      const bad = Buffer.alloc(8 + 4);
      writeFrameHeader(bad, 0, 4, type, 0, 3);
      const good = encodeFrame(TYPE_DATA, FLAG_SYN, 3, Buffer.from('ok'));
      const rec = runViolation([Buffer.concat([good, bad, encodeRst(3, 0), good])]);
      assert.equal(rec.out.length, 2);
      assert.deepEqual(plain(rec.out.slice(0, 1)), [{ t: 'DATA', streamId: 3, flags: FLAG_SYN, payload: '6f6b' }]);
      const e = rec.out[1] as { code: number; message: string };
      assert.equal(e.code, MUX_PROTOCOL_ERROR);
      assert.match(e.message, new RegExp(`unknown frame type ${type}\\b`));
    });
  }

  test('a length above maxFrameLength (16 MiB - 1 announced) → MUX_FRAME_SIZE_ERROR at the header, no payload needed', () => {
    for (const type of [TYPE_DATA, TYPE_GOAWAY, TYPE_RST, TYPE_WNDINC]) {
      const h = Buffer.alloc(8);
      writeFrameHeader(h, 0, MAX_FRAME_LENGTH, type, 0, type === TYPE_GOAWAY ? 0 : 3);
      const before = process.memoryUsage().arrayBuffers;
      const rec = runViolation([h]);
      assert.ok(process.memoryUsage().arrayBuffers - before < 1024 * 1024, 'decoder allocated for the announced payload');
      assert.equal(rec.out.length, 1);
      assert.equal((rec.out[0] as { code: number }).code, MUX_FRAME_SIZE_ERROR, `type ${type}`);
    }
  });

  test('maxFrameLength itself is accepted, one more byte is not', () => {
    const max = 4096;
    const ok = decodeAll([encodeFrame(TYPE_DATA, 0, 1, Buffer.alloc(max))], max);
    assert.equal(ok.dec.failed, false);
    assert.equal(ok.rec.out.length, 1);
    const rec = runViolation([encodeFrame(TYPE_DATA, 0, 1, Buffer.alloc(max + 1))], max);
    assert.equal((rec.out[0] as { code: number }).code, MUX_FRAME_SIZE_ERROR);
  });

  test('16 MiB length fed byte at a time: rejected as soon as the 8th header byte arrives', () => {
    const h = Buffer.alloc(8);
    writeFrameHeader(h, 0, 0xffffff, TYPE_DATA, FLAG_SYN, 3);
    const rec = new Recorder();
    const dec = new FrameDecoder(rec, 1024 * 1024);
    for (let i = 0; i < 7; i++) {
      dec.push(h.subarray(i, i + 1));
      assert.equal(rec.out.length, 0);
      assert.equal(dec.failed, false);
    }
    dec.push(h.subarray(7, 8));
    assert.equal(dec.failed, true);
    assert.deepEqual(
      rec.out.map((d) => (d as { t: string; code: number }).t + ':' + (d as { code: number }).code),
      ['ERROR:' + MUX_FRAME_SIZE_ERROR],
    );
  });

  for (const [name, type, lengths] of [
    ['RST', TYPE_RST, [0, 3, 5, 8]],
    ['WNDINC', TYPE_WNDINC, [0, 1, 5, 12]],
    ['GOAWAY', TYPE_GOAWAY, [0, 4, 7]],
  ] as const) {
    test(`${name} with length ${lengths.join('/')} → MUX_FRAME_SIZE_ERROR`, () => {
      for (const len of lengths) {
        const f = Buffer.alloc(8 + len);
        writeFrameHeader(f, 0, len, type, 0, type === TYPE_GOAWAY ? 0 : 3);
        const rec = runViolation([Buffer.concat([encodeWndInc(1, 1), f])]);
        assert.deepEqual(rec.out[0], { t: 'WNDINC', streamId: 1, increment: 1 });
        const e = rec.out[1] as { t: string; code: number; message: string };
        assert.equal(e.t, 'ERROR', `${name} length ${len}`);
        assert.equal(e.code, MUX_FRAME_SIZE_ERROR, `${name} length ${len}`);
        assert.match(e.message, new RegExp(`${name} frame with length ${len}\\b`));
      }
    });
  }

  test('GOAWAY longer than 8 + 64 KiB of debug text → MUX_FRAME_SIZE_ERROR at the header (PROTOCOL.md §1)', () => {
    // Control payloads are buffered whole, so the cap must act before the buffer is allocated.
    const ok = Buffer.concat([encodeGoAway(1, 0, Buffer.alloc(64 * 1024, 0x61))]);
    const good = decodeAll([ok], 1024 * 1024);
    assert.equal(good.dec.failed, false);
    assert.equal((good.rec.out[0] as { debug: Buffer }).debug.length, 64 * 1024);
    const h = Buffer.alloc(8);
    writeFrameHeader(h, 0, 8 + 64 * 1024 + 1, TYPE_GOAWAY, 0, 0);
    const before = process.memoryUsage().arrayBuffers;
    const rec = runViolation([h], 1024 * 1024);
    assert.ok(process.memoryUsage().arrayBuffers - before < 32 * 1024, 'decoder allocated for the announced payload');
    const e = rec.out[0] as { code: number; message: string };
    assert.equal(e.code, MUX_FRAME_SIZE_ERROR);
    assert.match(e.message, /GOAWAY frame with length 65545\b/);
  });

  test('stop() makes the decoder ignore input without reporting an error', () => {
    const rec = new Recorder();
    const dec = new FrameDecoder(rec, MAX_FRAME_LENGTH);
    const f = encodeFrame(TYPE_DATA, 0, 3, Buffer.alloc(100));
    dec.push(f.subarray(0, 50)); // mid-frame
    dec.stop();
    dec.push(f.subarray(50));
    dec.push(encodeRst(3, 1));
    assert.equal(dec.failed, true);
    assert.equal(rec.out.length, 0);
  });
});
