// parseAgentArgs / loadAgentFile / endpointSpec: the agent's flags, environment and YAML config file (DESIGN.md §5,
// issue #4): defaults, precedence (flag > env > file > default), every endpoint kind's URL and upstream forms, and
// errors that name the flag or the file, line and key, with the right code. Table-driven.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { endpointSpec, type EndpointInput } from '../../../src/agent/endpoint-spec.js';
import { agentHelpText, parseAgentArgs, type AgentCommand, type AgentConfig } from '../../../src/config/agent-config.js';
import { isBurrowError, type ErrorCode } from '../../../src/core/errors.js';

const TOKEN = 'abcdefghijklmnopqrstuvwxyz012345';
const ENV: NodeJS.ProcessEnv = { BURROW_AUTHTOKEN: TOKEN };
const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function parse(command: AgentCommand, argv: string[], env: NodeJS.ProcessEnv = ENV): AgentConfig {
  return parseAgentArgs(command, argv, env);
}

function throwsWith(fn: () => unknown, fragments: Array<string | RegExp>, code: ErrorCode = 'BURROW_ERR_CONFIG_INVALID'): string {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected an error mentioning ${fragments.map(String).join(', ')}`);
  assert.ok(isBurrowError(caught, code), `expected ${code}, got ${String(caught)}`);
  for (const f of fragments) {
    if (typeof f === 'string') assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(f)}`);
    else assert.match(caught.message, f);
  }
  return caught.message;
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-agent-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function file(t: TestContext, name: string, text: string, dir = tempDir(t)): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('burrow http|tcp|tls', () => {
  test('defaults: localhost:4443, system roots, grace 10 s, one endpoint with a relay-chosen name', () => {
    const c = parse('http', ['3000']);
    assert.deepEqual(c.server, { host: 'localhost', port: 4443 });
    assert.equal(c.authtoken, TOKEN);
    assert.equal(c.caPath, null);
    assert.equal(c.caPem, null);
    assert.equal(c.graceMs, 10_000);
    assert.equal(c.endpoints.length, 1);
    const e = c.endpoints[0]!;
    assert.deepEqual(
      { kind: e.kind, hostname: e.hostname, addr: e.addr, upstream: e.upstream, forwardsTo: e.forwardsTo, pool: e.pool },
      { kind: 'http', hostname: '', addr: '', upstream: { host: 'localhost', port: 3000 }, forwardsTo: 'http://localhost:3000', pool: false },
    );
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.endpoints) && Object.isFrozen(e));
  });

  const upstreams: Array<[AgentCommand, string, { host: string; port: number }, string]> = [
    ['http', '3000', { host: 'localhost', port: 3000 }, 'http://localhost:3000'],
    ['http', '127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }, 'http://127.0.0.1:8080'],
    ['http', 'http://app.internal', { host: 'app.internal', port: 80 }, 'http://app.internal:80'],
    ['http', 'http://[::1]:3000/', { host: '::1', port: 3000 }, 'http://[::1]:3000'],
    ['tcp', '5432', { host: 'localhost', port: 5432 }, 'tcp://localhost:5432'],
    ['tcp', 'tcp://db:5432', { host: 'db', port: 5432 }, 'tcp://db:5432'],
    ['tls', 'tls://127.0.0.1:8443', { host: '127.0.0.1', port: 8443 }, 'tls://127.0.0.1:8443'],
    ['tls', 'tcp://127.0.0.1:8443', { host: '127.0.0.1', port: 8443 }, 'tls://127.0.0.1:8443'],
  ];
  for (const [cmd, text, upstream, forwardsTo] of upstreams) {
    test(`burrow ${cmd} ${text}`, () => {
      const e = parse(cmd, [text]).endpoints[0]!;
      assert.equal(e.kind, cmd);
      assert.deepEqual(e.upstream, upstream);
      assert.equal(e.forwardsTo, forwardsTo);
    });
  }

  const urls: Array<[AgentCommand, string, { hostname: string; addr: string }]> = [
    ['http', 'http://Web.Burrow.Localhost', { hostname: 'web.burrow.localhost', addr: '' }],
    ['http', 'https://web.burrow.localhost:8443/', { hostname: 'web.burrow.localhost', addr: '' }],
    ['http', 'web.burrow.localhost', { hostname: 'web.burrow.localhost', addr: '' }],
    ['tls', 'tls://sec.burrow.localhost', { hostname: 'sec.burrow.localhost', addr: '' }],
    ['tcp', 'tcp://', { hostname: '', addr: '' }],
    ['tcp', 'tcp://127.0.0.1:20001', { hostname: '', addr: '127.0.0.1:20001' }],
  ];
  for (const [cmd, url, want] of urls) {
    test(`burrow ${cmd} --url ${url}`, () => {
      const e = parse(cmd, ['1234', '--url', url]).endpoints[0]!;
      assert.deepEqual({ hostname: e.hostname, addr: e.addr }, want);
    });
  }

  test('flags beat the environment; --flag=value works; --pool is a switch', (t) => {
    const dir = tempDir(t);
    const ca = file(t, 'ca.pem', CA, dir);
    const env = { BURROW_SERVER: 'relay.example.com:4443', BURROW_AUTHTOKEN: 'from-env-token-0123456789', BURROW_CA: ca };
    const fromEnv = parse('http', ['3000'], env);
    assert.deepEqual(fromEnv.server, { host: 'relay.example.com', port: 4443 });
    assert.equal(fromEnv.authtoken, 'from-env-token-0123456789');
    assert.equal(fromEnv.caPath, ca);
    assert.equal(fromEnv.caPem, CA);
    const c = parse('tcp', ['5432', '--server=[::1]:5000', '--authtoken', 'flag-token-0123456789', '--pool', '--grace', '0'], env);
    assert.deepEqual(c.server, { host: '::1', port: 5000 });
    assert.equal(c.authtoken, 'flag-token-0123456789');
    assert.equal(c.endpoints[0]!.pool, true);
    assert.equal(c.graceMs, 0);
  });

  const bad: Array<[string, AgentCommand, string[], Array<string | RegExp>, ErrorCode?]> = [
    ['no upstream', 'http', [], ["'burrow http' needs the local service", 'burrow http 3000']],
    ['two upstreams', 'tcp', ['1', '2'], ['takes one upstream']],
    ['unknown flag', 'http', ['3000', '--nope'], ['unknown flag --nope', "burrow http --help"]],
    ['flag of another command', 'start', ['--url', 'http://x.burrow.localhost'], ["unknown flag --url for 'burrow start'"]],
    ['missing value', 'http', ['3000', '--url'], ['--url needs a value <url>']],
    ['twice', 'http', ['3000', '--pool', '--pool'], ['--pool was given twice']],
    ['--pool=value', 'http', ['3000', '--pool=yes'], ['--pool takes no value']],
    ['bad server', 'http', ['3000', '--server', 'localhost'], ["--server: 'localhost' is not host:port"]],
    ['server port 0', 'http', ['3000', '--server', 'localhost:0'], ['--server', 'no valid port']],
    ['bad port', 'http', ['70000'], ["'70000'", '1..65535']],
    ['https upstream', 'http', ['https://127.0.0.1:8443'], ['https:// upstream', 'tls endpoint']],
    ['scheme mismatch', 'tcp', ['http://127.0.0.1:80'], ['scheme http://', 'tcp endpoint']],
    ['tcp upstream without port', 'tcp', ['tcp://db'], ['has no port']],
    ['upstream host:port with a path', 'http', ['localhost:3000/path'], ["'localhost:3000/path'", 'without a path']],
    ['url with path', 'http', ['3000', '--url', 'http://a.burrow.localhost/x'], ["--url: 'http://a.burrow.localhost/x'", 'without a path']],
    ['url scheme for another kind', 'http', ['3000', '--url', 'tcp://'], ['--url', 'scheme tcp://', 'http endpoint']],
    ['url with an IP', 'tls', ['3000', '--url', 'tls://127.0.0.1'], ['names an IP address']],
    ['url bad host', 'http', ['3000', '--url', 'http://bad_name.burrow.localhost'], ['does not name a valid host']],
    ['tcp url that is not tcp', 'tcp', ['3000', '--url', 'http://x.burrow.localhost'], ['is not a tcp:// URL']],
    ['grace not a number', 'http', ['3000', '--grace', '1s'], ["--grace: '1s'", 'milliseconds']],
    ['missing ca file', 'http', ['3000', '--ca', '/nonexistent/ca.pem'], ["--ca: '/nonexistent/ca.pem' does not exist"], 'BURROW_ERR_CONFIG_FILE'],
  ];
  for (const [name, cmd, argv, fragments, code] of bad) {
    test(`rejects: ${name}`, () => {
      throwsWith(() => parse(cmd, argv), fragments, code);
    });
  }

  test('--metrics-addr: off by default; host:port from the flag or BURROW_METRICS_ADDR; token from --metrics-token', () => {
    const d = parse('http', ['3000']);
    assert.equal(d.metricsAddr, null);
    assert.equal(d.metricsToken, null);
    const f = parse('http', ['3000', '--metrics-addr', '127.0.0.1:0', '--metrics-token', 'tok-0123456789abcdef']);
    assert.deepEqual(f.metricsAddr, { host: '127.0.0.1', port: 0 });
    assert.equal(f.metricsToken, 'tok-0123456789abcdef');
    const e = parse('tcp', ['5432'], { ...ENV, BURROW_METRICS_ADDR: '[::1]:9464' });
    assert.deepEqual(e.metricsAddr, { host: '::1', port: 9464 });
    assert.equal(parse('http', ['3000', '--metrics-addr=off'], { ...ENV, BURROW_METRICS_ADDR: '127.0.0.1:1' }).metricsAddr, null);
    throwsWith(() => parse('http', ['3000', '--metrics-addr', 'nope']), ['--metrics-addr', "'nope'"]);
  });

  test('--metrics-addr off loopback without --metrics-token fails while parsing', () => {
    assert.throws(
      () => parse('http', ['3000', '--metrics-addr', '0.0.0.0:9100']),
      (e: unknown) => isBurrowError(e, 'BURROW_ERR_ADMIN_TOKEN_REQUIRED') && /--metrics-addr 0\.0\.0\.0:9100 .*--metrics-token/.test((e as Error).message),
    );
    assert.equal(parse('http', ['3000', '--metrics-addr', '0.0.0.0:9100', '--metrics-token', 'tok-0123456789abcdef']).metricsToken, 'tok-0123456789abcdef');
  });

  test('rejects: no token anywhere (names the flag and the variable)', () => {
    throwsWith(() => parse('http', ['3000'], {}), ['--authtoken', 'BURROW_AUTHTOKEN']);
  });

  test('rejects: a bad value from the environment names the variable', () => {
    throwsWith(() => parse('http', ['3000'], { ...ENV, BURROW_SERVER: 'nope' }), ['--server (from BURROW_SERVER)']);
  });

  test('rejects: a CA file with no PEM certificate', (t) => {
    const ca = file(t, 'ca.pem', 'not a certificate');
    throwsWith(() => parse('http', ['3000', '--ca', ca]), ['holds no PEM certificate', ca], 'BURROW_ERR_CONFIG_FILE');
    // The message names where the path came from.
    throwsWith(() => parse('http', ['3000'], { BURROW_AUTHTOKEN: TOKEN, BURROW_CA: ca }), ['--ca (from BURROW_CA)', 'holds no PEM certificate'], 'BURROW_ERR_CONFIG_FILE');
    // A flag overriding it: the variable is not judged.
    const good = file(t, 'good.pem', CA);
    assert.equal(parse('http', ['3000', '--ca', good], { BURROW_AUTHTOKEN: TOKEN, BURROW_CA: ca }).caPath, good);
    const cfg = file(t, 'agent.yml', `agent: { authtoken: ${TOKEN}, ca: ${ca} }\n`);
    throwsWith(() => parse('http', ['3000', '--config', cfg], {}), [`${cfg}:1: agent.ca`, 'holds no PEM certificate'], 'BURROW_ERR_CONFIG_FILE');
  });

  test('--config FILE: its agent: section supplies server, token and ca; its endpoints: (optional) are not served', (t) => {
    const dir = tempDir(t);
    file(t, 'ca.pem', CA, dir);
    const f = file(t, 'agent.yml', `agent: { server_addr: "relay.example.com:4443", authtoken: ${TOKEN}, ca: ca.pem }\n`, dir);
    const c = parse('http', ['3000', '--config', f], {});
    assert.equal(c.configFile, f);
    assert.deepEqual(c.server, { host: 'relay.example.com', port: 4443 });
    assert.equal(c.authtoken, TOKEN);
    assert.equal(c.caPath, join(dir, 'ca.pem'));
    assert.deepEqual(c.endpoints.map((e) => [e.kind, e.forwardsTo]), [['http', 'http://localhost:3000']]);
    // A file made for burrow start serves too: only the positional upstream is forwarded.
    const both = file(t, 'burrow.yml', `agent: { authtoken: ${TOKEN} }\nendpoints:\n  - { name: db, url: "tcp://", upstream: 5432 }\n`, dir);
    assert.deepEqual(parse('tcp', ['6379', '--config', both], {}).endpoints.map((e) => [e.kind, e.forwardsTo]), [['tcp', 'tcp://localhost:6379']]);
    // Flags and the environment still win; without --config no file is read (not even burrow.yml).
    assert.deepEqual(parse('http', ['3000', '--config', f], { BURROW_SERVER: 'env.example.com:1' }).server, { host: 'env.example.com', port: 1 });
    assert.equal(parse('http', ['3000'], { BURROW_AUTHTOKEN: TOKEN }).configFile, null);
    throwsWith(() => parse('http', ['3000', '--config', file(t, 'empty.yml', '', dir)], {}), ['empty.yml', 'agent: section']);
    throwsWith(() => parse('http', ['3000', '--config', file(t, 'notoken.yml', 'agent: { server_addr: "a:1" }\n', dir)], {}), ['no auth token', 'notoken.yml']);
  });

  test('--help wins and reads nothing else', () => {
    const c = parse('tls', ['--bogus', '--help'], {});
    assert.equal(c.help, true);
    for (const cmd of ['http', 'tcp', 'tls', 'start'] as const) {
      const h = agentHelpText(cmd);
      assert.match(h, new RegExp(`Usage: burrow ${cmd}`));
      assert.match(h, /BURROW_SERVER/);
      assert.match(h, /BURROW_AUTHTOKEN/);
      assert.match(h, /BURROW_CA/);
    }
    assert.match(agentHelpText('http'), /--pool[\s\S]*balances connections[\s\S]*--lb <strategy>/);
    assert.match(agentHelpText('start'), /agent\.server_addr/);
  });
});

describe('burrow start --config', () => {
  const GOOD = `agent: { server_addr: "relay.example.com:4443", authtoken: ${TOKEN}, grace_ms: 2500 }
endpoints:
  - { name: web, url: http://web.burrow.localhost, upstream: http://127.0.0.1:3000, pool: true }
  - { name: db, url: "tcp://", upstream: tcp://127.0.0.1:5432 }
  - name: sec
    url: tls://sec.burrow.localhost
    upstream: 8443
`;

  test('reads the issue\'s shape: agent section and endpoints of every kind', (t) => {
    const f = file(t, 'burrow.yml', GOOD);
    const c = parse('start', ['--config', f], {});
    assert.equal(c.configFile, f);
    assert.deepEqual(c.server, { host: 'relay.example.com', port: 4443 });
    assert.equal(c.authtoken, TOKEN);
    assert.equal(c.graceMs, 2500);
    assert.deepEqual(
      c.endpoints.map((e) => [e.name, e.kind, e.hostname, e.addr, e.forwardsTo, e.pool]),
      [
        ['web', 'http', 'web.burrow.localhost', '', 'http://127.0.0.1:3000', true],
        ['db', 'tcp', '', '', 'tcp://127.0.0.1:5432', false],
        ['sec', 'tls', 'sec.burrow.localhost', '', 'tls://localhost:8443', false],
      ],
    );
  });

  test('the same URL in two endpoints used as alternatives: only the chosen ones are checked', (t) => {
    const f = file(t, 'burrow.yml', `endpoints:\n  - { name: web, url: http://w.burrow.localhost, upstream: http://x:1 }\n  - { name: web-debug, url: http://w.burrow.localhost, upstream: http://x:2 }\n`);
    assert.deepEqual(parse('start', ['--config', f, 'web-debug'], { BURROW_AUTHTOKEN: TOKEN }).endpoints.map((e) => e.name), ['web-debug']);
    throwsWith(() => parse('start', ['--config', f], { BURROW_AUTHTOKEN: TOKEN }), [':3: endpoints[1].url', 'like endpoints[0]']);
  });

  test('the same URL twice with pool: true on both is two members of one pool', (t) => {
    const f = file(t, 'burrow.yml', `endpoints:\n  - { name: a, url: http://w.burrow.localhost, upstream: http://x:1, pool: true }\n  - { name: b, url: http://w.burrow.localhost, upstream: http://x:2, pool: true }\n`);
    assert.deepEqual(parse('start', ['--config', f], { BURROW_AUTHTOKEN: TOKEN }).endpoints.map((e) => [e.name, e.hostname, e.pool]), [
      ['a', 'w.burrow.localhost', true],
      ['b', 'w.burrow.localhost', true],
    ]);
  });

  test('names select endpoints; an unknown name lists the known ones', (t) => {
    const f = file(t, 'burrow.yml', GOOD);
    assert.deepEqual(parse('start', ['--config', f, 'db', 'web'], {}).endpoints.map((e) => e.name), ['db', 'web']);
    throwsWith(() => parse('start', ['--config', f, 'nope'], {}), [f, "no endpoint named 'nope'", 'web, db, sec']);
  });

  test('precedence: flag > environment > file; ca is relative to the file', (t) => {
    const dir = tempDir(t);
    file(t, 'ca.pem', CA, dir);
    const f = file(t, 'b.yml', GOOD.replace('grace_ms: 2500', 'grace_ms: 2500, ca: ca.pem'), dir);
    const c = parse('start', ['--config', f], { BURROW_SERVER: 'env.example.com:1' });
    assert.deepEqual(c.server, { host: 'env.example.com', port: 1 });
    assert.equal(c.caPath, join(dir, 'ca.pem'));
    const d = parse('start', ['--config', f, '--server', 'flag.example.com:2'], { BURROW_SERVER: 'env.example.com:1' });
    assert.deepEqual(d.server, { host: 'flag.example.com', port: 2 });
  });

  test('precedence: a file value the environment or a flag overrides is not judged (it is not used)', (t) => {
    const dir = tempDir(t);
    const ca = file(t, 'ca.pem', CA, dir);
    const f = file(t, 'b.yml', GOOD.replace('"relay.example.com:4443"', '"nope"').replace('grace_ms: 2500', 'grace_ms: 2500, ca: missing.pem'), dir);
    const c = parse('start', ['--config', f, '--server', 'flag.example.com:2'], { BURROW_CA: ca });
    assert.deepEqual(c.server, { host: 'flag.example.com', port: 2 });
    assert.equal(c.caPath, ca);
    // Not overridden, the same file is refused, naming the key.
    throwsWith(() => parse('start', ['--config', f, '--server', 'flag.example.com:2'], {}), ['agent.ca', 'missing.pem'], 'BURROW_ERR_CONFIG_FILE');
  });

  const bad: Array<[string, string, Array<string | RegExp>, ErrorCode?]> = [
    ['bad YAML', 'agent: { authtoken: [x\n', [/:\d+:\d+: not valid YAML/], 'BURROW_ERR_CONFIG_FILE'],
    ['duplicate key', 'endpoints: []\nendpoints: []\n', [/:2:\d+: not valid YAML/], 'BURROW_ERR_CONFIG_FILE'],
    ['empty file', '', ['the file is empty']],
    ['a list at the top', '- a\n', ['(top level): must be a mapping']],
    ['unknown top-level key', `endpoint:\n  - {}\n`, [':1: endpoint: unknown key', 'known keys: agent, endpoints']],
    ['unknown agent key', `agent: { server: x }\nendpoints: [{ upstream: 1 }]\n`, [':1: agent.server: unknown key', 'server_addr, authtoken, ca, grace_ms']],
    ['unknown endpoint key', `endpoints:\n  - upstream: 3000\n    proto: http\n`, [':3: endpoints[0].proto: unknown key', 'name, url, upstream, pool']],
    ['no endpoints', `agent: { authtoken: ${TOKEN} }\n`, ['endpoints: missing']],
    ['empty endpoints', `endpoints: []\n`, ['endpoints: must be a non-empty list']],
    ['endpoint not a map', `endpoints:\n  - web\n`, [':2: endpoints[0]: must be a mapping']],
    ['missing upstream', `endpoints:\n  - { name: web, url: http://w.burrow.localhost }\n`, [':2: endpoints[0].upstream: missing']],
    ['bad URL', `endpoints:\n  - name: web\n    url: ftp://w.burrow.localhost\n    upstream: 3000\n`, [":3: endpoints[0].url: 'ftp://w.burrow.localhost'", 'scheme ftp://']],
    ['unknown upstream scheme', `endpoints:\n  - { upstream: "udp://h:1" }\n`, [":2: endpoints[0].upstream: 'udp://h:1' has scheme udp://"]],
    ['no kind', `endpoints:\n  - { upstream: 3000 }\n`, ['endpoints[0].url: missing, so the kind of endpoint is unknown', 'http://, tls:// or tcp://']],
    ['pool not a boolean', `endpoints:\n  - { upstream: http://x:1, pool: "yes" }\n`, [':2: endpoints[0].pool: must be boolean']],
    ['url not a string', `endpoints:\n  - { upstream: http://x:1, url: 5 }\n`, [':2: endpoints[0].url: must be string']],
    ['duplicate names', `endpoints:\n  - { name: a, upstream: http://x:1 }\n  - { name: a, upstream: http://x:2 }\n`, [':3: endpoints[1].name', "'a' is already the name of endpoints[0]"]],
    ['the same URL twice, not pooled both times', `endpoints:\n  - { name: a, url: http://w.burrow.localhost, upstream: http://x:1, pool: true }\n  - { name: b, url: https://W.burrow.localhost, upstream: http://x:2 }\n`, [':3: endpoints[1].url', 'asks for w.burrow.localhost like endpoints[0]', 'pool: true']],
    ['one name as http and tls, pooled', `endpoints:\n  - { url: http://w.burrow.localhost, upstream: http://x:1, pool: true }\n  - { url: tls://w.burrow.localhost, upstream: tls://x:2, pool: true }\n`, [':3: endpoints[1].url', 'asks for w.burrow.localhost like endpoints[0]']],
    ['one TCP port under two hosts', `endpoints:\n  - { url: "tcp://a.example:5000", upstream: tcp://x:1 }\n  - { url: "tcp://127.0.0.1:5000", upstream: tcp://x:2 }\n`, [':3: endpoints[1].url', 'asks for port 5000 like endpoints[0]']],
    ['bad server_addr', `agent: { server_addr: "nope" }\nendpoints: [{ upstream: http://x:1 }]\n`, [":1: agent.server_addr: 'nope' is not host:port"]],
    ['agent value is a list', `agent: { authtoken: [a] }\nendpoints: [{ upstream: http://x:1 }]\n`, [':1: agent.authtoken: must be a single value']],
    ['a token YAML reads as a number', `agent: { authtoken: 012345678901234567890 }\nendpoints: [{ upstream: http://x:1 }]\n`, [':1: agent.authtoken: is read as a number by YAML', 'in quotes']],
    ['a metrics token YAML reads as a number', `agent: { metrics_token: 1234567890123456789012 }\nendpoints: [{ upstream: http://x:1 }]\n`, [':1: agent.metrics_token: is read as a number by YAML']],
    ['missing ca relative to the file', `agent: { ca: missing.pem, authtoken: ${TOKEN} }\nendpoints: [{ upstream: http://x:1 }]\n`, ['agent.ca', 'missing.pem', 'does not exist'], 'BURROW_ERR_CONFIG_FILE'],
  ];
  for (const [name, yaml, fragments, code] of bad) {
    test(`rejects: ${name} (names the file and the key)`, (t) => {
      const f = file(t, 'burrow.yml', yaml);
      const msg = throwsWith(() => parse('start', ['--config', f]), fragments, code);
      assert.ok(msg.startsWith(f) || msg.includes(`${f}:`) || msg.includes(f), `${msg} does not name ${f}`);
    });
  }

  test('rejects: a config file that does not exist (default name)', (t) => {
    const dir = tempDir(t);
    const cwd = process.cwd();
    process.chdir(dir);
    t.after(() => process.chdir(cwd));
    throwsWith(() => parse('start', []), ['--config (default burrow.yml)', 'does not exist'], 'BURROW_ERR_CONFIG_FILE');
  });
});

describe('endpointSpec (library inputs)', () => {
  const labels = { name: 'name', url: 'url', upstream: 'upstream' };
  const cases: Array<[string, EndpointInput, Record<string, unknown>]> = [
    ['kind from the url', { url: 'tls://a.burrow.localhost', upstream: 1 }, { kind: 'tls', name: 'a' }],
    ['kind from the upstream', { upstream: 'tcp://h:1' }, { kind: 'tcp', name: 'tcp' }],
    ['explicit name', { kind: 'http', upstream: 1, name: 'web_1' }, { name: 'web_1' }],
  ];
  for (const [name, input, want] of cases) {
    test(name, () => {
      const s = endpointSpec(input, labels) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(want)) assert.equal(s[k], v, k);
    });
  }
  test('a listener needs no upstream', () => {
    const s = endpointSpec({ kind: 'http' }, labels, true);
    assert.equal(s.upstream, null);
    assert.equal(s.forwardsTo, '');
  });
  test('rejects a bad name', () => {
    throwsWith(() => endpointSpec({ kind: 'http', upstream: 1, name: 'has space' }, labels), ["name: 'has space' is not a valid name"]);
  });
});

describe('basic auth and IP restrictions (flags, config file, library)', () => {
  test('flags: --basic-auth, --allow-cidr and --deny-cidr reach the endpoint spec', () => {
    const c = parse('http', ['3000', '--basic-auth', 'admin:s3:cret', '--allow-cidr', '10.0.0.0/8, 192.0.2.7', '--deny-cidr=2001:db8::/32']);
    const e = c.endpoints[0]!;
    assert.deepEqual(e.basicAuth, [{ username: 'admin', password: 's3:cret' }]);
    assert.deepEqual(e.allowCidrs, ['10.0.0.0/8', '192.0.2.7']);
    assert.deepEqual(e.denyCidrs, ['2001:db8::/32']);
    const t = parse('tcp', ['5432', '--allow-cidr', '127.0.0.1/32']).endpoints[0]!;
    assert.deepEqual([t.allowCidrs, t.basicAuth], [['127.0.0.1/32'], []]);
  });
  test('--allow-cidr and --deny-cidr are repeatable (ngrok repeats --cidr-allow): the lists are joined', () => {
    const e = parse('http', ['3000', '--allow-cidr', '10.0.0.0/8', '--allow-cidr=192.0.2.7,198.51.100.0/24', '--deny-cidr', '10.1.0.0/16', '--deny-cidr', '10.2.0.0/16']).endpoints[0]!;
    assert.deepEqual(e.allowCidrs, ['10.0.0.0/8', '192.0.2.7', '198.51.100.0/24']);
    assert.deepEqual(e.denyCidrs, ['10.1.0.0/16', '10.2.0.0/16']);
    throwsWith(() => parse('tcp', ['5432', '--allow-cidr', '10.0.0.0/8', '--allow-cidr', 'nope']), ['--allow-cidr', 'nope']);
  });

  test('rejects: credentials without a password or user, a network that is none, basic auth on tcp', () => {
    throwsWith(() => parse('http', ['3000', '--basic-auth', 'admin']), ['--basic-auth: expects user:password']);
    throwsWith(() => parse('http', ['3000', '--basic-auth', ':pw']), ['--basic-auth: expects user:password']);
    throwsWith(() => parse('http', ['3000', '--allow-cidr', '10.0.0.0/33']), ["--allow-cidr: '10.0.0.0/33' is not a network"]);
    throwsWith(() => parse('http', ['3000', '--deny-cidr', 'example.com']), ["--deny-cidr: 'example.com' is not a network"]);
    throwsWith(() => parse('tcp', ['5432', '--basic-auth', 'a:b']), ['unknown flag --basic-auth']);
    throwsWith(() => endpointSpec({ kind: 'tls', upstream: 1, basicAuth: 'a:b' }, { name: 'name', url: 'url', upstream: 'upstream' }), ['basic auth needs an http endpoint']);
  });
  test('config file: basic_auth, allow_cidrs, deny_cidrs per endpoint, errors name the line', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'burrow.yml');
    writeFileSync(file, 'agent: { authtoken: "tok-0123456789" }\nendpoints:\n  - { url: http://a.burrow.localhost, upstream: 3000, basic_auth: "u:p", allow_cidrs: "10.0.0.0/8,192.0.2.0/24" }\n  - { url: "tcp://", upstream: 5432, deny_cidrs: 203.0.113.9 }\n');
    const c = parse('start', ['--config', file]);
    assert.deepEqual(c.endpoints[0]!.basicAuth, [{ username: 'u', password: 'p' }]);
    assert.deepEqual(c.endpoints[0]!.allowCidrs, ['10.0.0.0/8', '192.0.2.0/24']);
    assert.deepEqual(c.endpoints[1]!.denyCidrs, ['203.0.113.9']);
    writeFileSync(file, 'agent: { authtoken: "tok-0123456789" }\nendpoints:\n  - { url: http://a.burrow.localhost, upstream: 3000, allow_cidrs: "10.0.0.0/8,nope" }\n');
    throwsWith(() => parse('start', ['--config', file]), [`${file}:3: endpoints[0].allow_cidrs: 'nope' is not a network`]);
  });
});

describe('--proxy-proto / proxy_proto', () => {
  test('1 or 2 from the flag or the file; anything else names the input', (t) => {
    assert.equal(parse('tcp', ['5432', '--proxy-proto', '2']).endpoints[0]!.proxyProto, 2);
    assert.equal(parse('http', ['3000']).endpoints[0]!.proxyProto, 0);
    throwsWith(() => parse('tcp', ['5432', '--proxy-proto', '3']), ["--proxy-proto: '3' is not a PROXY protocol version"]);
    const dir = tempDir(t);
    const file = join(dir, 'burrow.yml');
    writeFileSync(file, 'agent: { authtoken: "tok-0123456789" }\nendpoints:\n  - { url: "tcp://", upstream: 5432, proxy_proto: 1 }\n');
    assert.equal(parse('start', ['--config', file]).endpoints[0]!.proxyProto, 1);
  });
});

describe('--request-header-add / --request-header-remove (request_header_add / request_header_remove)', () => {
  test('repeatable flags reach the spec in the SDK\'s form ("name:value", lowercased names)', () => {
    const e = parse('http', ['3000', '--request-header-add', 'X-Env: staging, eu', '--request-header-add=X-Team:ops', '--request-header-remove', 'Cookie', '--request-header-remove', 'X-A,X-B']).endpoints[0]!;
    assert.deepEqual(e.requestHeaderAdd, ['x-env:staging, eu', 'x-team:ops']);
    assert.deepEqual(e.requestHeaderRemove, ['cookie', 'x-a', 'x-b']);
    const none = parse('http', ['3000']).endpoints[0]!;
    assert.deepEqual([none.requestHeaderAdd, none.requestHeaderRemove, none.responseHeaderAdd, none.responseHeaderRemove], [[], [], [], []]);
    const resp = parse('http', ['3000', '--response-header-add', 'X-Frame-Options: DENY', '--response-header-remove', 'Server']).endpoints[0]!;
    assert.deepEqual([resp.responseHeaderAdd, resp.responseHeaderRemove, resp.requestHeaderAdd], [['x-frame-options:DENY'], ['server'], []]);
    throwsWith(() => parse('http', ['3000', '--response-header-remove', 'Content-Length']), ["--response-header-remove: 'Content-Length' is kept by the relay"]);
  });
  test('rejects what the relay would refuse, naming the flag', () => {
    throwsWith(() => parse('http', ['3000', '--request-header-add', 'no-colon']), ["--request-header-add: 'no-colon' is not 'Name: value'"]);
    throwsWith(() => parse('http', ['3000', '--request-header-add', 'Bad Name: v']), ['--request-header-add', 'is not a header field name']);
    throwsWith(() => parse('http', ['3000', '--request-header-add', 'Content-Length: 5']), ['(field "Content-Length") is kept by the relay']);
    throwsWith(() => parse('http', ['3000', '--request-header-remove', 'X-Forwarded-For']), ["--request-header-remove: 'X-Forwarded-For' is kept by the relay"]);
    throwsWith(() => parse('http', ['3000', '--request-header-add', `X-Big: ${'v'.repeat(5000)}`]), ['(its value) must be at most 4 KiB']);
    throwsWith(() => parse('http', ['3000', '--response-header-add', 'X-A: ok\u010d\u010aContent-Length: 0']), ['(its value)', 'nothing above U+00FF']);
    const many = Array.from({ length: 33 }, (_, i) => ['--request-header-remove', `X-${i}`]).flat();
    throwsWith(() => parse('http', ['3000', ...many]), ['at most 32 header rules']);
    throwsWith(() => parse('tcp', ['5432', '--request-header-add', 'X-A: 1']), ['unknown flag --request-header-add']);
    throwsWith(() => parse('http', ['3000', '--url', 'http://a.burrow.localhost', '--url', 'http://b.burrow.localhost']), ['--url was given twice']);
    throwsWith(() => endpointSpec({ kind: 'tls', upstream: 1, requestHeaderRemove: 'X-A' }, { name: 'name', url: 'url', upstream: 'upstream' }), ['header rules need an http endpoint']);
  });
  test('config file: a string or a list; errors name the line', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'burrow.yml');
    writeFileSync(file, 'agent: { authtoken: "tok-0123456789" }\nendpoints:\n  - url: http://a.burrow.localhost\n    upstream: 3000\n    request_header_add: ["X-Env: prod", "X-Region: eu"]\n    request_header_remove: X-Secret\n    response_header_add: "Cache-Control: no-store"\n    response_header_remove: [Server, X-Powered-By]\n');
    const e = parse('start', ['--config', file]).endpoints[0]!;
    assert.deepEqual([e.requestHeaderAdd, e.requestHeaderRemove], [['x-env:prod', 'x-region:eu'], ['x-secret']]);
    assert.deepEqual([e.responseHeaderAdd, e.responseHeaderRemove], [['cache-control:no-store'], ['server', 'x-powered-by']]);
    writeFileSync(file, 'agent: { authtoken: "tok-0123456789" }\nendpoints:\n  - url: http://a.burrow.localhost\n    upstream: 3000\n    request_header_add: [1, 2]\n');
    throwsWith(() => parse('start', ['--config', file]), [`${file}:5: endpoints[0].request_header_add: must be a string or a list of strings`]);
    writeFileSync(file, 'agent: { authtoken: "tok-0123456789" }\nendpoints:\n  - url: http://a.burrow.localhost\n    upstream: 3000\n    request_header_remove: "Host"\n');
    throwsWith(() => parse('start', ['--config', file]), [`${file}:5: endpoints[0].request_header_remove: 'Host' is kept by the relay`]);
  });
});
