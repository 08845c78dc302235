// HDR recorders → encode → merge → classic buckets: counts survive the trip exactly, a merge of two workers equals
// the sum of its parts, buckets are cumulative and end at the count, sums are exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BUCKET_EDGES_SECONDS,
  LatencyHistograms,
  MAX_TRACKED_US,
  mergeHistograms,
  newHistogram,
  type HistogramSlot,
} from '../../../src/metrics/latency-histograms.js';
import { RELAY_HISTOGRAM_SLOTS, RelayRecorder, TYPE_HTTP } from '../../../src/metrics/relay-recorder.js';
import { encodeIntoCompressedBase64 } from 'hdr-histogram-js';

const SLOTS: HistogramSlot[] = [
  { metric: 'x_seconds', labels: { kind: 'a' } },
  { metric: 'x_seconds', labels: { kind: 'b' } },
];

test('bucket edges run from 100 µs to 30 s, strictly increasing', () => {
  assert.equal(BUCKET_EDGES_SECONDS[0], 0.0001);
  assert.equal(BUCKET_EDGES_SECONDS[BUCKET_EDGES_SECONDS.length - 1], 30);
  for (let i = 1; i < BUCKET_EDGES_SECONDS.length; i++) assert.ok(BUCKET_EDGES_SECONDS[i]! > BUCKET_EDGES_SECONDS[i - 1]!);
});

test('values land in the first bucket at or above them; buckets are cumulative; +Inf is the count', () => {
  const h = new LatencyHistograms(SLOTS);
  const values = [50, 100, 101, 999, 1000, 7_000, 2_000_000, 29_000_000, 45_000_000, 90_000_000];
  for (const v of values) h.record(0, v);
  const [a, b] = mergeHistograms(SLOTS, [h.encode()]);
  assert.equal(a!.count, values.length);
  assert.equal(b!.count, 0);
  assert.deepEqual(b!.cumulative, BUCKET_EDGES_SECONDS.map(() => 0));
  const expect = BUCKET_EDGES_SECONDS.map((le) => values.filter((v) => Math.min(v, MAX_TRACKED_US) <= le * 1e6).length);
  assert.deepEqual(a!.cumulative, expect);
  for (let i = 1; i < a!.cumulative.length; i++) assert.ok(a!.cumulative[i]! >= a!.cumulative[i - 1]!);
  assert.ok(a!.cumulative[a!.cumulative.length - 1]! <= a!.count);
  // _sum is exact: a value above the 60 s HDR cap counts in full (it lands in +Inf either way).
  const sumUs = values.reduce((s, v) => s + v, 0);
  assert.equal(a!.sumSeconds, sumUs / 1e6);
});

test('a merge of two workers equals the sum of its parts', () => {
  const w1 = new LatencyHistograms(SLOTS);
  const w2 = new LatencyHistograms(SLOTS);
  const both = new LatencyHistograms(SLOTS);
  let seed = 7;
  const rand = (): number => (seed = (seed * 48271) % 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 3000; i++) {
    const v = Math.floor(Math.exp(rand() * Math.log(40_000_000)));
    const slot = i % 2;
    (i % 3 === 0 ? w1 : w2).record(slot, v);
    both.record(slot, v);
  }
  const merged = mergeHistograms(SLOTS, [w1.encode(), w2.encode()]);
  const one = mergeHistograms(SLOTS, [both.encode()]);
  const parts = [mergeHistograms(SLOTS, [w1.encode()]), mergeHistograms(SLOTS, [w2.encode()])];
  for (let s = 0; s < SLOTS.length; s++) {
    assert.deepEqual(merged[s]!.cumulative, one[s]!.cumulative);
    assert.equal(merged[s]!.count, parts[0]![s]!.count + parts[1]![s]!.count);
    assert.deepEqual(merged[s]!.cumulative, parts[0]![s]!.cumulative.map((c, i) => c + parts[1]![s]!.cumulative[i]!));
    assert.ok(Math.abs(merged[s]!.sumSeconds - one[s]!.sumSeconds) < 1e-6);
  }
});

test('the relay recorder records nothing when metrics are off', () => {
  const on = new RelayRecorder(true);
  const off = new RelayRecorder(false);
  for (const r of [on, off]) {
    r.requestDone(TYPE_HTTP, 0, 1.5);
    r.connectionEnded(TYPE_HTTP, 'ok', 10, 20);
    r.error('BURROW_ERR_HTTP_BAD_REQUEST');
  }
  const [a, b] = [on.snapshot(), off.snapshot()];
  const count = (s: typeof a): number => mergeHistograms(RELAY_HISTOGRAM_SLOTS, [s.histograms]).reduce((n, h) => n + h.count, 0);
  assert.equal(count(a), 1);
  assert.equal(count(b), 0);
  assert.equal(a.connections.reduce((x, y) => x + y), 1);
  assert.equal(b.connections.reduce((x, y) => x + y), 0);
  assert.deepEqual(a.errors, { BURROW_ERR_HTTP_BAD_REQUEST: 1 });
  assert.deepEqual(b.errors, {});
});

test('record() computes HDR indexes itself and matches recordValue exactly (edges, powers of two, random values)', () => {
  const lh = new LatencyHistograms(SLOTS);
  assert.equal((lh as unknown as { indexed: boolean }).indexed, true, 'the indexed path is the one in use');
  const ref = newHistogram(); // the same layout, filled by the library's own recordValue
  const values: number[] = [1, 2, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, MAX_TRACKED_US - 1, MAX_TRACKED_US];
  for (let k = 1; k < 26; k++) values.push(2 ** k - 1, 2 ** k, 2 ** k + 1);
  let x = 12345;
  for (let i = 0; i < 20_000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31; // deterministic, spread over 1 µs .. 60 s on a log scale
    values.push(Math.max(1, Math.round(Math.exp((x / 2 ** 31) * Math.log(MAX_TRACKED_US)))));
  }
  for (const v of values) {
    lh.record(0, v);
    ref.recordValue(v);
  }
  assert.equal(lh.encode().hdr[0], encodeIntoCompressedBase64(ref), 'identical counts');
  assert.equal(lh.count(0), ref.totalCount);
  for (const p of [0, 50, 90, 99, 99.9, 100]) assert.equal(lh.percentile(0, p), ref.getValueAtPercentile(p), `p${p}`);
});

test('a bucket past 2^32 values survives encode and merge (long uptime at high rates)', () => {
  // Before: 32-bit counts. One worker's bucket wrapped (its _count went backwards); two workers with 2^31 each made
  // the merge throw, and every later /metrics scrape failed until a restart.
  const big = 2 ** 32 + 5;
  const enc = (): { hdr: string[]; sumUs: number[]; count: number[] } => {
    const h = newHistogram();
    h.recordValueWithCount(1000, big);
    h.recordValue(4000); // not on an edge: HDR's equivalence range of 5000 reaches above 5 ms
    return { hdr: [encodeIntoCompressedBase64(h), ''], sumUs: [1000 * big + 4000, 0], count: [big + 1, 0] };
  };
  const [m] = mergeHistograms(SLOTS, [enc(), enc()]);
  assert.equal(m!.count, 2 * (big + 1));
  const le1ms = BUCKET_EDGES_SECONDS.indexOf(0.001);
  assert.equal(m!.cumulative[le1ms], 2 * big);
  assert.equal(m!.cumulative[BUCKET_EDGES_SECONDS.indexOf(0.005)], 2 * (big + 1));
});
