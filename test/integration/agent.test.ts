// burrow's own agent (src/agent, the `burrow http|tcp|tls|start` CLI) against the real relay (worker threads) on
// 127.0.0.1: http (curl GET + POST, https with --cacert), tls passthrough, tcp (4 MiB echo), the listen() library
// API, upstream down → 502 naming the upstream, the circuit breaker opening and recovering, a relay restart on the
// same ports (same URLs serve again), Auth and Bind refusals, and the CLI: config-file errors and SIGINT during a
// slow request (issue #4's test list).
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { partitionableFront } from '../helpers/partitionable-front.js';
import { RawHttp } from '../helpers/raw-http.js';
import { connect, isBurrowError, type Agent, type Endpoint } from '../../src/index.js';
import { ensureRelayPki } from '../../src/config/dev-pki.js';
import { startRelay, type Relay } from '../../src/relay/relay.js';
import {
  Cleanup,
  curl,
  listen,
  rawExchange,
  resolveArgs,
  sha256,
  startHttpUpstream,
  statusOf,
  startRelayFixture,
  startTcpEcho,
  startTlsUpstream,
  waitEvent,
  waitFor,
  withTimeout,
  type EchoReport,
  type HttpUpstream,
  type RelayFixture,
  type TlsUpstream,
} from '../helpers/relay-fixture.js';

const APP = 'app.burrow.localhost';
const SEC = 'sec.burrow.localhost';
const T = { timeout: 20_000 };
const BIN = fileURLToPath(new URL('../../../bin/burrow.js', import.meta.url));

let fx: RelayFixture;
let up: HttpUpstream;
let tlsUp: TlsUpstream;
let agent: Agent;
let web: Endpoint;
let sec: Endpoint;
let tcp: Endpoint;

function agentOptions(f: RelayFixture = fx) {
  return { server: `localhost:${f.agent.port}`, authtoken: f.token, ca: f.caPem, heartbeatIntervalMs: 500 };
}

before(async () => {
  fx = await startRelayFixture({ workers: 2 });
  up = await startHttpUpstream(fx.cleanup);
  const echo = await startTcpEcho(fx.cleanup);
  tlsUp = await startTlsUpstream(fx.cleanup, [SEC]);
  agent = await withTimeout('our agent to connect', connect(agentOptions()));
  fx.cleanup.defer('close the agent', () => agent.close(1000));
  web = await withTimeout('Bind of the http endpoint', agent.forward(`http://127.0.0.1:${up.port}`, { url: `http://${APP}` }));
  sec = await withTimeout('Bind of the tls endpoint', agent.forward(`tls://127.0.0.1:${tlsUp.port}`, { url: `tls://${SEC}` }));
  tcp = await withTimeout('Bind of the tcp endpoint', agent.forward(`tcp://127.0.0.1:${echo.port}`));
});

after(async () => {
  await fx?.close();
});

// ---------------------------------------------------------------------------------------------------------------
// helpers

function report(body: string): EchoReport {
  try {
    return JSON.parse(body) as EchoReport;
  } catch {
    throw new Error(`the upstream's JSON report did not come back intact: ${JSON.stringify(body.slice(0, 400))}`);
  }
}


/** A port that was free a moment ago (bound on 0, then closed). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** One raw HTTP GET through the relay's http listener; resolves with status, headers and body. */
function get(port: number, host: string, path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return withTimeout(
    `GET ${host}${path}`,
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, headers: { host: `${host}:${port}` }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// endpoints end to end

test('binds like the SDK: http as https (served on both listeners), tls by SNI, tcp on a port of the range', () => {
  assert.equal(web.url, `https://${APP}:${fx.https.port}`);
  assert.equal(sec.url, `tls://${SEC}:${fx.https.port}`);
  const u = new URL(tcp.url);
  assert.equal(u.protocol, 'tcp:');
  assert.ok(Number(u.port) >= fx.tcpPorts.from && Number(u.port) <= fx.tcpPorts.to, tcp.url);
  assert.equal(agent.state, 'online');
  assert.match(agent.clientId, /^sess_/);
});

test('http endpoint: curl GET and POST (1 MiB body, hash-checked) on the http listener', T, async () => {
  const base = `http://${APP}:${fx.http.port}`;
  const g = await curl([...resolveArgs(APP, fx.http.port), `${base}/hello?x=1`]);
  assert.equal(g.status, 200, g.stderr + g.body);
  const r = report(g.body);
  assert.equal(r.method, 'GET');
  assert.equal(r.url, '/hello?x=1');
  assert.equal(r.headers['x-forwarded-proto'], 'http');
  const dir = mkdtempSync(join(tmpdir(), 'burrow-agent-test-'));
  try {
    const body = randomBytes(1024 * 1024);
    writeFileSync(join(dir, 'body'), body);
    const p = await curl([...resolveArgs(APP, fx.http.port), '--data-binary', `@${join(dir, 'body')}`, '-H', 'content-type: application/octet-stream', `${base}/upload`]);
    assert.equal(p.status, 200, p.stderr + p.body);
    const pr = report(p.body);
    assert.equal(pr.method, 'POST');
    assert.equal(pr.bodyLength, body.length);
    assert.equal(pr.bodySha256, sha256(body));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(web.counters.total >= 2, `the endpoint counted ${web.counters.total} connections`);
});

test('http endpoint: a keep-alive connection carries two requests to one upstream connection', T, async () => {
  const base = `http://${APP}:${fx.http.port}`;
  const connsBefore = up.connections;
  const r = await curl([...resolveArgs(APP, fx.http.port), `${base}/ka-1`, `${base}/ka-2`]);
  assert.equal(r.code, 0, `curl failed: ${r.stderr}`);
  assert.deepEqual(r.transfers.map((x) => x['num_connects']), ['1', '0'], 'curl had to reconnect: keep-alive was not honoured');
  const [a, b] = r.body.split(/(?<=\})(?=\{)/).map(report);
  assert.equal(a!.url, '/ka-1');
  assert.equal(b!.url, '/ka-2');
  assert.equal(a!.connId, b!.connId, 'the agent opened a second upstream connection for one public connection');
  assert.equal(up.connections - connsBefore, 1);
});

test('http endpoint: WebSocket echo through the relay and our agent', T, async (t) => {
  const port = fx.http.port;
  const ws = new WebSocket(`ws://${APP}:${port}/chat`, {
    // *.burrow.localhost has no system DNS entry here: connect to the relay directly; Host stays the name.
    createConnection: () => net.connect({ host: '127.0.0.1', port }),
  });
  t.after(() => ws.terminate());
  await withTimeout('the WebSocket to open', once(ws, 'open'));
  const got: Buffer[] = [];
  const two = new Promise<void>((resolve) =>
    ws.on('message', (data: Buffer) => {
      got.push(data);
      if (got.length === 2) resolve();
    }),
  );
  const big = randomBytes(300 * 1024);
  ws.send('hello through the burrow agent');
  ws.send(big);
  await withTimeout('two echoed WebSocket messages', two);
  assert.equal(got[0]!.toString(), 'hello through the burrow agent');
  assert.equal(sha256(got[1]!), sha256(big));
  ws.close(1000, 'done');
  const [code] = (await withTimeout('the WebSocket close handshake', once(ws, 'close'))) as [number];
  assert.equal(code, 1000);
});

/**
 * A plain HTTP/1.1 service behind our agent that answers every request head 200 `ok` (Content-Length 2) and keeps the
 * connection open: it never upgrades. `heads` are the request heads it received, in order; `raw` every byte.
 */
async function plainService(t: TestContext, name: string): Promise<{ heads: string[]; raw: () => string }> {
  const heads: string[] = [];
  let raw = '';
  const plain = net.createServer((sock) => {
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      raw += d.toString('latin1');
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        heads.push(buf.slice(0, end));
        buf = buf.slice(end + 4);
        sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    });
  });
  const plainPort = await listen(plain);
  t.after(() => plain.close());
  const ep = await withTimeout(`Bind of ${name}`, agent.forward(`http://127.0.0.1:${plainPort}`, { url: `http://${name}` }));
  t.after(() => ep.close());
  return { heads, raw: () => raw };
}

test('http endpoint: bytes behind a WebSocket Upgrade wait for the answer; declined, they are filtered as the next request', T, async (t) => {
  // Before: the filter went opaque at the end of the Upgrade head and forwarded the rest of the same read raw, so a
  // request pipelined behind an Upgrade the service declines reached it with a foreign Host, a spoofed
  // X-Forwarded-For and CL+TE. Now those bytes are held until the answer: not 101 → they go through the filter.
  const svc = await plainService(t, 'decline.burrow.localhost');
  const ws = 'GET /up HTTP/1.1\r\nHost: decline.burrow.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-For: 6.6.6.6\r\nContent-Length: 5\r\n' +
    'Transfer-Encoding: chunked\r\n\r\n';
  const r = await rawExchange(fx.http.port, ws + smuggled); // one write: in the acceptor's head read too
  const text = r.data.toString('latin1');
  assert.match(text, /^HTTP\/1\.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP\/1\.1 421 Misdirected Request\r\n/, text.slice(0, 300));
  assert.equal(svc.heads.length, 1, `the service saw more than the upgrade request: ${JSON.stringify(svc.heads)}`);
  assert.match(svc.heads[0]!, /^GET \/up HTTP\/1\.1/);
  assert.doesNotMatch(svc.raw(), /smuggled|6\.6\.6\.6/);
  // Declined, the connection stays HTTP/1.1 (not closed): a later request is served, its headers rewritten.
  const c = new RawHttp(fx.http.port);
  t.after(() => c.destroy());
  assert.equal((await c.request(ws, 'the declined upgrade')).status, 200);
  const later = await c.request('GET /later HTTP/1.1\r\nHost: decline.burrow.localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n', 'a later request');
  assert.equal(later.status, 200);
  assert.match(svc.heads.at(-1)!, /^GET \/later HTTP\/1\.1\r\n[^]*\r\nX-Forwarded-For: 127\.0\.0\.1\r\n/);
  assert.doesNotMatch(svc.heads.at(-1)!, /6\.6\.6\.6/);
});

test('http endpoint: bytes sent with a WebSocket Upgrade the service accepts (101) are forwarded untouched after the 101', T, async (t) => {
  // A service that answers 101 and then echoes every byte; it records what arrived after the request head.
  let after = '';
  let beforeAnswer = '';
  const svcServer = net.createServer((sock) => {
    let buf = '';
    let upgraded = false;
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      if (upgraded) {
        after += d.toString('latin1');
        sock.write(d);
        return;
      }
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      beforeAnswer = buf.slice(end + 4); // bytes that came with the head, before the 101 was sent
      upgraded = true;
      sock.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      if (beforeAnswer !== '') {
        after += beforeAnswer;
        sock.write(beforeAnswer);
      }
    });
  });
  const svcPort = await listen(svcServer);
  t.after(() => svcServer.close());
  const ep = await withTimeout('Bind of the upgrading endpoint', agent.forward(`http://127.0.0.1:${svcPort}`, { url: 'http://up.burrow.localhost' }));
  t.after(() => ep.close());
  const opaque = 'GET /x HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n\x81\x05hello';
  const c = net.connect({ host: '127.0.0.1', port: fx.http.port });
  t.after(() => c.destroy());
  let got = '';
  const echoed = new Promise<void>((resolve) =>
    c.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.endsWith(opaque)) resolve();
    }),
  );
  c.write(Buffer.from('GET /ws HTTP/1.1\r\nHost: up.burrow.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' + opaque, 'latin1'));
  await withTimeout('the 101 and the echo of the bytes sent with the handshake', echoed);
  assert.match(got, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.equal(beforeAnswer, '', 'the relay held the bytes behind the Upgrade until the service had answered');
  assert.equal(after, opaque, 'forwarded untouched, once');
});

test('http endpoint: a non-WebSocket Upgrade (h2c) is forwarded as a plain request without its hop-by-hop fields; the next request is still checked', T, async (t) => {
  // Before: the filter went opaque after any Upgrade, so the second request below (same write) reached the service
  // with its foreign Host and spoofed X-Forwarded-For. Now h2c is never honoured: its Upgrade, HTTP2-Settings and the
  // `upgrade` connection option are removed (the service cannot switch), and the next request gets the usual 421.
  const svc = await plainService(t, 'h2c.burrow.localhost');
  const h2c = 'GET /a HTTP/1.1\r\nHost: h2c.burrow.localhost\r\nConnection: Upgrade, HTTP2-Settings, keep-alive\r\nUpgrade: h2c\r\n' +
    'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n';
  const r = await rawExchange(fx.http.port, `${h2c}GET /smuggled HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n`);
  // The 421 comes at once (the answer to /a, if it was not out yet, is cut: the relay does not parse responses).
  assert.match(r.data.toString('latin1'), /(^|ok)HTTP\/1\.1 421 Misdirected Request\r\n/, r.data.toString('latin1').slice(0, 300));
  assert.doesNotMatch(svc.raw(), /smuggled|6\.6\.6\.6|evil/);
  // On a connection of its own the h2c request is a plain one: answered, and the connection stays HTTP/1.1 with every
  // later request checked and rewritten.
  const c = new RawHttp(fx.http.port);
  t.after(() => c.destroy());
  assert.equal((await c.request(h2c, 'the answer to the h2c request')).status, 200);
  const later = await c.request('GET /b HTTP/1.1\r\nHost: h2c.burrow.localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n', 'the answer to a later request');
  assert.equal(later.status, 200);
  const seen = svc.heads.filter((h) => h.startsWith('GET /a ') || h.startsWith('GET /b '));
  assert.equal(seen.at(-1)!.split('\r\n')[0], 'GET /b HTTP/1.1');
  for (const head of seen) assert.doesNotMatch(head, /upgrade|http2-settings|: *h2c\r|6\.6\.6\.6/i, head);
  assert.match(seen.at(-2)!, /\r\nConnection: keep-alive\r\n/);
  assert.match(seen.at(-1)!, /\r\nX-Forwarded-For: 127\.0\.0\.1\r\n/);
});

test('http endpoint: a WebSocket Upgrade after another request on the connection → 400 UPGRADE_NOT_FIRST, never forwarded', T, async (t) => {
  // The relay tells an accepted upgrade by the first bytes of the answer; behind another request those bytes could be
  // the middle of that request's answer (pipelining), so only the first request of a connection may upgrade.
  const svc = await plainService(t, 'late.burrow.localhost');
  const ws = 'GET /ws HTTP/1.1\r\nHost: late.burrow.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
  const c = new RawHttp(fx.http.port);
  t.after(() => c.destroy());
  assert.equal((await c.request('GET /first HTTP/1.1\r\nHost: late.burrow.localhost\r\n\r\n', 'the first answer')).status, 200);
  const refused = await c.request(ws, 'the relay\'s answer to the late upgrade');
  assert.equal(refused.status, 400);
  assert.match(refused.body.toString(), /an Upgrade must be the first request on its connection; open a new connection for it/);
  await withTimeout('the close after the 400', c.closed);
  // Pipelined in one write: refused the same way.
  const r = await rawExchange(fx.http.port, `GET /second HTTP/1.1\r\nHost: late.burrow.localhost\r\n\r\n${ws}`);
  assert.match(r.data.toString('latin1'), /HTTP\/1\.1 400 Bad Request\r\n[^]*first request on its connection/);
  assert.ok(!svc.heads.some((h) => h.startsWith('GET /ws')), `the service saw the late upgrade: ${JSON.stringify(svc.heads)}`);
  // First on its own connection: forwarded (this service declines it with a 200).
  const own = new RawHttp(fx.http.port);
  t.after(() => own.destroy());
  assert.equal((await own.request(ws, 'the answer to the upgrade on its own connection')).status, 200);
  assert.ok(svc.heads.some((h) => h.startsWith('GET /ws')));
});

test('http endpoint: https with curl --cacert (TLS ends at the relay, plain HTTP to the agent)', T, async () => {
  const r = await curl(['--cacert', fx.caPath, `https://${APP}:${fx.https.port}/secure`]);
  assert.equal(r.status, 200, r.stderr + r.body);
  const rep = report(r.body);
  assert.equal(rep.url, '/secure');
  assert.equal(rep.headers['x-forwarded-proto'], 'https');
});

test('https: a TLS 1.2 client that resumes its session is served, not refused 421 for a missing server name', T, async () => {
  // A resumed TLS 1.2 session carries no server name on the relay's side; the name check used to read '' (review
  // finding: every resumed connection of a 1.2-only client got 421).
  const get = async (session?: Buffer): Promise<{ status: number; reused: boolean; session: Buffer | undefined }> => {
    const s = tls.connect({ host: '127.0.0.1', port: fx.https.port, servername: APP, ca: fx.caPem, maxVersion: 'TLSv1.2', session });
    s.on('error', () => {});
    await withTimeout('the handshake', once(s, 'secureConnect'));
    const reused = s.isSessionReused();
    const saved = s.getSession();
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.end(`GET /resumed HTTP/1.1\r\nHost: ${APP}\r\nConnection: close\r\n\r\n`);
    await withTimeout('the response', once(s, 'close'));
    return { status: statusOf(text), reused, session: saved };
  };
  const first = await get();
  assert.equal(first.status, 200);
  const second = await get(first.session);
  assert.equal(second.reused, true, 'the session was resumed (else this test shows nothing)');
  assert.equal(second.status, 200);
});

test('tls endpoint: passthrough to the upstream (its own certificate, ALPN h2), 256 KiB echo', T, async (t) => {
  const socket = tls.connect({ host: '127.0.0.1', port: fx.https.port, servername: SEC, ALPNProtocols: ['h2'], ca: tlsUp.pki.caPem });
  t.after(() => socket.destroy());
  await withTimeout('the passthrough TLS handshake', once(socket, 'secureConnect'));
  assert.equal(socket.authorized, true, String(socket.authorizationError));
  assert.equal(socket.alpnProtocol, 'h2');
  const payload = randomBytes(256 * 1024);
  const got: Buffer[] = [];
  let n = 0;
  const all = new Promise<void>((resolve) =>
    socket.on('data', (c: Buffer) => {
      got.push(c);
      n += c.length;
      if (n >= payload.length) resolve();
    }),
  );
  socket.write(payload);
  await withTimeout('the 256 KiB echo over passthrough TLS', all);
  assert.equal(sha256(Buffer.concat(got)), sha256(payload));
});

test('tcp endpoint: 4 MiB echo, half-closed, hash-checked', T, async (t) => {
  const u = new URL(tcp.url);
  const payload = randomBytes(4 * 1024 * 1024);
  const socket = net.connect({ host: u.hostname, port: Number(u.port), allowHalfOpen: true });
  t.after(() => socket.destroy());
  const got: Buffer[] = [];
  socket.on('data', (c: Buffer) => got.push(c));
  await withTimeout('connect to the tcp endpoint', once(socket, 'connect'));
  socket.end(payload); // the echo ends when our half ends: FIN travels relay → agent → upstream and back
  await withTimeout('the 4 MiB echo to end', once(socket, 'end'));
  const echoed = Buffer.concat(got);
  assert.equal(echoed.length, payload.length);
  assert.equal(sha256(echoed), sha256(payload));
});

test('library listen(): connections arrive as Duplex streams with the client address', T, async (t) => {
  const listener = await withTimeout('Bind of a listener', agent.listen({ url: 'http://lib.burrow.localhost' }));
  t.after(() => listener.close());
  assert.equal(listener.url, `https://lib.burrow.localhost:${fx.https.port}`);
  const served = (async () => {
    for await (const conn of listener) {
      let head = '';
      conn.stream.on('data', (c: Buffer) => {
        head += c.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        const body = `hello ${conn.remoteAddress} via ${conn.proto}`;
        conn.stream.end(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      });
      return conn;
    }
    return null;
  })();
  const r = await get(fx.http.port, 'lib.burrow.localhost', '/');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'hello 127.0.0.1 via https');
  const conn = await served;
  assert.equal(conn?.remoteAddress, '127.0.0.1');
  assert.ok((conn?.remotePort ?? 0) > 0);
});

// ---------------------------------------------------------------------------------------------------------------
// upstream failures and the breaker

test('upstream down: 502 naming the upstream; 3 failures open the breaker (no dial); half-open probe recovers', T, async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const a = await connect({ ...agentOptions(), breaker: { resetTimeoutMs: 400, volumeThreshold: 3 } });
  cleanup.defer('close the breaker agent', () => a.close(500));
  const port = await freePort();
  const host = 'flaky.burrow.localhost';
  const ep = await a.forward(`127.0.0.1:${port}`, { url: `http://${host}` });
  const breaker: Array<{ upstream: string; state: string }> = [];
  a.on('breaker', (b: { upstream: string; state: string }) => breaker.push(b));

  for (let i = 1; i <= 3; i++) {
    const r = await get(fx.http.port, host, `/try-${i}`);
    assert.equal(r.status, 502, `request ${i}`);
    assert.match(r.body, new RegExp(`127\\.0\\.0\\.1:${port}`), 'the 502 page names the upstream');
    assert.match(r.body, /refused the connection \(ECONNREFUSED\)/, 'and the reason');
    assert.equal(r.headers['x-burrow-error-code'], 'BURROW_ERR_AGENT_UPSTREAM');
  }
  assert.deepEqual(breaker.map((b) => [b.upstream, b.state]), [[`127.0.0.1:${port}`, 'open']], 'one transition: closed → open');
  assert.equal(ep.dialer!.state, 'open', 'three straight failures open the breaker');
  const dials = ep.dialer!.dials;
  const r4 = await get(fx.http.port, host, '/while-open');
  assert.equal(r4.status, 502);
  assert.equal(r4.headers['x-burrow-error-code'], 'BURROW_ERR_AGENT_BREAKER_OPEN');
  assert.match(r4.body, /circuit breaker open/);
  assert.equal(ep.dialer!.dials, dials, 'an open breaker answers without dialling');

  // The upstream comes back; after the reset timeout one probe dials, succeeds, and the breaker closes.
  const back = http.createServer((_req, res) => res.end('back'));
  back.listen(port, '127.0.0.1');
  await once(back, 'listening');
  cleanup.defer('close the recovered upstream', () => {
    back.closeAllConnections();
    return new Promise<void>((r) => back.close(() => r()));
  });
  await waitEvent(a, 'breaker', 'the breaker to go half-open', (b: { state: string }) => b.state === 'half-open');
  const closed = waitEvent(a, 'breaker', 'the breaker to close', (b: { state: string }) => b.state === 'closed');
  const r5 = await get(fx.http.port, host, '/probe');
  assert.equal(r5.status, 200);
  assert.equal(r5.body, 'back');
  await closed;
  assert.equal(ep.dialer!.state, 'closed');
});

test('tcp endpoint with its upstream down: the stream is reset (StreamRefused) and the client is cut', T, async (t) => {
  const port = await freePort();
  const ep = await agent.forward(`tcp://127.0.0.1:${port}`, { name: 'tcp-down' });
  t.after(() => ep.close());
  const u = new URL(ep.url);
  const socket = net.connect({ host: u.hostname, port: Number(u.port) });
  t.after(() => socket.destroy());
  const got: Buffer[] = [];
  socket.on('data', (c: Buffer) => got.push(c));
  socket.on('error', () => {});
  const failed = waitEvent<[Endpoint, Error]>(agent, 'upstream-error', 'the agent to report the failed dial', (e) => e === ep);
  socket.write('ping');
  const [, err] = await failed;
  assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_UPSTREAM'), String(err));
  // A cut, not an answer: FIN or RST (events.once would reject on the ECONNRESET 'error' the RST may bring).
  await withTimeout('the relay to close the public connection', new Promise((resolve) => socket.once('close', resolve)));
  assert.equal(Buffer.concat(got).length, 0);
});

// ---------------------------------------------------------------------------------------------------------------
// session failures

test('a wrong token: connect() rejects with BURROW_ERR_AGENT_AUTH', T, async () => {
  await assert.rejects(connect({ ...agentOptions(), authtoken: 'not-the-relay-token-at-all' }), (err: unknown) => {
    assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_AUTH'), String(err));
    assert.match((err as Error).message, /authentication failed/);
    assert.match((err as Error).message, /\(relay: BURROW_ERR_AUTH_FAILED\); check the token given by --authtoken/);
    return true;
  });
});

test('an untrusted relay certificate: connect() rejects with BURROW_ERR_AGENT_CONNECT and says to pass --ca', T, async () => {
  await assert.rejects(connect({ ...agentOptions(), ca: tlsUp.pki.caPem }), (err: unknown) => {
    assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_CONNECT'), String(err));
    assert.match((err as Error).message, /--ca/);
    return true;
  });
});

test('--server naming the relay\'s http or https listener: connect() fails at once (even retrying) and says to use --agent-addr', T, async () => {
  for (const [port, why] of [[fx.http.port, /does not answer in TLS/], [fx.https.port, /refused the name this agent asked for/]] as const) {
    await assert.rejects(
      withTimeout('connect() to a wrong port to fail', connect({ ...agentOptions(), server: `localhost:${port}`, retryFirstConnect: true }), 10_000),
      (err: unknown) => {
        assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_CONNECT'), String(err));
        assert.match((err as Error).message, why);
        assert.match((err as Error).message, /point --server at the relay's --agent-addr/);
        assert.doesNotMatch((err as Error).message, /\n/, 'one line (OpenSSL ends its message with a newline)');
        return true;
      },
    );
  }
});

test('--server connect.<domain>:<https port>: a .localhost name reaches loopback (RFC 6761) and the relay takes the agent by that SNI', T, async () => {
  const a = await withTimeout('connect over the https listener', connect({ ...agentOptions(), server: `connect.burrow.localhost:${fx.https.port}` }));
  try {
    const ep = await withTimeout('a Bind over it', a.forward(`http://127.0.0.1:${up.port}`));
    assert.match(ep.url!, /^https:\/\/[a-z0-9-]+\.burrow\.localhost:/);
  } finally {
    await a.close(200);
  }
});

test('a name the relay certificate does not cover (a.b.<domain> under *.<domain>) gets its working http:// URL', T, async () => {
  const a = await connect(agentOptions());
  try {
    const deep = await a.forward(`http://127.0.0.1:${up.port}`, { url: 'http://a.b.burrow.localhost' });
    // Before: https://a.b.burrow.localhost:<port>, which every client refuses (the wildcard covers one label).
    assert.equal(deep.url, `http://a.b.burrow.localhost:${fx.http.port}`);
    assert.equal((await get(fx.http.port, 'a.b.burrow.localhost', '/deep')).status, 200);
    const one = await a.forward(`http://127.0.0.1:${up.port}`, { url: 'http://ab.burrow.localhost' });
    assert.equal(one.url, `https://ab.burrow.localhost:${fx.https.port}`);
  } finally {
    await a.close(0);
  }
});

test('a hostname online for another agent: forward() rejects with BURROW_ERR_AGENT_BIND naming it', T, async (t) => {
  const other = await connect(agentOptions());
  t.after(() => other.close(500));
  await assert.rejects(other.forward(`127.0.0.1:${up.port}`, { url: `http://${APP}` }), (err: unknown) => {
    assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_BIND'), String(err));
    assert.match((err as Error).message, /app\.burrow\.localhost/);
    assert.match((err as Error).message, /already online/);
    return true;
  });
  assert.equal(other.endpoints.length, 0);
});

test('relay closed and restarted on the same ports: the agent reconnects and the same URLs serve again', { timeout: 40_000 }, async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const dataDir = mkdtempSync(join(tmpdir(), 'burrow-agent-restart-'));
  cleanup.defer('remove the data dir', () => rmSync(dataDir, { recursive: true, force: true }));
  const pki = await ensureRelayPki({ dataDir, domain: 'burrow.localhost' });
  const token = `agent-test-${randomBytes(12).toString('hex')}`;
  const [httpPort, httpsPort, agentPort] = [await freePort(), await freePort(), await freePort()];
  const from = 40_000 + Math.floor(Math.random() * 200) * 100;
  const start = (): Promise<Relay> =>
    startRelay({
      domain: 'burrow.localhost',
      httpAddr: { host: '127.0.0.1', port: httpPort },
      httpsAddr: { host: '127.0.0.1', port: httpsPort },
      agentAddr: { host: '127.0.0.1', port: agentPort },
      tcpPorts: { from, to: from + 99 },
      tcpHost: '127.0.0.1',
      workers: 2,
      prereadMax: 16 * 1024,
      prereadTimeoutMs: 5000,
      tcpKeepaliveMs: 30_000,
      graceMs: 1000,
      certPem: pki.certPem,
      keyPem: pki.keyPem,
      tokenHashes: [sha256(token)],
      version: 'test',
    });
  let relay = await start();
  cleanup.defer('close the relay', () => relay.close());
  const upstream = await startHttpUpstream(cleanup);
  const echo = await startTcpEcho(cleanup);
  const a = await connect({
    server: `localhost:${agentPort}`,
    authtoken: token,
    ca: pki.caPem!,
    heartbeatIntervalMs: 500,
    backoff: { baseMs: 50, capMs: 400 },
  });
  cleanup.defer('close the agent', () => a.close(500));
  const ep = await a.forward(`http://127.0.0.1:${upstream.port}`); // no --url: the relay picks a name, kept on rebind
  const tp = await a.forward(`tcp://127.0.0.1:${echo.port}`);
  const host = new URL(ep.url).hostname;
  const [url1, tcpUrl1, id1] = [ep.url, tp.url, ep.id];
  const before = await get(httpPort, host, '/before');
  assert.equal(before.status, 200);

  const offline = waitEvent(a, 'offline', 'the agent to notice the relay is gone');
  await relay.close();
  await offline;
  assert.notEqual(a.state, 'online');
  const rebound = Promise.all([
    waitEvent(a, 'endpoint-online', 'the http endpoint to be bound again', (e: Endpoint) => e === ep),
    waitEvent(a, 'endpoint-online', 'the tcp endpoint to be bound again', (e: Endpoint) => e === tp),
  ]);
  relay = await start();
  await rebound;
  assert.equal(a.state, 'online');
  assert.equal(ep.url, url1, 'the same public URL after the restart');
  assert.equal(ep.id, id1, 'the same tunnel id (Bind carried the previous Id)');
  assert.equal(tp.url, tcpUrl1, 'the same TCP port after the restart');
  const after = await get(httpPort, host, '/after');
  assert.equal(after.status, 200, after.body);
  assert.equal(report(after.body).url, '/after');
  // TCP through the reclaimed port.
  const u = new URL(tp.url);
  const s = net.connect({ host: u.hostname, port: Number(u.port), allowHalfOpen: true });
  t.after(() => s.destroy());
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  await once(s, 'connect');
  s.end('again');
  await withTimeout('the tcp echo after the restart', once(s, 'end'));
  assert.equal(Buffer.concat(got).toString(), 'again');
  // A second session proves the reconnect. (reconnectAttempts counts waits between failed dials: when the agent's
  // first dial after the GOAWAY already reaches the restarted relay it stays 0, so it is not asserted — it made this
  // test flaky on a busy machine.)
  assert.ok(a.stats.sessions >= 2);
});

/** Our agent through a partitionable front (fast heartbeat and backoff), with an http endpoint bound to `host`. */
async function agentBehindFront(t: TestContext, host: string) {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const front = await partitionableFront(cleanup, fx.agent.port);
  const a = await connect({ ...agentOptions(), server: `localhost:${front.port}`, heartbeatIntervalMs: 100, heartbeatToleranceMs: 300, backoff: { baseMs: 20, capMs: 100 } });
  cleanup.defer('close the partitioned agent', () => a.close(300));
  const ep = await a.forward(`http://127.0.0.1:${up.port}`, { url: `http://${host}` });
  return { cleanup, front, a, ep, url: ep.url };
}

/** The session id of the route member that serves `host` (acceptor route table), or undefined when none does. */
function servingSession(host: string): string | undefined {
  return fx.relay.acceptor.routes.lookupHost(host)?.members[0]?.sessionId;
}

test('reconnect while the relay still holds the old session: the new session supersedes it (same ClientId), the rebind succeeds at once', T, async (t) => {
  const { front, a, ep, url } = await agentBehindFront(t, 'held.burrow.localhost');
  const host = 'held.burrow.localhost';
  const oldSession = servingSession(host);
  assert.ok(oldSession !== undefined);
  const superseded = fx.counter('agent:superseded');
  const refusals: string[] = [];
  a.on('endpoint-bind-error', (_e: Endpoint, err: Error) => refusals.push(err.message));

  front.partition(0);
  const [, relaySide] = front.pairs[0]!;
  const relayEnded = once(relaySide, 'close');
  relaySide.resume(); // read (and drop) what the relay still sends, so its FIN is seen
  await waitEvent<[Endpoint]>(a, 'endpoint-online', 'the rebind on the new session', (e) => e === ep);
  assert.deepEqual(refusals, [], 'the rebind was refused: the old session still held the name');
  assert.equal(ep.url, url);
  const newSession = servingSession(host);
  assert.ok(newSession !== undefined && newSession !== oldSession, `the route is still served by the old session ${oldSession}`);
  assert.equal(fx.counter('agent:superseded'), superseded + 1);
  // The relay ended the old session itself (the partitioned link never delivered a byte of it to the agent).
  await withTimeout('the relay to end the superseded session', relayEnded);
  const r = await get(fx.http.port, host, '/reclaimed');
  assert.equal(r.status, 200);
  assert.equal(report(r.body).url, '/reclaimed');
});

test('reconnect after another session took the name in the gap: the rebind is retried until the name is free', T, async (t) => {
  const { cleanup, front, a, ep, url } = await agentBehindFront(t, 'gap.burrow.localhost');
  const host = 'gap.burrow.localhost';

  // The agent's new connections wait at the front; the old link goes silent, then the relay sees it end.
  front.hold();
  front.partition(0);
  front.pairs[0]![1].destroy();
  await waitFor(`the relay to drop the route of ${host}`, () => (servingSession(host) === undefined ? true : undefined));
  // Another agent with the same token takes the name (the relay holds it for its owner, and this is the owner).
  const b = await connect(agentOptions());
  cleanup.defer('close the second agent', () => b.close(300));
  await b.forward(`http://127.0.0.1:${up.port}`, { url: `http://${host}` });

  const conflictSeen = waitEvent<[Endpoint, Error, boolean]>(a, 'endpoint-bind-error', 'the rebind to be refused while the other session holds the name', (e) => e === ep);
  front.release();
  const [, conflict, willRetry] = await conflictSeen;
  assert.ok(isBurrowError(conflict, 'BURROW_ERR_AGENT_BIND'), String(conflict));
  assert.match(conflict.message, /already online/);
  assert.equal(willRetry, true);
  assert.equal(ep.state, 'rebinding');
  const online = waitEvent<[Endpoint]>(a, 'endpoint-online', 'the retried rebind to succeed', (e) => e === ep);
  await b.close(300); // the name is free again
  await online;
  assert.equal(ep.url, url);
  const r = await get(fx.http.port, host, '/reclaimed');
  assert.equal(r.status, 200);
  assert.equal(report(r.body).url, '/reclaimed');
});

// ---------------------------------------------------------------------------------------------------------------
// the CLI

interface Cli {
  child: ChildProcessWithoutNullStreams;
  lines: Array<Record<string, unknown>>;
  events: EventEmitter;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawn bin/burrow.js; stdout is not a TTY, so the agent logs JSON lines (collected, and emitted as 'line'). */
function spawnCli(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}): Cli {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env['PATH'], ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  const events = new EventEmitter();
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  createInterface({ input: child.stdout }).on('line', (l) => {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(l) as Record<string, unknown>;
    } catch {
      rec = { msg: l };
    }
    lines.push(rec);
    events.emit('line', rec);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, lines, events, stderr: () => err, exited };
}

function waitLine(cli: Cli, what: string, pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  const seen = cli.lines.find(pred);
  if (seen !== undefined) return Promise.resolve(seen);
  return waitEvent<[Record<string, unknown>]>(cli.events, 'line', what, pred).then(([l]) => l);
}

test('CLI: config file errors exit non-zero naming the file, the line and the key', T, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-agent-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cases: Array<{ name: string; yaml: string; expect: RegExp[] }> = [
    { name: 'bad-yaml.yml', yaml: 'agent:\n  authtoken: [unclosed\nendpoints: []\n', expect: [/bad-yaml\.yml:\d+:\d+: not valid YAML/, /BURROW_ERR_CONFIG_FILE/] },
    {
      name: 'unknown-key.yml',
      yaml: 'agent: { authtoken: abcdefghijklmnopqrstuvwxyz }\nendpoints:\n  - name: web\n    url: http://web.burrow.localhost\n    upstrem: http://127.0.0.1:3000\n',
      expect: [/unknown-key\.yml:5: endpoints\[0\]\.upstrem: unknown key 'upstrem'/, /known keys under endpoints\[0\]: name, url, upstream, pool/],
    },
    {
      name: 'bad-url.yml',
      yaml: 'agent: { authtoken: abcdefghijklmnopqrstuvwxyz }\nendpoints:\n  - { name: web, url: "http://web.burrow.localhost/path", upstream: 3000 }\n',
      expect: [/bad-url\.yml:3: endpoints\[0\]\.url: 'http:\/\/web\.burrow\.localhost\/path'/, /without a path/],
    },
  ];
  for (const c of cases) {
    const file = join(dir, c.name);
    writeFileSync(file, c.yaml);
    const cli = spawnCli(t, ['start', '--config', file]);
    const { code } = await withTimeout(`burrow start --config ${c.name} to exit`, cli.exited);
    assert.equal(code, 1, `${c.name}: exit code; stderr ${cli.stderr()}`);
    assert.ok(cli.stderr().includes(file), `${c.name}: the message names the file: ${cli.stderr()}`);
    for (const re of c.expect) assert.match(cli.stderr(), re, c.name);
  }
});

test('CLI: burrow start runs the named endpoints of a config file in one session', T, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-agent-start-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const echo = await startTcpEcho(fx.cleanup);
  const file = join(dir, 'burrow.yml');
  writeFileSync(
    file,
    `agent: { server_addr: "localhost:${fx.agent.port}", ca: ${JSON.stringify(fx.caPath)} }\n` +
      'endpoints:\n' +
      `  - { name: site, url: http://site.burrow.localhost, upstream: http://127.0.0.1:${up.port} }\n` +
      `  - { name: echo, url: "tcp://", upstream: tcp://127.0.0.1:${echo.port} }\n` +
      '  - { name: unused, url: http://unused.burrow.localhost, upstream: 1 }\n',
  );
  const cli = spawnCli(t, ['start', '--config', file, 'site', 'echo'], { BURROW_AUTHTOKEN: fx.token });
  const online = new Map<string, string>();
  await waitLine(cli, 'both endpoints to be online', (l) => {
    if (l['msg'] === 'endpoint online') online.set(String(l['endpoint']), String(l['url']));
    return online.size === 2;
  });
  assert.equal(online.get('site'), `https://site.burrow.localhost:${fx.https.port}`);
  assert.match(online.get('echo')!, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  const sessions = cli.lines.filter((l) => l['msg'] === 'session online');
  assert.equal(sessions.length, 1, 'one session carries both endpoints');
  const r = await get(fx.http.port, 'site.burrow.localhost', '/from-start');
  assert.equal(r.status, 200);
  assert.equal(report(r.body).url, '/from-start');
  const unused = await get(fx.http.port, 'unused.burrow.localhost', '/');
  assert.equal(unused.status, 404, 'an endpoint not named on the command line is not bound');
  cli.child.kill('SIGTERM');
  const { code } = await withTimeout('burrow start to exit on SIGTERM', cli.exited);
  assert.equal(code, 0, cli.stderr());
});

test('CLI: SIGINT during a slow request lets it complete, then the agent exits 0', T, async (t) => {
  const held = new EventEmitter();
  let release: (() => void) | null = null;
  const slow = http.createServer((req, res) => {
    release = () => res.end(`slow answer for ${req.url}`);
    held.emit('request');
  });
  const slowPort = await listen(slow);
  t.after(() => {
    slow.closeAllConnections();
    slow.close();
  });
  const host = 'slow.burrow.localhost';
  const cli = spawnCli(t, ['http', `127.0.0.1:${slowPort}`, '--url', `http://${host}`, '--server', `localhost:${fx.agent.port}`, '--ca', fx.caPath, '--grace', '10000'], {
    BURROW_AUTHTOKEN: fx.token,
  });
  const online = await waitLine(cli, 'the CLI agent to log "endpoint online"', (l) => l['msg'] === 'endpoint online');
  assert.equal(online['url'], `https://${host}:${fx.https.port}`);
  assert.ok(cli.lines.some((l) => l['msg'] === 'session online'), 'a "session online" line came first');

  const arrived = once(held, 'request');
  const response = get(fx.http.port, host, '/slow');
  await withTimeout('the slow request to reach the upstream', arrived);
  cli.child.kill('SIGINT');
  await waitLine(cli, 'the agent to log the SIGINT', (l) => String(l['msg']).startsWith('SIGINT received'));
  assert.equal(cli.child.exitCode, null, 'the agent waits for the open request');
  // Its URL was unbound first: an agent started again right away binds it and serves new requests, while the old
  // one finishes its request (before: "already online", exit 1, until the old agent's grace period ended).
  const next = spawnCli(t, ['http', `127.0.0.1:${up.port}`, '--url', `http://${host}`, '--server', `localhost:${fx.agent.port}`, '--ca', fx.caPath], {
    BURROW_AUTHTOKEN: fx.token,
  });
  await waitLine(next, 'the restarted agent to bind the same URL', (l) => l['msg'] === 'endpoint online');
  const fresh = await get(fx.http.port, host, '/fresh');
  assert.equal(fresh.status, 200);
  assert.equal(report(fresh.body).url, '/fresh');
  next.child.kill('SIGTERM');
  release!();
  const r = await response;
  assert.equal(r.status, 200);
  assert.equal(r.body, 'slow answer for /slow');
  const { code, signal } = await withTimeout('the agent to exit after the request', cli.exited);
  assert.equal(signal, null);
  assert.equal(code, 0, cli.stderr());
  // Nothing was left open: no 3 s wait and report (its stdout and stderr pipes do not count).
  assert.doesNotMatch(cli.stderr(), /still running/);
  assert.ok(cli.lines.some((l) => l['msg'] === 'agent stopped'));
});

/** The relay's error counts by code, summed over its workers. */
async function relayErrors(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { stats } of await fx.relay.dispatcher.collectStats(2_000, 'metrics')) {
    for (const [code, n] of Object.entries(stats?.recorder?.errors ?? {})) out[code] = (out[code] ?? 0) + n;
  }
  return out;
}

/** Agent sessions open at the relay. */
async function relaySessions(): Promise<number> {
  let n = 0;
  for (const { stats } of await fx.relay.dispatcher.collectStats(2_000, 'probe')) n += stats?.sessions ?? 0;
  return n;
}

test('close() of an idle agent unbinds its URL, does not wait out the grace period, and is no error at the relay', T, async () => {
  const sessionsBefore = await relaySessions();
  const a = await connect(agentOptions());
  const host = 'idle.burrow.localhost';
  await a.forward(`http://127.0.0.1:${up.port}`, { url: `http://${host}` });
  assert.equal((await get(fx.http.port, host, '/')).status, 200);
  const errorsBefore = await relayErrors();
  // Before: the relay's heartbeat stream (which the agent echoes) stayed open, so close() always took the whole grace.
  await withTimeout('close(60 s) of an idle agent', a.close(60_000), 10_000);
  assert.equal((await get(fx.http.port, host, '/')).status, 404);
  // A graceful close is no error at the relay (before: BURROW_ERR_MUX_SESSION_CLOSED on every agent shutdown).
  await waitFor('the relay to see the session end', async () => ((await relaySessions()) === sessionsBefore ? true : undefined));
  assert.deepEqual(await relayErrors(), errorsBefore);
});

test('CLI: no auth token → exit 1 naming the flag and the variable; --help exits 0', T, async (t) => {
  const cli = spawnCli(t, ['http', '3000']);
  const { code } = await withTimeout('burrow http without a token to exit', cli.exited);
  assert.equal(code, 1);
  assert.match(cli.stderr(), /--authtoken/);
  assert.match(cli.stderr(), /BURROW_AUTHTOKEN/);
  const help = spawnCli(t, ['tcp', '--help']);
  const h = await withTimeout('burrow tcp --help to exit', help.exited);
  assert.equal(h.code, 0);
  assert.ok(help.lines.some((l) => String(l['msg']).includes('Usage: burrow tcp')));
});
