// The worker crash test hook (docs/testing.md): with BURROW_TEST_HOOKS=1 a worker can be made to crash and piscina
// replaces it; without the variable the hook refuses. Real relay, real worker threads.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBurrowError } from '../../src/core/errors.js';
import { startRelayFixture, waitFor } from '../helpers/relay-fixture.js';

test('crashWorkerForTest refuses without BURROW_TEST_HOOKS=1', async () => {
  const saved = process.env['BURROW_TEST_HOOKS'];
  delete process.env['BURROW_TEST_HOOKS'];
  const fx = await startRelayFixture();
  try {
    assert.throws(() => fx.relay.dispatcher.crashWorkerForTest(), (e) => isBurrowError(e, 'BURROW_ERR_RELAY_TEST_HOOK'));
    assert.equal(fx.relay.dispatcher.workerIds().length, 2);
  } finally {
    if (saved !== undefined) process.env['BURROW_TEST_HOOKS'] = saved;
    await fx.close();
  }
});

test('crashWorkerForTest crashes one worker (round-robin) and the pool replaces it', async (t) => {
  process.env['BURROW_TEST_HOOKS'] = '1';
  const fx = await startRelayFixture();
  t.after(() => {
    delete process.env['BURROW_TEST_HOOKS'];
    return fx.close();
  });
  if (!fx.relay.threaded) {
    t.skip('native addon unavailable: single-threaded relay has no workers');
    return;
  }
  const before = fx.relay.dispatcher.workerIds();
  assert.equal(before.length, 2);
  const crashed = fx.relay.dispatcher.crashWorkerForTest();
  assert.ok(before.includes(crashed));
  const after = await waitFor('the crashed worker to be replaced', () => {
    const ids = fx.relay.dispatcher.workerIds();
    return ids.length === 2 && !ids.includes(crashed) ? ids : undefined;
  });
  const survivor = before.find((id) => id !== crashed)!;
  assert.ok(after.includes(survivor), 'the other worker lives on');
  // Round-robin: the next call picks the worker that was not crashed yet.
  const second = fx.relay.dispatcher.crashWorkerForTest();
  assert.equal(second, survivor);
  await waitFor('the second crashed worker to be replaced', () => {
    const ids = fx.relay.dispatcher.workerIds();
    return ids.length === 2 && !ids.includes(second) ? ids : undefined;
  });
});
