// The official @ngrok/ngrok SDK (1.7.0, prebuilt native binary) against our mux: a TLS server on 127.0.0.1:0 runs a
// server-role MuxSession per connection and answers Auth/Bind/Unbind (test/helpers/sdk-test-relay.ts). Proves
// PROTOCOL.md against the real client: auth, heartbeats, binding, proxied HTTP and TCP data, and a clean shutdown.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { finished } from 'node:stream/promises';
import { after, before, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import ngrok from '@ngrok/ngrok';
import { isBurrowError } from '../../src/core/errors.js';
import type { MuxStream } from '../../src/mux/mux-stream.js';
import { EDGE_TYPE_HTTPS, EDGE_TYPE_TCP } from '../../src/protocol/messages.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { SdkTestRelay, type RelayConn } from '../helpers/sdk-test-relay.js';

type NgrokSession = Awaited<ReturnType<InstanceType<typeof ngrok.SessionBuilder>['connect']>>;
type NgrokBuilder = InstanceType<typeof ngrok.SessionBuilder>;

const TOKEN = 'burrow-test-token-7f3a';
const TEST_TIMEOUT = 60_000; // a hang fails the test instead of stalling CI; no test waits on this
const STEP_TIMEOUT = 20_000; // bound on any single wait, so a failure names the step that hung
const NS_PER_S = 1_000_000_000;

let pki: TestPki;

// The SDK's log (tracing, DEBUG) goes into a ring buffer that failure messages include. loggingCallback installs a
// process-wide tracing subscriber that can be set only once, and its callback holds the event loop open until it is
// unregistered in after().
const SDK_LOG_MAX = 400;
const sdkLog: string[] = [];
before(() => {
  pki = makeTestPki();
  ngrok.loggingCallback((level: string, target: string, message: string) => {
    sdkLog.push(`${level} ${target} ${message}`);
    if (sdkLog.length > SDK_LOG_MAX) sdkLog.shift();
  }, 'DEBUG');
});
after(() => {
  ngrok.loggingCallback(); // unregister: the process can exit
  pki.cleanup();
});

type Defer = (fn: () => unknown) => void;

/**
 * Cleanup for one test, run last-in first-out after it (t.after hooks run first-in first-out, but the listener must
 * close before the session, and the session before the relay).
 */
function deferrer(t: TestContext): Defer {
  const fns: Array<() => unknown> = [];
  t.after(async () => {
    const errors: unknown[] = [];
    for (const fn of fns.reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
  });
  return (fn) => fns.push(fn);
}

/** A relay with an expected token whose failure dumps include the SDK log; closed after the test. */
async function startRelay(defer: Defer, livenessMs = 0): Promise<SdkTestRelay> {
  const relay = await SdkTestRelay.start({ key: pki.keyPem, cert: pki.certPem, expectToken: TOKEN, livenessMs });
  relay.extraDump = () => sdkLog.join('\n');
  defer(() => relay.close());
  return relay;
}

/** The SDK builder pointed at `relay`; the SNI is the host of serverAddr, which is in the leaf's SAN. */
function sdkBuilder(relay: SdkTestRelay, disconnects: string[]): NgrokBuilder {
  return new ngrok.SessionBuilder()
    .authtoken(TOKEN)
    .serverAddr(`localhost:${relay.port}`)
    .caCert(Buffer.from(pki.caPem))
    .handleDisconnection((addr: string, error: string) => {
      // Record and do not reconnect: a reconnect would hide a session the relay broke.
      disconnects.push(`${addr}: ${error}`);
      relay.emit('change');
      return false;
    });
}

/** Connect, bounded by STEP_TIMEOUT; the session is closed after the test. */
async function connect(defer: Defer, relay: SdkTestRelay, builder: NgrokBuilder): Promise<NgrokSession> {
  const session = await bounded(relay, 'the SDK to connect (TLS + Auth)', builder.connect());
  defer(() => session.close().catch(() => {})); // may already be closed by the test
  return session;
}

/** `p`, or a rejection naming `what` with the relay trace and SDK log after STEP_TIMEOUT. */
async function bounded<T>(relay: SdkTestRelay, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${STEP_TIMEOUT} ms waiting for ${what}\n${relay.dump()}`)), STEP_TIMEOUT);
  });
  try {
    return await Promise.race([p, timeout]);
  } catch (err) {
    if (err instanceof Error && !err.message.includes('--- relay trace')) err.message += `\n${relay.dump()}`;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function readAll(s: MuxStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The single connection the SDK made, after Auth. */
function onlyConn(relay: SdkTestRelay): RelayConn {
  assert.equal(relay.conns.length, 1, `expected exactly one agent connection\n${relay.dump()}`);
  return relay.conns[0]!;
}

/** Asserts the Auth message and returns it. */
function checkAuth(t: TestContext, relay: SdkTestRelay): Record<string, unknown> {
  assert.equal(relay.auths.length, 1, `expected one Auth RPC, got ${relay.auths.length}\n${relay.dump()}`);
  const auth = relay.auths[0]!.request;
  t.diagnostic(`Auth from the SDK: ${JSON.stringify(auth)}`);
  const version = auth['Version'];
  assert.ok(Array.isArray(version) && version.includes('3'), `Auth.Version must be an array containing "3": ${JSON.stringify(version)}`);
  assert.equal(auth['ClientId'], '', 'a new session authenticates with an empty ClientId');
  const extra = auth['Extra'] as Record<string, unknown>;
  assert.equal(typeof extra, 'object', 'Auth.Extra must be an object');
  assert.equal(extra['AuthToken'], TOKEN, 'Auth.Extra.AuthToken must be the token given to the SDK');
  return auth;
}

test('the @ngrok/ngrok SDK authenticates and stays up across heartbeats', { timeout: TEST_TIMEOUT }, async (t) => {
  const defer = deferrer(t);
  const relay = await startRelay(defer, 2_000); // liveness = interval + tolerance, as the relay derives it from Auth
  const disconnects: string[] = [];
  const latencies: Array<number | null> = [];
  // The builder takes whole seconds (u32); 1 s is the shortest interval and tolerance it can express.
  const builder = sdkBuilder(relay, disconnects)
    .heartbeatInterval(1)
    .heartbeatTolerance(1)
    .handleHeartbeat((latency: number) => {
      latencies.push(latency);
      relay.emit('change');
    });
  const session = await connect(defer, relay, builder);

  const auth = checkAuth(t, relay);
  const extra = auth['Extra'] as Record<string, unknown>;
  assert.equal(extra['HeartbeatInterval'], 1 * NS_PER_S, 'Auth.Extra.HeartbeatInterval is the interval in nanoseconds');
  assert.equal(extra['HeartbeatTolerance'], 1 * NS_PER_S, 'Auth.Extra.HeartbeatTolerance is the tolerance in nanoseconds');
  const conn = onlyConn(relay);
  assert.equal(conn.servername, 'localhost', 'the SDK sends the host of serverAddr as SNI');

  // The first beat leaves at session start; wait for two more, echoed by us and measured by the SDK.
  await relay.until('the relay to echo 3 heartbeats and the SDK to report 2 latencies', () =>
    conn.beatTimes.length >= 3 && latencies.length >= 2 ? true : undefined,
  );
  const gaps = conn.beatTimes.slice(1).map((tm, i) => (tm - conn.beatTimes[i]!).toFixed(0));
  t.diagnostic(`heartbeat gaps at the relay (ms): ${gaps.join(', ')}; SDK latencies (ms): ${latencies.join(', ')}`);
  assert.ok(latencies.every((l) => typeof l === 'number'), `the SDK reported a missed heartbeat: ${JSON.stringify(latencies)}`);

  // Still up: no disconnect, no reconnect, and the same session carries a Bind/Unbind round trip.
  assert.equal(conn.closed, false, `the relay's mux session ended: ${conn.closeError?.message}\n${relay.dump()}`);
  assert.deepEqual(disconnects, [], 'the SDK saw a disconnect');
  const listener = await bounded(relay, 'Bind (httpEndpoint().listen(false))', session.httpEndpoint().listen(false));
  assert.equal(listener.url(), 'https://t1.burrow.localhost');
  await bounded(relay, 'Unbind (listener.close())', listener.close());
  const unbind = await relay.until('the Unbind RPC', () => relay.unbinds[0]);
  t.diagnostic(`Unbind from the SDK: ${JSON.stringify(unbind.request)}`);
  assert.deepEqual(unbind.request, { Id: 'tun_1' });
  // The SDK's tunnel object sends Unbind again when it is dropped (ngrok-rust `impl Drop for TunnelInner`), right after
  // close(): the relay must answer a repeated Unbind for the same id without an error.
  const again = await relay.until('the repeated Unbind sent when the SDK drops its tunnel', () => relay.unbinds[1]);
  assert.deepEqual(again.request, { Id: 'tun_1' });
  assert.equal(relay.conns.length, 1, 'the SDK reconnected');
  assert.equal(conn.closed, false);
});

test('the SDK binds an HTTP endpoint and receives a proxied connection', { timeout: TEST_TIMEOUT }, async (t) => {
  const defer = deferrer(t);
  const relay = await startRelay(defer);
  const seen: http.IncomingHttpHeaders[] = [];
  const upstream = http.createServer((req, res) => {
    seen.push(req.headers);
    res.setHeader('content-type', 'text/plain');
    res.end('hello from upstream');
  });
  const upstreamPort = await listen(upstream);
  defer(() => closeServer(upstream));

  const disconnects: string[] = [];
  const session = await connect(defer, relay, sdkBuilder(relay, disconnects));
  checkAuth(t, relay);
  const conn = onlyConn(relay);

  const forwardsTo = `http://127.0.0.1:${upstreamPort}`;
  const listener = await bounded(relay, 'Bind (httpEndpoint().listenAndForward())', session.httpEndpoint().listenAndForward(forwardsTo));
  defer(() => listener.close().catch(() => {})); // the test closes it itself when it gets that far
  assert.equal(relay.binds.length, 1, `expected one Bind\n${relay.dump()}`);
  const bind = relay.binds[0]!;
  t.diagnostic(`Bind (http) from the SDK: ${JSON.stringify(bind.request)}`);
  t.diagnostic(`BindResp: ${JSON.stringify(bind.response)}`);
  const proto = bind.request['Proto'];
  assert.ok(proto === 'https' || proto === 'http', `Bind.Proto for httpEndpoint: ${JSON.stringify(proto)}`);
  assert.equal(bind.request['Id'], '', 'a first bind has an empty Id');
  assert.equal(bind.request['ForwardsTo'], `${forwardsTo}/`, 'listenAndForward sets ForwardsTo (as a normalised URL)');
  assert.equal(typeof bind.request['Opts'], 'object');
  assert.equal(listener.url(), 'https://t1.burrow.localhost', 'listener.url() is BindResp.URL');
  assert.equal(listener.id(), 'tun_1', 'listener.id() is BindResp.Id');

  const request = 'GET /hello?x=1 HTTP/1.1\r\nHost: t1.burrow.localhost\r\nConnection: close\r\n\r\n';
  const stream = relay.openProxy(
    conn,
    { Id: 'tun_1', ClientAddr: '127.0.0.1:5555', Proto: proto, EdgeType: EDGE_TYPE_HTTPS, PassthroughTLS: false },
    Buffer.from(request, 'latin1'),
  );
  const reply = (await bounded(relay, 'the HTTP response on the proxy stream', readAll(stream))).toString('latin1');
  stream.end();
  await bounded(relay, 'the proxy stream to finish both ways', finished(stream));
  assert.match(reply, /^HTTP\/1\.1 200 OK\r\n/, `unexpected response:\n${reply}`);
  assert.ok(reply.endsWith('\r\n\r\nhello from upstream'), `body missing from the response:\n${reply}`);
  assert.equal(seen.length, 1, 'the upstream saw exactly one request');
  assert.equal(seen[0]!['host'], 't1.burrow.localhost', 'the SDK passes the Host header through unchanged');

  await bounded(relay, 'Unbind (listener.close())', listener.close());
  const unbind = await relay.until('the Unbind RPC', () => relay.unbinds[0]);
  assert.deepEqual(unbind.request, { Id: 'tun_1' });
  assert.deepEqual(disconnects, []);
});

test('the SDK binds a TCP endpoint and relays raw bytes both ways', { timeout: TEST_TIMEOUT }, async (t) => {
  const defer = deferrer(t);
  const relay = await startRelay(defer);
  // Echo server that ends its side when the client ends (half-close travels through the SDK).
  const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  const upstreamPort = await listen(upstream);
  defer(() => closeServer(upstream));

  const disconnects: string[] = [];
  const session = await connect(defer, relay, sdkBuilder(relay, disconnects));
  checkAuth(t, relay);
  const conn = onlyConn(relay);

  const listener = await bounded(
    relay,
    'Bind (tcpEndpoint().listenAndForward())',
    session.tcpEndpoint().listenAndForward(`tcp://127.0.0.1:${upstreamPort}`),
  );
  defer(() => listener.close().catch(() => {})); // the test closes it itself when it gets that far
  const bind = relay.binds[0]!;
  t.diagnostic(`Bind (tcp) from the SDK: ${JSON.stringify(bind.request)}`);
  t.diagnostic(`BindResp: ${JSON.stringify(bind.response)}`);
  assert.equal(bind.request['Proto'], 'tcp');
  assert.equal(listener.url(), 'tcp://127.0.0.1:20001');

  // More than one 256 KiB window each way, so WNDINC has to flow in both directions.
  const data = randomBytes(700 * 1024 + 13);
  const stream = relay.openProxy(conn, {
    Id: 'tun_1',
    ClientAddr: '127.0.0.1:5556',
    Proto: 'tcp',
    EdgeType: EDGE_TYPE_TCP,
    PassthroughTLS: false,
  });
  const got = readAll(stream);
  stream.end(data);
  const echoed = await bounded(relay, 'the echoed bytes on the proxy stream', got);
  await bounded(relay, 'the proxy stream to finish both ways', finished(stream));
  assert.equal(echoed.length, data.length, 'echo length');
  assert.equal(sha(echoed), sha(data), 'echoed bytes differ');
  assert.deepEqual(disconnects, []);
});

test('session.close() goes silent on the wire, the relay ends it by heartbeat liveness, and the process can exit', { timeout: TEST_TIMEOUT }, async (t) => {
  // In this process. PROTOCOL.md Q1: the SDK's close() writes a GOAWAY it cannot encode, so its writer just stops and
  // the TLS connection stays open until the session object is garbage-collected. The relay must notice the silence.
  const defer = deferrer(t);
  const LIVENESS_MS = 2_000; // what the relay derives from Auth: interval 1 s + tolerance 1 s
  const relay = await startRelay(defer, LIVENESS_MS);
  const disconnects: string[] = [];
  const builder = sdkBuilder(relay, disconnects).heartbeatInterval(1).heartbeatTolerance(1);
  const session = await connect(defer, relay, builder);
  const conn = onlyConn(relay);
  await relay.until('a second heartbeat', () => (conn.beatTimes.length >= 2 ? true : undefined));
  const beatsAtClose = conn.beatTimes.length;
  await bounded(relay, 'session.close()', session.close());
  const closedAt = performance.now();
  await relay.until('the relay to end the silent session', () => (conn.closed ? true : undefined), 3 * LIVENESS_MS + STEP_TIMEOUT);
  t.diagnostic(
    `relay ended the session ${(performance.now() - closedAt).toFixed(0)} ms after session.close(): ${conn.closeError?.message}`,
  );
  assert.ok(
    isBurrowError(conn.closeError, 'BURROW_ERR_MUX_HEARTBEAT_TIMEOUT'),
    `expected the liveness watchdog to end the session, got: ${conn.closeError?.message ?? 'a clean close'}\n${relay.dump()}`,
  );
  assert.equal(conn.mux.remoteGoAway, null, 'the SDK sent a GOAWAY after all (PROTOCOL.md Q1 says it cannot)');
  assert.ok(conn.beatTimes.length <= beatsAtClose + 1, 'the SDK kept beating after session.close()');
  t.diagnostic(`SDK disconnect callbacks after close: ${JSON.stringify(disconnects)}`);

  // In a child process: once the listener and session are closed, nothing may hold its event loop open.
  const relay2 = await startRelay(defer);
  const upstream = http.createServer((_req, res) => res.end('unused'));
  const upstreamPort = await listen(upstream);
  defer(() => closeServer(upstream));
  const probe = fileURLToPath(new URL('../helpers/sdk-exit-probe.js', import.meta.url));
  const child = spawn(process.execPath, [probe, String(relay2.port), pki.caPath, TOKEN, String(upstreamPort)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null; at: number } | null = null;
  defer(() => {
    if (exit === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    relay2.emit('change');
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.on('exit', (code, signal) => {
    exit = { code, signal, at: performance.now() };
    relay2.emit('change');
  });
  const steps = (): string[] =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { step: string }).step);
  const probeOutput = (): string => `\n--- probe stdout ---\n${stdout}--- probe stderr ---\n${stderr}`;
  let probeClosedAt = 0;
  await relay2.until(`the probe to bind and close its session${probeOutput()}`, () => {
    const s = steps();
    if (s.includes('failed') || (exit !== null && !s.includes('closed'))) {
      throw new Error(`the probe failed (exit ${JSON.stringify(exit)})${probeOutput()}\n${relay2.dump()}`);
    }
    if (!s.includes('closed')) return undefined;
    probeClosedAt = performance.now();
    return true;
  });
  assert.deepEqual(steps(), ['connected', 'bound', 'closed']);
  const EXIT_BOUND_MS = 10_000; // a leaked handle means "never"; this bound only turns that into a failure
  const done = await relay2.until(`the probe process to exit by itself after closing${probeOutput()}`, () => exit ?? undefined, EXIT_BOUND_MS);
  t.diagnostic(`probe exited ${(done.at - probeClosedAt).toFixed(0)} ms after its session.close() resolved`);
  assert.equal(done.signal, null, `probe killed by a signal${probeOutput()}`);
  assert.equal(done.code, 0, `probe exit code${probeOutput()}`);
  assert.equal(relay2.binds.length, 1);
  assert.ok(relay2.unbinds.length >= 1, `the probe's listener.close() sends Unbind\n${relay2.dump()}`);
  assert.ok(relay2.unbinds.every((u) => u.request['Id'] === 'tun_1'), 'every Unbind names the bound tunnel');
  const probeConn = onlyConn(relay2);
  await relay2.until('the relay to see the probe\'s connection end', () => (probeConn.closed ? true : undefined));
});
