// FdClaims (src/relay/fd-claims.ts): exactly one of acceptor and worker ends up owning a posted descriptor, a worker
// thread sees the acceptor's ring, and a slot whose descriptor is still unclaimed is never handed out again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { FdClaims } from '../../../src/relay/fd-claims.js';

test('a worker that takes the descriptor owns it: the acceptor cannot reclaim it afterwards', () => {
  const acceptor = new FdClaims();
  const worker = new FdClaims(acceptor.buffer);
  const slot = acceptor.post(41);
  assert.equal(worker.take(slot, 41), true);
  assert.equal(acceptor.reclaim(slot, 41), false);
});

test('a descriptor the acceptor reclaimed first is refused to the worker', () => {
  const acceptor = new FdClaims();
  const worker = new FdClaims(acceptor.buffer);
  const slot = acceptor.post(42);
  assert.equal(acceptor.reclaim(slot, 42), true);
  assert.equal(worker.take(slot, 42), false);
  assert.equal(acceptor.reclaim(slot, 42), false, 'reclaimed once only');
});

test('a slot holding an unclaimed descriptor is skipped; a freed slot is used again', () => {
  const claims = new FdClaims();
  const first = claims.post(7);
  for (let i = 0; i < (1 << 16) - 1; i++) assert.equal(claims.take(claims.post(100 + (i % 50)), 100 + (i % 50)), true);
  const again = claims.post(8); // the ring wrapped: slot `first` still holds 7, unclaimed
  assert.notEqual(again, first);
  assert.equal(claims.take(first, 7), true, 'the old task can still be taken');
  assert.equal(claims.take(again, 8), true);
});

test('untracked tasks (slot -1) are taken by the worker and never reclaimed', () => {
  const claims = new FdClaims();
  assert.equal(claims.take(-1, 9), true);
  assert.equal(claims.reclaim(-1, 9), false);
});

test('the ring is shared with a worker thread', async () => {
  const acceptor = new FdClaims();
  const slot = acceptor.post(55);
  const url = new URL('../../../src/relay/fd-claims.js', import.meta.url).href;
  const w = new Worker(
    `import(${JSON.stringify(url)}).then(({ FdClaims }) => {
       const { parentPort, workerData } = require('node:worker_threads');
       parentPort.postMessage(new FdClaims(workerData.buffer).take(workerData.slot, 55));
     });`,
    { eval: true, workerData: { buffer: acceptor.buffer, slot } },
  );
  const [took] = (await Promise.all([new Promise((r) => w.once('message', r)), new Promise((r) => w.once('exit', r))])) as [boolean, unknown];
  assert.equal(took, true);
  assert.equal(acceptor.reclaim(slot, 55), false, 'the worker took it');
});
