// The real relay (acceptor + worker threads, --workers 2) on 127.0.0.1 ephemeral ports with the official @ngrok/ngrok
// SDK as agent and real clients (curl, openssl s_client, ws, node:tls, raw sockets): http, https, tls-passthrough and
// tcp endpoints end to end, session death → 502, affinity across workers, the hostile ClientHello / HTTP-head lines of
// DESIGN.md §6 at the acceptor, and a `burrow relay` CLI smoke test (issue #3's test list).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { parseClientHello } from '../../src/sniff/parse-client-hello.js';
import { startChildAgent } from '../helpers/child-sdk-agent.js';
import { NO_THREADS_SKIP } from '../helpers/native-skip.js';
import { partitionableFront } from '../helpers/partitionable-front.js';
import { RawHttp } from '../helpers/raw-http.js';
import {
  Cleanup,
  curl,
  forward,
  rawExchange,
  resolveArgs,
  runCmd,
  sha256,
  startHttpUpstream,
  startRelayFixture,
  startTcpEcho,
  startTlsUpstream,
  statusOf,
  waitFor,
  withTimeout,
  type EchoReport,
  type HttpUpstream,
  type NgrokListener,
  type RelayFixture,
  type TlsUpstream,
} from '../helpers/relay-fixture.js';

const APP = 'app.burrow.localhost'; // http endpoint (the SDK binds it as https: served on both public listeners)
const SEC = 'sec.burrow.localhost'; // tls passthrough endpoint
const T = { timeout: 20_000 }; // per test; a hang fails the test instead of the file

let fx: RelayFixture;
let up: HttpUpstream;
let tlsUp: TlsUpstream;
let tcpListener: NgrokListener;
let httpPort: number;
let httpsPort: number;

before(async () => {
  fx = await startRelayFixture({ workers: 2 });
  httpPort = fx.http.port;
  httpsPort = fx.https.port;
  assert.equal(fx.relay.threaded, NO_THREADS_SKIP === false, 'worker threads exactly when the native addon is here');
  up = await startHttpUpstream(fx.cleanup);
  const echo = await startTcpEcho(fx.cleanup);
  tlsUp = await startTlsUpstream(fx.cleanup, [SEC]);
  const session = await fx.connectSdk();
  const app = await forward(fx.cleanup, APP, session.httpEndpoint().domain(APP).listenAndForward(`http://127.0.0.1:${up.port}`));
  assert.equal(app.url(), `https://${APP}:${httpsPort}`);
  // Passthrough: the SDK sees PassthroughTLS in the ProxyHeader and pipes raw bytes to the upstream's TLS server.
  const sec = await forward(fx.cleanup, SEC, session.tlsEndpoint().domain(SEC).listenAndForward(`tls://127.0.0.1:${tlsUp.port}`));
  assert.equal(sec.url(), `tls://${SEC}:${httpsPort}`);
  tcpListener = await forward(fx.cleanup, 'tcp', session.tcpEndpoint().listenAndForward(`tcp://127.0.0.1:${echo.port}`));
});

after(async () => {
  await fx?.close();
});

// ---------------------------------------------------------------------------------------------------------------
// helpers

const appUrl = (path: string, port = httpPort): string => `http://${APP}:${port}${path}`;
const appArgs = (port = httpPort): string[] => resolveArgs(APP, port);

function report(body: string): EchoReport {
  try {
    return JSON.parse(body) as EchoReport;
  } catch {
    throw new Error(`the upstream's JSON report did not come back intact: ${JSON.stringify(body.slice(0, 400))}`);
  }
}

/** All values of header `name` (case-insensitive) in a raw header list. */
function rawValues(rawHeaders: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  return out;
}

/**
 * Connect, then reset the connection before sending anything: the acceptor counts `counter` and nothing else. (Bytes
 * sent just before the reset make it a race: when they and the RST arrive before the acceptor reads, Linux returns
 * the bytes and then end-of-file, which counts as truncated.)
 */
async function resetBeforeDecision(port: number, counter: string): Promise<void> {
  const snap = fx.counters();
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  s.resetAndDestroy();
  const d = await waitFor(`the acceptor to count ${counter}`, () => {
    const now = fx.delta(snap);
    return Object.keys(now).length > 0 ? now : undefined;
  });
  assert.deepEqual(d, { [counter]: 1 });
}

/** A plain GET to APP on the http listener (node:http, no DNS): the relay still serves after whatever came before. */
async function assertServing(what: string, port = httpPort): Promise<void> {
  const body = await withTimeout(
    `a normal request after ${what}`,
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, path: '/still-serving', headers: { host: `${APP}:${port}` }, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    }),
  );
  assert.equal(body.status, 200, `after ${what} the relay must keep serving; got ${body.status} ${body.body.slice(0, 200)}`);
  assert.equal(report(body.body).url, '/still-serving');
}

const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);

/** A syntactically valid TLS ClientHello (RFC 8446 §4.1.2) with the given SNI / ALPN / padding, in ≤16 KiB records. */
function craftClientHello(o: { sni?: string; alpn?: string[]; padding?: number; sessionIdLength?: number } = {}): Buffer {
  const exts: Buffer[] = [];
  if (o.sni !== undefined) {
    const name = Buffer.from(o.sni, 'latin1');
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name]);
    exts.push(u16(0), u16(entry.length + 2), u16(entry.length), entry);
  }
  if (o.alpn !== undefined) {
    const names = Buffer.concat(o.alpn.map((a) => Buffer.concat([Buffer.from([a.length]), Buffer.from(a, 'latin1')])));
    exts.push(u16(16), u16(names.length + 2), u16(names.length), names);
  }
  if (o.padding !== undefined) exts.push(u16(21), u16(o.padding), Buffer.alloc(o.padding));
  const extBlock = Buffer.concat(exts);
  const sid = o.sessionIdLength ?? 0;
  const body = Buffer.concat([
    u16(0x0303),
    randomBytes(32),
    Buffer.from([sid]),
    Buffer.alloc(Math.min(sid, 32)),
    u16(2),
    u16(0x1301),
    Buffer.from([1, 0]),
    u16(extBlock.length),
    extBlock,
  ]);
  const hs = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  const records: Buffer[] = [];
  for (let i = 0; i < hs.length; i += 16384) {
    const frag = hs.subarray(i, i + 16384);
    records.push(Buffer.from([0x16, 0x03, 0x01]), u16(frag.length), frag);
  }
  return Buffer.concat(records);
}

/** TLS alert record: fatal unrecognized_name (RFC 8446 §6.2), the relay's "no such host" on TLS listeners. */
const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

/**
 * A real node:tls client whose ClientHello reaches the relay reshaped by `shape` (each returned piece written
 * separately, `paceMs` apart), through a small proxy on 127.0.0.1; everything after the ClientHello is piped as is.
 */
async function tlsThroughShaper(
  cleanup: Cleanup,
  targetPort: number,
  opts: tls.ConnectionOptions,
  shape: (hello: Buffer) => Buffer[],
  paceMs: number,
): Promise<tls.TLSSocket> {
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const relaySide = net.connect({ host: '127.0.0.1', port: targetPort });
    relaySide.setNoDelay(true);
    for (const s of [client, relaySide]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    let hello = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      hello = Buffer.concat([hello, c]);
      const r = parseClientHello(hello);
      if (r.kind === 'need-more') return;
      assert.equal(r.kind, 'hello', 'the node:tls client sent something other than a ClientHello');
      client.off('data', onData);
      client.pause();
      const pieces = shape(hello.subarray(0, r.kind === 'hello' ? r.recordBytes : hello.length));
      const rest = hello.subarray(r.kind === 'hello' ? r.recordBytes : hello.length);
      void (async () => {
        for (const p of pieces) {
          if (relaySide.destroyed) return;
          relaySide.write(p);
          if (paceMs > 0) await new Promise((res) => setTimeout(res, paceMs));
        }
        if (rest.length > 0) relaySide.write(rest);
        client.pipe(relaySide);
        client.resume();
      })();
    };
    client.on('data', onData);
    relaySide.pipe(client);
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  cleanup.defer('close the ClientHello shaper', async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => proxy.close(() => r()));
  });
  const port = (proxy.address() as net.AddressInfo).port;
  const socket = tls.connect({ host: '127.0.0.1', port, ...opts });
  cleanup.defer('destroy the shaped TLS client', () => socket.destroy());
  await withTimeout('the TLS handshake through the shaper', once(socket, 'secureConnect'));
  return socket;
}

/** One HTTP/1.1 request with Connection: close over `socket`; resolves with the whole response. */
async function requestOver(socket: tls.TLSSocket, host: string, path: string): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  await withTimeout(`the response to ${path}`, once(socket, 'end'));
  return Buffer.concat(chunks).toString('latin1');
}

function cleanupFor(t: TestContext): Cleanup {
  const c = new Cleanup();
  t.after(() => c.run());
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// http endpoint

test('http endpoint: curl GET reaches the upstream, and a keep-alive connection carries two requests', T, async () => {
  const snap = fx.counters();
  const connsBefore = up.connections;
  const r = await curl([...appArgs(), appUrl('/first?x=1'), appUrl('/second')]);
  assert.equal(r.code, 0, `curl failed: ${r.stderr}`);
  assert.deepEqual(r.transfers.map((x) => x['status']), ['200', '200']);
  // curl reused its connection for the second URL (num_connects 0, same local port) ...
  assert.deepEqual(r.transfers.map((x) => x['num_connects']), ['1', '0'], 'curl had to reconnect: keep-alive was not honoured');
  assert.equal(r.transfers[0]!['local_port'], r.transfers[1]!['local_port']);
  // ... the acceptor sniffed one connection, and the agent's upstream saw both requests on one connection.
  assert.deepEqual(fx.delta(snap), { 'http:head': 1 });
  const [a, b] = r.body.split(/(?<=\})(?=\{)/).map(report);
  assert.equal(a!.method, 'GET');
  assert.equal(a!.url, '/first?x=1');
  assert.equal(b!.url, '/second');
  assert.equal(a!.connId, b!.connId, 'the two requests reached the upstream on different connections');
  assert.equal(up.connections - connsBefore, 1);
  assert.equal(a!.headers.host, `${APP}:${httpPort}`);
});

test('http endpoint: a 1 MiB POST (and a chunked one) arrives intact; the upstream echoes its SHA-256', T, async (t) => {
  const cleanup = cleanupFor(t);
  const dir = mkdtempSync(join(tmpdir(), 'burrow-post-'));
  cleanup.defer('remove the POST body', () => rmSync(dir, { recursive: true, force: true }));
  const body = randomBytes(1024 * 1024);
  const file = join(dir, 'body.bin');
  writeFileSync(file, body);
  const plain = await curl([...appArgs(), '--data-binary', `@${file}`, '-H', 'Content-Type: application/octet-stream', appUrl('/upload')]);
  assert.equal(plain.status, 200, `POST failed: ${plain.stderr} ${plain.body.slice(0, 300)}`);
  const rep = report(plain.body);
  assert.equal(rep.method, 'POST');
  assert.equal(rep.headers['content-length'], String(body.length));
  assert.equal(rep.bodyLength, body.length);
  assert.equal(rep.bodySha256, sha256(body));
  const chunked = await curl([...appArgs(), '--data-binary', `@${file}`, '-H', 'Transfer-Encoding: chunked', appUrl('/upload-chunked')]);
  assert.equal(chunked.status, 200, `chunked POST failed: ${chunked.stderr} ${chunked.body.slice(0, 300)}`);
  const rep2 = report(chunked.body);
  assert.equal(rep2.headers['transfer-encoding'], 'chunked');
  assert.equal(rep2.bodyLength, body.length);
  assert.equal(rep2.bodySha256, sha256(body));
});

test('http endpoint: bodies of 8 concurrent clients sent in small pieces arrive intact (reads share one buffer per worker)', T, async () => {
  // Plain-http sockets in a worker read into one shared buffer (src/relay/worker/shared-read.ts): every body byte the
  // relay queues must be copied out before the next read. Small interleaved writes from many clients make the next
  // read (another client's) land before the mux flush; two requests per connection cover keep-alive reuse.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  try {
    const post = async (body: Buffer, path: string): Promise<EchoReport> => {
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request(
          { host: '127.0.0.1', port: httpPort, path, method: 'POST', agent, headers: { host: APP, 'content-length': body.length } },
          resolve,
        );
        req.on('error', reject);
        void (async () => {
          for (let off = 0; off < body.length; ) {
            const n = Math.min(body.length - off, 1 + Math.floor(Math.random() * 3000));
            req.write(body.subarray(off, off + n));
            off += n;
            await new Promise<void>((r) => setImmediate(r));
          }
          req.end();
        })();
      });
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      assert.equal(res.statusCode, 200);
      return report(Buffer.concat(chunks).toString('utf8'));
    };
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        for (let round = 0; round < 2; round++) {
          const body = randomBytes(128 * 1024 + i * 1000 + round);
          const rep = await post(body, `/shared-read/${i}/${round}`);
          assert.equal(rep.bodyLength, body.length, `client ${i} request ${round}: body length`);
          assert.equal(rep.bodySha256, sha256(body), `client ${i} request ${round}: body bytes changed on the way`);
        }
      }),
    );
  } finally {
    agent.destroy();
  }
});

test('http endpoint: X-Forwarded-For/Proto/Host are set by the relay and client-sent forwarding headers removed', T, async () => {
  const r = await curl([
    ...appArgs(),
    '-H', 'X-Forwarded-For: 203.0.113.9',
    '-H', 'X-Forwarded-Proto: gopher',
    '-H', 'X-Forwarded-Host: evil.example',
    '-H', 'Forwarded: for=203.0.113.9;host=evil.example',
    '-H', 'X-Real-IP: 203.0.113.9',
    '-H', 'X_Forwarded_For: 203.0.113.9',
    '-H', 'X-Kept: yes',
    appUrl('/xff'),
  ]);
  assert.equal(r.status, 200, r.stderr);
  const raw = report(r.body).rawHeaders;
  assert.deepEqual(rawValues(raw, 'x-forwarded-for'), ['127.0.0.1']);
  assert.deepEqual(rawValues(raw, 'x-forwarded-proto'), ['http']);
  assert.deepEqual(rawValues(raw, 'x-forwarded-host'), [`${APP}:${httpPort}`]);
  assert.deepEqual(rawValues(raw, 'forwarded'), []);
  assert.deepEqual(rawValues(raw, 'x-real-ip'), []);
  assert.deepEqual(rawValues(raw, 'x_forwarded_for'), []);
  assert.deepEqual(rawValues(raw, 'x-kept'), ['yes'], 'other headers must pass untouched');
  assert.ok(!raw.join('\n').includes('203.0.113.9') && !raw.join('\n').includes('evil.example'), `a client value leaked: ${raw.join(' | ')}`);
});

test('http endpoint: a Host for another name on a keep-alive connection → 421 and close, nothing forwarded', T, async (t) => {
  const c = new RawHttp(httpPort);
  t.after(() => c.destroy());
  const first = await c.request(`GET /ka-1 HTTP/1.1\r\nHost: ${APP}\r\n\r\n`, 'the first keep-alive response');
  assert.equal(first.status, 200);
  assert.equal(report(first.body.toString()).url, '/ka-1');
  const seen = up.requests.length;
  const second = await c.request(`GET /ka-2 HTTP/1.1\r\nHost: other.burrow.localhost\r\n\r\n`, 'the 421');
  assert.equal(second.status, 421, second.head);
  assert.match(second.body.toString(), /other\.burrow\.localhost/);
  await withTimeout('the relay to close after 421', c.closed);
  assert.equal(up.requests.length, seen, 'the misdirected request reached the upstream');
});

test('http endpoint: absolute-form targets: HTTP/1.0 without Host routed by the target; another host than Host → 421 on a first request too', T, async () => {
  const old = await rawExchange(httpPort, `GET http://${APP}/abs HTTP/1.0\r\n\r\n`);
  assert.equal(statusOf(old.data), 200, old.data.toString('latin1').slice(0, 200));
  const text = old.data.toString('latin1');
  assert.equal(report(text.slice(text.indexOf('\r\n\r\n') + 4)).url, `http://${APP}/abs`);
  const seen = up.requests.length;
  const other = await rawExchange(httpPort, `GET http://other.burrow.localhost/x HTTP/1.1\r\nHost: ${APP}\r\n\r\n`);
  assert.equal(statusOf(other.data), 421, other.data.toString('latin1').slice(0, 200));
  assert.equal(up.requests.length, seen, 'the misdirected request reached the upstream');
});

test('http endpoint: a misdirected request pipelined behind a POST → the POST’s 200 first, then 421 and close', T, async () => {
  const seen = up.requests.length;
  // One write: the filter passes the POST and meets the misdirected request before any response is back.
  const r = await rawExchange(
    httpPort,
    `POST /pipe-1 HTTP/1.1\r\nHost: ${APP}\r\nContent-Length: 5\r\n\r\nhello` + `GET /pipe-2 HTTP/1.1\r\nHost: other.burrow.localhost\r\n\r\n`,
  );
  const text = r.data.toString('latin1');
  assert.equal(statusOf(text), 200, `the first response is not the POST's: ${text.slice(0, 300)}`);
  const second = text.indexOf('HTTP/1.1 421 ');
  assert.ok(second > 0, `no 421 after the POST's response: ${text.slice(0, 600)}`);
  const firstBody = text.slice(text.indexOf('\r\n\r\n') + 4, second);
  assert.equal(report(firstBody).url, '/pipe-1');
  assert.match(text.slice(second), /other\.burrow\.localhost/);
  assert.equal(r.ending, 'end');
  assert.deepEqual(up.requests.slice(seen).map((q) => q.url), ['/pipe-1'], 'the upstream saw something else than the POST');
});

test('http endpoint: WebSocket echo through the relay (ws client and ws server)', T, async (t) => {
  const upgraded = once(up, 'ws') as Promise<[http.IncomingMessage]>;
  const ws = new WebSocket(`ws://${APP}:${httpPort}/chat`, {
    // *.burrow.localhost has no system DNS entry here: connect to the relay's listener directly; Host stays the name.
    createConnection: () => net.connect({ host: '127.0.0.1', port: httpPort }),
  });
  t.after(() => ws.terminate());
  await withTimeout('the WebSocket to open', once(ws, 'open'));
  const [req] = await upgraded;
  assert.equal(req.url, '/chat');
  assert.equal(req.headers['x-forwarded-proto'], 'http');
  const messages: Array<{ data: Buffer; binary: boolean }> = [];
  const two = new Promise<void>((resolve) =>
    ws.on('message', (data: Buffer, binary: boolean) => {
      messages.push({ data, binary });
      if (messages.length === 2) resolve();
    }),
  );
  const big = randomBytes(200 * 1024);
  ws.send('hello through burrow');
  ws.send(big);
  await withTimeout('two echoed WebSocket messages', two);
  assert.equal(messages[0]!.binary, false);
  assert.equal(messages[0]!.data.toString(), 'hello through burrow');
  assert.equal(messages[1]!.binary, true);
  assert.equal(sha256(messages[1]!.data), sha256(big));
  ws.close(1000, 'done');
  const [code] = (await withTimeout('the WebSocket close handshake', once(ws, 'close'))) as [number];
  assert.equal(code, 1000);
});

test('http endpoint: an unknown host → 404 page naming the host', T, async () => {
  const snap = fx.counters();
  const r = await curl([...resolveArgs('nope.burrow.localhost', httpPort), '-i', `http://nope.burrow.localhost:${httpPort}/x`]);
  assert.equal(r.status, 404, r.stderr);
  assert.match(r.body, /Tunnel nope\.burrow\.localhost not found/);
  assert.match(r.body, /X-Burrow-Error: 404/i);
  assert.deepEqual(fx.delta(snap), { 'http:head': 1, 'http:no-route': 1 });
});

test('http endpoint: the agent dies (SIGKILL) mid-request → 502; its route goes; the relay keeps serving', T, async (t) => {
  const DOOMED = 'doomed.burrow.localhost';
  const bound = await startChildAgent(cleanupFor(t), fx.agent.port, fx.caPath, fx.token, DOOMED, `http://127.0.0.1:${up.port}`);
  const { child, exited } = bound;
  assert.equal(bound.url, `https://${DOOMED}:${httpsPort}`);

  // The upstream holds /hang; once it has the request, the agent process is killed with the stream open.
  const held = once(up, 'hang') as Promise<[EchoReport]>;
  const pending = curl([...resolveArgs(DOOMED, httpPort), `http://${DOOMED}:${httpPort}/hang`]);
  const [hung] = await withTimeout('the held request to reach the upstream', held);
  assert.equal(hung.headers.host, `${DOOMED}:${httpPort}`);
  child.kill('SIGKILL');
  await exited;
  const r = await pending;
  assert.equal(r.status, 502, `expected a 502 page, got ${r.status} (curl exit ${r.code}: ${r.stderr}) ${r.body.slice(0, 300)}`);
  assert.match(r.body, new RegExp(`${DOOMED.replace(/\./g, '\\.')}`));

  // The session is gone: its route leaves the acceptor's table, the name answers 404, other endpoints still serve.
  // The route table changes by a message from the worker thread, with no event to wait on: poll it, with a deadline.
  await waitFor(`the route of ${DOOMED} to be dropped`, () => (fx.relay.acceptor.routes.lookupHost(DOOMED) === undefined ? true : undefined));
  const after404 = await curl([...resolveArgs(DOOMED, httpPort), `http://${DOOMED}:${httpPort}/again`]);
  assert.equal(after404.status, 404);
  await assertServing('an agent died');
});

test('http endpoint: the SDK loses its link and reconnects while the relay still holds it; the new session supersedes the old one', { timeout: 30_000 }, async (t) => {
  // The agent's side of the link fails (a network change: the SDK gets a reset), the relay's side goes silent: the relay
  // still holds the old session (it would drop it after 30 s of silence) when the SDK reconnects with the same ClientId.
  // Were the old session kept, the SDK's rebind would be refused ("already online"); it retries after 50 ms and 2.5 s,
  // then only after 125 s. (The SDK never gives up on a session for a missed heartbeat alone: it only reports it.)
  const cleanup = cleanupFor(t);
  const MOVED = 'moved.burrow.localhost';
  const front = await partitionableFront(cleanup, fx.agent.port);
  const agent = await startChildAgent(cleanup, front.port, fx.caPath, fx.token, MOVED, `http://127.0.0.1:${up.port}`, { reconnect: true });
  const sessionOf = (): string | undefined => fx.relay.acceptor.routes.lookupHost(MOVED)?.members[0]?.sessionId;
  const before = sessionOf();
  assert.ok(before !== undefined);
  const superseded = fx.counter('agent:superseded');
  front.cutAgentSide(0);
  await waitFor('the SDK to see its link fail', () => (agent.steps.includes('disconnected') ? true : undefined));
  const after = await waitFor(`the route of ${MOVED} to move to a new session`, () => {
    const s = sessionOf();
    return s !== undefined && s !== before ? s : undefined;
  });
  assert.equal(fx.counter('agent:superseded'), superseded + 1);
  const r = await curl([...resolveArgs(MOVED, httpPort), `http://${MOVED}:${httpPort}/after-partition`]);
  assert.equal(r.status, 200, `${r.stderr} ${r.body.slice(0, 300)}`);
  assert.equal(report(r.body).url, '/after-partition');
  assert.equal(sessionOf(), after);
  t.diagnostic(`child SDK steps: ${agent.steps.join(', ')}`);
});

// ---------------------------------------------------------------------------------------------------------------
// https endpoint (TLS terminated at the relay)

test('https endpoint: curl --cacert <data-dir>/ca.pem with SNI gets an intact HTTP/1.1 response', T, async () => {
  const snap = fx.counters();
  const r = await curl(['--cacert', fx.caPath, ...appArgs(httpsPort), '-D', '-', `https://${APP}:${httpsPort}/secure?q=1`]);
  assert.equal(r.code, 0, `curl failed: ${r.stderr}`);
  assert.equal(r.status, 200);
  assert.equal(r.transfers[0]!['http_version'], '1.1');
  const split = r.body.indexOf('\r\n\r\n');
  const head = r.body.slice(0, split);
  const body = r.body.slice(split + 4);
  assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head, /\r\nx-upstream: echo/i);
  assert.equal(Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1]), Buffer.byteLength(body), 'the body length does not match Content-Length');
  const rep = report(body);
  assert.equal(rep.url, '/secure?q=1');
  assert.deepEqual(rawValues(rep.rawHeaders, 'x-forwarded-proto'), ['https']);
  assert.deepEqual(rawValues(rep.rawHeaders, 'x-forwarded-host'), [`${APP}:${httpsPort}`]);
  assert.deepEqual(fx.delta(snap), { 'https:hello': 1 });
  // The certificate is the relay's dev leaf: without the data dir's CA, curl refuses it (exit 60).
  const untrusted = await curl([...appArgs(httpsPort), `https://${APP}:${httpsPort}/secure`]);
  assert.equal(untrusted.code, 60, `curl accepted the relay's certificate without --cacert: ${untrusted.stderr}`);
});

test('https endpoint: a 4 MiB POST arrives intact, sent by curl and in one write (many records per read)', T, async (t) => {
  // Bodies on public HTTPS sockets come through direct reads (src/mux/direct-reads.ts): 16 KiB records, each handed
  // out in its own read buffer. curl sends a record per write, which the relay mostly reads one at a time; the
  // second client writes the whole request at once, so one socket read decrypts several records in a row while the
  // mux still holds the earlier pieces (a reused read buffer would corrupt them).
  const cleanup = cleanupFor(t);
  const dir = mkdtempSync(join(tmpdir(), 'burrow-post-tls-'));
  cleanup.defer('remove the POST body', () => rmSync(dir, { recursive: true, force: true }));
  const body = randomBytes(4 * 1024 * 1024);
  const file = join(dir, 'body.bin');
  writeFileSync(file, body);
  const r = await curl([
    '--cacert', fx.caPath, ...appArgs(httpsPort), '--data-binary', `@${file}`, '-H', 'Content-Type: application/octet-stream',
    `https://${APP}:${httpsPort}/upload`,
  ]);
  assert.equal(r.status, 200, `POST failed: ${r.stderr} ${r.body.slice(0, 300)}`);
  const rep = report(r.body);
  assert.equal(rep.bodyLength, body.length);
  assert.equal(rep.bodySha256, sha256(body));

  const sock = tls.connect({ host: '127.0.0.1', port: httpsPort, servername: APP, ca: fx.caPem });
  cleanup.defer('close the TLS client', () => sock.destroy());
  await once(sock, 'secureConnect');
  const head = `POST /upload HTTP/1.1\r\nHost: ${APP}:${httpsPort}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  sock.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  const parts: Buffer[] = [];
  sock.on('data', (c: Buffer) => parts.push(c));
  await withTimeout('the response to the one-write POST', once(sock, 'end'), 20_000);
  const text = Buffer.concat(parts).toString('latin1');
  assert.match(text, /^HTTP\/1\.1 200 /);
  const rep2 = report(text.slice(text.indexOf('\r\n\r\n') + 4));
  assert.equal(rep2.bodyLength, body.length);
  assert.equal(rep2.bodySha256, sha256(body));
});

test('https endpoint: SNI ≠ Host → 421, nothing forwarded', T, async () => {
  const seen = up.requests.length;
  const r = await curl(['--cacert', fx.caPath, ...appArgs(httpsPort), '-H', 'Host: other.burrow.localhost', `https://${APP}:${httpsPort}/fronted`]);
  assert.equal(r.status, 421, `${r.stderr} ${r.body.slice(0, 300)}`);
  assert.match(r.body, /other\.burrow\.localhost/);
  assert.equal(up.requests.length, seen, 'the domain-fronted request reached the upstream');
});

test('https endpoint: ALPN names http/1.1; a client offering only h2 gets the no_application_protocol alert', T, async (t) => {
  const both = tls.connect({ host: '127.0.0.1', port: httpsPort, servername: APP, ALPNProtocols: ['h2', 'http/1.1'], ca: fx.caPem });
  t.after(() => both.destroy());
  await withTimeout('the handshake offering h2 and http/1.1', once(both, 'secureConnect'));
  assert.equal(both.alpnProtocol, 'http/1.1');
  const answer = new Promise<string>((resolve) => {
    let text = '';
    both.setEncoding('latin1');
    both.on('data', (c: string) => (text += c));
    both.on('end', () => resolve(text));
  });
  both.write(`GET /alpn HTTP/1.1\r\nHost: ${APP}:${httpsPort}\r\nConnection: close\r\n\r\n`);
  assert.match(await withTimeout('the answer over the negotiated http/1.1', answer), /^HTTP\/1\.1 200 /);
  const h2only = tls.connect({ host: '127.0.0.1', port: httpsPort, servername: APP, ALPNProtocols: ['h2'], ca: fx.caPem });
  t.after(() => h2only.destroy());
  const [err] = (await withTimeout('the h2-only handshake to fail', once(h2only, 'error'))) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
});
// ---------------------------------------------------------------------------------------------------------------
// tls endpoint (passthrough) and tcp endpoint

test('tls endpoint: end-to-end TLS to the upstream (its own certificate) with ALPN h2 on both sides', T, async (t) => {
  const snap = fx.counters();
  const secure = once(tlsUp, 'secure') as Promise<[TlsUpstream['sessions'][number]]>;
  const socket = tls.connect({ host: '127.0.0.1', port: httpsPort, servername: SEC, ALPNProtocols: ['h2'], ca: tlsUp.pki.caPem });
  t.after(() => socket.destroy());
  await withTimeout('the passthrough TLS handshake', once(socket, 'secureConnect'));
  assert.equal(socket.authorized, true, `the client did not verify the upstream: ${String(socket.authorizationError)}`);
  assert.equal(socket.alpnProtocol, 'h2');
  const leaf = new X509Certificate(tlsUp.pki.certPem);
  assert.equal(socket.getPeerX509Certificate()?.fingerprint256, leaf.fingerprint256, 'the certificate is not the upstream’s own');
  const [seen] = await withTimeout('the upstream to see the TLS session', secure);
  assert.deepEqual(seen, { alpn: 'h2', servername: SEC });
  const payload = randomBytes(256 * 1024);
  const got: Buffer[] = [];
  let n = 0;
  const echoed = new Promise<void>((resolve) =>
    socket.on('data', (c: Buffer) => {
      got.push(c);
      n += c.length;
      if (n >= payload.length) resolve();
    }),
  );
  socket.write(payload);
  await withTimeout('the 256 KiB echo over passthrough TLS', echoed);
  assert.equal(sha256(Buffer.concat(got)), sha256(payload));
  assert.deepEqual(fx.delta(snap), { 'https:hello': 1 });
  // The relay does not terminate this name: a client that trusts only the relay's CA cannot verify the upstream.
  const relayTrust = tls.connect({ host: '127.0.0.1', port: httpsPort, servername: SEC, ALPNProtocols: ['h2'], ca: fx.caPem });
  t.after(() => relayTrust.destroy());
  const [err] = (await withTimeout('the relay-CA client to fail verification', once(relayTrust, 'error'))) as [NodeJS.ErrnoException];
  assert.match(String(err.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED/);
});

test('tcp endpoint: 4 MiB echo through the returned tcp://host:port, hash-checked', T, async (t) => {
  const url = new URL(tcpListener.url()!);
  assert.equal(url.protocol, 'tcp:');
  assert.equal(url.hostname, '127.0.0.1');
  const port = Number(url.port);
  assert.ok(port >= fx.tcpPorts.from && port <= fx.tcpPorts.to, `port ${port} is outside --tcp-ports ${fx.tcpPorts.from}-${fx.tcpPorts.to}`);
  const payload = randomBytes(4 * 1024 * 1024);
  const socket = net.connect({ host: url.hostname, port, allowHalfOpen: true });
  t.after(() => socket.destroy());
  const got: Buffer[] = [];
  socket.on('data', (c: Buffer) => got.push(c));
  await withTimeout('connect to the tcp endpoint', once(socket, 'connect'));
  socket.end(payload); // half-close: the echo ends when our data ends
  await withTimeout('the 4 MiB echo to end', once(socket, 'end'), 15_000);
  const echoed = Buffer.concat(got);
  assert.equal(echoed.length, payload.length);
  assert.equal(sha256(echoed), sha256(payload));
});

// ---------------------------------------------------------------------------------------------------------------
// affinity

test('two SDK sessions land on different workers and each is reachable (affinity)', { ...T, skip: NO_THREADS_SKIP }, async (t) => {
  const fx2 = await startRelayFixture({ workers: 2 });
  t.after(() => fx2.close());
  const up2 = await startHttpUpstream(fx2.cleanup);
  const names = ['one.burrow.localhost', 'two.burrow.localhost'];
  for (const name of names) {
    const s = await fx2.connectSdk(`SDK session for ${name}`);
    await forward(fx2.cleanup, name, s.httpEndpoint().domain(name).listenAndForward(`http://127.0.0.1:${up2.port}`));
  }
  const routes = fx2.relay.acceptor.routes.all();
  const byName = new Map(routes.map((r) => [r.hostname, r.members[0]!]));
  const [r1, r2] = names.map((n) => byName.get(n)!);
  assert.ok(r1 && r2, `both routes must be registered: ${routes.map((r) => r.hostname).join(', ')}`);
  assert.notEqual(r1.sessionId, r2.sessionId);
  assert.notEqual(r1.workerId, r2.workerId, `both sessions landed on worker ${r1.workerId}: the least-busy balancer did not spread them`);
  assert.deepEqual([r1.workerId, r2.workerId].sort(), fx2.relay.dispatcher.workerIds().sort());
  // Each public connection goes to its session's worker; three rounds each, over both public listeners.
  for (let i = 0; i < 3; i++) {
    for (const name of names) {
      const viaHttp = await curl([...resolveArgs(name, fx2.http.port), `http://${name}:${fx2.http.port}/r${i}`]);
      assert.equal(viaHttp.status, 200, `${name} over http: ${viaHttp.stderr}`);
      assert.equal(report(viaHttp.body).headers.host, `${name}:${fx2.http.port}`);
    }
  }
  for (const name of names) {
    const viaHttps = await curl(['--cacert', fx2.caPath, ...resolveArgs(name, fx2.https.port), `https://${name}:${fx2.https.port}/s`]);
    assert.equal(viaHttps.status, 200, `${name} over https: ${viaHttps.stderr}`);
  }
  assert.equal(up2.requests.length, 8);
});

test('single-threaded fallback (workers 0): keep-alive http, https and tcp work, and close() returns promptly', T, async (t) => {
  const st = await startRelayFixture({ workers: 0 });
  t.after(() => st.close());
  assert.equal(st.relay.threaded, false);
  const up4 = await startHttpUpstream(st.cleanup);
  const echo = await startTcpEcho(st.cleanup);
  const s = await st.connectSdk();
  await forward(st.cleanup, APP, s.httpEndpoint().domain(APP).listenAndForward(`http://127.0.0.1:${up4.port}`));
  const tl = await forward(st.cleanup, 'tcp', s.tcpEndpoint().listenAndForward(`tcp://127.0.0.1:${echo.port}`));
  // Here the acceptor hands its own (paused) socket to the in-thread runtime: later requests must still be read.
  const plain = await curl([...resolveArgs(APP, st.http.port), `http://${APP}:${st.http.port}/one`, `http://${APP}:${st.http.port}/two`]);
  assert.deepEqual(plain.transfers.map((x) => [x['status'], x['num_connects']]), [['200', '1'], ['200', '0']], plain.stderr);
  const secure = await curl(['--cacert', st.caPath, ...resolveArgs(APP, st.https.port), `https://${APP}:${st.https.port}/a`, `https://${APP}:${st.https.port}/b`]);
  assert.deepEqual(secure.transfers.map((x) => [x['status'], x['num_connects']]), [['200', '1'], ['200', '0']], secure.stderr);
  assert.deepEqual(up4.requests.map((q) => q.url), ['/one', '/two', '/a', '/b']);
  const sock = net.connect({ host: '127.0.0.1', port: Number(new URL(tl.url()!).port), allowHalfOpen: true });
  t.after(() => sock.destroy());
  const got: Buffer[] = [];
  sock.on('data', (c: Buffer) => got.push(c));
  const payload = randomBytes(256 * 1024);
  sock.end(payload);
  await withTimeout('the tcp echo (single-threaded)', once(sock, 'end'));
  assert.equal(sha256(Buffer.concat(got)), sha256(payload));
  // The SDK session stays connected (its close() sends nothing): close() must not wait for that connection to end.
  await withTimeout('the single-threaded relay to close with an agent still connected', st.close(), 5_000);
});

// ---------------------------------------------------------------------------------------------------------------
// hostile input at the acceptor (DESIGN.md §6)

test('acceptor: hostile ClientHellos on the https listener → counter, clean close or alert, relay keeps serving', { timeout: 40_000 }, async (t) => {
  /** Send `bytes`, collect until the relay closes; check the counter deltas and that the relay still serves. */
  const hostile = async (name: string, send: Buffer | ((s: net.Socket) => void), want: Record<string, number>, reply: Buffer | null = Buffer.alloc(0)): Promise<void> => {
    await t.test(name, async () => {
      const snap = fx.counters();
      const r = await rawExchange(httpsPort, send);
      if (reply !== null) assert.deepEqual(r.data, reply, `unexpected reply bytes ${r.data.toString('hex')}`);
      assert.deepEqual(fx.delta(snap), want);
      await assertServing(name);
    });
  };

  const hello = craftClientHello({ sni: APP });
  await hostile('truncated ClientHello, then the client closes', (s) => s.end(hello.subarray(0, 40)), { 'https:truncated': 1 });
  await t.test('a client that connects and resets before its ClientHello → counted (https:reset)', async () => {
    await resetBeforeDecision(httpsPort, 'https:reset');
    await assertServing('a reset before the ClientHello');
  });
  await hostile('non-TLS bytes (an HTTP request) on the https port', Buffer.from(`GET / HTTP/1.1\r\nHost: ${APP}\r\n\r\n`), { 'https:not-tls': 1 });
  // SSLv2-compatible CLIENT-HELLO (RFC 6101 Appendix E.1): 2-byte header with the high bit set, msg type 1, version 3.1.
  const sslv2 = Buffer.concat([Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10]), Buffer.alloc(21 + 16, 1)]);
  await hostile('SSLv2 hello', sslv2, { 'https:not-tls-sslv2': 1 });
  await hostile(
    'a ClientHello longer than 16 KiB (two records, padding extension)',
    craftClientHello({ sni: APP, padding: 20_000 }),
    { 'https:too-large': 1 },
    null, // the relay may reset while the rest is still in flight; either way nothing is answered
  );
  await hostile('session_id length 33 (wrong length field)', craftClientHello({ sni: APP, sessionIdLength: 33 }), { 'https:invalid-length': 1 });
  await hostile('empty ALPN list', craftClientHello({ sni: APP, alpn: [] }), { 'https:invalid-alpn': 1 });
  await hostile('SNI is an IP literal → alert unrecognized_name', craftClientHello({ sni: '127.0.0.1' }), { 'https:sni-ip-literal': 1 }, ALERT_UNRECOGNIZED_NAME);
  await hostile('SNI with bad characters → alert', craftClientHello({ sni: 'bad_host!.burrow.localhost' }), { 'https:sni-bad-chars': 1 }, ALERT_UNRECOGNIZED_NAME);
  await hostile('SNI with a trailing dot → alert', craftClientHello({ sni: `${APP}.` }), { 'https:sni-trailing-dot': 1 }, ALERT_UNRECOGNIZED_NAME);
  await hostile('SNI of 300 characters → alert', craftClientHello({ sni: `${'a'.repeat(60)}.`.repeat(5).slice(0, 300) }), { 'https:sni-too-long': 1 }, ALERT_UNRECOGNIZED_NAME);

  await t.test('no SNI (node:tls to an IP) → alert unrecognized_name', async () => {
    const snap = fx.counters();
    const s = tls.connect({ host: '127.0.0.1', port: httpsPort, ca: fx.caPem });
    t.after(() => s.destroy());
    const [err] = (await withTimeout('the alert', once(s, 'error'))) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME', String(err));
    assert.deepEqual(fx.delta(snap), { 'https:hello-no-sni': 1 });
    await assertServing('a ClientHello without SNI');
  });

  await t.test('openssl s_client to an unknown SNI → alert unrecognized_name', async () => {
    const snap = fx.counters();
    const r = await runCmd('openssl', ['s_client', '-connect', `127.0.0.1:${httpsPort}`, '-servername', 'unknown.burrow.localhost']);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /unrecognized name/i, `s_client output:\n${r.stdout}\n${r.stderr}`);
    assert.deepEqual(fx.delta(snap), { 'https:hello': 1, 'https:no-route': 1 });
    await assertServing('a ClientHello for an unknown name');
  });

  await t.test('a real ClientHello sent one byte per write is still routed (HTTPS request answered)', async (tt) => {
    const snap = fx.counters();
    const cleanup = cleanupFor(tt);
    const bytes = (h: Buffer): Buffer[] => [...h].map((b) => Buffer.from([b]));
    const s = await tlsThroughShaper(cleanup, httpsPort, { servername: APP, ca: fx.caPem }, bytes, 1);
    const res = await requestOver(s, APP, '/dribbled');
    assert.equal(statusOf(res), 200, res.slice(0, 300));
    assert.match(res, /"url":"\/dribbled"/);
    assert.deepEqual(fx.delta(snap), { 'https:hello': 1 });
  });

  await t.test('a real ClientHello split across two TLS records is still routed', async (tt) => {
    const snap = fx.counters();
    const cleanup = cleanupFor(tt);
    const split = (h: Buffer): Buffer[] => {
      // One record in (node:tls sends the ClientHello in one): its fragment re-framed as two records, sent apart.
      const frag = h.subarray(5, 5 + h.readUInt16BE(3));
      const cut = 7; // inside the handshake header's length field
      const rec = (f: Buffer): Buffer => Buffer.concat([h.subarray(0, 3), u16(f.length), f]);
      return [rec(frag.subarray(0, cut)), rec(frag.subarray(cut))];
    };
    const s = await tlsThroughShaper(cleanup, httpsPort, { servername: APP, ca: fx.caPem }, split, 20);
    const res = await requestOver(s, APP, '/split');
    assert.equal(statusOf(res), 200, res.slice(0, 300));
    assert.deepEqual(fx.delta(snap), { 'https:hello': 1 });
  });
});

test('acceptor + worker filter: hostile HTTP heads → error status and close, counter, relay keeps serving', T, async (t) => {
  const bad = async (name: string, send: Buffer | string | ((s: net.Socket) => void), status: number, want: Record<string, number>, forwarded = false): Promise<void> => {
    await t.test(name, async () => {
      const snap = fx.counters();
      const conns = up.connections;
      const r = await rawExchange(httpPort, typeof send === 'string' ? Buffer.from(send, 'latin1') : send);
      assert.equal(statusOf(r.data), status, `reply: ${JSON.stringify(r.data.toString('latin1').slice(0, 300))}`);
      assert.match(r.data.toString('latin1'), /\r\nConnection: close\r\n/);
      assert.deepEqual(fx.delta(snap), want);
      if (!forwarded) assert.equal(up.connections, conns, 'the agent opened an upstream connection for a refused request');
      await assertServing(name);
    });
  };
  const H = `Host: ${APP}\r\n`;
  const big = `GET / HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`;
  await bad('a 64 KiB head → 431', big, 431, { 'http:too-large': 1 });
  await bad('bare LF line ends → 400', `GET / HTTP/1.1\nHost: ${APP}\n\n`, 400, { 'http:invalid-bare-lf': 1 });
  await bad('two Host headers → 400', `GET / HTTP/1.1\r\n${H}${H}\r\n`, 400, { 'http:invalid-duplicate-host': 1 });
  await bad('obs-fold → 400', `GET / HTTP/1.1\r\n${H}X-Folded: a\r\n b\r\n\r\n`, 400, { 'http:invalid-obs-fold': 1 });
  await bad('not HTTP at all (a TLS ClientHello on the http port) → 400', craftClientHello({ sni: APP }).toString('latin1'), 400, { 'http:not-http': 1 });
  // Framing is the worker's filter's job: the head routes, then the filter refuses before opening a stream.
  await bad(
    'Content-Length + Transfer-Encoding on the first request → 400 from the worker',
    `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
    { 'http:head': 1 },
  );
  await bad('HTTP/1.2 as the first request → 505 from the acceptor', `GET / HTTP/1.2\r\n${H}\r\n`, 505, { 'http:invalid-version': 1 });
  await t.test('HTTP/1.2 on a keep-alive connection → 505 HTTP Version Not Supported from the worker', async () => {
    const r = await rawExchange(httpPort, Buffer.from(`GET / HTTP/1.1\r\n${H}\r\nGET / HTTP/1.2\r\n${H}\r\n`, 'latin1'));
    assert.match(r.data.toString('latin1'), /HTTP\/1\.1 505 HTTP Version Not Supported\r\n/);
    await assertServing('after 505');
  });
  await bad('two Content-Length headers → 400 from the worker', `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\nab`, 400, { 'http:head': 1 });
  await bad(
    'a bad chunk size → 400 from the worker (head forwarded, then cut)',
    `POST /chunky HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n`,
    400,
    { 'http:head': 1 },
    true,
  );
  await t.test('a client that connects and resets before sending a head → counted (http:reset)', async () => {
    await resetBeforeDecision(httpPort, 'http:reset');
    await assertServing('a reset before the head');
  });
  await t.test('a truncated head, then the client closes → counted, closed', async () => {
    const snap = fx.counters();
    const r = await rawExchange(httpPort, (s) => s.end(`GET / HTTP/1.1\r\nHost: ${APP}\r\n`));
    assert.equal(r.data.length, 0);
    assert.deepEqual(fx.delta(snap), { 'http:truncated': 1 });
    await assertServing('a truncated head');
  });
});

test('slowloris: an incomplete head → 408 and close, at the acceptor and on a later keep-alive request', T, async (t) => {
  const slow = await startRelayFixture({ workers: 2, prereadTimeoutMs: 300, limits: { httpHeadTimeoutMs: 300 } });
  t.after(() => slow.close());
  const up3 = await startHttpUpstream(slow.cleanup);
  const s = await slow.connectSdk();
  await forward(slow.cleanup, APP, s.httpEndpoint().domain(APP).listenAndForward(`http://127.0.0.1:${up3.port}`));

  // First head never completes: the acceptor's preread deadline answers 408.
  let snap = slow.counters();
  const started = Date.now();
  const r = await rawExchange(slow.http.port, `GET /slow HTTP/1.1\r\nHost: ${APP}\r\nX-A: 1\r\n`);
  assert.equal(statusOf(r.data), 408, r.data.toString('latin1').slice(0, 200));
  assert.ok(Date.now() - started >= 250, 'the 408 came before the deadline');
  assert.deepEqual(slow.delta(snap), { 'http:timeout': 1 });

  // A bad header line in a later read, with no blank line after it: the acceptor re-sniffs only on a blank line, but
  // the deadline still answers the line's 400, not 408 (the answer does not depend on how the bytes were split).
  snap = slow.counters();
  const split = await rawExchange(slow.http.port, (sock) => {
    sock.write(`GET /slow HTTP/1.1\r\nHost: ${APP}\r\n`, () => setTimeout(() => sock.write('bad line\r\n'), 20));
  });
  assert.equal(statusOf(split.data), 400, split.data.toString('latin1').slice(0, 200));
  assert.equal(slow.delta(snap)['http:timeout'], undefined);

  // A connection that sends nothing (a browser's preconnect) is closed at the deadline without an answer.
  snap = slow.counters();
  const silent = await rawExchange(slow.http.port, Buffer.alloc(0));
  assert.equal(silent.data.length, 0, `an answer to no request: ${silent.data.toString('latin1').slice(0, 100)}`);
  assert.deepEqual(slow.delta(snap), { 'http:timeout': 1 });
  // (After a TLS handshake on the https listener, the worker's head deadline does the same: limits.test.ts.)

  // Same on the https listener: a partial ClientHello is dropped at the deadline.
  snap = slow.counters();
  const partial = await rawExchange(slow.https.port, craftClientHello({ sni: APP }).subarray(0, 30));
  assert.equal(partial.data.length, 0);
  assert.deepEqual(slow.delta(snap), { 'https:timeout': 1 });

  // A second head on a keep-alive connection is timed by the worker (the filter's head deadline).
  const c = new RawHttp(slow.http.port);
  t.after(() => c.destroy());
  const ok = await c.request(`GET /fast HTTP/1.1\r\nHost: ${APP}\r\n\r\n`, 'the first response');
  assert.equal(ok.status, 200);
  const late = await c.request(`GET /slow-2 HTTP/1.1\r\nHost: ${APP}\r\n`, 'the worker’s 408');
  assert.equal(late.status, 408, late.head);
  await withTimeout('the relay to close after 408', c.closed);
  assert.deepEqual(up3.requests.map((q) => q.url), ['/fast']);
  await assertServing('slowloris clients', slow.http.port);
});

// ---------------------------------------------------------------------------------------------------------------
// CLI

test('CLI smoke: `burrow relay` on ephemeral ports prints its banner, serves the SDK and curl, exits 0 on SIGTERM', { timeout: 30_000, skip: NO_THREADS_SKIP }, async (t) => {
  const cleanup = cleanupFor(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'burrow-cli-'));
  cleanup.defer('remove the CLI data dir', () => rmSync(dataDir, { recursive: true, force: true }));
  const GRACE_MS = 2_000;
  const bin = fileURLToPath(new URL('../../../bin/burrow.js', import.meta.url));
  const from = 30_000 + Math.floor(Math.random() * 200) * 100;
  const child = spawn(
    process.execPath,
    [
      bin, 'relay',
      '--data-dir', dataDir,
      '--http-addr', '127.0.0.1:0',
      '--https-addr', '127.0.0.1:0',
      '--agent-addr', '127.0.0.1:0',
      '--admin-addr', 'off',
      '--tcp-ports', `${from}-${from + 99}`,
      '--workers', '2',
      '--grace', String(GRACE_MS),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  cleanup.defer('kill the relay process', async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const banner = await withTimeout(
    'the relay banner',
    new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (/\nThen: curl .*\n/.test(out)) resolve(out);
      });
      child.once('exit', (code) => reject(new Error(`burrow relay exited (${code}) before its banner:\n${out}\n${err}`)));
    }),
  );
  const field = (re: RegExp, what: string): string => {
    const m = re.exec(banner);
    assert.ok(m, `the banner has no ${what}:\n${banner}`);
    return m[1]!;
  };
  const httpsPortCli = Number(field(/^ {2}https +https:\/\/127\.0\.0\.1:(\d+)/m, 'https listener'));
  const httpPortCli = Number(field(/^ {2}http +http:\/\/127\.0\.0\.1:(\d+)/m, 'http listener'));
  const agentPort = Number(field(/^ {2}agents +127\.0\.0\.1:(\d+)/m, 'agent address'));
  const caPath = field(/^ {2}CA +(\S+)/m, 'CA path');
  const token = field(/^ {2}token +(\S+)/m, 'dev token');
  assert.equal(caPath, join(dataDir, 'ca.pem'));
  assert.match(banner, /workers +2 threads/);

  // The agent runs in a child process: once the relay is gone, the SDK's close()/Unbind never settle and would keep
  // this test process alive, so the agent is ended by closing its stdin instead.
  const upCli = await startHttpUpstream(cleanup);
  const CLI = 'cli.burrow.localhost';
  const agent = await startChildAgent(cleanup, agentPort, caPath, token, CLI, `http://127.0.0.1:${upCli.port}`);
  assert.equal(agent.url, `https://${CLI}:${httpsPortCli}`);
  const viaHttps = await curl(['--cacert', caPath, ...resolveArgs(CLI, httpsPortCli), `https://${CLI}:${httpsPortCli}/cli`]);
  assert.equal(viaHttps.status, 200, viaHttps.stderr);
  assert.equal(report(viaHttps.body).url, '/cli');
  const viaHttp = await curl([...resolveArgs(CLI, httpPortCli), `http://${CLI}:${httpPortCli}/cli-http`]);
  assert.equal(viaHttp.status, 200, viaHttp.stderr);

  // SIGTERM with the agent still connected and its endpoint bound: drain, then exit 0 within the grace period.
  const t0 = Date.now();
  child.kill('SIGTERM');
  const [code, signal] = await withTimeout('the relay to exit after SIGTERM', exited, GRACE_MS + 5_000);
  const took = Date.now() - t0;
  t.diagnostic(`exited ${took} ms after SIGTERM (--grace ${GRACE_MS})`);
  assert.equal(signal, null);
  assert.equal(code, 0, `exit code ${code}; stderr:\n${err}`);
  assert.ok(took < GRACE_MS + 1_500, `the relay took ${took} ms to exit with --grace ${GRACE_MS}`);
  assert.match(err, /SIGTERM received, draining/);
});

test('CLI: `burrow relay` on a taken port exits 1 with BURROW_ERR_RELAY_LISTEN naming the flag, and nothing else on stderr', { timeout: 30_000 }, async (t) => {
  const cleanup = cleanupFor(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'burrow-cli-'));
  cleanup.defer('remove the CLI data dir', () => rmSync(dataDir, { recursive: true, force: true }));
  const taken = net.createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  cleanup.defer('close the port holder', () => new Promise<void>((r) => taken.close(() => r())));
  const port = (taken.address() as net.AddressInfo).port;
  const bin = fileURLToPath(new URL('../../../bin/burrow.js', import.meta.url));
  const r = await runCmd(process.execPath, [
    bin, 'relay', '--data-dir', dataDir, '--http-addr', `127.0.0.1:${port}`, '--https-addr', '127.0.0.1:0', '--agent-addr', '127.0.0.1:0',
    '--admin-addr', 'off', '--workers', '1',
  ]);
  assert.equal(r.code, 1, r.stderr);
  // Before: Node's "Warning: burrow http listener error: listen EADDRINUSE" and its --trace-warnings hint came first.
  assert.match(r.stderr, /^burrow: --http-addr 127\.0\.0\.1:\d+: cannot listen \(listen EADDRINUSE[^\n]*\[BURROW_ERR_RELAY_LISTEN\]\n$/);
});

test('TLS renegotiation is refused on the https listener and the agent port (no handshakes without end on one connection)', T, async () => {
  for (const [what, port, servername] of [['https', httpsPort, APP], ['agent', fx.agent.port, 'localhost']] as const) {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: fx.caPem, maxVersion: 'TLSv1.2' });
    s.on('error', () => {});
    await withTimeout(`the ${what} handshake`, once(s, 'secureConnect'));
    // Before: every renegotiation was accepted (Node's limit does not reach TLSSockets made outside a tls.Server).
    const refused = await withTimeout(
      `an answer to a renegotiation on the ${what} listener`,
      new Promise<boolean>((resolve) => {
        s.once('close', () => resolve(true));
        s.once('error', () => resolve(true)); // the relay's no_renegotiation alert
        if (!s.renegotiate({}, (err) => resolve(err !== null && err !== undefined))) resolve(true);
      }),
    );
    s.destroy();
    assert.equal(refused, true, `${what}: a renegotiation was accepted`);
  }
  await assertServing('the renegotiation attempts');
});
