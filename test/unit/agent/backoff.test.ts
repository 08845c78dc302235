// Backoff: exponential ceilings with full jitter (base 1 s, cap 30 s), reset after a healthy session (issue #4).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff } from '../../../src/agent/backoff.js';

test('defaults: base 1 s, cap 30 s, reset after 30 s', () => {
  const b = new Backoff();
  assert.equal(b.baseMs, 1000);
  assert.equal(b.capMs, 30_000);
  assert.equal(b.resetAfterMs, 30_000);
});

test('ceilings double from the base up to the cap', () => {
  const b = new Backoff({ random: () => 0.999999 });
  const got: number[] = [];
  for (let i = 0; i < 8; i++) got.push(b.ceiling(), b.next());
  const ceilings = got.filter((_, i) => i % 2 === 0);
  assert.deepEqual(ceilings, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  for (let i = 0; i < ceilings.length; i++) assert.equal(got[2 * i + 1], Math.floor(0.999999 * ceilings[i]!));
});

test('full jitter: delays spread over [0, ceiling), never above it', () => {
  const b = new Backoff({ baseMs: 100, capMs: 100 });
  const seen = Array.from({ length: 2000 }, () => b.next());
  assert.ok(Math.min(...seen) >= 0);
  assert.ok(Math.max(...seen) < 100);
  assert.ok(Math.min(...seen) < 10 && Math.max(...seen) > 90, 'the whole window is used');
});

test('a session that stayed up long enough resets the sequence; a short one does not', () => {
  const b = new Backoff({ random: () => 0.5, resetAfterMs: 30_000 });
  b.next();
  b.next();
  b.next();
  assert.equal(b.ceiling(), 8000);
  b.sessionEnded(29_999);
  assert.equal(b.ceiling(), 8000);
  b.sessionEnded(30_000);
  assert.equal(b.ceiling(), 1000);
  assert.equal(b.attempt, 0);
});

test('a huge attempt count stays at the cap', () => {
  const b = new Backoff();
  b.attempt = 5000;
  assert.equal(b.ceiling(), 30_000);
});

test('rejects nonsense settings', () => {
  assert.throws(() => new Backoff({ baseMs: 0 }), RangeError);
  assert.throws(() => new Backoff({ baseMs: 10, capMs: 5 }), RangeError);
});
