// Endpoint pooling at the relay (issue #5): several agents serve one URL; the acceptor picks a member per public
// connection (random, round-robin, least-outstanding, p2c-ewma), opossum breakers skip failing members, idempotent
// first requests are retried once on another member, and a pool with no usable member answers 503 + Retry-After.
// Real relay (--workers 2), our agent in-process and as a child process, and the @ngrok/ngrok SDK as members.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { connect, type Agent } from '../../src/index.js';
import { forward, startRelayFixture, waitFor, withTimeout, type RelayFixture } from '../helpers/relay-fixture.js';
import type { Route } from '../../src/relay/acceptor/route-table.js';
import { CONNECTION_OUTCOMES, ENDPOINT_TYPES } from '../../src/metrics/relay-recorder.js';
import { NO_THREADS_SKIP } from '../helpers/native-skip.js';

const T = { timeout: 60_000 };
const BIN = fileURLToPath(new URL('../../../bin/burrow.js', import.meta.url));
const OTHER_TOKEN = 'pool-test-second-owner-token-0123456789';

let fx: RelayFixture;

before(async () => {
  fx = await startRelayFixture({ workers: 2, extraTokens: [OTHER_TOKEN], limits: { maxSessionsPerToken: 500 } });
});

after(async () => {
  await fx?.close();
});

// ---------------------------------------------------------------------------------------------------------------
// helpers

interface Member {
  label: string;
  port: number;
  /** Added latency before answering, ms. */
  delayMs: number;
  server: http.Server;
  sockets: Set<net.Socket>;
}

/** A local upstream that answers every request with its label (after `delayMs`). */
async function startMember(label: string, delayMs = 0, port = 0): Promise<Member> {
  const sockets = new Set<net.Socket>();
  const m = { label, port: 0, delayMs, sockets } as Member;
  m.server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const answer = (): void => {
        res.writeHead(200, { 'content-type': 'text/plain', 'x-member': label });
        res.end(label);
      };
      if (m.delayMs > 0) setTimeout(answer, m.delayMs);
      else answer();
    });
  });
  m.server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  m.server.listen(port, '127.0.0.1');
  await once(m.server, 'listening');
  m.port = (m.server.address() as net.AddressInfo).port;
  fx.cleanup.defer(`stop upstream ${label}`, () => stopMember(m));
  return m;
}

async function stopMember(m: Member): Promise<void> {
  if (!m.server.listening) return;
  for (const s of m.sockets) s.destroy();
  await new Promise<void>((r) => m.server.close(() => r()));
}

function agentOptions(token = fx.token) {
  return { server: `localhost:${fx.agent.port}`, authtoken: token, ca: fx.caPem, heartbeatIntervalMs: 500, breaker: { resetTimeoutMs: 200 } };
}

/** One agent (own session) forwarding `url` to `m`, pooled unless told otherwise. */
async function member(url: string, m: Member, opts: { pool?: boolean; lb?: string; token?: string } = {}): Promise<Agent> {
  const agent = await withTimeout(`agent for ${m.label}`, connect(agentOptions(opts.token)));
  fx.cleanup.defer(`close agent ${m.label}`, () => agent.close(200));
  await withTimeout(
    `Bind of ${url} by ${m.label}`,
    agent.forward(`http://127.0.0.1:${m.port}`, { url, pool: opts.pool ?? true, ...(opts.lb ? { lb: opts.lb } : {}) }),
  );
  return agent;
}

interface Reply {
  status: number;
  body: string;
}

/** One GET on a new connection (Connection: close), so every request is routed (and balanced) on its own. */
function getOnce(host: string, path = '/', port = fx.http.port): Promise<Reply> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, headers: { host, connection: 'close' }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', () => resolve({ status: -1, body: '' }));
      },
    );
    req.on('error', (e) => resolve({ status: -1, body: e.message }));
    req.end();
  });
}

/** `n` GETs, `concurrency` at a time; replies in completion order. */
async function hit(host: string, n: number, concurrency: number): Promise<Reply[]> {
  const out: Reply[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      out.push(await getOnce(host));
    }
  };
  await withTimeout(`${n} GETs to ${host}`, Promise.all(Array.from({ length: concurrency }, worker)), 50_000);
  return out;
}

function countBy(replies: Reply[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of replies) {
    const k = r.status === 200 ? r.body : `status ${r.status}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

const show = (m: Map<string, number>): string => JSON.stringify(Object.fromEntries(m));

// ---------------------------------------------------------------------------------------------------------------
// binding rules

test('without pooling a second bind of an online URL is refused, saying how to enable pooling', T, async () => {
  const host = 'solo.burrow.localhost';
  const a = await startMember('a');
  await member(`http://${host}`, a, { pool: false });
  const second = await connect(agentOptions());
  fx.cleanup.defer('close second agent', () => second.close(200));
  await assert.rejects(second.forward(`http://127.0.0.1:${a.port}`, { url: `http://${host}`, pool: true }), (err: Error) => {
    assert.match(err.message, /already online/);
    assert.match(err.message, /--pool/);
    assert.match(err.message, /poolingEnabled\(true\)/);
    return true;
  });
});

test('pools are per owner: an agent with another token can neither join a pool nor take a name in its grace period', T, async () => {
  const host = 'owned.burrow.localhost';
  const a = await startMember('a');
  const owner = await member(`http://${host}`, a);
  const intruder = await connect(agentOptions(OTHER_TOKEN));
  fx.cleanup.defer('close intruder', () => intruder.close(200));
  await assert.rejects(intruder.forward(`http://127.0.0.1:${a.port}`, { url: `http://${host}`, pool: true }), /belongs to another auth token/);
  // The owner leaves: the name stays reserved for it (--reclaim-grace, 30 s by default) …
  await owner.close(200);
  await waitFor('the route to go', () => (fx.relay.acceptor.routes.lookupHost(host) === undefined ? true : undefined));
  await assert.rejects(intruder.forward(`http://127.0.0.1:${a.port}`, { url: `http://${host}`, pool: true }), /held for its owner/);
  // … and the owner can take it back at once.
  await member(`http://${host}`, a);
  assert.equal((await getOnce(host)).body, 'a');
});

// ---------------------------------------------------------------------------------------------------------------
// strategies

test('round-robin: three members in strict rotation', T, async () => {
  const host = 'rr.burrow.localhost';
  const ms = await Promise.all(['a', 'b', 'c'].map((l) => startMember(l)));
  for (const m of ms) await member(`http://${host}`, m, { lb: 'round-robin' });
  const seq: string[] = [];
  for (let i = 0; i < 30; i++) seq.push((await getOnce(host)).body);
  const first = seq.slice(0, 3);
  assert.deepEqual([...first].sort(), ['a', 'b', 'c'], seq.join(','));
  for (let i = 0; i < seq.length; i++) assert.equal(seq[i], first[i % 3], `request ${i} broke the rotation: ${seq.join(',')}`);
});

test('random (the default): 3000 requests spread evenly over three members on both workers', { ...T, skip: NO_THREADS_SKIP }, async () => {
  const host = 'rand.burrow.localhost';
  const ms = await Promise.all(['a', 'b', 'c'].map((l) => startMember(l)));
  for (const m of ms) await member(`http://${host}`, m);
  const route = fx.relay.acceptor.routes.lookupHost(host)!;
  assert.equal(route.strategy, 'random');
  const workers = new Set(route.members.map((m) => m.workerId));
  assert.equal(workers.size, 2, 'the three sessions must sit on both workers (least-busy placement)');
  const counts = countBy(await hit(host, 3000, 24));
  // Binomial(3000, 1/3): σ ≈ 26, so ±150 is almost 6σ — a real bias fails, noise does not.
  for (const l of ['a', 'b', 'c']) {
    const c = counts.get(l) ?? 0;
    assert.ok(c > 850 && c < 1150, `${l} got ${c} of 3000: ${show(counts)}`);
  }
});

test('least-outstanding: a slow member gets little while idle members are free', T, async () => {
  const host = 'lo.burrow.localhost';
  const slow = await startMember('slow', 300);
  const fast = await Promise.all(['a', 'b'].map((l) => startMember(l)));
  await member(`http://${host}`, slow, { lb: 'least-outstanding' });
  for (const m of fast) await member(`http://${host}`, m, { lb: 'least-outstanding' });
  const counts = countBy(await hit(host, 120, 2));
  const s = counts.get('slow') ?? 0;
  assert.ok(s <= 12, `the slow member got ${s} of 120: ${show(counts)}`);
  assert.equal((counts.get('a') ?? 0) + (counts.get('b') ?? 0) + s, 120, show(counts));
});

test('p2c-ewma: a member with 50 ms of added latency gets under 10 % of the traffic', T, async () => {
  const host = 'p2c.burrow.localhost';
  const slow = await startMember('slow', 50);
  const fast = await Promise.all(['a', 'b'].map((l) => startMember(l)));
  await member(`http://${host}`, slow, { lb: 'p2c-ewma' });
  for (const m of fast) await member(`http://${host}`, m, { lb: 'p2c-ewma' });
  const counts = countBy(await hit(host, 300, 4));
  const s = counts.get('slow') ?? 0;
  assert.ok(s < 30, `the slow member got ${s} of 300: ${show(counts)}`);
  assert.equal([...counts.values()].reduce((x, y) => x + y, 0), 300);
  assert.ok(!([...counts.keys()].some((k) => k.startsWith('status'))), show(counts));
});

test('p2c-ewma: a member whose estimate went bad once gets traffic again once the estimate is stale', { timeout: 60_000 }, async () => {
  // Before: p2c only samples the members it picks, so one slow answer kept a healthy member out for good (review
  // finding). An idle member's estimate is now forgotten after 10 s without a sample.
  const host = 'p2cstale.burrow.localhost';
  const a = await startMember('a');
  const b = await startMember('b', 800);
  await member(`http://${host}`, a, { lb: 'p2c-ewma' });
  await member(`http://${host}`, b, { lb: 'p2c-ewma' });
  await waitFor('b to answer once (slowly)', async () => ((await getOnce(host)).body === 'b' ? true : undefined), 20_000);
  b.delayMs = 0; // healthy from now on
  const right = countBy(await hit(host, 50, 1));
  assert.equal(right.get('b') ?? 0, 0, `b is avoided while its estimate is fresh: ${show(right)}`);
  await waitFor('b to be picked again', async () => ((await getOnce(host)).body === 'b' ? true : undefined), 25_000);
});

test('a strategy the relay does not know is refused at Bind with the list of strategies', T, async () => {
  const a = await startMember('a');
  const agent = await connect(agentOptions());
  fx.cleanup.defer('close agent', () => agent.close(200));
  await assert.rejects(
    agent.forward(`http://127.0.0.1:${a.port}`, { url: 'http://badlb.burrow.localhost', pool: true, lb: 'fastest' }),
    /fastest.*random, round-robin, least-outstanding, p2c-ewma/,
  );
});

// ---------------------------------------------------------------------------------------------------------------
// breakers, retries, 503

test('a member whose upstream is dead: its breaker opens, at most 5 of 200 GETs fail, and it rejoins when the upstream is back', T, async () => {
  const host = 'brk.burrow.localhost';
  const dead = await startMember('dead');
  const live = await Promise.all(['a', 'b'].map((l) => startMember(l)));
  await member(`http://${host}`, dead);
  for (const m of live) await member(`http://${host}`, m);
  const deadPort = dead.port;
  await stopMember(dead);
  const replies: Reply[] = [];
  for (let i = 0; i < 200; i++) replies.push(await getOnce(host));
  const counts = countBy(replies);
  const failed = replies.filter((r) => r.status !== 200).length;
  assert.ok(failed <= 5, `${failed} of 200 failed: ${show(counts)}`);
  const route = fx.relay.acceptor.routes.lookupHost(host)!;
  const deadMember = route.members[0]!;
  assert.ok(deadMember.breaker!.transitions.open >= 1, 'the dead member\'s breaker never opened');
  // Upstream back on the same port: the half-open probe succeeds and the member serves again.
  const back = await startMember('dead', 0, deadPort);
  assert.equal(back.port, deadPort);
  // Polls with real requests (the probe is one of them): the relay's breaker half-opens after --breaker-reset (5 s).
  const deadline = Date.now() + 20_000;
  while ((await getOnce(host)).body !== 'dead') {
    assert.ok(Date.now() < deadline, 'the member did not serve again within 20 s of its upstream coming back');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(deadMember.breaker!.state, 'closed');
});

test('every member failing → 503 with Retry-After once the breakers are open', T, async () => {
  const host = 'down.burrow.localhost';
  const ms = await Promise.all(['a', 'b'].map((l) => startMember(l)));
  for (const m of ms) await member(`http://${host}`, m);
  for (const m of ms) await stopMember(m);
  let sawUnavailable: http.IncomingHttpHeaders | null = null;
  for (let i = 0; i < 30 && sawUnavailable === null; i++) {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: fx.http.port, headers: { host, connection: 'close' }, agent: false }, resolve).on('error', reject);
    });
    res.resume();
    if (res.statusCode === 503) sawUnavailable = res.headers;
    else assert.equal(res.statusCode, 502, 'before the breakers open the agents\' own 502 pages pass through');
  }
  assert.ok(sawUnavailable !== null, 'no 503 after 30 requests to a pool whose members all fail');
  assert.equal(sawUnavailable['retry-after'], '5');
  assert.ok(fx.counter('http:pool-unavailable') >= 1);
});

test('a member agent killed during an autocannon run: only requests in flight on it fail, the rest carry on', T, async () => {
  const host = 'kill.burrow.localhost';
  const ms = await Promise.all(['a', 'b', 'c'].map((l) => startMember(l)));
  for (const m of ms.slice(0, 2)) await member(`http://${host}`, m);
  // The third member is a separate `burrow http` process, killed with SIGKILL mid-run.
  const child = spawn(
    process.execPath,
    [BIN, 'http', String(ms[2]!.port), '--url', `http://${host}`, '--pool', '--server', `localhost:${fx.agent.port}`,
      '--authtoken', fx.token, '--ca', fx.caPath],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  fx.cleanup.defer('kill the child agent', () => child.kill('SIGKILL'));
  child.stdout.resume();
  child.stderr.resume();
  await waitFor('the child agent to join the pool', () => (fx.relay.acceptor.routes.lookupHost(host)?.members.length === 3 ? true : undefined), 15_000);
  const connections = 12;
  const run = autocannon({
    url: `http://127.0.0.1:${fx.http.port}/`,
    headers: { host },
    connections,
    duration: 3,
  });
  let killedAt = 0;
  setTimeout(() => {
    killedAt = Date.now();
    child.kill('SIGKILL');
  }, 1000);
  const result = await withTimeout('the autocannon run', run as unknown as Promise<autocannon.Result>, 20_000);
  assert.ok(killedAt > 0);
  const failures = result.errors + result.timeouts + result.non2xx;
  assert.ok(result['2xx'] > 100, `only ${result['2xx']} requests succeeded`);
  // Each of the killed member's keep-alive connections loses at most its one request in flight.
  assert.ok(failures <= connections, `${failures} failures (errors ${result.errors}, non-2xx ${result.non2xx}, timeouts ${result.timeouts})`);
  assert.equal(fx.relay.acceptor.routes.lookupHost(host)?.members.length, 2, 'the killed member left the pool');
  const after = countBy(await hit(host, 30, 3));
  assert.equal((after.get('a') ?? 0) + (after.get('b') ?? 0), 30, show(after));
});

// ---------------------------------------------------------------------------------------------------------------
// the ngrok SDK as members

test('@ngrok/ngrok sessions with poolingEnabled(true) form one pool', T, async () => {
  const host = 'sdkpool.burrow.localhost';
  const ms = await Promise.all(['s1', 's2', 's3'].map((l) => startMember(l)));
  for (const m of ms) {
    const s = await fx.connectSdk(`SDK session for ${m.label}`);
    await forward(fx.cleanup, `${host} (${m.label})`, s.httpEndpoint().domain(host).poolingEnabled(true).metadata('burrow-lb=round-robin').listenAndForward(`http://127.0.0.1:${m.port}`));
  }
  const route = fx.relay.acceptor.routes.lookupHost(host)!;
  assert.equal(route.members.length, 3);
  assert.equal(route.strategy, 'round-robin');
  const counts = countBy(await hit(host, 30, 1));
  assert.deepEqual([...counts.entries()].sort(), [['s1', 10], ['s2', 10], ['s3', 10]], show(counts));
  // A dead upstream behind one SDK member: the SDK's own 502 ("failed to dial backend") counts against that member.
  await stopMember(ms[0]!);
  const replies: Reply[] = [];
  for (let i = 0; i < 60; i++) replies.push(await getOnce(host));
  const failed = replies.filter((r) => r.status !== 200).length;
  assert.ok(failed <= 5, `${failed} of 60 failed: ${show(countBy(replies))}`);
  assert.ok(route.members.find((m) => m.breaker?.transitions.open)?.breaker, 'no breaker opened for the SDK member');
});

// ---------------------------------------------------------------------------------------------------------------
// retries across workers (a fresh relay, so the two members' placement on the two workers is known)

/** A fresh 2-worker relay, one pooled round-robin member per label (one agent each), the members on both workers. */
async function poolOnTwoWorkers(
  t: TestContext,
  host: string,
  labels: string[],
  basicAuth: Array<string | undefined> = [],
): Promise<{ fx2: RelayFixture; ms: Member[]; route: Route }> {
  const fx2 = await startRelayFixture({ workers: 2 });
  t.after(() => fx2.close());
  const ms = await Promise.all(labels.map((l) => startMember(l)));
  for (const [i, m] of ms.entries()) {
    const agent = await connect({ ...agentOptions(), server: `localhost:${fx2.agent.port}`, authtoken: fx2.token, ca: fx2.caPem });
    fx2.cleanup.defer(`close agent ${m.label}`, () => agent.close(200));
    const auth = basicAuth[i];
    await agent.forward(`http://127.0.0.1:${m.port}`, { url: `http://${host}`, pool: true, lb: 'round-robin', ...(auth === undefined ? {} : { basicAuth: auth }) });
  }
  const route = fx2.relay.acceptor.routes.lookupHost(host)!;
  assert.equal(new Set(route.members.map((m) => m.workerId)).size, 2, 'the two members must sit on different workers');
  return { fx2, ms, route };
}

/** burrow_connections_total for http connections, summed over the workers: outcome → count (non-zero only). */
async function httpOutcomes(fx2: RelayFixture): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { stats } of await fx2.relay.dispatcher.collectStats(2_000, 'metrics')) {
    const conns = stats?.recorder?.connections ?? [];
    CONNECTION_OUTCOMES.forEach((o, i) => {
      const n = conns[ENDPOINT_TYPES.indexOf('http') * CONNECTION_OUTCOMES.length + i] ?? 0;
      if (n > 0) out[o] = (out[o] ?? 0) + n;
    });
  }
  return out;
}

test('retries cross workers: a GET whose member is on a dead upstream is handed back and served by the other worker\'s member', { ...T, skip: NO_THREADS_SKIP }, async (t) => {
  const host = 'xw.burrow.localhost';
  const { fx2, ms, route } = await poolOnTwoWorkers(t, host, ['live', 'dead']);
  await stopMember(ms[1]!);
  const statuses: number[] = [];
  for (let i = 0; i < 40; i++) {
    const r = await getOnce(host, '/', fx2.http.port);
    statuses.push(r.status);
    if (r.status === 200) assert.equal(r.body, 'live', `request ${i}`);
  }
  assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every GET must be served (retried on the other worker)');
  assert.ok(fx2.counter('http:rerouted') >= 1, 'no connection was handed back to the acceptor');
  // Each connection is counted once, by the worker that ended it (before: once more, as 'rerouted', by the first).
  await waitFor('all 40 connections to be counted', async () => ((await httpOutcomes(fx2))['ok'] ?? 0) >= 40 || undefined);
  assert.deepEqual(await httpOutcomes(fx2), { ok: 40 });
  // The dead member's breaker opened, so new connections skip it (which is what keeps a POST, never retried, away
  // from the agent's 502).
  assert.ok(route.members.find((m) => m.breaker?.state !== 'closed'), 'the dead member\'s breaker should not be closed');
});

test('retries cross workers with basic auth: handed back only to a member with the same credentials', { ...T, skip: NO_THREADS_SKIP }, async (t) => {
  // Before: a basic-auth connection was never handed to another worker (the acceptor's pick knew no credentials), so
  // a GET that landed on a dead member got the agent's 502 although a member with the same credentials was healthy.
  const same = 'auth-xw.burrow.localhost';
  const { fx2, ms } = await poolOnTwoWorkers(t, same, ['live', 'dead'], ['ops:hunter2hunter2', 'ops:hunter2hunter2']);
  await stopMember(ms[1]!);
  const auth = `Basic ${Buffer.from('ops:hunter2hunter2').toString('base64')}`;
  const get = (host: string): Promise<Reply> => new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: fx2.http.port, path: '/', headers: { host, connection: 'close', authorization: auth }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', (e) => resolve({ status: -1, body: e.message }));
    req.end();
  });
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await get(same);
    statuses.push(r.status);
    if (r.status === 200) assert.equal(r.body, 'live', `request ${i}`);
  }
  assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every GET must be served by the live member (on the other worker)');
  assert.ok(fx2.counter('http:rerouted') >= 1, 'no connection was handed back to the acceptor');
});

test('a basic-auth connection is not handed back to a member with other credentials: 502 from the relay, never the other service', { ...T, skip: NO_THREADS_SKIP }, async (t) => {
  const host = 'auth-other.burrow.localhost';
  const { fx2, ms } = await poolOnTwoWorkers(t, host, ['other', 'dead'], ['someone:else-entirely', 'ops:hunter2hunter2']);
  await stopMember(ms[1]!);
  const auth = `Basic ${Buffer.from('ops:hunter2hunter2').toString('base64')}`;
  const statuses = new Set<number>();
  for (let i = 0; i < 10 && fx2.counter('http:reroute-failed') === 0; i++) {
    const r = await new Promise<Reply>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: fx2.http.port, path: '/', headers: { host, connection: 'close', authorization: auth }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: '' }));
      });
      req.on('error', (e) => resolve({ status: -1, body: e.message }));
      req.end();
    });
    statuses.add(r.status);
  }
  assert.ok(fx2.counter('http:reroute-failed') >= 1, `a connection of the dead member should have been handed back and refused (statuses ${[...statuses]})`);
  // The other member answers these credentials with 401 when picked first; a handed-back connection gets the relay's 502.
  assert.deepEqual([...statuses].filter((s) => s !== 401 && s !== 502), []);
});

test('a connection handed back once is not handed back again: members failing on both workers → one reroute, then the agent\'s 502', { ...T, skip: NO_THREADS_SKIP }, async (t) => {
  // Before: the second worker started with its retry unspent and handed the GET back again, so it bounced between
  // the failing members (each hop replayed the request to an agent) until their breakers opened.
  const { fx2, ms } = await poolOnTwoWorkers(t, 'bounce.burrow.localhost', ['a', 'b']);
  for (const m of ms) await stopMember(m);
  const r = await getOnce('bounce.burrow.localhost', '/', fx2.http.port);
  assert.equal(r.status, 502, 'the second member\'s failure reaches the client');
  assert.equal(fx2.counter('http:rerouted'), 1, 'handed back to the acceptor exactly once');
  await waitFor('the connection to be counted', async () => (Object.keys(await httpOutcomes(fx2)).length > 0 ? true : undefined));
  // The agent's 502 is a response, so 'ok' for the relay: counted once, by the worker that ended the connection.
  assert.deepEqual(await httpOutcomes(fx2), { ok: 1 });
});

test('tcp pool: a stream refused by a member (its upstream is down) is retried on another member before any byte', T, async () => {
  // Server-speaks-first upstreams (like SMTP or SSH): the client sends nothing until it is greeted, so a refused
  // stream can be retried with nothing lost.
  const greeters = await Promise.all(['g0', 'g1'].map(async (label) => {
    const srv = net.createServer((s) => s.on('error', () => {}).end(`hello from ${label}`));
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    fx.cleanup.defer(`close ${label}`, () => new Promise<void>((r) => srv.close(() => r())));
    return srv;
  }));
  const { port } = await tcpPool(fx, greeters.map((g) => (g.address() as net.AddressInfo).port), agentOptions());
  assert.equal(fx.relay.acceptor.routes.lookupPort(port)?.members.length, 2);
  await new Promise<void>((r) => greeters[1]!.close(() => r()));
  for (let i = 0; i < 10; i++) {
    const c = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    await withTimeout(`greeting ${i}`, once(c, 'end'));
    assert.equal(Buffer.concat(chunks).toString(), 'hello from g0', `connection ${i}`);
    c.destroy();
  }
});

test('tcp pool: a member that fails clients who speak first counts as failing (its breaker opens)', T, async () => {
  // Such a connection cannot be retried (bytes already went to the failed member), but the failure must still reach the
  // member's breaker; before, only retryable failures were reported and the task's end settled the call as a success.
  const echo = net.createServer((s) => s.on('error', () => {}).pipe(s));
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  fx.cleanup.defer('close echo', () => new Promise<void>((r) => echo.close(() => r())));
  const dead = net.createServer();
  dead.listen(0, '127.0.0.1');
  await once(dead, 'listening');
  const deadPort = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  // The relay picks a free port for the first member (a fixed one in the range could be some other socket's
  // ephemeral port); the second joins it.
  const { port, route } = await tcpPool(fx, [(echo.address() as net.AddressInfo).port, deadPort], agentOptions());
  const deadMember = route.members[1]!;
  for (let i = 0; i < 20 && deadMember.breaker?.state === 'closed'; i++) {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    c.end('ping'); // speaks first (and half-closes): no retry possible
    c.resume();
    await withTimeout(`connection ${i} to end`, once(c, 'close'));
  }
  assert.notEqual(deadMember.breaker?.state, 'closed', 'the member whose upstream is down must not stay closed');
});

type PoolRoute = NonNullable<ReturnType<RelayFixture['relay']['acceptor']['routes']['lookupPort']>>;

/**
 * One agent per upstream port, each binding the same TCP URL with pooling (the relay picks a free port for the first
 * member; the others join it); the route's port and members. `agent` adds to the agents' options.
 */
async function tcpPool(f: RelayFixture, upstreams: number[], agent: Partial<Parameters<typeof connect>[0]> = {}): Promise<{ port: number; route: PoolRoute }> {
  let url = 'tcp://';
  for (const up of upstreams) {
    const a = await connect({ server: `localhost:${f.agent.port}`, authtoken: f.token, ca: f.caPem, heartbeatIntervalMs: 500, ...agent });
    f.cleanup.defer('close tcp agent', () => a.close(200));
    url = (await a.forward(`tcp://127.0.0.1:${up}`, { url, pool: true, lb: 'round-robin' })).url;
  }
  const port = Number(new URL(url).port);
  return { port, route: f.relay.acceptor.routes.lookupPort(port)! };
}

/** A listening TCP server on 127.0.0.1 (closed with the fixture) and its port. */
async function tcpServer(f: RelayFixture, onConn: (s: net.Socket) => void): Promise<{ srv: net.Server; port: number }> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    onConn(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  f.cleanup.defer('close a tcp upstream', () => new Promise<void>((r) => srv.close(() => r())));
  return { srv, port: (srv.address() as net.AddressInfo).port };
}

/** Two agents pooling one TCP URL, each forwarding to its own echo server. */
async function tcpEchoPool(f: RelayFixture): Promise<{ port: number; route: PoolRoute }> {
  const ports = [(await tcpServer(f, (s) => s.pipe(s))).port, (await tcpServer(f, (s) => s.pipe(s))).port];
  return tcpPool(f, ports);
}

/** `n` clients connected to `port` that send nothing (destroyed with the fixture). */
async function idleClients(f: RelayFixture, port: number, n: number): Promise<net.Socket[]> {
  const clients = await Promise.all(
    Array.from({ length: n }, async () => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      await once(c, 'connect');
      return c;
    }),
  );
  f.cleanup.defer('destroy idle clients', () => clients.forEach((c) => c.destroy()));
  return clients;
}

/** A client that sends `text` (and FIN), reading everything until the connection closes. */
async function tcpExchange(port: number, text: string, what: string): Promise<string> {
  const c = net.connect(port, '127.0.0.1');
  const got: Buffer[] = [];
  c.on('data', (d: Buffer) => got.push(d));
  c.on('error', () => {});
  c.end(text);
  await withTimeout(what, once(c, 'close'));
  return Buffer.concat(got).toString();
}

test('tcp pool: clients that connect and close without a byte (health checks) trip no breaker of healthy members', T, async () => {
  // Before: the stream's end (answering the client's own FIN) counted as the member's failure and was "retried" on
  // the next member, another failure: three probes opened every breaker and the pool refused real clients.
  const { port, route } = await tcpEchoPool(fx);
  for (let i = 0; i < 8; i++) assert.equal(await tcpExchange(port, '', `probe ${i}`), '');
  // Every probe's task has ended and its reports are applied once no connection is outstanding on either member.
  await waitFor('the probes to be settled', () => (route.members.every((m) => m.outstanding === 0) ? true : undefined));
  assert.deepEqual(route.members.map((m) => m.breaker?.state), ['closed', 'closed']);
  assert.deepEqual(route.members.map((m) => m.breaker?.transitions.open), [0, 0]);
  assert.equal(await tcpExchange(port, 'hello', 'a real client'), 'hello');
});

test('tcp pool: idle connections of a client-speaks-first protocol outlive --breaker-timeout without counting as failures', T, async (t) => {
  // TCP members have no first-byte deadline: a database pool's idle connections get nothing back until they ask.
  const f = await startRelayFixture({ workers: 1, breakerTimeoutMs: 300 });
  t.after(() => f.close());
  const { port, route } = await tcpEchoPool(f);
  const idle = await idleClients(f, port, 6);
  await new Promise((r) => setTimeout(r, 800)); // well past the 300 ms deadline HTTP members have
  assert.deepEqual(route.members.map((m) => m.breaker?.state), ['closed', 'closed']);
  for (const [i, c] of idle.entries()) {
    const echoed = new Promise<string>((resolve) => c.once('data', (d: Buffer) => resolve(d.toString())));
    c.write(`late ${i}`);
    assert.equal(await withTimeout(`echo on idle connection ${i}`, echoed), `late ${i}`);
    c.destroy();
  }
  assert.equal(await tcpExchange(port, 'hello', 'a new client'), 'hello');
});

test('tcp pool: a half-open member whose probe is an idle connection closes its breaker after --breaker-timeout', T, async (t) => {
  // With no first-byte deadline for TCP, an idle probe would keep the member half-open until its client spoke or left.
  const f = await startRelayFixture({ workers: 1, breakerTimeoutMs: 300, breakerResetMs: 200 });
  t.after(() => f.close());
  const echo = await tcpServer(f, (s) => s.pipe(s));
  // The second member's upstream: a port with nothing behind it at first (its agent's dials are refused).
  const later = net.createServer({ allowHalfOpen: true }, (s) => s.on('error', () => {}).pipe(s));
  later.listen(0, '127.0.0.1');
  await once(later, 'listening');
  const laterPort = (later.address() as net.AddressInfo).port;
  await new Promise<void>((r) => later.close(() => r()));
  // The agents' own dial breakers must not outlast the relay's (their probe after 200 ms, as the relay's).
  const { port } = await tcpPool(f, [echo.port, laterPort], { breaker: { resetTimeoutMs: 200 } });
  const member = f.relay.acceptor.routes.lookupPort(port)!.members[1]!;
  for (let i = 0; i < 20 && member.breaker?.state === 'closed'; i++) await tcpExchange(port, 'ping', `failing connection ${i}`);
  assert.equal(member.breaker?.state, 'open');
  later.listen(laterPort, '127.0.0.1'); // the upstream is back
  await once(later, 'listening');
  t.after(() => later.close());
  await waitFor('the breaker to go half-open', () => (member.breaker?.state === 'half-open' ? true : undefined));
  // Idle clients: one of them is the member's probe; none sends a byte.
  await idleClients(f, port, 4);
  await waitFor('the idle probe to close the breaker', () => (member.breaker?.state === 'closed' ? true : undefined), 3_000);
});

test('tcp pool: an upstream that closes idle connections after --breaker-timeout is no failure, and the client is not moved', T, async (t) => {
  // Like Redis with `timeout`: the connection stood the deadline (a success); its quiet end later must not count
  // against the member, nor be "retried" on another member behind the client's back.
  const f = await startRelayFixture({ workers: 1, breakerTimeoutMs: 300 });
  t.after(() => f.close());
  let accepted = 0;
  const closing = (s: net.Socket): void => {
    accepted++;
    setTimeout(() => s.destroy(), 700); // idle timeout, without a byte
  };
  const { port, route } = await tcpPool(f, [(await tcpServer(f, closing)).port, (await tcpServer(f, closing)).port]);
  const clients = await idleClients(f, port, 6);
  clients.forEach((c) => c.resume());
  await withTimeout('every idle client to be closed', Promise.all(clients.map((c) => once(c, 'close'))), 5_000);
  await waitFor('the connections to be settled', () => (route.members.every((m) => m.outstanding === 0) ? true : undefined));
  assert.equal(accepted, 6, 'no connection was retried on another member');
  assert.deepEqual(route.members.map((m) => m.breaker?.transitions.open), [0, 0]);
});

test('http pool: a slow upload is not the member\'s failure; no answer within --breaker-timeout of a complete request is', T, async (t) => {
  // Before: the first-byte deadline ran from the handoff, so clients trickling a body for longer than
  // --breaker-timeout opened every breaker of a healthy pool and everybody got 503 (review finding).
  const f = await startRelayFixture({ workers: 1, breakerTimeoutMs: 400, breakerResetMs: 60_000 });
  t.after(() => f.close());
  const healthy = [await startMember('H1'), await startMember('H2')];
  const mute = await startMember('M');
  mute.server.removeAllListeners('request');
  mute.server.on('request', (req: http.IncomingMessage) => req.resume()); // reads the request, never answers
  t.after(async () => {
    for (const m of [...healthy, mute]) await stopMember(m);
  });
  const join = async (url: string, m: Member): Promise<void> => {
    const agent = await withTimeout(`agent for ${m.label}`, connect({ server: `localhost:${f.agent.port}`, authtoken: f.token, ca: f.caPem }));
    f.cleanup.defer(`close agent ${m.label}`, () => agent.close(200));
    await withTimeout(`Bind by ${m.label}`, agent.forward(`http://127.0.0.1:${m.port}`, { url, pool: true }));
  };
  for (const m of healthy) await join('http://uploads.burrow.localhost', m);
  await join('http://mute.burrow.localhost', mute);

  // Six uploads of 10 bytes, one byte every 100 ms: each takes ~1 s, more than twice the deadline.
  const upload = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const s = net.connect(f.http.port, '127.0.0.1');
      let got = '';
      let sent = 0;
      let timer: NodeJS.Timeout | null = null;
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      s.on('error', reject);
      s.on('close', () => {
        if (timer !== null) clearInterval(timer);
        resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0));
      });
      s.write('POST /up HTTP/1.1\r\nHost: uploads.burrow.localhost\r\nContent-Length: 10\r\nConnection: close\r\n\r\n');
      timer = setInterval(() => {
        s.write('x');
        if (++sent === 10) (clearInterval(timer!), (timer = null));
      }, 100);
    });
  const statuses = await withTimeout('the slow uploads', Promise.all(Array.from({ length: 6 }, upload)), 20_000);
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200]);
  const route = f.relay.acceptor.routes.lookupHost('uploads.burrow.localhost')!;
  assert.deepEqual(route.members.map((m) => m.breaker?.state), ['closed', 'closed'], 'slow clients did not open the breakers');

  // Complete requests the member never answers: each counts once the deadline passes; the breaker opens.
  const muteMember = f.relay.acceptor.routes.lookupHost('mute.burrow.localhost')!.members[0]!;
  const waiting: net.Socket[] = [];
  t.after(() => waiting.forEach((s) => s.destroy()));
  for (let i = 0; i < 4 && muteMember.breaker?.state === 'closed'; i++) {
    const s = net.connect(f.http.port, '127.0.0.1');
    s.on('error', () => {});
    waiting.push(s);
    s.write('GET /wait HTTP/1.1\r\nHost: mute.burrow.localhost\r\n\r\n');
  }
  await waitFor('the mute member\'s breaker to open', () => (muteMember.breaker?.state === 'open' ? true : undefined), 5_000);
});
