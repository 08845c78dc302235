// Bind options from the official @ngrok/ngrok SDK at the relay (src/relay/worker/endpoint-options.ts): allowCidr /
// denyCidr are enforced per public connection (http and https: 403 page; tcp: closed), basicAuth per request (401 with
// a Basic challenge; the service never sees the credentials); an option the relay does not implement (OAuth,
// compression, ...) makes listen() fail with the option's name instead of putting the endpoint
// online without it. Real relay (2 workers), real SDK, curl as the public client.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { connect } from '../../src/index.js';
import {
  curl,
  forward,
  resolveArgs,
  startHttpUpstream,
  startRelayFixture,
  startTcpEcho,
  withTimeout,
  type HttpUpstream,
  type NgrokSession,
  type RelayFixture,
} from '../helpers/relay-fixture.js';

const T = { timeout: 30_000 };
let fx: RelayFixture;
let up: HttpUpstream;
let echoPort: number;
let session: NgrokSession;

before(async () => {
  fx = await startRelayFixture({ workers: 2 });
  up = await startHttpUpstream(fx.cleanup);
  echoPort = (await startTcpEcho(fx.cleanup)).port;
  session = await fx.connectSdk();
});

after(async () => {
  await fx?.close();
});

test('allowCidr without the client\'s network: http and https get 403, the service sees nothing; with it, 200', T, async () => {
  const CLOSED = 'closed.burrow.localhost';
  const OPEN = 'open.burrow.localhost';
  await forward(fx.cleanup, CLOSED, session.httpEndpoint().domain(CLOSED).allowCidr('10.0.0.0/8').allowCidr('192.0.2.0/24').listenAndForward(`http://127.0.0.1:${up.port}`));
  await forward(fx.cleanup, OPEN, session.httpEndpoint().domain(OPEN).allowCidr('127.0.0.0/8').denyCidr('10.0.0.0/8').listenAndForward(`http://127.0.0.1:${up.port}`));
  const seen = up.requests.length;
  const plain = await curl([...resolveArgs(CLOSED, fx.http.port), `http://${CLOSED}:${fx.http.port}/x`]);
  assert.equal(plain.status, 403, `${plain.stderr} ${plain.body.slice(0, 200)}`);
  assert.match(plain.body, /closed\.burrow\.localhost does not accept connections from 127\.0\.0\.1/);
  assert.doesNotMatch(plain.body, /10\.0\.0\.0|192\.0\.2/, 'the page names the owner\'s networks');
  const secure = await curl(['--cacert', fx.caPath, ...resolveArgs(CLOSED, fx.https.port), `https://${CLOSED}:${fx.https.port}/x`]);
  assert.equal(secure.code, 0, secure.stderr);
  assert.equal(secure.status, 403);
  assert.equal(up.requests.length, seen, 'a refused request reached the service');
  const ok = await curl([...resolveArgs(OPEN, fx.http.port), `http://${OPEN}:${fx.http.port}/y`]);
  assert.equal(ok.status, 200, ok.stderr);
  assert.equal(up.requests.length, seen + 1);
});

test('denyCidr on a tcp endpoint: a client from that network is closed without a byte; the upstream is never dialled', T, async () => {
  const tcp = await forward(fx.cleanup, 'denied tcp', session.tcpEndpoint().denyCidr('127.0.0.1/32').listenAndForward(`tcp://127.0.0.1:${echoPort}`));
  const port = Number(new URL(tcp.url()!).port);
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  await once(s, 'connect');
  s.write('hello?');
  // Closed or reset (the relay drops the client's unread bytes): either way no byte of the service.
  await withTimeout('the relay to close the denied connection', new Promise((resolve) => s.once('close', resolve)));
  assert.equal(Buffer.concat(got).length, 0);
});

test('basicAuth: no or wrong credentials → 401 with a Basic challenge (http and https); the right ones reach the service without them', T, async () => {
  const GUARDED = 'basic.burrow.localhost';
  await forward(fx.cleanup, GUARDED, session.httpEndpoint().domain(GUARDED).basicAuth('user', 'password123').listenAndForward(`http://127.0.0.1:${up.port}`));
  const seen = up.requests.length;
  const url = (port: number, scheme = 'http'): string => `${scheme}://${GUARDED}:${port}/private`;
  const none = await curl([...resolveArgs(GUARDED, fx.http.port), '-D', '-', url(fx.http.port)]);
  assert.equal(none.status, 401, none.stderr);
  assert.match(none.body, /\r\nWWW-Authenticate: Basic realm="basic\.burrow\.localhost", charset="UTF-8"\r\n/i);
  const wrong = await curl([...resolveArgs(GUARDED, fx.http.port), '-u', 'user:password124', url(fx.http.port)]);
  assert.equal(wrong.status, 401);
  const tls = await curl(['--cacert', fx.caPath, ...resolveArgs(GUARDED, fx.https.port), url(fx.https.port, 'https')]);
  assert.equal(tls.status, 401, tls.stderr);
  assert.equal(up.requests.length, seen, 'a request without the right credentials reached the service');
  const ok = await curl([...resolveArgs(GUARDED, fx.http.port), '-u', 'user:password123', url(fx.http.port)]);
  assert.equal(ok.status, 200, ok.stderr);
  const okTls = await curl(['--cacert', fx.caPath, ...resolveArgs(GUARDED, fx.https.port), '-u', 'user:password123', url(fx.https.port, 'https')]);
  assert.equal(okTls.status, 200, okTls.stderr);
  assert.equal(up.requests.length, seen + 2);
  for (const r of up.requests.slice(seen)) assert.equal(r.headers.authorization, undefined, 'the relay\'s credentials were forwarded');
});

test('requestHeader / removeRequestHeader: the service sees the added fields and not the removed ones', T, async () => {
  const RULED = 'headers.burrow.localhost';
  await forward(fx.cleanup, RULED, session.httpEndpoint().domain(RULED).requestHeader('X-Added', 'yes').removeRequestHeader('X-Secret').listenAndForward(`http://127.0.0.1:${up.port}`));
  const seen = up.requests.length;
  const r = await curl([...resolveArgs(RULED, fx.http.port), '-H', 'X-Secret: do-not-pass', '-H', 'X-Kept: 1', `http://${RULED}:${fx.http.port}/h`]);
  assert.equal(r.status, 200, r.stderr);
  const got = up.requests[seen]!;
  assert.equal(got.headers['x-added'], 'yes');
  assert.equal(got.headers['x-secret'], undefined);
  assert.equal(got.headers['x-kept'], '1');
  await assert.rejects(
    withTimeout('Bind with a rule on Host', session.httpEndpoint().requestHeader('Host', 'evil.example').listenAndForward(`http://127.0.0.1:${up.port}`)),
    /RequestHeaders\.add\[0\] "host" is kept by the relay as it is/,
  );
});

test('responseHeader / removeResponseHeader: every response of a keep-alive connection, http and https, gets the rules', T, async () => {
  const RULED = 'resp-headers.burrow.localhost';
  await forward(
    fx.cleanup,
    RULED,
    session.httpEndpoint().domain(RULED).responseHeader('X-Frame-Options', 'DENY').removeResponseHeader('X-Upstream').listenAndForward(`http://127.0.0.1:${up.port}`),
  );
  const heads = (out: string): string[] => out.split('HTTP/1.1 ').slice(1).map((h) => h.slice(0, h.indexOf('\r\n\r\n')).toLowerCase());
  const plain = await curl(['-i', ...resolveArgs(RULED, fx.http.port), `http://${RULED}:${fx.http.port}/a`, `http://${RULED}:${fx.http.port}/b`]);
  assert.deepEqual(plain.transfers.map((x) => [x['status'], x['num_connects']]), [['200', '1'], ['200', '0']], plain.stderr);
  const secure = await curl(['-i', '--cacert', fx.caPath, ...resolveArgs(RULED, fx.https.port), `https://${RULED}:${fx.https.port}/c`]);
  assert.equal(secure.status, 200, secure.stderr);
  const all = [...heads(plain.body), ...heads(secure.body)];
  assert.equal(all.length, 3, plain.body);
  for (const h of all) {
    assert.match(h, /\r\nx-frame-options: deny(\r\n|$)/);
    assert.doesNotMatch(h, /x-upstream/);
    assert.match(h, /\r\ncontent-type: application\/json/);
  }
  // The bodies are untouched (curl read each by its Content-Length, so a misplaced byte would show here).
  assert.match(plain.body, /\r\n\r\n\{"method":"GET","url":"\/a"[^]*\}HTTP\/1\.1 200/);
  assert.match(plain.body, /\r\n\r\n\{"method":"GET","url":"\/b"[^]*\}$/);
  await assert.rejects(
    withTimeout('Bind with a response rule on Content-Length', session.httpEndpoint().responseHeader('Content-Length', '0').listenAndForward(`http://127.0.0.1:${up.port}`)),
    /ResponseHeaders\.add\[0\] "content-length" is kept by the relay as it is/,
  );
});

test('options the relay does not implement: listen() fails naming the option (no endpoint goes online without it)', T, async () => {
  const routes = fx.relay.acceptor.routes.size;
  await assert.rejects(
    withTimeout('Bind with an OAuth provider', session.httpEndpoint().domain('guarded.burrow.localhost').oauth('google').listenAndForward(`http://127.0.0.1:${up.port}`)),
    /Opts\.OAuth: OAuth is not supported by this relay/,
  );
  await assert.rejects(
    withTimeout('Bind with compression', session.httpEndpoint().compression().listenAndForward(`http://127.0.0.1:${up.port}`)),
    /Opts\.Compression: response compression is not supported/,
  );
  await assert.rejects(
    withTimeout('Bind with an allowCidr that is no network', session.tcpEndpoint().allowCidr('not-a-net').listenAndForward(`tcp://127.0.0.1:${echoPort}`)),
    /allow_cidrs\[0\] "not-a-net" is not a network/,
  );
  // mutualTlsca() on a tls endpoint: the SDK sends MutualTLSAtEdge as an object (a review found `=== true` let it through).
  await assert.rejects(
    withTimeout('Bind of a tls endpoint with mutual TLS', session.tlsEndpoint().domain('mtls.burrow.localhost').mutualTlsca(Buffer.from(fx.caPem)).listenAndForward(`tls://127.0.0.1:${echoPort}`)),
    /Opts\.MutualTLSAtEdge: mutual TLS at the relay is not supported/,
  );
  assert.equal(fx.relay.acceptor.routes.size, routes, 'a refused Bind left a route');
  const r = await curl([...resolveArgs('guarded.burrow.localhost', fx.http.port), `http://guarded.burrow.localhost:${fx.http.port}/`]);
  assert.equal(r.status, 404);
});

test('a pool: a retry after one member fails never lands on a member whose IP restrictions refuse the client', T, async () => {
  // Member A forwards to a closed port (the SDK answers with its dial-failure page, which the relay retries on another
  // member); member B denies the client's address. Before: the retry opened a stream on B and served the client.
  const f = await startRelayFixture({ workers: 1 });
  try {
    const upB = await startHttpUpstream(f.cleanup);
    const s = await f.connectSdk();
    const POOL = 'pool-ip.burrow.localhost';
    const bind = (upstream: string, deny: boolean) => {
      let b = s.httpEndpoint().domain(POOL).poolingEnabled(true).metadata('burrow-lb=round-robin');
      if (deny) b = b.denyCidr('127.0.0.1/32');
      return forward(f.cleanup, POOL, b.listenAndForward(upstream));
    };
    await bind('http://127.0.0.1:9', false);
    await bind(`http://127.0.0.1:${upB.port}`, true);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await curl([...resolveArgs(POOL, f.http.port), `http://${POOL}:${f.http.port}/r${i}`]);
      statuses.push(r.status);
    }
    assert.equal(upB.requests.length, 0, `the denying member served the client (statuses ${statuses.join(', ')})`);
    assert.ok(statuses.includes(403), `statuses ${statuses.join(', ')}`);
    assert.ok(statuses.every((st) => st === 403 || st === 502), `statuses ${statuses.join(', ')}`);
  } finally {
    await f.close();
  }
});

test('burrow\'s agent sends the same options (basicAuth, denyCidrs) and the relay enforces them alike', T, async () => {
  const a = await withTimeout('our agent to connect', connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem }));
  fx.cleanup.defer('close our agent', () => a.close(500));
  const GUARDED = 'agent-basic.burrow.localhost';
  const DENIED = 'agent-denied.burrow.localhost';
  await withTimeout('Bind with basic auth', a.forward(`http://127.0.0.1:${up.port}`, { url: `http://${GUARDED}`, basicAuth: 'ops:hunter2hunter2' }));
  await withTimeout('Bind with a deny rule', a.forward(`http://127.0.0.1:${up.port}`, { url: `http://${DENIED}`, denyCidrs: ['127.0.0.0/8'] }));
  const url = (host: string): string => `http://${host}:${fx.http.port}/`;
  assert.equal((await curl([...resolveArgs(GUARDED, fx.http.port), url(GUARDED)])).status, 401);
  assert.equal((await curl([...resolveArgs(GUARDED, fx.http.port), '-u', 'ops:hunter2hunter2', url(GUARDED)])).status, 200);
  assert.equal((await curl([...resolveArgs(DENIED, fx.http.port), url(DENIED)])).status, 403);
});

test('burrow\'s agent: request and response header rules (--request-header-add/-remove, --response-header-add/-remove) reach the relay as the SDK sends them', T, async () => {
  const a = await withTimeout('our agent to connect', connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem }));
  fx.cleanup.defer('close our agent', () => a.close(500));
  const RULED = 'agent-headers.burrow.localhost';
  await withTimeout(
    'Bind with header rules',
    a.forward(`http://127.0.0.1:${up.port}`, {
      url: `http://${RULED}`,
      requestHeaderAdd: ['X-Env: staging, eu', 'X-Team:  ops '],
      requestHeaderRemove: 'X-Secret, Cookie',
      responseHeaderAdd: 'Strict-Transport-Security: max-age=60',
      responseHeaderRemove: ['X-Upstream'],
    }),
  );
  const seen = up.requests.length;
  const r = await curl(['-i', ...resolveArgs(RULED, fx.http.port), '-H', 'X-Secret: no', '-H', 'Cookie: a=b', '-H', 'X-Kept: 1', `http://${RULED}:${fx.http.port}/`]);
  assert.equal(r.status, 200, r.stderr);
  const head = r.body.slice(0, r.body.indexOf('\r\n\r\n')).toLowerCase();
  assert.match(head, /\r\nstrict-transport-security: max-age=60/);
  assert.doesNotMatch(head, /x-upstream/);
  const got = up.requests[seen]!;
  assert.equal(got.headers['x-env'], 'staging, eu');
  assert.equal(got.headers['x-team'], 'ops');
  assert.equal(got.headers['x-secret'], undefined);
  assert.equal(got.headers['cookie'], undefined);
  assert.equal(got.headers['x-kept'], '1');
  // The agent refuses what the relay would refuse, naming the option, before anything is sent.
  await assert.rejects(a.forward(`http://127.0.0.1:${up.port}`, { requestHeaderAdd: 'Host: evil.example' }), /requestHeaderAdd: 'Host: evil\.example' \(field "Host"\) is kept by the relay/);
});

/** A raw TCP service that records what each connection sends (by the agent's source port) and echoes nothing. */
async function recordingService(): Promise<{ port: number; got: Map<number, Buffer[]> }> {
  const got = new Map<number, Buffer[]>();
  const server = net.createServer((c) => {
    const chunks: Buffer[] = [];
    got.set(c.remotePort!, chunks);
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => c.end());
    c.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fx.cleanup.defer('close the recording service', () => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, got };
}

/** Connects to a tcp endpoint's public URL, sends `payload`, waits for the close; what the service read, and the client's port. */
async function sendThrough(url: string, svc: { got: Map<number, Buffer[]> }, payload: string): Promise<{ bytes: Buffer; clientPort: number; relayPort: number }> {
  const relayPort = Number(new URL(url).port);
  const before = new Set(svc.got.keys());
  const s = net.connect({ host: '127.0.0.1', port: relayPort });
  await once(s, 'connect');
  const clientPort = s.localPort!;
  s.end(payload);
  await withTimeout('the service to see the connection end', once(s, 'close'));
  const key = [...svc.got.keys()].find((k) => !before.has(k))!;
  return { bytes: Buffer.concat(svc.got.get(key)!), clientPort, relayPort };
}

test('proxyProto "1" and "2" on tcp endpoints: the service reads the PROXY header with the client\'s address, then the bytes', T, async () => {
  const svc = await recordingService();
  for (const version of ['1', '2'] as const) {
    const l = await forward(fx.cleanup, `tcp proxyProto ${version}`, session.tcpEndpoint().proxyProto(version).listenAndForward(`tcp://127.0.0.1:${svc.port}`));
    const { bytes, clientPort, relayPort } = await sendThrough(l.url()!, svc, 'payload');
    if (version === '1') {
      assert.equal(bytes.toString('latin1'), `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${relayPort}\r\npayload`);
    } else {
      const want = Buffer.concat([
        Buffer.from('0d0a0d0a000d0a515549540a2111000c7f0000017f000001', 'hex'),
        Buffer.from([clientPort >> 8, clientPort & 0xff, relayPort >> 8, relayPort & 0xff]),
        Buffer.from('payload'),
      ]);
      assert.equal(bytes.toString('hex'), want.toString('hex'));
    }
  }
});

test('burrow\'s agent: --proxy-proto (proxyProto: 1) gives the service the same PROXY header', T, async () => {
  const svc = await recordingService();
  const a = await withTimeout('our agent to connect', connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem }));
  fx.cleanup.defer('close our agent (proxy)', () => a.close(500));
  const ep = await withTimeout('Bind with proxyProto', a.forward(`tcp://127.0.0.1:${svc.port}`, { proxyProto: 1 }));
  const { bytes, clientPort, relayPort } = await sendThrough(ep.url, svc, 'x');
  assert.equal(bytes.toString('latin1'), `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${relayPort}\r\nx`);
});
