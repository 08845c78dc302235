// burrow's agent against the stand-in relay of the SDK interop tests (test/helpers/sdk-test-relay.ts), which records
// every RPC and can open streams to the agent: Auth and Bind carry the same shapes as the ngrok SDK's (PROTOCOL.md
// §9), and the relay → agent commands of §11 are answered: Update refused, Restart → reconnect + rebind with the
// previous ClientId / tunnel Id / Opts / token, StopTunnel → endpoint removed, Stop → graceful exit.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { connect, isBurrowError, type Agent, type AgentOptions, type Endpoint } from '../../src/index.js';
import { readJsonMessage } from '../../src/mux/rpc.js';
import { openTypedStream } from '../../src/mux/typed-stream.js';
import {
  STREAM_TYPE_RESTART,
  STREAM_TYPE_STOP,
  STREAM_TYPE_STOP_TUNNEL,
  STREAM_TYPE_UPDATE,
} from '../../src/protocol/messages.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { SdkTestRelay, TEST_CLIENT_ID, type RelayConn, type SdkTestRelayOptions } from '../helpers/sdk-test-relay.js';
import { Cleanup, startHttpUpstream, waitEvent, withTimeout, type HttpUpstream } from '../helpers/relay-fixture.js';

const TOKEN = 'agent-commands-test-token-0123456789';
const T = { timeout: 15_000 };

let pki: TestPki;
let up: HttpUpstream;
const top = new Cleanup();

before(async () => {
  pki = makeTestPki();
  top.defer('remove the test PKI', () => pki.cleanup());
  up = await startHttpUpstream(top);
});

after(() => top.run());

async function setup(
  cleanup: Cleanup,
  relayOptions: Partial<SdkTestRelayOptions> = {},
  agentOptions: Partial<AgentOptions> = {},
): Promise<{ relay: SdkTestRelay; agent: Agent }> {
  const relay = await SdkTestRelay.start({ key: pki.keyPem, cert: pki.certPem, expectToken: TOKEN, ...relayOptions });
  cleanup.defer('close the test relay', () => relay.close());
  const agent = await withTimeout(
    'the agent to connect',
    connect({ server: `localhost:${relay.port}`, authtoken: TOKEN, ca: pki.caPem, backoff: { baseMs: 20, capMs: 100 }, ...agentOptions }),
  );
  cleanup.defer('close the agent', () => agent.close(200));
  return { relay, agent };
}


/** Send a relay → agent command (PROTOCOL.md §11: type, one JSON value, no FIN) and read the answer. */
async function command(conn: RelayConn, type: number, body: object): Promise<Record<string, unknown>> {
  const s = openTypedStream(conn.mux, type);
  s.on('error', () => {});
  s.write(JSON.stringify(body));
  const answer = await withTimeout(`the agent's answer to command ${type}`, readJsonMessage(s));
  s.resume();
  s.end();
  return answer;
}

const AUTH_EXTRA_KEYS = [
  'OS', 'Arch', 'AuthToken', 'Version', 'Hostname', 'UserAgent', 'Metadata', 'Cookie', 'HeartbeatInterval',
  'HeartbeatTolerance', 'UpdateUnsupportedError', 'StopUnsupportedError', 'RestartUnsupportedError', 'ProxyType',
  'MutualTLS', 'ServiceRun', 'ConfigVersion', 'CustomInterface', 'CustomCAs', 'ClientType',
];
const HTTP_OPTS_KEYS = [
  'Domain', 'Hostname', 'Auth', 'Subdomain', 'HostHeaderRewrite', 'LocalUrlScheme', 'ProxyProto', 'Compression',
  'CircuitBreaker', 'IPRestriction', 'BasicAuth', 'OAuth', 'OIDC', 'WebhookVerification', 'MutualTLSCA',
  'RequestHeaders', 'ResponseHeaders', 'WebsocketTCPConverter', 'UserAgentFilter', 'TrafficPolicy',
];

test('Auth and Bind carry the SDK\'s shapes (http bound as https, every Opts key, PoolingEnabled)', T, async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const { relay, agent } = await setup(cleanup);
  const web = await agent.forward(`http://127.0.0.1:${up.port}`, { url: 'http://web.burrow.localhost', pool: true });
  await agent.forward('tcp://127.0.0.1:1', { url: 'tcp://' });
  await agent.forward('tls://127.0.0.1:2', { url: 'tls://sec.burrow.localhost' });
  assert.equal(web.url, 'https://t1.burrow.localhost');
  assert.equal(web.id, 'tun_1');

  const auth = relay.auths[0]!.request;
  assert.deepEqual(auth['Version'], ['3', '2']);
  assert.equal(auth['ClientId'], '');
  const extra = auth['Extra'] as Record<string, unknown>;
  assert.deepEqual(Object.keys(extra).sort(), [...AUTH_EXTRA_KEYS].sort());
  assert.equal(extra['AuthToken'], TOKEN);
  assert.equal(extra['HeartbeatInterval'], 10_000_000_000);
  assert.equal(extra['HeartbeatTolerance'], 15_000_000_000);
  assert.equal(extra['UpdateUnsupportedError'], 'burrow agent does not self-update');
  assert.equal(extra['StopUnsupportedError'], '');
  assert.equal(extra['RestartUnsupportedError'], '');
  assert.equal(extra['CustomCAs'], true);

  const [http, tcp, tls] = relay.binds.map((b) => b.request);
  assert.equal(http!['Proto'], 'https');
  assert.equal(http!['Id'], '');
  assert.equal(http!['ForwardsTo'], `http://127.0.0.1:${up.port}`);
  const httpOpts = http!['Opts'] as Record<string, unknown>;
  assert.deepEqual(Object.keys(httpOpts).sort(), [...HTTP_OPTS_KEYS].sort());
  assert.equal(httpOpts['Hostname'], 'web.burrow.localhost');
  assert.equal(httpOpts['ProxyProto'], 0);
  assert.deepEqual(http!['Extra'], { Token: '', IPPolicyRef: '', Metadata: '', Bindings: [], PoolingEnabled: true });
  assert.equal(tcp!['Proto'], 'tcp');
  assert.deepEqual(tcp!['Opts'], { Addr: '', ProxyProto: 0, IPRestriction: null, TrafficPolicy: null });
  assert.equal(tls!['Proto'], 'tls');
  assert.equal((tls!['Opts'] as Record<string, unknown>)['Hostname'], 'sec.burrow.localhost');
  assert.equal((tls!['Opts'] as Record<string, unknown>)['TLSTermination'], null, 'no TLSTermination = passthrough');
});

test('Update is refused; Restart reconnects and rebinds with the previous ClientId, Cookie, tunnel Id, Opts and token', T, async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const { relay, agent } = await setup(cleanup);
  const web = await agent.forward(`http://127.0.0.1:${up.port}`, { name: 'web' });
  const conn = relay.conns[0]!;

  assert.deepEqual(await command(conn, STREAM_TYPE_UPDATE, { Version: '9.9.9', PermitMajorVersion: false }), {
    Error: 'burrow agent does not self-update',
  });
  assert.equal(agent.state, 'online');

  const rebound = waitEvent<[Endpoint]>(agent, 'endpoint-online', 'the endpoint to be bound on the new session', (e) => e === web);
  assert.deepEqual(await command(conn, STREAM_TYPE_RESTART, {}), {});
  await rebound;
  await relay.until('the first connection to close', () => (conn.closed ? true : undefined));
  assert.equal(relay.conns.length, 2);
  const auth2 = relay.auths[1]!.request;
  assert.equal(auth2['ClientId'], TEST_CLIENT_ID);
  assert.equal((auth2['Extra'] as Record<string, unknown>)['Cookie'], 'cookie_test');
  const bind2 = relay.binds[1]!.request;
  assert.equal(bind2['Id'], 'tun_1');
  assert.equal((bind2['Opts'] as Record<string, unknown>)['Hostname'], 't1.burrow.localhost', 'the Opts the relay returned, with its name');
  assert.equal((bind2['Extra'] as Record<string, unknown>)['Token'], 'bt_1');
});

test('a BindResp without Id or URL is no bind: retried, and the endpoint goes online only with a real answer', T, async (t) => {
  // Before: `{}` was taken as success, and the endpoint went "online" with the URL '' under the id ''.
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const { relay, agent } = await setup(cleanup, { emptyBindResps: 1 });
  const retried = waitEvent(agent, 'endpoint-bind-error', 'the empty answer to count as a failed Bind');
  const web = await withTimeout('the endpoint to be bound after the retry', agent.forward(`http://127.0.0.1:${up.port}`, { name: 'web' }));
  const [, err, willRetry] = (await retried) as [Endpoint, Error, boolean];
  assert.match(err.message, /BindResp has no Id or URL/);
  assert.equal(willRetry, true);
  assert.equal(relay.binds.length, 2);
  assert.equal(web.url, 'https://t1.burrow.localhost');
  assert.equal(web.id, 'tun_1');
});

test('StopTunnel removes the endpoint (no answer, no Unbind); later proxy streams for it are refused', T, async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const { relay, agent } = await setup(cleanup);
  const web = await agent.forward(`http://127.0.0.1:${up.port}`, { name: 'web' });
  const conn = relay.conns[0]!;
  const closed = waitEvent<[Endpoint, Error]>(agent, 'endpoint-closed', 'the endpoint to close', (e) => e === web);
  const s = openTypedStream(conn.mux, STREAM_TYPE_STOP_TUNNEL);
  s.on('error', () => {});
  s.write(JSON.stringify({ Id: web.id, Message: 'test says stop', ErrorCode: null }));
  const [, err] = await closed;
  assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_TUNNEL_STOPPED'), String(err));
  assert.match(err.message, /test says stop/);
  assert.equal(web.state, 'closed');
  assert.equal(agent.endpoints.length, 0);
  assert.equal(relay.unbinds.length, 0);
  const p = relay.openProxy(conn, { Id: web.id, ClientAddr: '127.0.0.1:1', Proto: 'https', EdgeType: '3', PassthroughTLS: false }, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
  const [perr] = (await waitEvent<[Error]>(p, 'error', 'the proxy stream for a stopped tunnel to be reset')) as [Error];
  assert.ok(isBurrowError(perr, 'BURROW_ERR_MUX_STREAM_REFUSED'), String(perr));
});

test('Stop is answered, then the agent closes without an error', T, async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const { relay, agent } = await setup(cleanup);
  await agent.forward(`http://127.0.0.1:${up.port}`, { name: 'web' });
  const closed = waitEvent<[Error | undefined]>(agent, 'close', 'the agent to close');
  assert.deepEqual(await command(relay.conns[0]!, STREAM_TYPE_STOP, {}), {});
  const [err] = await closed;
  assert.equal(err, undefined);
  assert.equal(agent.state, 'closed');
});

test('a first Bind that gets no answer in time is retried, not dropped (a busy relay)', T, async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const { relay, agent } = await setup(cleanup, { firstBindDelayMs: 1_500 }, { connectTimeoutMs: 500 });
  const retried: boolean[] = [];
  agent.on('endpoint-bind-error', (_ep: Endpoint, _err: Error, willRetry: boolean) => retried.push(willRetry));
  // Before: the timeout counted as a refusal, the endpoint was dropped and forward() rejected.
  const web = await withTimeout('the endpoint to be bound after a retry', agent.forward(`http://127.0.0.1:${up.port}`, { name: 'web' }), 10_000);
  assert.equal(web.state, 'online');
  assert.deepEqual(retried, [true]);
  assert.ok(relay.binds.length >= 1);
});

test('a GOAWAY read together with the AuthResp: the agent reconnects after a backoff wait, then binds', T, async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const { relay, agent } = await setup(cleanup, { goAwayAfterAuth: 3 });
  // Before: the GOAWAY was emitted before the agent listened for it, so the agent stayed "online" on a session that
  // refuses new streams, and this forward() failed ("the peer sent GOAWAY").
  const web = await withTimeout('the endpoint to be bound on a session without GOAWAY', agent.forward(`http://127.0.0.1:${up.port}`, { name: 'web' }), 10_000);
  assert.equal(web.state, 'online');
  assert.equal(relay.conns.length, 4, 'three sessions ended by GOAWAY, then the fourth');
  // Every reconnect after a GOAWAY waited its backoff delay (before: none did, so a draining relay that keeps
  // answering got a reconnect storm).
  assert.equal(agent.stats.reconnectAttempts, 3);
  assert.equal(relay.binds.length, 1);
});

test('close(grace) with a relay that never answers Unbind and a connection still open ends within the grace, not twice it', T, async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  // An upstream that accepts and never answers: the proxied connection stays open until the grace ends.
  const silent = net.createServer((c) => c.on('error', () => {}));
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  cleanup.defer('close the silent upstream', () => new Promise<void>((r) => silent.close(() => r())));
  const { relay, agent } = await setup(cleanup, { ignoreUnbind: true });
  const web = await agent.forward(`http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, { name: 'web' });
  const p = relay.openProxy(relay.conns[0]!, { Id: web.id, ClientAddr: '127.0.0.1:1', Proto: 'https', EdgeType: '3', PassthroughTLS: false }, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  p.on('error', () => {});
  await relay.until('the agent to take the proxy stream', () => (agent.stats.connections.open > 0 ? true : undefined));
  // Before: the Unbind wait (up to the grace) came first, then a full grace for the open connection.
  await withTimeout('close(3 s) to finish', agent.close(3_000), 4_500);
});
