// The worker crash test hook (docs/testing.md): with BURROW_TEST_HOOKS=1 a worker can be made to crash and piscina
// replaces it; without the variable the hook refuses. Real relay, real worker threads.
// Also: a connection handed over while the pool is being destroyed is closed by the pool (no worker will).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { isBurrowError } from '../../src/core/errors.js';
import { startRelayFixture, waitFor, withTimeout } from '../helpers/relay-fixture.js';

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

test('a connection handed over once the pool is being destroyed is closed, not leaked', async (t) => {
  // No worker takes it, so its descriptor is the pool's to close. Before: only a "Terminating" failure before
  // destroy() was closed; during destroy the descriptor stayed open until the process exited.
  const fx = await startRelayFixture({ workers: 1 });
  const server = net.createServer();
  t.after(async () => {
    server.close();
    await fx.close();
  });
  if (!fx.relay.threaded) {
    t.skip('native addon unavailable: single-threaded relay has no pool');
    return;
  }
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  t.after(() => client.destroy()); // when the test fails, the leaked descriptor must not keep this file running
  const clientClosed = once(client, 'close');
  const [sock] = await accepted;
  const destroyed = fx.relay.dispatcher.destroy();
  const owned = fx.relay.dispatcher.dispatchAgent(sock, Buffer.alloc(0), { remoteAddress: '127.0.0.1', remotePort: 1, acceptedAt: Date.now() });
  assert.equal(owned, true, 'the handover itself succeeds (dup, then the task is queued)');
  await destroyed;
  await withTimeout('the client to see its connection closed', clientClosed, 10_000);
});
