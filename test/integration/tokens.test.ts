// Token rules at the real relay (worker threads), loaded from a real tokens file (docs/security.md §Tokens), with both
// agents: the official @ngrok/ngrok SDK and burrow's own. Hostname patterns and TCP port ranges (BURROW_ERR_BIND_FORBIDDEN),
// endpoints per session (BURROW_ERR_BIND_LIMIT), sessions per token across workers (BURROW_ERR_AUTH_SESSION_LIMIT),
// failed-auth rate limiting per IP (BURROW_ERR_AUTH_RATE_LIMITED), and `burrow token create` end to end.
// DESIGN.md §6 "Sessions: bad token (rate limited)".
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import ngrok from '@ngrok/ngrok';
import { connect, isBurrowError } from '../../src/index.js';
import { loadTokens, type TokenStore } from '../../src/config/tokens.js';
import { partitionableFront } from '../helpers/partitionable-front.js';
import {
  Cleanup,
  curl,
  forward,
  resolveArgs,
  runCmd,
  startHttpUpstream,
  startRelayFixture,
  startTcpEcho,
  waitFor,
  withTimeout,
  type RelayFixture,
} from '../helpers/relay-fixture.js';

const T = { timeout: 30_000 };
const BIN = fileURLToPath(new URL('../../../bin/burrow.js', import.meta.url));
const RULED = 'ruled-token-aaaaaaaaaaaaaaaa';
const SOLO = 'solo-token-bbbbbbbbbbbbbbbbbb';

async function tokenStore(t: TestContext, text: string): Promise<TokenStore> {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-tokens-it-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'tokens');
  writeFileSync(path, text);
  return loadTokens({ dataDir: dir, tokensFile: path });
}

function sdk(fx: RelayFixture, token: string): Promise<Awaited<ReturnType<InstanceType<typeof ngrok.SessionBuilder>['connect']>>> {
  return new ngrok.SessionBuilder()
    .authtoken(token)
    .serverAddr(`localhost:${fx.agent.port}`)
    .caCert(Buffer.from(fx.caPem))
    .handleDisconnection(() => false)
    .connect();
}

function ours(fx: RelayFixture, token: string) {
  return connect({ server: `localhost:${fx.agent.port}`, authtoken: token, ca: fx.caPem, heartbeatIntervalMs: 500 });
}

test('hostname patterns, TCP port ranges and endpoints per session, with the SDK and with our agent', T, async (t) => {
  const probe = await startRelayFixture();
  const range = probe.tcpPorts;
  await probe.close();
  // Four TCP ports of the fixture's range for this token (any one may be busy on a shared machine); everything else
  // in the range is off limits to it.
  const mine = `${range.from + 10}-${range.from + 13}`;
  const inMine = (p: number): boolean => p >= range.from + 10 && p <= range.from + 13;
  const store = await tokenStore(t, `# ruled token\n${RULED} allow=app-*.burrow.localhost,exact.burrow.localhost tcp=${mine} endpoints=3\n`);
  const fx = await startRelayFixture({ tokens: [...store.entries], tcpPorts: range });
  t.after(() => fx.close());
  const up = await startHttpUpstream(fx.cleanup);
  const echo = await startTcpEcho(fx.cleanup);

  // ---- the SDK ----
  const s = await withTimeout('SDK connect with the ruled token', sdk(fx, RULED));
  fx.cleanup.defer('close the SDK session', () => s.close().catch(() => {}));
  const one = await forward(fx.cleanup, 'app-one', s.httpEndpoint().domain('app-one.burrow.localhost').listenAndForward(`http://127.0.0.1:${up.port}`));
  const r = await curl([...resolveArgs('app-one.burrow.localhost', fx.http.port), `http://app-one.burrow.localhost:${fx.http.port}/x`]);
  assert.equal(r.status, 200, 'a permitted name serves');
  await assert.rejects(
    withTimeout('refused Bind', s.httpEndpoint().domain('other.burrow.localhost').listenAndForward(`http://127.0.0.1:${up.port}`)),
    /may not bind other\.burrow\.localhost; it may bind hostnames matching app-\*\.burrow\.localhost, exact\.burrow\.localhost/,
  );
  // A Bind that names no host gets a name inside the token's pattern.
  const random = await forward(fx.cleanup, 'random', s.httpEndpoint().listenAndForward(`http://127.0.0.1:${up.port}`));
  assert.match(new URL(random.url()!).hostname, /^app-[a-z0-9-]+\.burrow\.localhost$/);
  await assert.rejects(
    withTimeout('refused TCP Bind', s.tcpEndpoint().remoteAddr(`127.0.0.1:${range.from + 14}`).listenAndForward(`tcp://127.0.0.1:${echo.port}`)),
    new RegExp(`may not bind TCP port ${range.from + 14}; it may bind ports ${mine}`),
  );
  const tcp = await forward(fx.cleanup, 'tcp any', s.tcpEndpoint().listenAndForward(`tcp://127.0.0.1:${echo.port}`));
  const port = Number(new URL(tcp.url()!).port);
  assert.ok(inMine(port), `port ${port} is within the token's range ${mine}`);
  // Three endpoints (app-one, random, tcp) is this token's per-session limit.
  await assert.rejects(
    withTimeout('Bind over the endpoint limit', s.httpEndpoint().domain('exact.burrow.localhost').listenAndForward(`http://127.0.0.1:${up.port}`)),
    /already has 3 endpoints \(limit 3 per session\)/,
  );
  await one.close();

  // ---- our agent ----
  const a = await withTimeout('our agent to connect with the ruled token', ours(fx, RULED));
  fx.cleanup.defer('close our agent', () => a.close(500));
  const ep = await withTimeout('our Bind of exact', a.forward(`http://127.0.0.1:${up.port}`, { url: 'http://exact.burrow.localhost' }));
  assert.equal(new URL(ep.url!).hostname, 'exact.burrow.localhost');
  await assert.rejects(a.forward(`http://127.0.0.1:${up.port}`, { url: 'http://nope.burrow.localhost' }), (err: unknown) => {
    assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_BIND'), String(err));
    assert.match((err as Error).message, /may not bind nope\.burrow\.localhost/);
    return true;
  });
  const ourTcp = await withTimeout('our TCP Bind', a.forward(`tcp://127.0.0.1:${echo.port}`));
  const ourPort = Number(new URL(ourTcp.url!).port);
  assert.ok(inMine(ourPort), `our agent got ${ourPort} inside ${mine}`);
});

test('TCP ports per token across the relay (--max-tcp-ports-per-token): more are refused, other tokens unaffected, held ports taken back', T, async () => {
  const OTHER = 'other-token-cccccccccccccccccc';
  const fx = await startRelayFixture({ workers: 2, extraTokens: [OTHER], limits: { maxTcpPortsPerToken: 2 } });
  try {
    const echo = await startTcpEcho(fx.cleanup);
    const portOf = (url: string | undefined): number => Number(new URL(url!).port);
    const a = await withTimeout('agent A', ours(fx, fx.token));
    fx.cleanup.defer('close agent A', () => a.close(500));
    const held = [
      portOf((await withTimeout('A: first TCP Bind', a.forward(`tcp://127.0.0.1:${echo.port}`, { name: 't1' }))).url),
      portOf((await withTimeout('A: second TCP Bind', a.forward(`tcp://127.0.0.1:${echo.port}`, { name: 't2' }))).url),
    ].sort();
    // Across sessions of the same token, not per session: a second agent of A's token is refused too.
    const a2 = await withTimeout('agent A2', ours(fx, fx.token));
    fx.cleanup.defer('close agent A2', () => a2.close(500));
    for (const who of [a, a2]) {
      await assert.rejects(who.forward(`tcp://127.0.0.1:${echo.port}`, { name: 't3' }), (err: unknown) => {
        assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_BIND'), String(err));
        assert.match((err as Error).message, /already holds 2 TCP ports on the relay \(--max-tcp-ports-per-token 2/);
        assert.match((err as Error).message, /BURROW_ERR_BIND_LIMIT|stop unused TCP endpoints/);
        return true;
      });
    }
    const b = await withTimeout('agent B', ours(fx, OTHER));
    fx.cleanup.defer('close agent B', () => b.close(500));
    await withTimeout('B: TCP Bind', b.forward(`tcp://127.0.0.1:${echo.port}`, { name: 't4' }));
    await b.close(500);
    // A leaves: its two ports are held for its token (--reclaim-grace) and still count; binding again takes them back.
    await a.close(500);
    await waitFor("A's endpoints gone", () => (fx.relay.acceptor.routes.size === 0 ? true : undefined));
    const again = [
      portOf((await withTimeout('A2: first TCP Bind', a2.forward(`tcp://127.0.0.1:${echo.port}`, { name: 't5' }))).url),
      portOf((await withTimeout('A2: second TCP Bind', a2.forward(`tcp://127.0.0.1:${echo.port}`, { name: 't6' }))).url),
    ].sort();
    assert.deepEqual(again, held, 'the ports held for the token are the ones it gets back');
    await assert.rejects(a2.forward(`tcp://127.0.0.1:${echo.port}`, { name: 't7' }), /already holds 2 TCP ports/);
    await a2.close(500);
  } finally {
    await fx.close();
  }
});

test('sessions per token are counted across workers; a freed slot can be used again', T, async (t) => {
  const store = await tokenStore(t, `${SOLO} sessions=2\n${RULED}\n`);
  const fx = await startRelayFixture({ tokens: [...store.entries], workers: 2 });
  t.after(() => fx.close());
  const solo = store.entries.find((e) => e.rules.sessions === 2)!;
  assert.match(solo.id, /^[0-9a-f]{16}$/);
  // Ours first: it closes its connection on close() (the SDK keeps the TCP connection until the relay's liveness
  // check drops it, PROTOCOL.md §13), so the freed slot shows at once.
  const first = await withTimeout('first session (ours)', ours(fx, SOLO));
  const second = await withTimeout('second session (SDK)', sdk(fx, SOLO));
  assert.equal(fx.relay.acceptor.sessionsOf(solo.id), 2);
  await assert.rejects(withTimeout('third session', sdk(fx, SOLO)), /already has 2 live sessions \(limit 2\)/);
  await assert.rejects(ours(fx, SOLO), (err: unknown) => {
    assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_AUTH_LIMIT'), String(err));
    assert.match((err as Error).message, /already has 2 live sessions.*\[BURROW_ERR_AUTH_SESSION_LIMIT\]/);
    return true;
  });
  assert.equal(fx.counter('agent:session-limit'), 2);
  // Another token is not affected by SOLO's limit.
  const other = await withTimeout('a session with another token', sdk(fx, RULED));
  await other.close();
  await first.close(500);
  await waitFor('the closed session to be counted out', () => (fx.relay.acceptor.sessionsOf(solo.id) === 1 ? true : undefined));
  const again = await withTimeout('a session in the freed slot', sdk(fx, SOLO));
  await again.close();
  await second.close();
});

/** A relay whose SOLO token allows one session, and our agent on it through a partitionable front. */
async function soloAgentBehindFront(t: TestContext) {
  const store = await tokenStore(t, `${SOLO} sessions=1\n`);
  const fx = await startRelayFixture({ tokens: [...store.entries] });
  t.after(() => fx.close());
  const solo = store.entries[0]!;
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const front = await partitionableFront(cleanup, fx.agent.port);
  const a = await withTimeout(
    'our agent through the front',
    connect({ server: `localhost:${front.port}`, authtoken: SOLO, ca: fx.caPem, backoff: { baseMs: 50, capMs: 200 } }),
  );
  t.after(() => a.destroy());
  return { fx, solo, front, a };
}

test('an agent whose link was cut while the relay still counts its session takes its own slot back (sessions=1)', T, async (t) => {
  const { fx, solo, front, a } = await soloAgentBehindFront(t);
  assert.equal(fx.relay.acceptor.sessionsOf(solo.id), 1);
  // A network cut the relay does not see: the agent's side goes, the relay's side stays open and silent. The agent's
  // new session names its ClientId, so the relay ends the old one instead of refusing the new one at the limit.
  front.cutAgentSide(0);
  await waitFor('the agent online again', () => (a.state === 'online' && front.pairs.length === 2 ? true : undefined), 10_000);
  assert.equal(fx.counter('agent:superseded'), 1);
  assert.equal(fx.counter('agent:session-limit'), 0);
  assert.equal(fx.relay.acceptor.sessionsOf(solo.id), 1);
});

test('an agent that was online retries a session-limit refusal (another session took its slot) and comes back', T, async (t) => {
  const { fx, solo, front, a } = await soloAgentBehindFront(t);
  // The agent's link fails and its reconnects wait at the front; meanwhile the relay drops the old session and another
  // session with the same token takes the only slot.
  front.hold();
  front.cutAgentSide(0);
  front.pairs[0]![1].destroy();
  await waitFor('the relay to count the cut session out', () => (fx.relay.acceptor.sessionsOf(solo.id) === 0 ? true : undefined));
  const other = await withTimeout('another session in the slot', ours(fx, SOLO));
  front.release();
  await waitFor('a refused reconnect', () => (fx.counter('agent:session-limit') >= 1 ? true : undefined), 10_000);
  assert.notEqual(a.state, 'closed', 'the agent keeps retrying');
  await other.close(500); // the slot is free again; the next attempt gets in
  await waitFor('the agent online again', () => (a.state === 'online' ? true : undefined), 10_000);
  assert.equal(fx.relay.acceptor.sessionsOf(solo.id), 1);
});

test('failed authentications are rate limited per IP: then even a valid token is refused, with the wait', T, async () => {
  const fx = await startRelayFixture({ limits: { authFailuresPerMinute: 3 } });
  try {
    for (let i = 0; i < 3; i++) {
      await assert.rejects(ours(fx, `wrong-token-${i}-xxxxxxxxxxxx`), /auth token is not valid/);
    }
    assert.equal(fx.counter('agent:auth-failed'), 3);
    // The budget is spent: a valid token is refused too (a guesser learns nothing while blocked).
    await assert.rejects(withTimeout('SDK connect while blocked', sdk(fx, fx.token)), /too many failed attempts from 127\.0\.0\.1; retry in \d+ s/);
    await assert.rejects(ours(fx, fx.token), (err: unknown) => {
      assert.ok(isBurrowError(err, 'BURROW_ERR_AGENT_AUTH_LIMIT'), String(err));
      assert.match((err as Error).message, /too many failed attempts/);
      return true;
    });
    assert.equal(fx.counter('agent:auth-rate-limited'), 2);
    assert.equal(fx.counter('agent:auth-failed'), 3, 'refusals while blocked are not counted as new failures');
  } finally {
    await fx.close();
  }
});

test('burrow token create: prints a token once, appends its hash and rules; the relay accepts it with those rules', T, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-token-create-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'tokens');
  writeFileSync(path, `${SOLO}`); // a plain line without a final newline: the new line must not be glued to it
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'token', 'create', '--tokens', path, '--allow', 'made-*.burrow.localhost', '--sessions', '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`exit ${code}: ${text}`))));
  });
  const token = out.split('\n')[0]!;
  assert.match(token, /^[A-Za-z0-9_-]{43}$/, '256 bits, base64url');
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  assert.equal(lines[0], SOLO);
  assert.match(lines[1]!, /^sha256:[0-9a-f]{64} allow=made-\*\.burrow\.localhost sessions=1$/);
  assert.ok(!readFileSync(path, 'utf8').includes(token), 'the token itself is never stored');
  const store = await loadTokens({ dataDir: dir, tokensFile: path });
  assert.equal(store.count, 2);
  const fx = await startRelayFixture({ tokens: [...store.entries] });
  t.after(() => fx.close());
  const up = await startHttpUpstream(fx.cleanup);
  const s = await withTimeout('SDK connect with the created token', sdk(fx, token));
  fx.cleanup.defer('close the SDK session', () => s.close().catch(() => {}));
  await forward(fx.cleanup, 'made-x', s.httpEndpoint().domain('made-x.burrow.localhost').listenAndForward(`http://127.0.0.1:${up.port}`));
  await assert.rejects(withTimeout('refused Bind', s.httpEndpoint().domain('app.burrow.localhost').listenAndForward(`http://127.0.0.1:${up.port}`)), /may not bind/);
  await assert.rejects(withTimeout('second session', sdk(fx, token)), /limit 1/);
});

test('usage errors exit 2 with BURROW_ERR_CLI_USAGE: an unknown command, an unknown token subcommand', T, async () => {
  for (const [args, what] of [[['frobnicate'], "unknown command 'frobnicate'"], [['token', 'list'], "unknown subcommand 'burrow token list'"]] as const) {
    const r = await runCmd(process.execPath, [BIN, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.startsWith(`burrow: ${what}`), r.stderr);
    assert.match(r.stderr, /\[BURROW_ERR_CLI_USAGE\]\n$/);
  }
});

test("burrow help <command> prints that command's help; burrow help alone the command list", T, async () => {
  for (const [args, first] of [
    [['help', 'http'], /^Usage: burrow http </],
    [['help', 'relay'], /burrow relay/],
    [['help', 'token'], /^Usage: burrow token create/],
    [['help'], /^burrow \S+ — self-hosted tunnel relay/],
  ] as const) {
    const r = await runCmd(process.execPath, [BIN, ...args]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, first, args.join(' '));
  }
});
