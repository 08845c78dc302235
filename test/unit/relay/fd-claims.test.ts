// FdClaims (src/relay/fd-claims.ts): exactly one of acceptor and worker ends up owning a posted descriptor, tickets
// tell apart two connections that got the same descriptor number, a worker thread sees the acceptor's ring, and a
// ring whose workers stopped reading refuses instead of overwriting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { FdClaims, type FdClaim } from '../../../src/relay/fd-claims.js';

function posted(claims: FdClaims): FdClaim {
  const c = claims.post();
  assert.ok(c !== null, 'a free slot');
  return c;
}

test('whoever claims first owns the descriptor: a worker that took it, or an acceptor that reclaimed it', () => {
  const acceptor = new FdClaims();
  const worker = new FdClaims(acceptor.buffer);
  const a = posted(acceptor);
  assert.equal(worker.claim(a.slot, a.ticket), true);
  assert.equal(acceptor.claim(a.slot, a.ticket), false, 'the worker owns it');
  const b = posted(acceptor);
  assert.equal(acceptor.claim(b.slot, b.ticket), true);
  assert.equal(worker.claim(b.slot, b.ticket), false, 'the acceptor took it back');
  assert.equal(acceptor.claim(b.slot, b.ticket), false, 'reclaimed once only');
});

test('a late reclaim of a finished task cannot take a newer task posted into the same slot', () => {
  const claims = new FdClaims();
  const old = posted(claims);
  assert.equal(claims.claim(old.slot, old.ticket), true);
  // The ring comes round to the same slot (the descriptor number may well be the same too).
  let again = posted(claims);
  while (again.slot !== old.slot) {
    assert.equal(claims.claim(again.slot, again.ticket), true);
    again = posted(claims);
  }
  assert.notEqual(again.ticket, old.ticket);
  assert.equal(claims.claim(old.slot, old.ticket), false, 'the old task’s failure does not close the new one');
  assert.equal(claims.claim(again.slot, again.ticket), true);
});

test('a slot holding an unclaimed descriptor is stepped over; a run of them makes post() refuse', () => {
  const claims = new FdClaims();
  const stuck = posted(claims);
  // Fill the rest of the ring with claimed tasks, so the cursor comes back to the stuck one.
  for (let i = 1; i < 1 << 16; i++) {
    const c = posted(claims);
    assert.equal(claims.claim(c.slot, c.ticket), true);
  }
  const next = posted(claims);
  assert.notEqual(next.slot, stuck.slot, 'the unclaimed slot is not reused');
  assert.equal(claims.claim(stuck.slot, stuck.ticket), true, 'the stuck task can still be taken');
  // Nothing claimed any more: after 1024 unclaimed in a row post() gives up instead of scanning the whole ring.
  const full = new FdClaims();
  for (let i = 0; i < 1024; i++) posted(full);
  const ring = new Int32Array(full.buffer);
  for (let i = 1024; i < 1 << 16; i++) ring[i] = 5; // as if every other slot were taken too
  assert.equal(full.post(), null);
});

test('the ring is shared with a worker thread', async () => {
  const acceptor = new FdClaims();
  const c = posted(acceptor);
  const url = new URL('../../../src/relay/fd-claims.js', import.meta.url).href;
  const w = new Worker(
    `import(${JSON.stringify(url)}).then(({ FdClaims }) => {
       const { parentPort, workerData } = require('node:worker_threads');
       parentPort.postMessage(new FdClaims(workerData.buffer).claim(workerData.slot, workerData.ticket));
     });`,
    { eval: true, workerData: { buffer: acceptor.buffer, slot: c.slot, ticket: c.ticket } },
  );
  const [took] = (await Promise.all([new Promise((r) => w.once('message', r)), new Promise((r) => w.once('exit', r))])) as [boolean, unknown];
  assert.equal(took, true);
  assert.equal(acceptor.claim(c.slot, c.ticket), false, 'the worker took it');
});
