// Resource limits at the real relay (docs/security.md §Limits), each set low so it is reached in a test: public
// connections per endpoint (503) and per client IP (closed at accept, counted), the idle timeout, the head size of a
// later keep-alive request (431), proxy streams per session (502 while the agent is at its limit), and the RPC size
// (an Auth above --rpc-max is refused and the session is not admitted). Agents: the @ngrok/ngrok SDK.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import { connect, isBurrowError } from '../../src/index.js';
import { RawHttp } from '../helpers/raw-http.js';
import { forward, rawExchange, startHttpUpstream, startRelayFixture, startTcpEcho, statusOf, waitFor, withTimeout, type HttpUpstream, type RelayFixture, type RelayFixtureOptions } from '../helpers/relay-fixture.js';
import type { RelayLimits } from '../../src/config/relay-limits.js';
import { MuxStream } from '../../src/mux/mux-stream.js';
import { CONNECTION_OUTCOMES, ENDPOINT_TYPES } from '../../src/metrics/relay-recorder.js';

const APP = 'app.burrow.localhost';
const T = { timeout: 30_000 };

async function relayWithApp(opts: RelayFixtureOptions) {
  const fx = await startRelayFixture(opts);
  const up = await startHttpUpstream(fx.cleanup);
  const s = await fx.connectSdk();
  await forward(fx.cleanup, APP, s.httpEndpoint().domain(APP).listenAndForward(`http://127.0.0.1:${up.port}`));
  return { fx, up };
}

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: ${APP}\r\n\r\n`;

/**
 * Open connections whose requests the upstream holds (never answers), until `n` are held: each occupies one of the
 * session's proxy streams. Right after Bind the SDK may not have closed its Bind stream yet (it counts until it does),
 * so a refusal then is retried, within a deadline. The connections are destroyed when the test ends.
 */
async function holdRequests(t: TestContext, fx: RelayFixture, up: HttpUpstream, n: number, path: (i: number) => string): Promise<RawHttp[]> {
  const held: RawHttp[] = [];
  const opened: RawHttp[] = [];
  t.after(() => opened.forEach((h) => h.destroy()));
  const deadline = Date.now() + 5_000;
  while (held.length < n) {
    const h = new RawHttp(fx.http.port);
    opened.push(h);
    const holding = new Promise<boolean>((resolve) => {
      up.once('hang', () => resolve(true));
      void h.closed.then(() => resolve(false));
    });
    h.socket.write(GET(path(held.length)));
    if (await withTimeout('a held request or a refusal', holding)) held.push(h);
    else assert.ok(Date.now() < deadline, `the session never had ${n} free stream(s)`);
  }
  return held;
}

test('--max-conns-per-endpoint: the connection over the limit gets a 503 page; a freed slot serves again', T, async (t) => {
  const { fx } = await relayWithApp({ limits: { maxConnsPerEndpoint: 2 } });
  t.after(() => fx.close());
  const a = new RawHttp(fx.http.port);
  const b = new RawHttp(fx.http.port);
  t.after(() => (a.destroy(), b.destroy()));
  assert.equal((await a.request(GET('/a'), 'response on connection a')).status, 200);
  assert.equal((await b.request(GET('/b'), 'response on connection b')).status, 200);
  const over = await rawExchange(fx.http.port, GET('/c'));
  assert.equal(statusOf(over.data), 503, over.data.toString('latin1').slice(0, 200));
  assert.match(over.data.toString('latin1'), /has 2 open connections, its limit/);
  const errors = (await fx.relay.dispatcher.collectStats(2_000, 'metrics')).reduce(
    (n, r) => n + (r.stats?.recorder?.errors['BURROW_ERR_RELAY_CONN_LIMIT'] ?? 0),
    0,
  );
  assert.equal(errors, 1, 'the refusal is counted under its error code (burrow_errors_total)');
  a.destroy();
  await a.closed;
  // The worker counts the slot free once it sees the close; retry until it has (bounded).
  await waitFor(
    'the freed slot to serve',
    async () => (statusOf((await rawExchange(fx.http.port, `GET /d HTTP/1.1\r\nHost: ${APP}\r\nConnection: close\r\n\r\n`)).data) === 200 ? true : undefined),
    5_000,
  );
});

test('--max-conns-per-ip: connections beyond the limit are closed at accept and counted; closing one frees a slot', T, async (t) => {
  // 4: the SDK agent's own connection comes from 127.0.0.1 too (the limit counts every listener), leaving 3.
  const { fx } = await relayWithApp({ limits: { maxConnsPerIp: 4 } });
  t.after(() => fx.close());
  const held: RawHttp[] = [];
  t.after(() => held.forEach((h) => h.destroy()));
  for (let i = 0; i < 3; i++) {
    const h = new RawHttp(fx.http.port);
    held.push(h);
    assert.equal((await h.request(GET(`/held-${i}`), `held connection ${i}`)).status, 200);
  }
  const refused = await rawExchange(fx.http.port, GET('/over'));
  assert.equal(refused.data.length, 0, 'nothing is answered to the connection over the limit');
  assert.equal(fx.counter('http:ip-limit'), 1);
  // Also on another listener: the count is per IP, not per listener.
  const tlsRefused = await rawExchange(fx.https.port, Buffer.from([0x16, 0x03, 0x01]));
  assert.equal(tlsRefused.data.length, 0);
  assert.equal(fx.counter('https:ip-limit'), 1);
  held.pop()!.destroy();
  await waitFor(
    'the freed slot to serve',
    async () => (statusOf((await rawExchange(fx.http.port, `GET /again HTTP/1.1\r\nHost: ${APP}\r\nConnection: close\r\n\r\n`)).data) === 200 ? true : undefined),
    5_000,
  );
  assert.ok(fx.relay.acceptor.connectionsFrom('127.0.0.1') <= 4);
});

test('--idle-timeout: a keep-alive connection with no bytes either way is closed by the relay', T, async (t) => {
  const { fx } = await relayWithApp({ limits: { idleTimeoutMs: 300 } });
  t.after(() => fx.close());
  const c = new RawHttp(fx.http.port);
  t.after(() => c.destroy());
  assert.equal((await c.request(GET('/x'), 'the response')).status, 200);
  const quietFrom = Date.now();
  await withTimeout('the relay to close the idle connection', c.closed, 5_000);
  assert.ok(Date.now() - quietFrom >= 250, 'closed before the idle timeout');
});

/** A relay with `limits`, an SDK tcp endpoint to an echo server, and a client connected through it. */
async function tcpThroughRelay(t: TestContext, limits: Partial<RelayLimits>): Promise<net.Socket> {
  const fx = await startRelayFixture({ limits });
  t.after(() => fx.close());
  const echo = await startTcpEcho(fx.cleanup);
  const s = await fx.connectSdk();
  const tl = await forward(fx.cleanup, 'tcp', s.tcpEndpoint().listenAndForward(`tcp://127.0.0.1:${echo.port}`));
  const sock = net.connect({ host: '127.0.0.1', port: Number(new URL(tl.url()!).port) });
  t.after(() => sock.destroy());
  return sock;
}

test('--tcp-idle-timeout: a tunnelled tcp connection with no bytes either way is closed by the relay', T, async (t) => {
  // The tcp pump (BytePipe) shares one 'timeout' listener across sockets; this checks it still closes idle ones.
  const sock = await tcpThroughRelay(t, { tcpIdleTimeoutMs: 300 });
  sock.write('x');
  const [first] = (await withTimeout('the echoed byte', once(sock, 'data'))) as [Buffer];
  assert.equal(first.toString('latin1'), 'x');
  const quietFrom = Date.now();
  await withTimeout('the relay to close the idle tcp connection', once(sock, 'close'), 5_000);
  assert.ok(Date.now() - quietFrom >= 250, 'closed before the idle timeout');
});

test('--idle-timeout does not apply to tcp endpoints: a quiet tunnelled tcp connection stays open', T, async (t) => {
  const sock = await tcpThroughRelay(t, { idleTimeoutMs: 200 });
  let closed = false;
  sock.on('close', () => (closed = true));
  sock.write('x');
  await withTimeout('the echoed byte', once(sock, 'data'));
  // Quiet for 5 × the http idle timeout (a bounded wait is the only way to see that nothing happens), then still used.
  await new Promise((r) => setTimeout(r, 1_000));
  assert.equal(closed, false, 'the relay closed a quiet tcp connection under --idle-timeout');
  sock.write('y');
  const [again] = (await withTimeout('the echo after the quiet second', once(sock, 'data'))) as [Buffer];
  assert.equal(again.toString('latin1'), 'y');
});

test('--http-head-timeout: an https client that finishes the handshake and sends nothing is closed at the deadline, unanswered', T, async (t) => {
  // The acceptor's preread deadline stops at the ClientHello; the worker must bound the handshake + first head too.
  const { fx } = await relayWithApp({ limits: { httpHeadTimeoutMs: 300 } });
  t.after(() => fx.close());
  const c = tls.connect({ host: '127.0.0.1', port: fx.https.port, servername: APP, ca: fx.caPem });
  t.after(() => c.destroy());
  await withTimeout('the TLS handshake', once(c, 'secureConnect'));
  const quietFrom = Date.now();
  const got: Buffer[] = [];
  c.on('data', (d: Buffer) => got.push(d));
  await withTimeout('the relay to close the silent https connection', once(c, 'close'), 5_000);
  assert.ok(Date.now() - quietFrom >= 250, 'closed before the head deadline');
  // No request was made (a browser's preconnect looks like this): no 408 page, as nginx does.
  assert.equal(Buffer.concat(got).length, 0, Buffer.concat(got).toString('latin1').slice(0, 200));
});

test('--http-head-timeout on https: empty lines before the first request do not hold the deadline off', T, async (t) => {
  // Before: the filter skips CRLFs before a request line, and each read without a head in progress cleared the
  // deadline, so "\r\n" every few seconds held a connection forever without a request.
  const { fx } = await relayWithApp({ limits: { httpHeadTimeoutMs: 300 } });
  t.after(() => fx.close());
  const c = tls.connect({ host: '127.0.0.1', port: fx.https.port, servername: APP, ca: fx.caPem });
  t.after(() => c.destroy());
  await withTimeout('the TLS handshake', once(c, 'secureConnect'));
  c.on('data', () => {});
  c.on('error', () => {});
  const tick = setInterval(() => c.write('\r\n'), 50);
  t.after(() => clearInterval(tick));
  await withTimeout('the relay to close a connection that sends only empty lines', once(c, 'close'), 5_000);
});

test('--http-head-max: a later request head over the limit on a keep-alive connection → 431 and close', T, async (t) => {
  const { fx, up } = await relayWithApp({ limits: { httpHeadMax: 2048 } });
  t.after(() => fx.close());
  const c = new RawHttp(fx.http.port);
  t.after(() => c.destroy());
  assert.equal((await c.request(GET('/first'), 'first response')).status, 200);
  const big = await c.request(`GET /big HTTP/1.1\r\nHost: ${APP}\r\nX-Pad: ${'p'.repeat(3000)}\r\n\r\n`, 'the 431');
  assert.equal(big.status, 431, big.head);
  await withTimeout('close after 431', c.closed);
  assert.deepEqual(up.requests.map((r) => r.url), ['/first']);
});

test('--max-streams-per-session: at the limit, another public connection gets a 502 page; the session serves on', T, async (t) => {
  // 3: the SDK's heartbeat stream counts too (the limit guards the SDK's own cap on live streams), leaving 2. (The
  // relay opens no RTT-probe stream to SDK agents: PROTOCOL.md §7.)
  const { fx, up } = await relayWithApp({ limits: { maxStreamsPerSession: 3 } });
  t.after(() => fx.close());
  // Two requests the upstream holds (never answers) occupy both remaining streams of the session.
  const hangs = await holdRequests(t, fx, up, 2, (i) => `/hang-${i}`);
  const over = await rawExchange(fx.http.port, GET('/third'));
  assert.equal(statusOf(over.data), 502, over.data.toString('latin1').slice(0, 200));
  assert.match(over.data.toString('latin1'), /cannot take another connection/);
  hangs.forEach((h) => h.destroy());
  await waitFor(
    'the session to serve again',
    async () => (statusOf((await rawExchange(fx.http.port, `GET /later HTTP/1.1\r\nHost: ${APP}\r\nConnection: close\r\n\r\n`)).data) === 200 ? true : undefined),
    5_000,
  );
});

test('--max-streams-per-session: at the limit, an idle keep-alive connection gives its stream to a new client', T, async (t) => {
  // Before: idle keep-alive connections (a browser keeps several per site) held the session's streams, and every new
  // client got 502 until they idled out; one client IP could shut a session's every endpoint that way. The limit 4
  // leaves 3 streams beside the SDK's heartbeat (maybe 2 while its Bind stream lingers), so 4 idle connections need
  // at least one eviction.
  const { fx } = await relayWithApp({ limits: { maxStreamsPerSession: 4 } });
  t.after(() => fx.close());
  const conns = [0, 1, 2, 3].map(() => new RawHttp(fx.http.port));
  t.after(() => conns.forEach((c) => c.destroy()));
  for (const [i, c] of conns.entries()) {
    const r = await c.request(GET(`/idle-${i}`), `the response on connection ${i}`);
    assert.equal(r.status, 200, `connection ${i}: ${r.head}`);
  }
  const closed = await waitFor('an idle connection to be closed for the new ones', () => {
    const gone = conns.filter((c) => c.ending !== 'open');
    return gone.length > 0 ? gone : undefined;
  }, 5_000);
  // Closed like a keep-alive idle close (FIN between responses), the longest idle first: the newest one still serves.
  for (const c of closed) assert.equal(c.ending, 'end');
  assert.ok(!closed.includes(conns[3]!), 'the newest connection was evicted');
  assert.equal((await conns[3]!.request(GET('/again'), 'a second request on the newest connection')).status, 200);
  const evicted = async (): Promise<number> => {
    let n = 0;
    for (const r of await fx.relay.dispatcher.collectStats(2_000, 'metrics')) {
      n += r.stats?.recorder?.connections[ENDPOINT_TYPES.indexOf('http') * CONNECTION_OUTCOMES.length + CONNECTION_OUTCOMES.indexOf('evicted')] ?? 0;
    }
    return n;
  };
  await waitFor('the evictions to be counted as outcome evicted', async () => ((await evicted()) === closed.length ? true : undefined), 5_000);
});

test('--max-streams-per-session: a connection whose stream is already gone (after the relay\'s 421) is not taken for an idle one', T, async (t) => {
  // Review finding: eviction counted such a connection as freeing a stream, so the session went over its limit (the
  // limit keeps below the SDK's own cap of live streams) while really idle connections kept theirs.
  const { fx } = await relayWithApp({ limits: { maxStreamsPerSession: 4 }, workers: 1 });
  t.after(() => fx.close());
  const streams = async (): Promise<number> => {
    let n = 0;
    for (const r of await fx.relay.dispatcher.collectStats(2_000, 'sessions')) n += r.stats?.streams ?? 0;
    return n;
  };
  await waitFor('the Bind stream to be gone', async () => ((await streams()) <= 1 ? true : undefined), 5_000);
  const c0 = net.connect({ host: '127.0.0.1', port: fx.http.port, allowHalfOpen: true });
  t.after(() => c0.destroy());
  c0.on('error', () => {});
  let got = '';
  c0.on('data', (d: Buffer) => (got += d.toString('latin1')));
  c0.write(GET('/first'));
  await waitFor('the first answer on c0', () => (/^HTTP\/1\.1 200/.test(got) ? true : undefined), 5_000);
  c0.write(`GET /x HTTP/1.1\r\nHost: other.burrow.localhost\r\n\r\n`); // 421 at once; the stream is reset
  await withTimeout('the 421 and its FIN', once(c0, 'end'));
  assert.match(got, /HTTP\/1\.1 421/);
  const conns = [0, 1, 2, 3].map(() => new RawHttp(fx.http.port));
  t.after(() => conns.forEach((c) => c.destroy()));
  for (const [i, c] of conns.entries()) {
    assert.equal((await c.request(GET(`/idle-${i}`), `the response on connection ${i}`)).status, 200);
    const n = await streams();
    assert.ok(n <= 4, `after connection ${i} the session has ${n} streams, over its limit of 4`);
  }
});

test('--rpc-max: an Auth larger than the limit is refused; the session is not admitted', T, async () => {
  const fx = await startRelayFixture({ limits: { rpcMax: 4096 } });
  try {
    // Our agent sends its metadata in the Auth; make the message exceed 4 KiB.
    await assert.rejects(
      connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem, metadata: 'm'.repeat(8192), connectTimeoutMs: 5000 }),
      (err: unknown) => {
        assert.ok(isBurrowError(err), String(err));
        assert.match((err as Error).message, /exceeds 4096 bytes|reset|closed/i);
        return true;
      },
    );
    assert.equal(fx.counter('agent:authenticated'), 0);
    // A normal Auth still works.
    const ok = await connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem });
    await ok.close(500);
    assert.equal(fx.counter('agent:authenticated'), 1);
  } finally {
    await fx.close();
  }
});


test('no stream for a pipelined read: one complete 502 page, counted once, nothing after it', T, async (t) => {
  // maxStreamsPerSession 2: the SDK's heartbeat stream takes one, a held request the other, so the next connection's
  // forward() finds no stream. Its one read holds a request with a body and a second request behind it: the 502 must
  // stop the filter, else the rest of that read calls forward() and onError() again (a second end() after the page).
  const { fx, up } = await relayWithApp({ limits: { maxStreamsPerSession: 2 } });
  t.after(() => fx.close());
  await holdRequests(t, fx, up, 1, () => '/hang');
  const errorsOf = async (): Promise<number> =>
    (await fx.relay.dispatcher.collectStats(2_000, 'metrics')).reduce((n, r) => n + (r.stats?.recorder?.errors['BURROW_ERR_UPSTREAM_UNAVAILABLE'] ?? 0), 0);
  const before = await errorsOf();
  const r = await rawExchange(fx.http.port, `POST /x HTTP/1.1\r\nHost: ${APP}\r\nContent-Length: 5\r\n\r\nhello${GET('/y')}`);
  const text = r.data.toString('latin1');
  assert.equal(statusOf(text), 502, text.slice(0, 200));
  const headEnd = text.indexOf('\r\n\r\n');
  const length = Number(/\r\ncontent-length: (\d+)/i.exec(text.slice(0, headEnd))?.[1]);
  assert.equal(text.length - headEnd - 4, length, 'the 502 page is exactly its Content-Length: complete, and nothing after it');
  assert.equal(r.ending, 'end', 'closed with a FIN after the page, not reset');
  assert.equal((await errorsOf()) - before, 1, 'one refusal, one error counted');
  assert.ok(up.requests.every((q) => q.url === '/hang'), 'nothing of the refused connection reached the service');
});

test('a dual-stack listener: an IPv4 client is 127.0.0.1, not ::ffff:127.0.0.1 (X-Forwarded-For, per-IP count)', T, async (t) => {
  const probe = net.createServer();
  const v6 = await new Promise<boolean>((resolve) => probe.once('error', () => resolve(false)).listen(0, '::', () => probe.close(() => resolve(true))));
  if (!v6) return t.skip('no IPv6 on this machine: a dual-stack listener cannot be opened');
  const { fx } = await relayWithApp({ httpAddr: { host: '::', port: 0 }, limits: { maxConnsPerIp: 3 } });
  t.after(() => fx.close());
  const a = new RawHttp(fx.http.port); // connects to 127.0.0.1: the listener sees ::ffff:127.0.0.1
  t.after(() => a.destroy());
  const r = await a.request(GET('/who'), 'response');
  assert.equal(r.status, 200);
  assert.equal((JSON.parse(r.body.toString()) as { headers: Record<string, string> }).headers['x-forwarded-for'], '127.0.0.1');
  // One count for 127.0.0.1 whatever the listener: the SDK agent's own connection, and this one.
  assert.equal(fx.relay.acceptor.connectionsFrom('127.0.0.1'), 2);
});

test('--http-head-timeout does not run while the relay itself holds the client back (its stream over the high-water mark)', T, async (t) => {
  // Single-threaded relay: its pumps run on this thread, so the stream's backpressure can be staged. A write carrying
  // the X-Stall header reports "full" and its 'drain' comes 1 s later, well past the 300 ms head deadline: the second
  // request's head, half read with the first, must not get a 408 the client did not cause.
  const { fx } = await relayWithApp({ workers: 0, limits: { httpHeadTimeoutMs: 300 } });
  t.after(() => fx.close());
  const write = MuxStream.prototype.write;
  t.after(() => (MuxStream.prototype.write = write));
  MuxStream.prototype.write = function (this: MuxStream, ...args: unknown[]): boolean {
    const ok = (write as (...a: unknown[]) => boolean).apply(this, args);
    if (!Buffer.isBuffer(args[0]) || !args[0].includes('X-Stall: 1')) return ok;
    setTimeout(() => this.emit('drain'), 1_000);
    return false;
  } as typeof write;
  const c = new RawHttp(fx.http.port);
  t.after(() => c.destroy());
  const first = c.request(`GET /first HTTP/1.1\r\nHost: ${APP}\r\nX-Stall: 1\r\n\r\nGET /second HTTP/1.1\r\nHo`, 'the first response');
  setTimeout(() => c.socket.write(`st: ${APP}\r\n\r\n`), 100);
  assert.equal((await first).status, 200);
  const second = await c.request('', 'the second response');
  assert.equal(second.status, 200, second.head);
});

test('tcp: the client\'s last bytes, stuck behind the stream window when both sides have closed, still reach the upstream', T, async (t) => {
  // The upstream half-closes first; the client then sends its tail and FIN while the stream cannot send (staged: the
  // write carrying TAIL is held 500 ms, as a spent window would hold it). The public socket closes meanwhile; before,
  // that destroyed the stream and the tail never left the relay.
  const fx = await startRelayFixture({ workers: 0 });
  t.after(() => fx.close());
  let done!: (text: string) => void;
  const received = new Promise<string>((resolve) => (done = resolve));
  const up = net.createServer({ allowHalfOpen: true }, (s) => {
    const got: Buffer[] = [];
    s.on('error', () => {});
    s.on('data', (d: Buffer) => got.push(d));
    s.on('end', () => done(Buffer.concat(got).toString()));
    s.end('bye'); // half-close first: the upstream still reads
  });
  up.listen(0, '127.0.0.1');
  await once(up, 'listening');
  t.after(() => up.close());
  const agent = await connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem });
  t.after(() => agent.close(200));
  const url = new URL((await agent.forward(`tcp://127.0.0.1:${(up.address() as net.AddressInfo).port}`)).url!);
  const write = MuxStream.prototype._write;
  t.after(() => (MuxStream.prototype._write = write));
  MuxStream.prototype._write = function (this: MuxStream, chunk: Buffer, enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (chunk.includes('TAIL')) setTimeout(() => write.call(this, chunk, enc, cb), 500);
    else write.call(this, chunk, enc, cb);
  };
  const c = net.connect({ host: '127.0.0.1', port: Number(url.port), allowHalfOpen: true });
  c.on('error', () => {});
  const greeting: Buffer[] = [];
  c.on('data', (d: Buffer) => greeting.push(d));
  await withTimeout('the upstream\'s bye and FIN', once(c, 'end'));
  assert.equal(Buffer.concat(greeting).toString(), 'bye');
  c.end('TAIL of the upload');
  assert.equal(await withTimeout('the upstream to get the tail and EOF', received, 5_000), 'TAIL of the upload');
});
