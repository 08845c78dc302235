// Observability end to end (issue #6): a relay with worker threads and its uWS admin server on 127.0.0.1:0, our
// agent, curl as the public client. Exactly N requests → request_duration count N (merged over workers), buckets
// cumulative, `promtool check metrics` clean on the live /metrics, /healthz, /readyz (fails while a worker is down,
// recovers after its replacement), the JSON API, and the admin token rules.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect, type Agent } from '../../src/index.js';
import { isBurrowError } from '../../src/core/errors.js';
import { AdminServer } from '../../src/metrics/admin-server.js';
import { startAgentMetricsServer } from '../../src/metrics/agent-metrics.js';
import {
  curl,
  resolveArgs,
  runCmd,
  startHttpUpstream,
  startRelayFixture,
  waitFor,
  withTimeout,
  type HttpUpstream,
  type RelayFixture,
} from '../helpers/relay-fixture.js';
import { NO_THREADS_SKIP } from '../helpers/native-skip.js';
import { RawHttp } from '../helpers/raw-http.js';

const ADMIN_SERVER_JS = fileURLToPath(new URL('../../src/metrics/admin-server.js', import.meta.url));

// Workers read this when they start: enables the control-channel 'test-crash' message (worker-runtime.ts).
process.env['BURROW_TEST_HOOKS'] = '1';

const APP = 'metrics.burrow.localhost';
/** Served by a second agent, whose session the balancer puts on the other worker: scrapes then merge two workers. */
const APP2 = 'metrics2.burrow.localhost';
const T = { timeout: 30_000 };

let fx: RelayFixture;
let up: HttpUpstream;
let agent: Agent;
let admin: string;

before(async () => {
  fx = await startRelayFixture({ workers: 2, adminAddr: { host: '127.0.0.1', port: 0 }, agentRttIntervalMs: 200 });
  const a = fx.relay.adminAddress();
  assert.ok(a !== null && a.port > 0, 'the relay reports the admin port it bound');
  admin = `http://127.0.0.1:${a.port}`;
  up = await startHttpUpstream(fx.cleanup);
  agent = await withTimeout('our agent to connect', connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem }));
  fx.cleanup.defer('close the agent', () => agent.close(1000));
  await withTimeout('Bind', agent.forward(`http://127.0.0.1:${up.port}`, { url: `http://${APP}` }));
  const agent2 = await withTimeout('a second agent to connect', connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem }));
  fx.cleanup.defer('close the second agent', () => agent2.close(1000));
  await withTimeout('Bind 2', agent2.forward(`http://127.0.0.1:${up.port}`, { url: `http://${APP2}` }));
});

after(async () => {
  await fx?.close();
});

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; type: string }> {
  const r = await withTimeout(`GET ${path}`, fetch(`${admin}${path}`, { headers }));
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') ?? '' };
}

/** Value of one sample line (`name{labels} value`); labels must match exactly as rendered. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

function run(cmd: string, args: string[], input: string): Promise<{ code: number; out: string }> {
  return withTimeout(`${cmd} ${args.join(' ')}`, new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
    p.stdin.end(input);
  }));
}

test('exactly N requests → request_duration count N, ttfb and connections N, buckets cumulative', { ...T, skip: NO_THREADS_SKIP }, async () => {
  const N = 7;
  const base = await get('/metrics');
  const before = sample(base.body, 'burrow_request_duration_seconds_count{endpoint_type="http"}') ?? 0;
  // The two endpoints live on different workers, so the count below is a merge of both workers' histograms.
  const placed = JSON.parse((await get('/api/sessions')).body) as { sessions: Array<{ workerId: number }> };
  assert.equal(new Set(placed.sessions.map((x) => x.workerId)).size, 2, 'the two agent sessions sit on different workers');
  for (let i = 0; i < N; i++) {
    const host = i % 2 === 0 ? APP : APP2;
    const r = await curl([...resolveArgs(host, fx.http.port), `http://${host}:${fx.http.port}/n/${i}`]);
    assert.equal(r.status, 200, r.stderr);
  }
  // A request is recorded when its response is complete, its connection when it ends on the worker: both a moment
  // after curl has its answer, and the connection after the request.
  const text = await waitFor('the N requests and their connections to be counted', async () => {
    const m = await get('/metrics');
    const requests = sample(m.body, 'burrow_request_duration_seconds_count{endpoint_type="http"}');
    const conns = sample(m.body, 'burrow_connections_total{endpoint_type="http",outcome="ok"}');
    return requests === before + N && conns === before + N ? m.body : undefined;
  });
  assert.equal(sample(text, 'burrow_ttfb_seconds_count{endpoint_type="http"}'), before + N);
  assert.equal(sample(text, 'burrow_stream_open_seconds_count{endpoint_type="http"}'), before + N);
  assert.equal(sample(text, 'burrow_connections_total{endpoint_type="http",outcome="ok"}'), before + N);
  // Classic buckets: non-decreasing, +Inf = _count, _sum > 0.
  const edges = [...text.matchAll(/^burrow_request_duration_seconds_bucket\{endpoint_type="http",le="([^"]+)"\} (\d+)$/gm)];
  assert.equal(edges.length, 18);
  for (let i = 1; i < edges.length; i++) assert.ok(Number(edges[i]![2]) >= Number(edges[i - 1]![2]), `bucket ${edges[i]![1]}`);
  assert.equal(edges[edges.length - 1]![1], '+Inf');
  assert.equal(Number(edges[edges.length - 1]![2]), before + N);
  assert.ok(sample(text, 'burrow_request_duration_seconds_sum{endpoint_type="http"}')! > 0);
  // The acceptor's sniff counters and per-worker gauges are there too.
  assert.ok(sample(text, 'burrow_acceptor_connections_total{listener="http",outcome="head"}')! >= N);
  assert.equal(sample(text, 'burrow_workers_expected'), 2);
  assert.equal([...text.matchAll(/^burrow_worker_up\{worker="\d+"\} 1$/gm)].length, 2);
  assert.ok(sample(text, 'burrow_received_bytes_total{endpoint_type="http"}')! > 0);
});

test('https connections without an agent response: failed handshake tls-failed, refused by the relay rejected, no request closed (not no-response)', { ...T, skip: NO_THREADS_SKIP }, async () => {
  const series = (o: string): string => `burrow_connections_total{endpoint_type="https",outcome="${o}"}`;
  const base = (await get('/metrics')).body;
  const was = (o: string): number => sample(base, series(o)) ?? 0;
  // curl without --cacert: the system roots refuse the dev certificate, curl aborts the handshake.
  const r = await curl([...resolveArgs(APP, fx.https.port), `https://${APP}:${fx.https.port}/`]);
  assert.equal(r.status, 0, 'curl gave up at the handshake');
  // A handshake, then a close before any request (a browser's preconnect).
  const s = tls.connect({ host: '127.0.0.1', port: fx.https.port, servername: APP, ca: fx.caPem });
  s.on('error', () => {});
  await withTimeout('the handshake', once(s, 'secureConnect'));
  s.end();
  await withTimeout('the close', once(s, 'close'));
  // A request the relay refuses itself (two Content-Lengths: 400), nothing from the agent.
  const bad = tls.connect({ host: '127.0.0.1', port: fx.https.port, servername: APP, ca: fx.caPem });
  bad.on('error', () => {});
  let answer = '';
  bad.on('data', (d: Buffer) => (answer += d.toString('latin1')));
  await withTimeout('the handshake', once(bad, 'secureConnect'));
  bad.write(`GET / HTTP/1.1\r\nHost: ${APP}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n`);
  await withTimeout('the relay to close', once(bad, 'close'));
  assert.match(answer, /^HTTP\/1\.1 400 /);
  const text = await waitFor('the three connections counted', async () => {
    const m = (await get('/metrics')).body;
    const n = (o: string): number => (sample(m, series(o)) ?? 0) - was(o);
    return n('tls-failed') === 1 && n('closed') === 1 && n('rejected') === 1 ? m : undefined;
  });
  assert.equal(sample(text, series('no-response')) ?? 0, was('no-response'));
});

test('pipelined requests: each one is counted and timed, not only the last before the answers', { ...T, skip: NO_THREADS_SKIP }, async () => {
  // Before: the pump timed one request at a time, so requests sent behind another before its answer were never counted.
  const N = 5;
  const m0 = (await get('/metrics')).body;
  const before = sample(m0, 'burrow_request_duration_seconds_count{endpoint_type="http"}') ?? 0;
  const ttfbBefore = sample(m0, 'burrow_ttfb_seconds_count{endpoint_type="http"}') ?? 0;
  const conn = new RawHttp(fx.http.port);
  try {
    conn.socket.write(Array.from({ length: N }, (_, i) => `GET /piped/${i} HTTP/1.1\r\nHost: ${APP}\r\n\r\n`).join(''));
    for (let i = 0; i < N; i++) {
      const r = await conn.next(`pipelined response ${i}`);
      assert.equal(r.status, 200);
      assert.match(r.body.toString(), new RegExp(`"url":"/piped/${i}"`));
    }
    const text = await waitFor('the N pipelined requests to be counted', async () => {
      const m = (await get('/metrics')).body;
      return sample(m, 'burrow_request_duration_seconds_count{endpoint_type="http"}') === before + N ? m : undefined;
    }, 5_000);
    assert.equal(sample(text, 'burrow_ttfb_seconds_count{endpoint_type="http"}'), ttfbBefore + N);
  } finally {
    conn.destroy();
  }
});

test('a request on a keep-alive connection is counted when its response ends, while the connection stays open', { ...T, skip: NO_THREADS_SKIP }, async () => {
  // Before: a request was recorded when the next one came or the connection closed, so a browser's last request
  // before idling reached burrow_request_duration_seconds minutes late (--idle-timeout), or never on a busy dashboard.
  const count = async (): Promise<number> => sample((await get('/metrics')).body, 'burrow_request_duration_seconds_count{endpoint_type="http"}') ?? 0;
  const before = await count();
  const conn = new RawHttp(fx.http.port);
  try {
    for (let i = 1; i <= 2; i++) {
      const r = await conn.request(`GET /kept/${i} HTTP/1.1\r\nHost: ${APP}\r\n\r\n`, `keep-alive request ${i}`);
      assert.equal(r.status, 200);
      await waitFor(`request ${i} to be counted with its connection open`, async () => ((await count()) === before + i ? true : undefined), 5_000);
    }
  } finally {
    conn.destroy();
  }
});

test('promtool check metrics on a live /metrics reports nothing', T, async () => {
  await waitFor('an agent RTT sample', async () => {
    const m = await get('/metrics');
    return (sample(m.body, 'burrow_agent_rtt_seconds_count') ?? 0) > 0 ? true : undefined;
  });
  const m = await get('/metrics');
  assert.equal(m.status, 200);
  assert.match(m.type, /^text\/plain; version=0\.0\.4/);
  const r = await run('promtool', ['check', 'metrics'], m.body);
  assert.equal(r.out.trim(), '', `promtool findings:\n${r.out}`);
  assert.equal(r.code, 0);
});

test('/healthz, /readyz, /api/sessions, /api/endpoints; unknown paths 404', T, async () => {
  assert.deepEqual([(await get('/healthz')).status, (await get('/readyz')).status], [200, 200]);
  const s = JSON.parse((await get('/api/sessions')).body) as { sessions: Array<{ id: string; endpoints: number; authed: boolean }>; workersDown: number[] };
  assert.equal(s.sessions.length, 2);
  for (const x of s.sessions) assert.deepEqual([x.endpoints, x.authed], [1, true]);
  assert.deepEqual(s.workersDown, []);
  const e = JSON.parse((await get('/api/endpoints')).body) as { endpoints: Array<{ hostname: string; proto: string; sessionId: string }> };
  assert.deepEqual(
    e.endpoints.map((x) => [x.hostname, s.sessions.some((y) => y.id === x.sessionId)]).sort(),
    [[APP, true], [APP2, true]],
  );
  assert.equal((await get('/nope')).status, 404);
  // One request per connection: a keep-alive scraper must not hold the relay open after close().
  const port = fx.relay.adminAddress()!.port;
  const raw = await withTimeout('the admin server to close a keep-alive connection after its answer', new Promise<string>((resolve, reject) => {
    let got = '';
    const s2 = net.connect(port, '127.0.0.1', () => s2.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`));
    s2.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s2.on('error', reject);
    s2.on('close', () => resolve(got));
  }));
  assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
  // Without a token, only loopback names are answered: a page that reaches 127.0.0.1 under another name (DNS
  // rebinding) reads nothing.
  const withHost = (host: string): Promise<string> =>
    withTimeout(`an answer for Host: ${host}`, new Promise<string>((resolve, reject) => {
      let got = '';
      const s3 = net.connect(port, '127.0.0.1', () => s3.write(`GET /api/sessions HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
      s3.on('data', (d: Buffer) => (got += d.toString('latin1')));
      s3.on('error', reject);
      s3.on('close', () => resolve(got));
    }));
  assert.match(await withHost('rebound.example:9090'), /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*--admin-token/);
  for (const ok of ['localhost', `localhost:${port}`, '127.0.0.1', '[::1]:9090']) assert.match(await withHost(ok), /^HTTP\/1\.1 200 OK\r\n/, ok);
  // HEAD (load balancer health checks): the GET answer's status and length, no body. Another method: 405 with Allow.
  const head = await fetch(`${admin}/healthz`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(Number(head.headers.get('content-length')), (await get('/healthz')).body.length);
  assert.equal(await head.text(), '');
  const post = await fetch(`${admin}/metrics`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  assert.match((await get('/nope')).body, /this server answers \/metrics, /);
});

test('only a /metrics scrape takes the workers\' recorder snapshots and loop samples; /readyz and /api/sessions do not', { ...T, skip: NO_THREADS_SKIP }, async () => {
  // A readiness probe every few seconds must not reset the event-loop window the scrapes report, nor make every
  // worker encode its histograms.
  for (const [detail, full] of [['probe', false], ['sessions', false], ['metrics', true]] as const) {
    const reports = await fx.relay.dispatcher.collectStats(2_000, detail);
    assert.ok(reports.length >= 2, `${detail}: every worker answers`);
    for (const r of reports) {
      assert.ok(r.stats !== null, `${detail}: worker ${r.workerId} answered`);
      assert.equal(r.stats.recorder !== null, full, `${detail}: recorder snapshot`);
      assert.equal(r.stats.loop !== null, full, `${detail}: loop sample`);
      assert.equal(r.stats.sessionList !== null, detail === 'sessions', `${detail}: session list`);
    }
  }
});

test('/readyz fails while a worker is down and recovers after it is replaced', { ...T, skip: NO_THREADS_SKIP }, async () => {
  const restarts = fx.relay.dispatcher.restarts;
  const victim = fx.relay.dispatcher.workerIds()[0]!;
  assert.ok(fx.relay.dispatcher.postControl(victim, { op: 'test-crash' }));
  // The window between the crash and the replacement's start is short: watch /readyz until it shows, then recovers.
  const down = await waitFor('/readyz to fail', async () => {
    const r = await get('/readyz');
    return r.status === 503 ? r.body : undefined;
  });
  assert.match(down, /not ready: .*worker/);
  await waitFor('/readyz to recover', async () => ((await get('/readyz')).status === 200 ? true : undefined));
  assert.equal(fx.relay.dispatcher.restarts, restarts + 1);
  assert.ok(!fx.relay.dispatcher.workerIds().includes(victim));
  const m = await get('/metrics');
  assert.equal(sample(m.body, 'burrow_worker_restarts_total'), restarts + 1);
  // If the crashed worker held the agent's session, the agent reconnects and binds again; later tests need the route.
  await waitFor('the endpoint to be bound again', () => fx.relay.acceptor.routes.lookupHost(APP));
});

test('a live worker that does not answer is reported (worker_up 0, /readyz 503), not waited on', { ...T, skip: NO_THREADS_SKIP }, async () => {
  const victim = fx.relay.dispatcher.workerIds()[1]!;
  const restarts = fx.relay.dispatcher.restarts;
  assert.ok(fx.relay.dispatcher.postControl(victim, { op: 'test-crash', hangMs: 2500 }));
  // The scrape answers after the per-worker timeout (1 s), long before the worker is free again.
  const t0 = Date.now();
  const m = await get('/metrics');
  const took = Date.now() - t0;
  assert.equal(m.status, 200);
  assert.match(m.body, new RegExp(`^burrow_worker_up\\{worker="${victim}"\\} 0$`, 'm'));
  assert.ok(took < 2300, `the scrape waited ${took} ms`);
  const r = await get('/readyz');
  if (r.status === 503) assert.match(r.body, new RegExp(`worker ${victim} did not answer`));
  await waitFor('the worker to answer again', async () => ((await get('/readyz')).status === 200 ? true : undefined));
  assert.equal(fx.relay.dispatcher.restarts, restarts, 'a slow worker is not replaced');
});

test('admin off loopback: refused without a token; with one, requests need the bearer token', T, async () => {
  await assert.rejects(
    startRelayFixture({ workers: 0, adminAddr: { host: '0.0.0.0', port: 0 } }),
    (err: unknown) => isBurrowError(err, 'BURROW_ERR_ADMIN_TOKEN_REQUIRED') && /--admin-token/.test((err as Error).message),
  );
  const token = 'metrics-test-token-0123456789';
  const fx2 = await startRelayFixture({ workers: 0, adminAddr: { host: '0.0.0.0', port: 0 }, adminToken: token });
  try {
    const url = `http://127.0.0.1:${fx2.relay.adminAddress()!.port}/healthz`;
    const unauth = await fetch(url);
    assert.equal(unauth.status, 401);
    assert.equal(unauth.headers.get('www-authenticate'), 'Bearer realm="burrow"');
    assert.equal((await fetch(url, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status, 401);
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    const m = await fetch(url.replace('/healthz', '/metrics'), { headers: { authorization: `Bearer ${token}` } });
    assert.match(await m.text(), /^burrow_worker_up\{worker="0"\} 1$/m);
  } finally {
    await fx2.close();
  }
});

test('the agent\'s own /metrics: relay RTT, upstream dial and TTFB histograms, counters; promtool clean', T, async () => {
  const server = await startAgentMetricsServer(agent, { host: '127.0.0.1', port: 0 }, null, 'test');
  try {
    const url = `http://127.0.0.1:${server.port}/metrics`;
    const count = async (name: string): Promise<number> => sample(await (await fetch(url)).text(), name) ?? 0;
    const dials = await count('burrow_agent_upstream_dial_seconds_count');
    for (let i = 0; i < 3; i++) {
      assert.equal((await curl([...resolveArgs(APP, fx.http.port), `http://${APP}:${fx.http.port}/agent/${i}`])).status, 200);
    }
    const body = await (await fetch(url)).text();
    assert.equal(sample(body, 'burrow_agent_upstream_dial_seconds_count'), dials + 3);
    assert.equal(sample(body, 'burrow_agent_ttfb_seconds_count'), dials + 3);
    assert.ok(sample(body, 'burrow_agent_relay_rtt_seconds_count')! >= 1, 'the first heartbeat is measured at session start');
    assert.equal(sample(body, 'burrow_agent_endpoints'), 1);
    const r = await run('promtool', ['check', 'metrics'], body);
    assert.equal(r.out.trim(), '', `promtool findings:\n${r.out}`);
  } finally {
    server.close();
  }
});

test('single-threaded fallback with --metrics-per-endpoint: counts per hostname; off by default', T, async () => {
  assert.doesNotMatch((await get('/metrics')).body, /burrow_endpoint_/, 'no hostname labels unless asked for');
  const fx2 = await startRelayFixture({ workers: 0, adminAddr: { host: '127.0.0.1', port: 0 }, metricsPerEndpoint: true });
  try {
    const host = 'per-endpoint.burrow.localhost';
    const up2 = await startHttpUpstream(fx2.cleanup);
    const a2 = await withTimeout('a second agent', connect({ server: `localhost:${fx2.agent.port}`, authtoken: fx2.token, ca: fx2.caPem }));
    fx2.cleanup.defer('close the second agent', () => a2.close(1000));
    await withTimeout('Bind', a2.forward(`http://127.0.0.1:${up2.port}`, { url: `http://${host}` }));
    const url = `http://${host}:${fx2.http.port}/`;
    // 2 connections: one request, then three keep-alive requests on one connection.
    assert.equal((await curl([...resolveArgs(host, fx2.http.port), url])).status, 200);
    const r = await curl([...resolveArgs(host, fx2.http.port), url, url, url]);
    assert.deepEqual(r.transfers.map((t) => [t['status'], t['num_connects']]), [['200', '1'], ['200', '0'], ['200', '0']]);
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${fx2.relay.adminAddress()!.port}/metrics`)).text();
    const text = await waitFor('both connections to be counted', async () => {
      const t = await scrape();
      return sample(t, `burrow_endpoint_connections_total{endpoint="${host}"}`) === 2 ? t : undefined;
    });
    assert.equal(sample(text, `burrow_endpoint_requests_total{endpoint="${host}"}`), 4);
    assert.equal(sample(text, 'burrow_request_duration_seconds_count{endpoint_type="http"}'), 4);
    assert.ok(sample(text, `burrow_endpoint_sent_bytes_total{endpoint="${host}"}`)! > 0);
    assert.match(text, /^burrow_worker_up\{worker="0"\} 1$/m);
    const lint = await run('promtool', ['check', 'metrics'], text);
    assert.equal(lint.out.trim(), '', `promtool findings:\n${lint.out}`);
  } finally {
    await fx2.close();
  }
});

test('the admin server owns its port: another process cannot listen on it too', async (t) => {
  // uWS binds with SO_REUSEPORT unless told otherwise: a second relay (or agent metrics server) given a taken port
  // then started without an error and shared it, each process answering some of the scrapes.
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const first = await AdminServer.start({ host: '127.0.0.1', port, token: null, routes: {} }, '--admin-addr', '--admin-token');
  t.after(() => first.close());
  const second = await runCmd(process.execPath, [
    '--input-type=module',
    '-e',
    `const { AdminServer } = await import(${JSON.stringify(ADMIN_SERVER_JS)});
     try { (await AdminServer.start({ host: '127.0.0.1', port: ${port}, token: null, routes: {} }, '--admin-addr', '--admin-token')).close(); console.log('listening'); }
     catch (e) { console.log(e.code, e.message); }`,
  ]);
  assert.match(second.stdout, new RegExp(`^BURROW_ERR_RELAY_LISTEN --admin-addr 127\\.0\\.0\\.1:${port}: cannot listen \\(EADDRINUSE\\); free the port`));
});

test('the agent\'s metrics server on a taken port fails with its own code, naming --metrics-addr', async (t) => {
  const taken = net.createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  await assert.rejects(startAgentMetricsServer(agent, { host: '127.0.0.1', port }, null, 'test'), (e: unknown) => {
    assert.ok(isBurrowError(e, 'BURROW_ERR_AGENT_METRICS_LISTEN'), String(e));
    assert.match((e as Error).message, new RegExp(`^--metrics-addr 127\\.0\\.0\\.1:${port}: cannot listen \\(EADDRINUSE\\)`));
    return true;
  });
});
