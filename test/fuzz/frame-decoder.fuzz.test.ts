// Fuzzer for the muxado frame decoder (src/protocol/frame-decoder.ts): random bytes and sequences of encoded frames
// (valid and with wild lengths/types/flags), fed in random chunk splits. Properties: no throw; the decoded events
// (DATA payloads joined per frame) do not depend on the split; at most one protocol error and nothing after it;
// assembled control payloads stay within the GOAWAY bound whatever the announced length. DESIGN.md §6 Mux.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameDecoder, type FrameHandler } from '../../src/protocol/frame-decoder.js';
import { GOAWAY_MAX_PAYLOAD_SIZE, writeFrameHeader } from '../../src/protocol/frame.js';
import { bytesArb, cutsArb, fuzzParams, splitAt } from './fuzz-support.js';

const MAX_FRAME = 64 * 1024;

class Log implements FrameHandler {
  readonly events: string[] = [];
  private data: Buffer[] = [];
  errors = 0;
  onData(streamId: number, flags: number, payload: Buffer, first: boolean, last: boolean, frameLength: number): void {
    assert.equal(this.errors, 0, 'event after protocol error');
    if (first) this.data = [];
    this.data.push(Buffer.from(payload));
    if (last) this.events.push(`DATA ${streamId} ${flags} ${frameLength} ${Buffer.concat(this.data).toString('hex')}`);
  }
  onRst(streamId: number, code: number): void {
    assert.equal(this.errors, 0, 'event after protocol error');
    this.events.push(`RST ${streamId} ${code}`);
  }
  onWndInc(streamId: number, increment: number): void {
    assert.equal(this.errors, 0, 'event after protocol error');
    this.events.push(`WNDINC ${streamId} ${increment}`);
  }
  onGoAway(lastStreamId: number, code: number, debug: Buffer): void {
    assert.equal(this.errors, 0, 'event after protocol error');
    this.events.push(`GOAWAY ${lastStreamId} ${code} ${debug.toString('hex')}`);
  }
  onProtocolError(code: number, message: string): void {
    this.errors++;
    this.events.push(`ERROR ${code} ${message}`);
  }
}

function decode(chunks: Buffer[]): { log: Log; maxControl: number } {
  const log = new Log();
  const d = new FrameDecoder(log, MAX_FRAME);
  const internals = d as unknown as { control: Buffer };
  let maxControl = 0;
  for (const c of chunks) {
    d.push(c);
    maxControl = Math.max(maxControl, internals.control.length);
  }
  assert.ok(log.errors <= 1, 'protocol error reported twice');
  return { log, maxControl };
}

/** One frame: header fields drawn wide (any type, flags, id, a length that may disagree with the payload). */
const frameArb = fc
  .record({
    type: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 3 }) }, fc.integer({ min: 4, max: 15 })),
    flags: fc.integer({ min: 0, max: 15 }),
    streamId: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 0x7fffffff })),
    payload: fc.oneof(
      { weight: 4, arbitrary: bytesArb(40) },
      fc.constantFrom(4, 8, 12).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    ),
    lie: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, fc.integer({ min: -3, max: 3 }), fc.constantFrom(0xffffff, MAX_FRAME + 1, GOAWAY_MAX_PAYLOAD_SIZE + 1)),
  })
  .map((f) => {
    const length = Math.max(0, Math.min(0xffffff, f.payload.length + f.lie));
    const header = Buffer.alloc(8);
    writeFrameHeader(header, 0, length, f.type, f.flags, f.streamId);
    return Buffer.concat([header, f.payload]);
  });

test('frame sequences in random chunk splits: no throw, same events as one chunk, bounded control buffer', () => {
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 8 }), cutsArb, (frames, cuts) => {
      const buf = Buffer.concat(frames);
      const split = decode(splitAt(buf, cuts));
      const whole = decode([buf]);
      assert.deepEqual(split.log.events, whole.log.events);
      assert.ok(split.maxControl <= GOAWAY_MAX_PAYLOAD_SIZE, `control buffer grew to ${split.maxControl}`);
    }),
    fuzzParams(),
  );
});

test('random bytes in random chunk splits: no throw, same events as one chunk', () => {
  fc.assert(
    fc.property(bytesArb(400), cutsArb, (bytes, cuts) => {
      const buf = Buffer.from(bytes);
      assert.deepEqual(decode(splitAt(buf, cuts)).log.events, decode([buf]).log.events);
    }),
    fuzzParams(),
  );
});
