// LoopMonitor: fixed windows, read without reset, so every scraper sees the same values (two Prometheus replicas used
// to split one interval between them: each scrape reset what the other would have read).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LoopMonitor } from '../../../src/metrics/loop-monitor.js';

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // keep the loop busy: the delay histogram and the utilisation see it
  }
}

test('a busy window is reported to every reader alike, and is replaced by the next (quiet) window', async (t) => {
  const m = new LoopMonitor(0); // windows end when the test says
  t.after(() => m.close());
  await sleep(30); // the delay monitor measures from its first tick on
  busy(150);
  await sleep(30); // its next tick records the delay
  // Before the first window ends: the window so far, read without a reset.
  const early = m.sample();
  assert.ok(early.utilization > 0.3, `utilization so far ${early.utilization}`);
  assert.deepEqual(m.sample().maxSeconds, early.maxSeconds);
  m.rotate();
  const a = m.sample();
  busy(20);
  const b = m.sample(); // a second scraper, later: the same complete window
  assert.deepEqual(b, a);
  assert.ok(a.utilization > 0.3, `busy window utilization ${a.utilization}`);
  assert.ok(a.maxSeconds > 0.1, `busy window max delay ${a.maxSeconds}`);
  await sleep(200); // a quiet window
  m.rotate();
  const quiet = m.sample();
  assert.ok(quiet.utilization < a.utilization, `quiet ${quiet.utilization} vs busy ${a.utilization}`);
  assert.ok(quiet.maxSeconds < a.maxSeconds, `quiet window max delay ${quiet.maxSeconds}`);
});
