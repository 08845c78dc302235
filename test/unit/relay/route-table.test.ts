// RouteTable: pools (members join and leave), and the reclaim grace that holds a name or port for its owner after
// the last member leaves (issue #8 item 2; the relay's --reclaim-grace).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RouteTable, type PoolMember } from '../../../src/relay/acceptor/route-table.js';

function member(endpointKey: string, workerId = 1): PoolMember {
  return { endpointKey, sessionId: `s-${endpointKey}`, workerId, authKey: '', available: true, outstanding: 0, ewmaUs: 0, ewmaAt: 0, breaker: null };
}

test('a pool gains and loses members; the route goes with the last one', () => {
  const t = new RouteTable();
  const r = t.create({ proto: 'http', hostname: 'a.test', port: 0, owner: 'tok1', pooled: true, strategy: 'random' }, member('e1'));
  t.join(r, member('e2', 2));
  assert.equal(t.lookupHost('a.test'), r);
  assert.equal(t.lookupKey('h:a.test'), r);
  assert.equal(t.size, 2);
  assert.equal(t.remove('e1', 0, 0)?.last, false);
  assert.deepEqual(r.members.map((m) => m.endpointKey), ['e2']);
  assert.equal(t.remove('e2', 0, 0)?.last, true);
  assert.equal(t.lookupHost('a.test'), undefined);
  assert.equal(t.remove('e2', 0, 0), undefined, 'removing twice is a no-op');
});

test('after the last member leaves, the name is held for its owner until the grace period ends', () => {
  const t = new RouteTable();
  t.create({ proto: 'http', hostname: 'b.test', port: 0, owner: 'tok1', pooled: false, strategy: 'random' }, member('e1'));
  t.remove('e1', 30_000, 1_000);
  assert.equal(t.reservedFor('h:b.test', 1_000), 'tok1');
  assert.equal(t.reservedFor('h:b.test', 30_999), 'tok1');
  assert.equal(t.reservedFor('h:b.test', 31_000), null, 'expired at now + grace');
  // Taking the name again (by its owner) clears the hold.
  t.create({ proto: 'http', hostname: 'c.test', port: 0, owner: 'tok1', pooled: false, strategy: 'random' }, member('e2'));
  t.remove('e2', 30_000, 0);
  t.create({ proto: 'http', hostname: 'c.test', port: 0, owner: 'tok1', pooled: false, strategy: 'random' }, member('e3'));
  t.remove('e3', 0, 10);
  assert.equal(t.reservedFor('h:c.test', 10), null, 'no grace asked for: nothing held');
});

test('a held TCP port counts as taken for other owners only', () => {
  const t = new RouteTable();
  t.create({ proto: 'tcp', hostname: '', port: 20001, owner: 'tok1', pooled: false, strategy: 'random' }, member('e1'));
  assert.equal(t.isPortTaken(20001, 0, 'tok1'), true, 'online: taken for everyone');
  t.remove('e1', 5_000, 0);
  assert.equal(t.lookupPort(20001), undefined);
  assert.equal(t.isPortTaken(20001, 100, 'tok1'), false, 'its owner may bind it again');
  assert.equal(t.isPortTaken(20001, 100, 'tok2'), true, 'another token may not');
  assert.equal(t.isPortTaken(20001, 5_000, 'tok2'), false, 'after the grace period anyone may');
});

test('reservations of names nobody asks for again expire as later routes leave (bounded by the grace period)', () => {
  const t = new RouteTable();
  const grace = 30_000;
  // 10 000 sessions, one a second, each binding a random name once and leaving: at most ~30 held at any time.
  for (let i = 0; i < 10_000; i++) {
    const now = i * 1_000;
    t.create({ proto: 'http', hostname: `rnd-${i}.test`, port: 0, owner: 'tok1', pooled: false, strategy: 'random' }, member(`e${i}`));
    t.remove(`e${i}`, grace, now);
    assert.ok(t.reservations <= grace / 1_000 + 1, `${t.reservations} reservations held at t=${now} ms`);
  }
  // The last ones are still held for their owner.
  assert.equal(t.reservedFor('h:rnd-9999.test', 9_999_000), 'tok1');
});
