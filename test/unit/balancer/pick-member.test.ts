// Pure pickers: exact round-robin, uniform random, least-outstanding, P2C over EWMA, and no pick when all are out.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pickMember, updateEwma, type PickCandidate, type PickState } from '../../../src/balancer/pick-member.js';

function members(n: number, f: (i: number) => Partial<PickCandidate> = () => ({})): PickCandidate[] {
  return Array.from({ length: n }, (_, i) => ({ available: true, outstanding: 0, ewmaUs: 0, ...f(i) }));
}

/** Deterministic PRNG (mulberry32) so tolerances cannot flake. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('round-robin visits members in order and skips unavailable ones', () => {
  const st: PickState = { cursor: 0 };
  const m = members(3);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(() => pickMember('round-robin', m, st, Math.random)), [0, 1, 2, 0, 1, 2]);
  const m2 = members(3, (i) => ({ available: i !== 1 }));
  assert.deepEqual([0, 1, 2, 3].map(() => pickMember('round-robin', m2, st, Math.random)), [0, 2, 0, 2]);
});

test('random is uniform over available members (3000 picks, each within 10 % of a third)', () => {
  const rand = seeded(42);
  const m = members(3);
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[pickMember('random', m, { cursor: 0 }, rand)]!++;
  for (const c of counts) assert.ok(Math.abs(c - 1000) < 100, `counts ${counts.join(',')}`);
  const m2 = members(3, (i) => ({ available: i === 2 }));
  for (let i = 0; i < 20; i++) assert.equal(pickMember('random', m2, { cursor: 0 }, rand), 2);
});

test('least-outstanding prefers the idle member, rotates among ties', () => {
  const st: PickState = { cursor: 0 };
  const m = members(3, (i) => ({ outstanding: [5, 0, 3][i] }));
  assert.equal(pickMember('least-outstanding', m, st, Math.random), 1);
  const ties = members(3);
  const seen = new Set([0, 1, 2].map(() => pickMember('least-outstanding', ties, st, Math.random)));
  assert.equal(seen.size, 3);
  const m2 = members(3, (i) => ({ outstanding: [5, 0, 3][i], available: i !== 1 }));
  assert.equal(pickMember('least-outstanding', m2, st, Math.random), 2);
});

test('p2c-ewma sends little traffic to the slow member and tries unsampled members first', () => {
  const rand = seeded(7);
  const m = members(3, (i) => ({ ewmaUs: i === 0 ? 50_000 : 500 }));
  let slow = 0;
  for (let i = 0; i < 3000; i++) if (pickMember('p2c-ewma', m, { cursor: 0 }, rand) === 0) slow++;
  // The slow one wins only when both samples are itself — impossible with distinct samples.
  assert.equal(slow, 0);
  const fresh = members(2, (i) => ({ ewmaUs: i === 0 ? 800 : 0 }));
  assert.equal(pickMember('p2c-ewma', fresh, { cursor: 0 }, rand), 1);
  // …but an unsampled member with connections piling up does not take every new one.
  const busyFresh = members(2, (i) => ({ ewmaUs: i === 0 ? 800 : 0, outstanding: i === 0 ? 0 : 5 }));
  assert.equal(pickMember('p2c-ewma', busyFresh, { cursor: 0 }, rand), 0);
  const one = members(3, (i) => ({ available: i === 0 }));
  assert.equal(pickMember('p2c-ewma', one, { cursor: 0 }, rand), 0);
});

test('no available member → -1 for every strategy', () => {
  const m = members(2, () => ({ available: false }));
  for (const s of ['random', 'round-robin', 'least-outstanding', 'p2c-ewma'] as const) {
    assert.equal(pickMember(s, m, { cursor: 0 }, Math.random), -1);
    assert.equal(pickMember(s, [], { cursor: 0 }, Math.random), -1);
  }
});

test('updateEwma takes the first sample as is, then moves by alpha', () => {
  assert.equal(updateEwma(0, 1000, 0.3), 1000);
  assert.equal(updateEwma(1000, 2000, 0.25), 1250);
});
