// addSnapshots (src/metrics/relay-metrics.ts): the numbers of replaced workers are added into one snapshot, so the
// relay's counters never go backwards however many workers it replaces, and that snapshot stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeHistograms } from '../../../src/metrics/latency-histograms.js';
import { addSnapshots } from '../../../src/metrics/relay-metrics.js';
import {
  MAX_ENDPOINT_ROWS,
  OTHER_ENDPOINT,
  RELAY_HISTOGRAM_SLOTS,
  RelayRecorder,
  TYPE_HTTP,
  type RecorderSnapshot,
} from '../../../src/metrics/relay-recorder.js';

/** A worker's snapshot after `n` requests of `us` µs each, with a per-endpoint row per hostname given. */
function workerSnapshot(n: number, us: number, hosts: string[], code: string): RecorderSnapshot {
  const r = new RelayRecorder(true, true);
  for (let i = 0; i < n; i++) {
    r.requestDone(TYPE_HTTP, 0, us / 1000);
    r.connectionEnded(TYPE_HTTP, 'closed', 100, 1000);
  }
  for (const h of hosts) r.endpointConnectionEnded(r.endpointRow(h), 10, 20);
  r.error(code);
  return r.snapshot();
}

test('addSnapshots adds counters, bytes, errors, per-endpoint rows and histograms of two workers', () => {
  const a = workerSnapshot(30, 500, ['a.example', 'b.example'], 'BURROW_ERR_UPSTREAM_UNAVAILABLE');
  const b = workerSnapshot(12, 40_000, ['b.example'], 'BURROW_ERR_UPSTREAM_UNAVAILABLE');
  const sum = addSnapshots(a, b);
  assert.deepEqual(sum.connections, a.connections.map((v, i) => v + b.connections[i]!));
  assert.deepEqual(sum.bytesIn, a.bytesIn.map((v, i) => v + b.bytesIn[i]!));
  assert.deepEqual(sum.bytesOut, a.bytesOut.map((v, i) => v + b.bytesOut[i]!));
  assert.equal(sum.errors['BURROW_ERR_UPSTREAM_UNAVAILABLE'], 2);
  assert.deepEqual(sum.perEndpoint!['b.example'], a.perEndpoint!['b.example']!.map((v, i) => v + b.perEndpoint!['b.example']![i]!));
  assert.deepEqual(sum.perEndpoint!['a.example'], a.perEndpoint!['a.example']);
  // Histograms: the folded set merges to exactly what merging both sets does.
  const folded = mergeHistograms(RELAY_HISTOGRAM_SLOTS, [sum.histograms]);
  const both = mergeHistograms(RELAY_HISTOGRAM_SLOTS, [a.histograms, b.histograms]);
  assert.deepEqual(folded, both);
  const req = folded.find((h) => h.slot.metric === 'burrow_request_duration_seconds' && h.slot.labels['endpoint_type'] === 'http')!;
  assert.equal(req.count, 42);
});

test('folding many replaced workers keeps counters growing and per-endpoint rows bounded', () => {
  let retired: RecorderSnapshot | null = null;
  let previous = 0;
  for (let w = 0; w < 100; w++) {
    // Each replaced worker saw 20 hostnames of its own: 2000 distinct names in all.
    const snap = workerSnapshot(1, 100, Array.from({ length: 20 }, (_, i) => `h${w}-${i}.example`), 'BURROW_ERR_MUX_TRANSPORT');
    retired = retired === null ? snap : addSnapshots(retired, snap);
    const total = retired.connections.reduce((s, v) => s + v, 0);
    assert.ok(total > previous, `worker ${w}: connections ${total} must grow past ${previous}`);
    previous = total;
  }
  const rows = Object.keys(retired!.perEndpoint!);
  assert.ok(rows.length <= MAX_ENDPOINT_ROWS + 1, `${rows.length} per-endpoint rows`);
  assert.ok(rows.includes(OTHER_ENDPOINT));
  const connections = Object.values(retired!.perEndpoint!).reduce((s, row) => s + row[0]!, 0);
  assert.equal(connections, 2000, 'no per-endpoint count is lost when names fold into the shared row');
});

test('with the rows full, a retired share of an endpoint live workers still count keeps its own row (no series goes down)', () => {
  // Fill the retired rows with names nobody counts any more.
  let retired = workerSnapshot(1, 100, Array.from({ length: MAX_ENDPOINT_ROWS }, (_, i) => `old${i}.example`), 'BURROW_ERR_MUX_TRANSPORT');
  const dying = workerSnapshot(1, 100, ['busy.example', 'gone.example'], 'BURROW_ERR_MUX_TRANSPORT');
  retired = addSnapshots(retired, dying, new Set(['busy.example']));
  // burrow_endpoint_*{endpoint="busy.example"} = retired + live: the dying worker's share must stay in it.
  assert.deepEqual(retired.perEndpoint!['busy.example'], dying.perEndpoint!['busy.example']);
  // A name no live worker counts still folds into the shared row.
  assert.equal(retired.perEndpoint!['gone.example'], undefined);
  assert.deepEqual(retired.perEndpoint![OTHER_ENDPOINT], dying.perEndpoint!['gone.example']);
});
