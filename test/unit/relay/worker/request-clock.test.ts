// RequestClock: each forwarded request timed in order against the responses the tracker sees complete: keep-alive,
// pipelined answers in one chunk and across chunks, a response cut by the close, a queue that grows past its ring.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RequestClock } from '../../../../src/relay/worker/request-clock.js';
import type { RelayRecorder } from '../../../../src/metrics/relay-recorder.js';

/** Records what the clock reports: TTFB starts, and [start, last byte] per completed request. */
function recorder(): { rec: RelayRecorder; ttfb: number[]; done: Array<[number, number]> } {
  const ttfb: number[] = [];
  const done: Array<[number, number]> = [];
  const rec = {
    ttfb: (_type: number, startedAt: number) => ttfb.push(startedAt),
    requestDone: (_type: number, startedAt: number, lastByteAt: number) => done.push([startedAt, lastByteAt]),
  } as unknown as RelayRecorder;
  return { rec, ttfb, done };
}

test('keep-alive: one request at a time, each recorded when its response completes', () => {
  const { rec, ttfb, done } = recorder();
  const c = new RequestClock(rec, 0);
  c.begin(10);
  c.bytes(12);
  c.settle(1, true); // the head came, the body not yet
  assert.deepEqual([ttfb, done], [[10], []]);
  c.bytes(15);
  c.settle(0, false);
  assert.deepEqual(done, [[10, 15]]);
  c.begin(20);
  c.bytes(21);
  c.settle(0, false);
  assert.deepEqual([ttfb, done, c.waiting], [[10, 20], [[10, 15], [20, 21]], 0]);
});

test('pipelined: answers in one chunk each get a TTFB and a duration; one begun at the end of a chunk gets its TTFB there', () => {
  const { rec, ttfb, done } = recorder();
  const c = new RequestClock(rec, 0);
  for (const t of [1, 2, 3, 4]) c.begin(t);
  c.bytes(10);
  c.settle(2, true); // requests 1 and 2 answered in full; request 3's response began in the same chunk
  assert.deepEqual(ttfb, [1, 2, 3]);
  assert.deepEqual(done, [[1, 10], [2, 10]]);
  c.bytes(11);
  c.settle(1, false); // request 3 done, exactly at the boundary: request 4 has not begun
  assert.deepEqual(ttfb, [1, 2, 3]);
  c.bytes(12);
  c.settle(0, false);
  assert.deepEqual(ttfb, [1, 2, 3, 4]);
  assert.deepEqual(done, [[1, 10], [2, 10], [3, 11], [4, 12]]);
});

test('endOldest: a begun response ending with the connection is recorded at its last byte; one never begun is not', () => {
  const { rec, done } = recorder();
  const c = new RequestClock(rec, 0);
  c.begin(1);
  c.begin(2);
  c.bytes(5);
  c.settle(2, true);
  c.endOldest();
  c.endOldest();
  c.endOldest(); // nothing left: no effect
  assert.deepEqual([done, c.waiting], [[[1, 5]], 0]);
});

test('a queue deeper than its ring grows and keeps the order', () => {
  const { rec, done } = recorder();
  const c = new RequestClock(rec, 0);
  for (let i = 0; i < 3; i++) c.begin(i); // the ring's head moves off 0 before it grows
  c.bytes(100);
  c.settle(1, false);
  for (let i = 3; i < 40; i++) c.begin(i);
  assert.equal(c.waiting, 38);
  c.bytes(200);
  c.settle(0, false);
  assert.deepEqual(done.map((d) => d[0]), Array.from({ length: 40 }, (_, i) => i));
});
