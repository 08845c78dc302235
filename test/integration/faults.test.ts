// Fault tests (hostile-input issue, item 6) on the real relay: an agent process SIGKILLed in the middle of a response
// (the client sees the cut, no hang), a worker crash through the test hook (replaced; connections on the other
// worker carry on), an upstream refusing connections behind the SDK (502 page), and a slow reader of a 100 MiB
// response (the relay process's RSS stays bounded). Agents: burrow's CLI agent and the SDK in child processes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import ngrok from '@ngrok/ngrok';
import { connect } from '../../src/index.js';
import { RawHttp } from '../helpers/raw-http.js';
import { rss, startRelayProcess } from '../helpers/relay-process.js';
import {
  curl,
  forward,
  listen,
  resolveArgs,
  startHttpUpstream,
  startRelayFixture,
  waitFor,
  withTimeout,
  type RelayFixture,
} from '../helpers/relay-fixture.js';
import { NO_THREADS_SKIP } from '../helpers/native-skip.js';

const BIN = fileURLToPath(new URL('../../../bin/burrow.js', import.meta.url));
const T = { timeout: 60_000 };
const MiB = 1024 * 1024;

/** `burrow http <upstream>` in a child process; resolves once its endpoint is online (JSON log line). */
async function childAgent(t: TestContext, args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, 'http', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const url = await withTimeout(
    'the child agent to come online',
    new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (l) => {
        if (!l.startsWith('{')) return;
        const rec = JSON.parse(l) as { msg?: string; url?: string };
        if (rec.msg === 'endpoint online' && rec.url !== undefined) resolve(rec.url);
      });
      child.once('exit', (code) => reject(new Error(`agent exited (${code}): ${err}`)));
    }),
  );
  return { child, url };
}

/**
 * GET / on `host` through the relay; once the upstream has sent its part (`upstreamSent`) and the client has more than
 * 1 KiB of the answer, SIGKILL the agent and wait for the client connection to end. Returns what the client got and
 * how its connection ended ('end' or the socket error code).
 */
async function killAgentMidBody(t: TestContext, fx: RelayFixture, agent: ChildProcess, host: string, upstreamSent: Promise<void>): Promise<{ got: number; ending: string }> {
  const c = new RawHttp(fx.http.port);
  t.after(() => c.destroy());
  let got = 0;
  let ending = 'end';
  c.socket.on('error', (e: NodeJS.ErrnoException) => (ending = e.code ?? e.message));
  const firstBody = new Promise<void>((resolve) =>
    c.socket.on('data', (d: Buffer) => {
      got += d.length;
      if (got > 1024) resolve();
    }),
  );
  c.socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  await withTimeout('the first body bytes', Promise.all([upstreamSent, firstBody]));
  agent.kill('SIGKILL');
  await withTimeout('the client connection to be cut after the agent died', c.closed, 20_000);
  return { got, ending };
}

test('agent SIGKILLed mid-response: the client sees the connection cut before the full body, no hang', T, async (t) => {
  const fx = await startRelayFixture();
  t.after(() => fx.close());
  // An upstream that sends the head and 64 KiB of a 1 MiB body, then holds.
  let sent!: () => void;
  const partial = new Promise<void>((resolve) => (sent = resolve));
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': MiB });
    res.write(Buffer.alloc(64 * 1024, 0x61), () => sent());
  });
  const upPort = await listen(server);
  fx.cleanup.defer('close the partial upstream', () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  const { child, url } = await childAgent(t, [
    `127.0.0.1:${upPort}`,
    '--url', 'http://cut.burrow.localhost',
    '--server', `localhost:${fx.agent.port}`,
    '--authtoken', fx.token,
    '--ca', fx.caPath,
  ]);
  assert.match(url, /cut\.burrow\.localhost/);
  const { got } = await killAgentMidBody(t, fx, child, 'cut.burrow.localhost', partial);
  assert.ok(got < MiB, `the client got ${got} bytes: the body must be visibly truncated`);
  assert.ok(got >= 64 * 1024 - 1024, 'what was sent before the kill arrived');
});

test('agent SIGKILLed in a close-delimited body: the client gets a reset, not an end that would read as the whole body', T, async (t) => {
  const fx = await startRelayFixture();
  t.after(() => fx.close());
  // A response without Content-Length or chunking: its body ends where the connection does (RFC 9112 §6.3).
  let sent!: () => void;
  const partial = new Promise<void>((resolve) => (sent = resolve));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('data', () => s.write(`HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n${'b'.repeat(16 * 1024)}`, () => sent()));
  });
  const upPort = await listen(server);
  fx.cleanup.defer('close the close-delimited upstream', () => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), server.close(() => r()))));
  const { child } = await childAgent(t, [
    `127.0.0.1:${upPort}`,
    '--url', 'http://eof.burrow.localhost',
    '--server', `localhost:${fx.agent.port}`,
    '--authtoken', fx.token,
    '--ca', fx.caPath,
  ]);
  const { got, ending } = await killAgentMidBody(t, fx, child, 'eof.burrow.localhost', partial);
  assert.equal(ending, 'ECONNRESET', `the client saw '${ending}' after ${got} bytes: a clean end reads as a complete body`);
});

/** A relay fixture with two worker threads and the test hooks on; null (test skipped) without worker threads. */
async function workersWithTestHooks(t: TestContext): Promise<RelayFixture | null> {
  process.env['BURROW_TEST_HOOKS'] = '1';
  const fx = await startRelayFixture({ workers: 2 });
  t.after(async () => {
    delete process.env['BURROW_TEST_HOOKS'];
    await fx.close();
  });
  if (fx.relay.threaded) return fx;
  t.skip('native addon unavailable: no worker threads');
  return null;
}

test('worker crash (test hook): the worker is replaced, its connections cut, connections on the other worker carry on', T, async (t) => {
  const fx = await workersWithTestHooks(t);
  if (fx === null) return;
  const up = await startHttpUpstream(fx.cleanup);
  const names = ['crashy.burrow.localhost', 'steady.burrow.localhost'];
  for (const name of names) {
    const s = await fx.connectSdk(`SDK session for ${name}`);
    await forward(fx.cleanup, name, s.httpEndpoint().domain(name).listenAndForward(`http://127.0.0.1:${up.port}`));
  }
  const [crashy, steady] = names.map((n) => fx.relay.acceptor.routes.lookupHost(n)!.members[0]!);
  assert.notEqual(crashy!.workerId, steady!.workerId, 'the two sessions must live on different workers');
  const onCrashy = new RawHttp(fx.http.port);
  const onSteady = new RawHttp(fx.http.port);
  t.after(() => (onCrashy.destroy(), onSteady.destroy()));
  assert.equal((await onCrashy.request(`GET /1 HTTP/1.1\r\nHost: ${names[0]}\r\n\r\n`, 'crashy first')).status, 200);
  assert.equal((await onSteady.request(`GET /1 HTTP/1.1\r\nHost: ${names[1]}\r\n\r\n`, 'steady first')).status, 200);

  assert.equal(fx.relay.dispatcher.crashWorkerForTest(crashy!.workerId), crashy!.workerId);
  await withTimeout('the connection on the crashed worker to be cut', onCrashy.closed);
  await waitFor('the crashed worker to be replaced', () => {
    const ids = fx.relay.dispatcher.workerIds();
    return ids.length === 2 && !ids.includes(crashy!.workerId) ? true : undefined;
  });
  await waitFor('the crashed worker’s route to be dropped', () => (fx.relay.acceptor.routes.lookupHost(names[0]!) === undefined ? true : undefined));
  // The other worker's keep-alive connection, session and route are untouched.
  assert.equal((await onSteady.request(`GET /2 HTTP/1.1\r\nHost: ${names[1]}\r\n\r\n`, 'steady after the crash')).status, 200);
  assert.equal(fx.relay.acceptor.routes.lookupHost(names[1]!)?.members[0]?.sessionId, steady!.sessionId);
  // The replacement worker takes new sessions.
  const s3 = await fx.connectSdk('a session after the crash');
  await forward(fx.cleanup, 'again', s3.httpEndpoint().domain('again.burrow.localhost').listenAndForward(`http://127.0.0.1:${up.port}`));
  const r = await curl([...resolveArgs('again.burrow.localhost', fx.http.port), `http://again.burrow.localhost:${fx.http.port}/`]);
  assert.equal(r.status, 200);
});

test('a connection handed to a worker that crashes before taking it is closed, not left hanging', T, async (t) => {
  const fx = await workersWithTestHooks(t);
  if (fx === null) return;
  const up = await startHttpUpstream(fx.cleanup);
  const name = 'doomed.burrow.localhost';
  const s = await fx.connectSdk('SDK session on the worker that will crash');
  await forward(fx.cleanup, name, s.httpEndpoint().domain(name).listenAndForward(`http://127.0.0.1:${up.port}`));
  const owner = fx.relay.acceptor.routes.lookupHost(name)!.members[0]!.workerId;
  // The owner dies when the next connection reaches it, before taking its descriptor (as when a worker crashes with
  // tasks still queued for it): the descriptor is the acceptor's to close (fd-claims.ts). A stats round trip on the
  // same control port shows the hook is armed before any connection is made.
  assert.ok(fx.relay.dispatcher.postControl(owner, { op: 'test-crash', onNextConnection: true }));
  const stats = await fx.relay.dispatcher.collectStats(5000, 'probe');
  assert.ok(stats.some((w) => w.workerId === owner && w.stats !== null), 'the owner answered after the hook was armed');
  // One connection: it reaches the worker, which dies without taking it. (Connections made while the worker dies take
  // other paths — the surviving worker, a 404, the SDK's new session — and are not what this test is about.)
  const c = net.connect(fx.http.port, '127.0.0.1');
  c.on('error', () => {}); // a reset is as good as a close here
  c.write(`GET / HTTP/1.1\r\nHost: ${name}\r\nConnection: close\r\n\r\n`);
  t.after(() => c.destroy());
  await withTimeout('the connection queued on the crashed worker to be closed', c.closed ? Promise.resolve() : once(c, 'close').then(() => {}), 20_000);
  await waitFor('the crashed worker to be replaced', () => (fx.relay.dispatcher.workerIds().length === 2 && !fx.relay.dispatcher.workerIds().includes(owner) ? true : undefined));
  const r = await curl([...resolveArgs('nobody.burrow.localhost', fx.http.port), `http://nobody.burrow.localhost:${fx.http.port}/`]);
  assert.equal(r.status, 404, 'the relay still answers');
});

test('SIGUSR2 with BURROW_TEST_HOOKS=1 crashes a worker of `burrow relay`, which keeps serving', { ...T, skip: NO_THREADS_SKIP }, async (t) => {
  const relay = await startRelayProcess(t, ['--workers', '2'], { BURROW_TEST_HOOKS: '1' });
  const crashed = new Promise<string>((resolve) =>
    createInterface({ input: relay.child.stderr }).on('line', (l) => {
      if (l.includes('test hook')) resolve(l);
    }),
  );
  relay.child.kill('SIGUSR2');
  assert.match(await withTimeout('the hook to report', crashed), /test hook: worker \d+ told to crash/);
  const r = await curl([...resolveArgs('nobody.burrow.localhost', relay.httpPort), `http://nobody.burrow.localhost:${relay.httpPort}/`]);
  assert.equal(r.status, 404, 'the relay still answers');
  relay.child.kill('SIGTERM');
  const [code] = (await withTimeout('the relay to exit', once(relay.child, 'exit'))) as [number | null];
  assert.equal(code, 0);
});

test('upstream refusing connections behind the SDK agent → 502 page reaches the client', T, async (t) => {
  const fx = await startRelayFixture();
  t.after(() => fx.close());
  // A port with nothing listening: bind, note, close.
  const probe = net.createServer();
  const dead = await listen(probe);
  await new Promise<void>((r) => probe.close(() => r()));
  const s = await fx.connectSdk();
  await forward(fx.cleanup, 'refused', s.httpEndpoint().domain('refused.burrow.localhost').listenAndForward(`http://127.0.0.1:${dead}`));
  const r = await curl([...resolveArgs('refused.burrow.localhost', fx.http.port), `http://refused.burrow.localhost:${fx.http.port}/`]);
  // The SDK answers the proxy stream with its own 502 page naming the dial error; the relay passes it on intact.
  // (burrow's own agent does the same with its page: test/integration/agent.test.ts "upstream down".)
  assert.equal(r.status, 502, `${r.stderr} ${r.body.slice(0, 200)}`);
  assert.match(r.body, /Connection refused/);
});

test('a client that resets a tcp connection paused by backpressure frees its stream: the agent drops the connection', T, async (t) => {
  // Before: the relay stops reading a client whose stream is full, and libuv does not watch such a socket, so the
  // client's RST went unseen for as long as the upstream did not read: the stream, the agent's buffers (~2 MiB) and
  // the upstream connection were held for good. Now paused sockets are polled every 5 s.
  const fx = await startRelayFixture();
  t.after(() => fx.close());
  const up = net.createServer((c) => {
    c.pause(); // never reads: the tunnel fills up to the client
    c.on('error', () => {});
  });
  const port = await listen(up);
  t.after(() => up.close());
  // burrow's agent: it closes the upstream connection when the relay resets the stream (the SDK, blocked writing to
  // an upstream that does not read, keeps it).
  const agent = await withTimeout('our agent to connect', connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem }));
  fx.cleanup.defer('close our agent', () => agent.close(200));
  const ep = await withTimeout('Bind of the tcp endpoint', agent.forward(`tcp://127.0.0.1:${port}`, { kind: 'tcp' }));
  const relayPort = Number(new URL(ep.url).port);
  const client = net.connect(relayPort, '127.0.0.1');
  await once(client, 'connect');
  // Write until nothing moves for 500 ms: every buffer between here and the upstream is full, the relay has paused us.
  const chunk = Buffer.alloc(64 * 1024, 1);
  for (let stuck = false; !stuck; ) {
    if (client.write(chunk)) continue;
    stuck = await Promise.race([once(client, 'drain').then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 500))]);
  }
  assert.equal(ep.counters.open, 1);
  client.resetAndDestroy();
  // The relay resets the stream; the agent then drops the connection and its upstream socket.
  await waitFor('the agent\'s connection to end after the client\'s reset', () => (ep.counters.open === 0 ? true : undefined), 15_000);
});

test('a client that resets while its WebSocket Upgrade waits for the answer frees its stream and the upstream connection', T, async (t) => {
  // Before: the relay pauses the client until the Upgrade is answered and did not watch it, so with a service that
  // takes its time the client's RST went unseen until the idle timeout (5 min): stream, session slot and upstream
  // connection held (review finding).
  const fx = await startRelayFixture();
  t.after(() => fx.close());
  const upstreamSockets = new Set<net.Socket>();
  const up = http.createServer(() => {}); // never answers
  up.on('connection', (c) => {
    upstreamSockets.add(c);
    c.on('close', () => upstreamSockets.delete(c));
  });
  const port = await listen(up);
  t.after(() => (up.closeAllConnections(), up.close()));
  const agent = await withTimeout('our agent to connect', connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem }));
  fx.cleanup.defer('close our agent', () => agent.close(200));
  const ep = await withTimeout('Bind of the http endpoint', agent.forward(`http://127.0.0.1:${port}`, { url: 'http://ws-wait.burrow.localhost' }));
  const client = net.connect(fx.http.port, '127.0.0.1');
  client.on('error', () => {});
  await once(client, 'connect');
  client.write(
    'GET /socket HTTP/1.1\r\nHost: ws-wait.burrow.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  await waitFor('the request to reach the service', () => (upstreamSockets.size === 1 ? true : undefined));
  assert.equal(ep.counters.open, 1);
  client.resetAndDestroy();
  await waitFor("the agent's connection to end after the client's reset", () => (ep.counters.open === 0 ? true : undefined), 15_000);
  await waitFor('the upstream connection to close', () => (upstreamSockets.size === 0 ? true : undefined), 15_000);
});

test('an upstream that resets a tcp connection: the public client gets a reset too, not a FIN that reads as a clean end', T, async (t) => {
  const fx = await startRelayFixture();
  t.after(() => fx.close());
  const up = net.createServer((c) => {
    c.on('error', () => {});
    c.write('partial answer', () => setTimeout(() => c.resetAndDestroy(), 50));
  });
  const port = await listen(up);
  t.after(() => up.close());
  const agent = await withTimeout('our agent to connect', connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem }));
  fx.cleanup.defer('close our agent', () => agent.close(200));
  const ep = await withTimeout('Bind of the tcp endpoint', agent.forward(`tcp://127.0.0.1:${port}`, { kind: 'tcp' }));
  const client = net.connect(Number(new URL(ep.url).port), '127.0.0.1');
  let got = '';
  let ended = false;
  client.on('data', (d: Buffer) => (got += d.toString()));
  client.on('end', () => (ended = true));
  const [err] = (await withTimeout('the client to see a reset', once(client, 'error'))) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNRESET');
  assert.equal(ended, false, 'a FIN came first');
  assert.equal(got, 'partial answer');
});

test('slow reader of a 100 MiB response: the relay process RSS stays bounded (flow control end to end)', T, async (t) => {
  const relay = await startRelayProcess(t, ['--workers', '1']);
  const httpPort = relay.httpPort;
  // 100 MiB, generated as it is read (the upstream's own memory stays small too).
  const big = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': 100 * MiB });
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    let left = 100 * MiB;
    const pump = (): void => {
      while (left > 0) {
        left -= chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  const bigPort = await listen(big);
  t.after(() => new Promise<void>((r) => (big.closeAllConnections(), big.close(() => r()))));
  const session = await withTimeout(
    'the SDK to connect to the relay process',
    new ngrok.SessionBuilder()
      .authtoken(relay.token)
      .serverAddr(relay.agentAddr.replace('127.0.0.1', 'localhost'))
      .caCert(readFileSync(relay.caPath))
      .handleDisconnection(() => false)
      .connect(),
  );
  await withTimeout('Bind', session.httpEndpoint().domain('big.burrow.localhost').listenAndForward(`http://127.0.0.1:${bigPort}`));

  const before = rss(relay.child.pid!);
  const c = net.connect({ host: '127.0.0.1', port: httpPort });
  t.after(() => c.destroy());
  c.write('GET /big HTTP/1.1\r\nHost: big.burrow.localhost\r\n\r\n');
  // Read 16 KiB every 50 ms (≈ 320 KiB/s) for 3 s, sampling the relay's RSS.
  let got = 0;
  let peak = before;
  c.pause();
  await once(c, 'readable');
  const until = Date.now() + 3_000;
  while (Date.now() < until) {
    const chunk = c.readableLength > 0 ? (c.read(Math.min(16 * 1024, c.readableLength)) as Buffer | null) : null;
    if (chunk !== null) got += chunk.length;
    peak = Math.max(peak, rss(relay.child.pid!));
    await new Promise((r) => setTimeout(r, 50));
  }
  const growth = peak - before;
  t.diagnostic(`relay RSS before ${(before / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB); client read ${(got / MiB).toFixed(2)} MiB of 100 MiB`);
  assert.ok(got > 0 && got < 20 * MiB, `the client read ${got} bytes: it must be slow, not stalled`);
  assert.ok(growth < 32 * MiB, `relay RSS grew by ${(growth / MiB).toFixed(1)} MiB while a 100 MiB response waited on a slow reader`);
  c.destroy();
  // The SDK first (its close() is answered by the relay), then the relay.
  await withTimeout('the SDK session to close', session.close(), 5_000).catch(() => {});
  relay.child.kill('SIGTERM');
  await withTimeout('the relay to exit', once(relay.child, 'exit'));
});
