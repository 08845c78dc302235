// parseRelayArgs / parseHostPort / relayHelpText: defaults (DESIGN.md §5), every flag with good and bad values and the
// wording of the errors, env defaults overridden by flags, --flag=value, `off`, cross-flag rules.
import { DEFAULT_LIMITS } from '../../../src/config/relay-limits.js';
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isBurrowError, type ErrorCode } from '../../../src/core/errors.js';
import {
  ensureDataDir,
  formatHostPort,
  parseHostPort,
  parseRelayArgs,
  relayHelpText,
  type RelayConfig,
} from '../../../src/config/relay-config.js';

const NO_ENV: NodeJS.ProcessEnv = {};

function parse(argv: string[], env: NodeJS.ProcessEnv = NO_ENV): RelayConfig {
  return parseRelayArgs(argv, env);
}

/** Asserts fn throws a BurrowError with `code` whose message contains every fragment; returns the message. */
function throwsWith(fn: () => unknown, fragments: string[], code: ErrorCode = 'BURROW_ERR_CONFIG_INVALID'): string {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected an error mentioning ${JSON.stringify(fragments)}`);
  assert.ok(isBurrowError(caught, code), `expected ${code}, got ${String(caught)}`);
  for (const f of fragments) assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(f)}`);
  return caught.message;
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('defaults', () => {
  test('no flags and no env give the DESIGN.md §5 defaults', () => {
    const c = parse([]);
    assert.equal(c.domain, 'burrow.localhost');
    assert.deepEqual(c.httpAddr, { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(c.httpsAddr, { host: '127.0.0.1', port: 8443 });
    assert.deepEqual(c.agentAddr, { host: '127.0.0.1', port: 4443 });
    assert.deepEqual(c.adminAddr, { host: '127.0.0.1', port: 9090 });
    assert.deepEqual(c.tcpPorts, { from: 20000, to: 20999 });
    assert.equal(c.tcpHost, '127.0.0.1');
    assert.equal(c.workers, Math.min(64, availableParallelism()));
    assert.equal(c.dataDir, resolve('.burrow'));
    assert.equal(c.certPath, null);
    assert.equal(c.keyPath, null);
    assert.equal(c.tokensFile, null);
    assert.equal(c.prereadTimeoutMs, 5000);
    assert.equal(c.prereadMax, 16384);
    assert.equal(c.tcpKeepaliveMs, 30000);
    assert.equal(c.graceMs, 10000);
    assert.deepEqual(c.limits, DEFAULT_LIMITS);
    assert.ok(Object.isFrozen(c.limits));
    assert.equal(c.help, false);
  });

  test('the config and its nested values are frozen', () => {
    const c = parse([]);
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.httpAddr));
    assert.ok(Object.isFrozen(c.agentAddr));
    assert.ok(Object.isFrozen(c.tcpPorts));
    assert.throws(() => {
      (c as { domain: string }).domain = 'x';
    }, TypeError);
  });

  test('process.env is the default environment', (t) => {
    const before = process.env['BURROW_RELAY_GRACE'];
    process.env['BURROW_RELAY_GRACE'] = '1234';
    t.after(() => {
      if (before === undefined) delete process.env['BURROW_RELAY_GRACE'];
      else process.env['BURROW_RELAY_GRACE'] = before;
    });
    assert.equal(parseRelayArgs([]).graceMs, 1234);
  });
});

// Each row: flag, good values with the field they set, bad values with message fragments. The message must name the
// flag and quote the value (checked for every bad value below), plus say what is expected.
interface FlagCase {
  flag: string;
  good: Array<[string, (c: RelayConfig) => unknown, unknown]>;
  bad: Array<[string, string[]]>;
}

const FLAG_CASES: FlagCase[] = [
  {
    flag: '--domain',
    good: [
      ['Example.COM', (c) => c.domain, 'example.com'],
      ['tunnels.example.com.', (c) => c.domain, 'tunnels.example.com'],
      ['xn--bcher-kva.example', (c) => c.domain, 'xn--bcher-kva.example'],
      ['localhost', (c) => c.domain, 'localhost'],
    ],
    bad: [
      ['', ['is not a DNS name']],
      ['under_score.com', ['is not a DNS name', 'example: burrow.example.com']],
      ['-lead.example.com', ['is not a DNS name']],
      ['a..b', ['is not a DNS name']],
      ['*.example.com', ['is not a DNS name']],
      [`${'a'.repeat(64)}.com`, ['labels of 1..63']],
      [`${'a.'.repeat(127)}com`, ['is not a DNS name']],
      ['1.2.3.4', ['looks like an IP address']],
      ['bücher.example', ['punycode']],
      ['example.com:80', ['is not a DNS name']],
    ],
  },
  {
    flag: '--http-addr',
    good: [
      ['0.0.0.0:80', (c) => c.httpAddr, { host: '0.0.0.0', port: 80 }],
      ['[::1]:8080', (c) => c.httpAddr, { host: '::1', port: 8080 }],
      ['LocalHost:0', (c) => c.httpAddr, { host: 'localhost', port: 0 }],
      ['off', (c) => c.httpAddr, null],
      ['OFF', (c) => c.httpAddr, null],
    ],
    bad: [
      ['8080', ['the port is missing', 'example: 127.0.0.1:8080']],
      ['127.0.0.1:', ['is not a whole number 0..65535']],
      ['127.0.0.1:65536', ['is not a whole number 0..65535']],
      ['127.0.0.1:-1', ['is not a whole number 0..65535']],
      ['127.0.0.1:http', ['is not a whole number 0..65535']],
      [':8080', ['has no host', '0.0.0.0:port']],
      ['::1:8080', ['without brackets', '[addr]:port']],
      ['[::1]8080', ['is not host:port']],
      ['[127.0.0.1]:80', ['no IPv6 address inside [ ]']],
      ['bad_host:80', ['has a bad host', "'bad_host'"]],
    ],
  },
  {
    flag: '--https-addr',
    good: [
      ['127.0.0.2:443', (c) => c.httpsAddr, { host: '127.0.0.2', port: 443 }],
      ['off', (c) => c.httpsAddr, null],
    ],
    bad: [['127.0.0.1:99999', ['0..65535']]],
  },
  {
    flag: '--agent-addr',
    good: [['[::]:4444', (c) => c.agentAddr, { host: '::', port: 4444 }]],
    bad: [
      ['off', ['cannot be turned off']],
      ['nohostport', ['the port is missing']],
    ],
  },
  {
    flag: '--admin-addr',
    good: [
      ['127.0.0.1:9191', (c) => c.adminAddr, { host: '127.0.0.1', port: 9191 }],
      ['off', (c) => c.adminAddr, null],
    ],
    bad: [['127.0.0.1:x', ['0..65535']]],
  },
  {
    flag: '--admin-token',
    good: [['a-token-of-16-chars', (c) => c.adminToken, 'a-token-of-16-chars']],
    bad: [
      ['short', ['is not a usable token', '16 to 256 printable characters']],
      ['with a space in it here', ['is not a usable token']],
    ],
  },
  {
    flag: '--metrics',
    good: [
      ['off', (c) => c.metrics, false],
      ['on', (c) => c.metrics, true],
    ],
    bad: [['maybe', ['is not on or off']]],
  },
  {
    flag: '--metrics-per-endpoint',
    good: [
      ['on', (c) => c.metricsPerEndpoint, true],
      ['off', (c) => c.metricsPerEndpoint, false],
    ],
    bad: [['yes', ['is not on or off']]],
  },
  {
    flag: '--tcp-ports',
    good: [
      ['30000-30009', (c) => c.tcpPorts, { from: 30000, to: 30009 }],
      ['1-1', (c) => c.tcpPorts, { from: 1, to: 1 }],
      ['65535-65535', (c) => c.tcpPorts, { from: 65535, to: 65535 }],
    ],
    bad: [
      ['30000-20000', ['is not a range a-b with a <= b (example: 20000-20999)']],
      ['0-10', ['within 1..65535']],
      ['60000-65536', ['within 1..65535']],
      ['20000', ['is not a port range a-b', 'example: 20000-20999']],
      ['a-b', ['is not a port range a-b']],
      ['20000 - 20999', ['is not a port range a-b']],
    ],
  },
  {
    flag: '--tcp-host',
    good: [
      ['tcp.Example.com', (c) => c.tcpHost, 'tcp.example.com'],
      ['203.0.113.7', (c) => c.tcpHost, '203.0.113.7'],
      ['[2001:db8::1]', (c) => c.tcpHost, '2001:db8::1'],
      ['2001:db8::2', (c) => c.tcpHost, '2001:db8::2'],
    ],
    bad: [
      ['bad host', ['is not a DNS name']],
      ['example.com:80', ['is not a DNS name']],
    ],
  },
  {
    flag: '--workers',
    good: [
      ['1', (c) => c.workers, 1],
      ['64', (c) => c.workers, 64],
    ],
    bad: [
      ['0', ['is not a whole number of worker threads in 1..64']],
      ['65', ['1..64']],
      ['2.5', ['1..64']],
      ['-1', ['1..64']],
      ['many', ['1..64']],
    ],
  },
  {
    flag: '--data-dir',
    good: [
      ['/var/lib/burrow', (c) => c.dataDir, '/var/lib/burrow'],
      ['rel/dir', (c) => c.dataDir, resolve('rel/dir')],
    ],
    bad: [['', ['is empty', 'give a directory path']]],
  },
  {
    flag: '--preread-timeout',
    good: [
      ['1', (c) => c.prereadTimeoutMs, 1],
      ['600000', (c) => c.prereadTimeoutMs, 600000],
    ],
    bad: [
      ['0', ['is not a whole number of milliseconds in 1..600000']],
      ['5s', ['milliseconds']],
      ['1e3', ['milliseconds']],
    ],
  },
  {
    flag: '--preread-max',
    good: [
      ['1024', (c) => c.prereadMax, 1024],
      ['65536', (c) => c.prereadMax, 65536],
    ],
    bad: [
      ['1023', ['is not a whole number of bytes in 1024..65536']],
      ['65537', ['1024..65536']],
    ],
  },
  {
    flag: '--tcp-keepalive',
    good: [
      ['0', (c) => c.tcpKeepaliveMs, 0],
      ['1000', (c) => c.tcpKeepaliveMs, 1000],
      ['86400000', (c) => c.tcpKeepaliveMs, 86400000],
    ],
    bad: [
      ['500', ['is not 0 (off) or a whole number of milliseconds in 1000..86400000']],
      ['86400001', ['1000..86400000']],
      ['off', ['0 (off)']],
    ],
  },
  {
    flag: '--grace',
    good: [
      ['0', (c) => c.graceMs, 0],
      ['3600000', (c) => c.graceMs, 3600000],
    ],
    bad: [
      ['3600001', ['is not a whole number of milliseconds in 0..3600000']],
      ['ten', ['milliseconds']],
    ],
  },
  {
    flag: '--lb-strategy',
    good: [
      ['round-robin', (c) => c.lbStrategy, 'round-robin'],
      ['least-outstanding', (c) => c.lbStrategy, 'least-outstanding'],
    ],
    bad: [['fastest', ['is not a balancing strategy', 'random, round-robin, least-outstanding, p2c-ewma']]],
  },
  {
    flag: '--reclaim-grace',
    good: [['0', (c) => c.reclaimGraceMs, 0]],
    bad: [['-1', ['milliseconds']]],
  },
  {
    flag: '--breaker-reset',
    good: [['100', (c) => c.breakerResetMs, 100]],
    bad: [['99', ['100..600000']]],
  },
  {
    flag: '--breaker-timeout',
    good: [['600000', (c) => c.breakerTimeoutMs, 600000]],
    bad: [['600001', ['100..600000']]],
  },
  // limits (docs/security.md §Limits)
  ...([
    ['--max-sessions-per-token', (c: RelayConfig) => c.limits.maxSessionsPerToken, 1, 100_000, 'sessions'],
    ['--max-endpoints-per-session', (c: RelayConfig) => c.limits.maxEndpointsPerSession, 1, 100_000, 'endpoints'],
    ['--max-tcp-ports-per-token', (c: RelayConfig) => c.limits.maxTcpPortsPerToken, 1, 65_535, 'ports'],
    ['--max-streams-per-session', (c: RelayConfig) => c.limits.maxStreamsPerSession, 1, 480, 'streams'],
    ['--max-conns-per-endpoint', (c: RelayConfig) => c.limits.maxConnsPerEndpoint, 1, 10_000_000, 'connections'],
    ['--max-conns-per-ip', (c: RelayConfig) => c.limits.maxConnsPerIp, 1, 10_000_000, 'connections'],
    ['--http-head-max', (c: RelayConfig) => c.limits.httpHeadMax, 1024, 1024 * 1024, 'bytes'],
    ['--http-head-timeout', (c: RelayConfig) => c.limits.httpHeadTimeoutMs, 100, 600_000, 'milliseconds'],
    ['--idle-timeout', (c: RelayConfig) => c.limits.idleTimeoutMs, 0, 86_400_000, 'milliseconds'],
    ['--tcp-idle-timeout', (c: RelayConfig) => c.limits.tcpIdleTimeoutMs, 0, 86_400_000, 'milliseconds'],
    ['--rpc-max', (c: RelayConfig) => c.limits.rpcMax, 4096, 16 * 1024 * 1024, 'bytes'],
    ['--auth-fail-limit', (c: RelayConfig) => c.limits.authFailuresPerMinute, 1, 100_000, 'failures per minute'],
  ] as const).map(([flag, get, min, max, unit]) => ({
    flag,
    good: [
      [String(min), get, min],
      [String(max), get, max],
    ] as Array<[string, (c: RelayConfig) => unknown, unknown]>,
    bad: [
      [String(max + 1), [`is not a whole number of ${unit} in ${min}..${max}`]],
      ...(min > 0 ? [[String(min - 1), [`${min}..${max}`]] as [string, string[]]] : []),
      ['1k', [unit]],
    ] as Array<[string, string[]]>,
  })),
];

const SECRET_FLAGS = new Set(['--admin-token']);

describe('every flag', () => {
  for (const fc of FLAG_CASES) {
    test(`${fc.flag}: good values, as '--flag value' and '--flag=value'`, () => {
      for (const [value, get, want] of fc.good) {
        assert.deepEqual(get(parse([fc.flag, value])), want, `${fc.flag} ${value}`);
        assert.deepEqual(get(parse([`${fc.flag}=${value}`])), want, `${fc.flag}=${value}`);
      }
    });
    test(`${fc.flag}: bad values are rejected naming the flag, the value and what is expected`, () => {
      for (const [value, fragments] of fc.bad) {
        // `--flag value` cannot carry an empty value: use `--flag=value` for all bad values.
        const msg = throwsWith(() => parse([`${fc.flag}=${value}`]), [`${fc.flag}: `, ...fragments]);
        // A secret flag names what is wrong without the value (it would end up in logs); every other flag quotes it.
        if (SECRET_FLAGS.has(fc.flag)) assert.ok(!msg.includes(value), `message ${JSON.stringify(msg)} repeats the secret`);
        else assert.ok(msg.includes(`'${value.slice(0, 77)}`), `message ${JSON.stringify(msg)} does not quote the value`);
      }
    });
  }

  test('the table above covers every flag listed in the help text (cert, key, tokens, config are tested below)', () => {
    const inHelp = [...relayHelpText().matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]!);
    const covered = new Set([...FLAG_CASES.map((f) => f.flag), '--cert', '--key', '--tokens', '--config', '--help']);
    assert.deepEqual(inHelp.filter((f) => !covered.has(f)), []);
    assert.equal(inHelp.length, covered.size);
  });
});

describe('files: --cert, --key, --tokens', () => {
  test('existing readable files are accepted and made absolute', (t) => {
    const dir = tempDir(t);
    for (const f of ['c.pem', 'k.pem', 'tokens']) writeFileSync(join(dir, f), 'x');
    const c = parse(['--cert', join(dir, 'c.pem'), `--key=${join(dir, 'k.pem')}`, '--tokens', join(dir, 'tokens')]);
    assert.equal(c.certPath, join(dir, 'c.pem'));
    assert.equal(c.keyPath, join(dir, 'k.pem'));
    assert.equal(c.tokensFile, join(dir, 'tokens'));
  });

  test('--cert without --key and --key without --cert are rejected', (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'c.pem'), 'x');
    throwsWith(() => parse(['--cert', join(dir, 'c.pem')]), ['--cert was given without --key', 'give both --cert and --key, or neither']);
    throwsWith(() => parse(['--key', join(dir, 'c.pem')]), ['--key was given without --cert']);
  });

  test('a missing file is BURROW_ERR_CONFIG_FILE naming the flag and the path', (t) => {
    const dir = tempDir(t);
    const missing = join(dir, 'nope.pem');
    throwsWith(() => parse(['--cert', missing, '--key', missing]), ['--cert: ', `'${missing}'`, 'does not exist'], 'BURROW_ERR_CONFIG_FILE');
    throwsWith(() => parse(['--tokens', missing]), ['--tokens: ', 'does not exist', 'tokens file'], 'BURROW_ERR_CONFIG_FILE');
  });

  test('a directory is not a file', (t) => {
    const dir = tempDir(t);
    throwsWith(() => parse(['--tokens', dir]), ['--tokens: ', 'is not a regular file'], 'BURROW_ERR_CONFIG_FILE');
  });

  test('an unreadable file is rejected (skipped as root, who can read anything)', (t) => {
    if (process.getuid?.() === 0) {
      t.skip('running as root: permission bits do not stop reads');
      return;
    }
    const dir = tempDir(t);
    const f = join(dir, 'tokens');
    writeFileSync(f, 'x');
    chmodSync(f, 0o000);
    throwsWith(() => parse(['--tokens', f]), ['--tokens: ', 'is not readable'], 'BURROW_ERR_CONFIG_FILE');
  });

  test('an empty path is a bad value', () => {
    throwsWith(() => parse(['--tokens=']), ['--tokens: ', 'is empty']);
  });
});

describe('command line shape', () => {
  test('unknown flag', () => {
    const msg = throwsWith(() => parse(['--x']), []);
    assert.equal(msg, "unknown flag --x for 'burrow relay'; run 'burrow relay --help'");
    throwsWith(() => parse(['--domian=example.com']), ['unknown flag --domian']);
    // burrow demo shares the relay's flags: its errors name the command that was run.
    throwsWith(() => parseRelayArgs(['--bogus'], {}, 'burrow demo'), ["unknown flag --bogus for 'burrow demo'", "'burrow demo --help'"]);
  });

  test('a flag without its value', () => {
    throwsWith(() => parse(['--domain']), ['--domain needs a value <name>']);
    throwsWith(() => parse(['--http-addr', '--https-addr', 'off']), ['--http-addr needs a value']);
  });

  test('a flag given twice', () => {
    throwsWith(() => parse(['--grace', '1', '--grace=2']), ["--grace was given twice ('1' and '2')"]);
  });

  test('--admin-addr off loopback without --admin-token fails while parsing (before anything binds), IPv6 bracketed', () => {
    throwsWith(() => parse(['--admin-addr', '0.0.0.0:9090']), ['--admin-addr 0.0.0.0:9090 is not a loopback address', '--admin-token'], 'BURROW_ERR_ADMIN_TOKEN_REQUIRED');
    throwsWith(() => parse(['--admin-addr', '[::]:9090']), ['--admin-addr [::]:9090 is not a loopback'], 'BURROW_ERR_ADMIN_TOKEN_REQUIRED');
    assert.equal(parse(['--admin-addr', '0.0.0.0:9090', '--admin-token', 'a-token-of-16-chars']).adminToken, 'a-token-of-16-chars');
    assert.equal(parse(['--admin-addr', '127.0.0.2:9090']).adminToken, null);
  });

  test('a bad or repeated --admin-token is refused without repeating the secret', () => {
    for (const argv of [['--admin-token', 'sh0rt-secret'], ['--admin-token', 'first-secret-16-chars', '--admin-token', 'second-secret-16-chars']]) {
      const msg = throwsWith(() => parse(argv), ['--admin-token']);
      assert.doesNotMatch(msg, /secret/, msg);
    }
  });

  test('a positional argument', () => {
    throwsWith(() => parse(['8080']), ["unexpected argument '8080'", "run 'burrow relay --help'"]);
  });

  test('a value may start with a single dash (rejected by its parser, not taken as a flag)', () => {
    throwsWith(() => parse(['--grace', '-5']), ["--grace: '-5'"]);
  });

  test('--help and -h win over everything else and return the built-in defaults', () => {
    for (const h of ['--help', '-h']) {
      const c = parse(['--bogus', h, '--grace=nope'], { BURROW_RELAY_GRACE: 'bad' });
      assert.equal(c.help, true);
      assert.equal(c.graceMs, 10000);
      assert.ok(Object.isFrozen(c));
    }
  });
});

describe('environment', () => {
  test('BURROW_RELAY_* set defaults', () => {
    const c = parse([], {
      BURROW_RELAY_DOMAIN: 'env.example.com',
      BURROW_RELAY_HTTP_ADDR: 'off',
      BURROW_RELAY_TCP_PORTS: '40000-40010',
      BURROW_RELAY_PREREAD_TIMEOUT: '250',
      BURROW_RELAY_TCP_KEEPALIVE: '0',
      BURROW_RELAY_WORKERS: '3',
    });
    assert.equal(c.domain, 'env.example.com');
    assert.equal(c.httpAddr, null);
    assert.deepEqual(c.tcpPorts, { from: 40000, to: 40010 });
    assert.equal(c.prereadTimeoutMs, 250);
    assert.equal(c.tcpKeepaliveMs, 0);
    assert.equal(c.workers, 3);
  });

  test('flags override env', () => {
    const env = { BURROW_RELAY_DOMAIN: 'env.example.com', BURROW_RELAY_GRACE: '5' };
    const c = parse(['--domain', 'flag.example.com'], env);
    assert.equal(c.domain, 'flag.example.com');
    assert.equal(c.graceMs, 5);
  });

  test('a bad env value names the flag and the variable', () => {
    throwsWith(
      () => parse([], { BURROW_RELAY_TCP_PORTS: '30000-20000' }),
      ["--tcp-ports (from BURROW_RELAY_TCP_PORTS): '30000-20000' is not a range a-b with a <= b"],
    );
  });

  test('a bad env value is still an error when a flag overrides it (env is parsed first)', () => {
    throwsWith(() => parse(['--workers', '2'], { BURROW_RELAY_WORKERS: 'x' }), ['BURROW_RELAY_WORKERS']);
  });

  test('an empty variable counts as unset', () => {
    assert.equal(parse([], { BURROW_RELAY_DOMAIN: '' }).domain, 'burrow.localhost');
  });

  test('unrelated variables are ignored', () => {
    assert.equal(parse([], { BURROW_RELAY_NOPE: 'x', BURROW_SERVER: 'y' }).domain, 'burrow.localhost');
  });
});

describe('derived and cross-flag rules', () => {
  test('--tcp-host defaults to the --http-addr host', () => {
    assert.equal(parse(['--http-addr', '127.0.0.5:0']).tcpHost, '127.0.0.5');
    assert.equal(parse(['--http-addr', '[::1]:0']).tcpHost, '::1');
  });

  test('--tcp-host defaults to --domain when --http-addr binds every interface', () => {
    assert.equal(parse(['--http-addr', '0.0.0.0:80', '--domain', 'tunnels.example.com']).tcpHost, 'tunnels.example.com');
    assert.equal(parse(['--http-addr', '[::]:80', '--domain', 'tunnels.example.com']).tcpHost, 'tunnels.example.com');
  });

  test('--tcp-host falls back to the --https-addr host when --http-addr is off', () => {
    assert.equal(parse(['--http-addr', 'off', '--https-addr', '127.0.0.9:0']).tcpHost, '127.0.0.9');
  });

  test('an explicit --tcp-host wins', () => {
    assert.equal(parse(['--http-addr', '0.0.0.0:80', '--tcp-host', '203.0.113.1']).tcpHost, '203.0.113.1');
  });

  test('two listeners on one port are rejected; port 0 and off never conflict', () => {
    throwsWith(
      () => parse(['--http-addr', '127.0.0.1:4443']),
      ['--http-addr 127.0.0.1:4443 and --agent-addr 127.0.0.1:4443 (default) use the same port'],
    );
    throwsWith(() => parse(['--http-addr', '0.0.0.0:9000', '--admin-addr', '127.0.0.1:9000']), ['use the same port']);
    const c = parse(['--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0', '--agent-addr', '127.0.0.1:0', '--admin-addr', 'off']);
    assert.equal(c.agentAddr.port, 0);
    // Same port on two different specific hosts is fine.
    parse(['--http-addr', '127.0.0.1:7000', '--https-addr', '127.0.0.2:7000']);
  });

  test('a listener port inside --tcp-ports is rejected', () => {
    throwsWith(() => parse(['--tcp-ports', '8000-8999']), ['--http-addr 127.0.0.1:8080 (default) has a port inside --tcp-ports 8000-8999']);
  });
});

describe('parseHostPort', () => {
  test('parses and formats IPv4, IPv6 and names', () => {
    for (const [input, host, port, formatted] of [
      ['127.0.0.1:8080', '127.0.0.1', 8080, '127.0.0.1:8080'],
      ['[::1]:0', '::1', 0, '[::1]:0'],
      ['[2001:DB8::1]:65535', '2001:db8::1', 65535, '[2001:db8::1]:65535'],
      ['relay.example.com:443', 'relay.example.com', 443, 'relay.example.com:443'],
    ] as const) {
      const hp = parseHostPort(input, '--x');
      assert.deepEqual(hp, { host, port });
      assert.ok(Object.isFrozen(hp));
      assert.equal(formatHostPort(hp), formatted);
    }
  });

  test('errors use the given flag label', () => {
    throwsWith(() => parseHostPort('nope', 'server_addr in burrow.yml'), ["server_addr in burrow.yml: 'nope'"]);
  });

  test('control characters in a value are escaped in the message', () => {
    const msg = throwsWith(() => parseHostPort('a\nb', '--x'), ["'a\\x0ab'"]);
    assert.ok(!msg.includes('\n'));
  });
});

describe('relayHelpText', () => {
  test('lists every flag with its default and env var', () => {
    const help = relayHelpText();
    for (const [flag, def] of [
      ['--domain', 'burrow.localhost'],
      ['--http-addr', '127.0.0.1:8080'],
      ['--https-addr', '127.0.0.1:8443'],
      ['--agent-addr', '127.0.0.1:4443'],
      ['--admin-addr', '127.0.0.1:9090'],
      ['--admin-token', 'none'],
      ['--metrics', 'on'],
      ['--metrics-per-endpoint', 'off'],
      ['--tcp-ports', '20000-20999'],
      ['--tcp-host', 'host of --http-addr'],
      ['--workers', 'number of cores'],
      ['--data-dir', './.burrow'],
      ['--cert', 'dev CA'],
      ['--key', 'none'],
      ['--tokens', 'dev token'],
      ['--preread-timeout', '5000'],
      ['--preread-max', '16384'],
      ['--tcp-keepalive', '30000'],
      ['--grace', '10000'],
      ['--lb-strategy', 'random'],
      ['--reclaim-grace', '30000'],
      ['--breaker-reset', '5000'],
      ['--breaker-timeout', '15000'],
    ] as const) {
      const block = help.slice(help.indexOf(`  ${flag} `));
      const next = block.indexOf('\n  --', 1);
      const own = next < 0 ? block : block.slice(0, next);
      assert.ok(own.includes(`default: `) && own.includes(def), `${flag}: default ${def} missing in ${JSON.stringify(own)}`);
      const env = `BURROW_RELAY_${flag.slice(2).toUpperCase().replace(/-/g, '_')}`;
      assert.ok(own.includes(`env: ${env}`), `${flag}: ${env} missing`);
    }
    assert.match(help, /--help, -h/);
  });

  test('every env var named in the help is honoured', (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'f');
    writeFileSync(file, 'x');
    // A non-default value for each variable, and where it must show up.
    const cases: Record<string, [string, (c: RelayConfig) => unknown, unknown]> = {
      BURROW_RELAY_DOMAIN: ['e.example', (c) => c.domain, 'e.example'],
      BURROW_RELAY_HTTP_ADDR: ['127.0.0.3:1', (c) => c.httpAddr, { host: '127.0.0.3', port: 1 }],
      BURROW_RELAY_HTTPS_ADDR: ['off', (c) => c.httpsAddr, null],
      BURROW_RELAY_AGENT_ADDR: ['127.0.0.3:2', (c) => c.agentAddr, { host: '127.0.0.3', port: 2 }],
      BURROW_RELAY_ADMIN_ADDR: ['off', (c) => c.adminAddr, null],
      BURROW_RELAY_ADMIN_TOKEN: ['env-token-0123456789', (c) => c.adminToken, 'env-token-0123456789'],
      BURROW_RELAY_METRICS: ['off', (c) => c.metrics, false],
      BURROW_RELAY_METRICS_PER_ENDPOINT: ['on', (c) => c.metricsPerEndpoint, true],
      BURROW_RELAY_TCP_PORTS: ['100-200', (c) => c.tcpPorts, { from: 100, to: 200 }],
      BURROW_RELAY_TCP_HOST: ['t.example', (c) => c.tcpHost, 't.example'],
      BURROW_RELAY_WORKERS: ['7', (c) => c.workers, 7],
      BURROW_RELAY_DATA_DIR: [dir, (c) => c.dataDir, dir],
      BURROW_RELAY_CERT: [file, (c) => c.certPath, file],
      BURROW_RELAY_KEY: [file, (c) => c.keyPath, file],
      BURROW_RELAY_TOKENS: [file, (c) => c.tokensFile, file],
      BURROW_RELAY_PREREAD_TIMEOUT: ['77', (c) => c.prereadTimeoutMs, 77],
      BURROW_RELAY_PREREAD_MAX: ['2048', (c) => c.prereadMax, 2048],
      BURROW_RELAY_TCP_KEEPALIVE: ['2000', (c) => c.tcpKeepaliveMs, 2000],
      BURROW_RELAY_GRACE: ['3', (c) => c.graceMs, 3],
      BURROW_RELAY_LB_STRATEGY: ['p2c-ewma', (c) => c.lbStrategy, 'p2c-ewma'],
      BURROW_RELAY_RECLAIM_GRACE: ['0', (c) => c.reclaimGraceMs, 0],
      BURROW_RELAY_BREAKER_RESET: ['250', (c) => c.breakerResetMs, 250],
      BURROW_RELAY_BREAKER_TIMEOUT: ['900', (c) => c.breakerTimeoutMs, 900],
      BURROW_RELAY_MAX_SESSIONS_PER_TOKEN: ['3', (c) => c.limits.maxSessionsPerToken, 3],
      BURROW_RELAY_MAX_ENDPOINTS_PER_SESSION: ['4', (c) => c.limits.maxEndpointsPerSession, 4],
      BURROW_RELAY_MAX_TCP_PORTS_PER_TOKEN: ['7', (c) => c.limits.maxTcpPortsPerToken, 7],
      BURROW_RELAY_MAX_STREAMS_PER_SESSION: ['5', (c) => c.limits.maxStreamsPerSession, 5],
      BURROW_RELAY_MAX_CONNS_PER_ENDPOINT: ['6', (c) => c.limits.maxConnsPerEndpoint, 6],
      BURROW_RELAY_MAX_CONNS_PER_IP: ['7', (c) => c.limits.maxConnsPerIp, 7],
      BURROW_RELAY_HTTP_HEAD_MAX: ['2048', (c) => c.limits.httpHeadMax, 2048],
      BURROW_RELAY_HTTP_HEAD_TIMEOUT: ['900', (c) => c.limits.httpHeadTimeoutMs, 900],
      BURROW_RELAY_IDLE_TIMEOUT: ['0', (c) => c.limits.idleTimeoutMs, 0],
      BURROW_RELAY_TCP_IDLE_TIMEOUT: ['5000', (c) => c.limits.tcpIdleTimeoutMs, 5000],
      BURROW_RELAY_RPC_MAX: ['8192', (c) => c.limits.rpcMax, 8192],
      BURROW_RELAY_AUTH_FAIL_LIMIT: ['2', (c) => c.limits.authFailuresPerMinute, 2],
    };
    // BURROW_RELAY_CONFIG names the config file, not a setting: 'config file (--config)' below.
    const vars = [...relayHelpText().matchAll(/env: (BURROW_RELAY_[A-Z_]+)/g)].map((m) => m[1]!).filter((v) => v !== 'BURROW_RELAY_CONFIG');
    assert.deepEqual([...vars].sort(), Object.keys(cases).sort());
    const env = Object.fromEntries(Object.entries(cases).map(([k, [v]]) => [k, v]));
    const c = parse([], env);
    for (const [name, [, get, want]] of Object.entries(cases)) assert.deepEqual(get(c), want, name);
  });
});

describe('config file (--config)', () => {
  test('keys are the flags with _ for -; precedence flag > environment > file > default; paths relative to the file', (t) => {
    const dir = tempDir(t);
    const tokens = join(dir, 'tokens');
    writeFileSync(tokens, 'token-aaaaaaaaaaaaaaaa\n');
    const f = join(dir, 'relay.yml');
    writeFileSync(
      f,
      [
        'domain: tunnels.example.com',
        'http_addr: 127.0.0.5:8081',
        'max_conns_per_ip: 500',
        'metrics_per_endpoint: true',
        'tokens: tokens',
        'data_dir: state',
        'grace: 2500',
        '',
      ].join('\n'),
    );
    const c = parse(['--config', f]);
    assert.equal(c.domain, 'tunnels.example.com');
    assert.deepEqual(c.httpAddr, { host: '127.0.0.5', port: 8081 });
    assert.equal(c.limits.maxConnsPerIp, 500);
    assert.equal(c.metricsPerEndpoint, true);
    assert.equal(c.tokensFile, tokens);
    assert.equal(c.dataDir, join(dir, 'state'));
    assert.equal(c.graceMs, 2500);
    assert.equal(c.limits.maxSessionsPerToken, DEFAULT_LIMITS.maxSessionsPerToken, 'what the file leaves out keeps its default');
    // The environment beats the file, a flag beats both; BURROW_RELAY_CONFIG names the file too.
    const e = parse([`--config=${f}`, '--grace', '700'], { BURROW_RELAY_DOMAIN: 'env.example.com', BURROW_RELAY_GRACE: '900' });
    assert.equal(e.domain, 'env.example.com');
    assert.equal(e.graceMs, 700);
    assert.equal(parse([], { BURROW_RELAY_CONFIG: f }).domain, 'tunnels.example.com');
  });

  test('errors name the file, the line and the key; an overridden bad value is not judged', (t) => {
    const dir = tempDir(t);
    const write = (name: string, text: string): string => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    throwsWith(() => parse(['--config', write('a.yml', 'domain: ok.example\nmax-conns-per-ip: 5\n')]), ['a.yml:2: max-conns-per-ip', "unknown key 'max-conns-per-ip'", 'write max_conns_per_ip']);
    throwsWith(() => parse(['--config', write('b.yml', 'grace: 2500\nworkers: lots\n')]), ['b.yml:2: workers', "'lots'"]);
    throwsWith(() => parse(['--config', write('c.yml', 'http_addr: [1, 2]\n')]), ['c.yml:1: http_addr', 'a single value']);
    throwsWith(() => parse(['--config', write('d.yml', 'admin_token: 12345678901234567890\n')]), ['d.yml:1: admin_token', 'put it in quotes']);
    throwsWith(() => parse(['--config', write('e.yml', '- a\n- b\n')]), ['e.yml:1', 'must be a mapping']);
    throwsWith(() => parse(['--config', write('f.yml', 'domain: [\n')]), ['f.yml:', 'not valid YAML'], 'BURROW_ERR_CONFIG_FILE');
    throwsWith(() => parse(['--config', join(dir, 'missing.yml')]), ['--config', 'missing.yml', 'does not exist'], 'BURROW_ERR_CONFIG_FILE');
    throwsWith(() => parse(['--config', write('g.yml', ''), '--config', write('h.yml', '')]), ['--config was given twice']);
    // A bad value the command line overrides does not stop the start.
    assert.equal(parse(['--config', write('i.yml', 'workers: lots\n'), '--workers', '3']).workers, 3);
    // Empty file: nothing set.
    assert.equal(parse(['--config', write('j.yml', '')]).domain, parse([]).domain);
  });
});

describe('ensureDataDir', () => {
  test('creates missing dirs with mode 0700 and accepts an existing one', async (t) => {
    const dir = tempDir(t);
    const target = join(dir, 'a', 'b');
    await ensureDataDir(target);
    assert.equal(statSync(target).mode & 0o777, 0o700);
    await ensureDataDir(target);
  });

  test('a file in the way is BURROW_ERR_CONFIG_FILE naming the path', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'f');
    writeFileSync(file, 'x');
    await assert.rejects(ensureDataDir(file), (err: unknown) => isBurrowError(err, 'BURROW_ERR_CONFIG_FILE') && err.message.includes(file));
  });
});
