// Token rules (src/config/token-rules.ts) and the rules part of the tokens file format: parsing with clear errors,
// hostname pattern matching (`*` stays inside one label), port ranges, names for binds that ask for none; and the
// per-IP failed-auth limiter (src/relay/acceptor/auth-limiter.ts) on a virtual clock.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBurrowError } from '../../../src/core/errors.js';
import {
  FULL_RIGHTS,
  formatTokenRules,
  hostAllowed,
  hostnameForRandomBind,
  parseTokenRules,
  portAllowed,
  type TokenEntry,
} from '../../../src/config/token-rules.js';
import { loadTokens, tokenMatcher, type TokenStore } from '../../../src/config/tokens.js';
import { AuthLimiter, limitKey } from '../../../src/relay/acceptor/auth-limiter.js';

// The workers' matcher over a store's entries (what the relay hands them), for the checks below.
const lookup = (s: TokenStore, token: string): TokenEntry | null => tokenMatcher(s.entries)(token);
const check = (s: TokenStore, token: string): boolean => lookup(s, token) !== null;

const T1 = 'tok-aaaaaaaaaaaaaaaa';
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

function file(t: TestContext, text: string): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-token-rules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'tokens');
  writeFileSync(path, text);
  return { dir, path };
}

describe('parseTokenRules', () => {
  test('all four rules, lists, and the round trip through formatTokenRules', () => {
    const r = parseTokenRules(['allow=App-*.Example.com,api.example.com.', 'tcp=20000-20010,20500', 'sessions=5', 'endpoints=10'], 'here');
    assert.deepEqual(r, {
      allow: ['app-*.example.com', 'api.example.com'],
      tcp: [{ from: 20000, to: 20010 }, { from: 20500, to: 20500 }],
      sessions: 5,
      endpoints: 10,
    });
    assert.deepEqual(parseTokenRules(formatTokenRules(r), 'again'), r);
    assert.deepEqual(parseTokenRules([], 'none'), FULL_RIGHTS);
  });

  test('bad rules are refused naming the place, the rule and what is expected', () => {
    const cases: Array<[string[], RegExp]> = [
      [['allow='], /has no value/],
      [['allow=a b'], /bad hostname pattern/],
      [['allow=a..b'], /bad hostname pattern/],
      [['allow=-a.b'], /bad hostname pattern/],
      [['tcp=5-4'], /bad port range "5-4"/],
      [['tcp=0'], /within 1\.\.65535/],
      [['tcp=70000'], /bad port range/],
      [['sessions=0'], /1\.\.100000/],
      [['endpoints=x'], /whole number/],
      [['ports=1'], /is unknown/],
      [['sessions=1', 'sessions=2'], /repeats sessions=/],
    ];
    for (const [fields, re] of cases) {
      assert.throws(() => parseTokenRules(fields, 'tokens file F, line 7'), (e: unknown) => {
        assert.ok(isBurrowError(e, 'BURROW_ERR_CONFIG_FILE'), String(e));
        assert.match((e as Error).message, /^tokens file F, line 7: (rule |field \d+ is unknown)/);
        assert.match((e as Error).message, re);
        return true;
      }, fields.join(' '));
    }
  });
});

test('a field that is no rule is not echoed: it may be the rest of a token written with a space', () => {
  for (const fields of [['s3cret-half-of-a-token'], ['s3cret-half=of-a-token'], ['allow=x.example.com', 's3cret-half']]) {
    assert.throws(() => parseTokenRules(fields, 'tokens file F, line 2'), (e: unknown) => {
      assert.ok(isBurrowError(e, 'BURROW_ERR_CONFIG_FILE'), String(e));
      assert.doesNotMatch((e as Error).message, /s3cret/);
      assert.match((e as Error).message, /field \d is unknown; rules are allow=.*a token cannot contain spaces/);
      return true;
    });
  }
});

describe('matching', () => {
  const r = parseTokenRules(['allow=app-*.example.com,*.dev.example.com,exact.example.com', 'tcp=100-102,200'], 'x');

  test('`*` matches one or more characters inside one label, never a dot', () => {
    for (const h of ['app-1.example.com', 'app-x-y.example.com', 'a.dev.example.com', 'exact.example.com']) assert.ok(hostAllowed(r, h), h);
    for (const h of ['app-.example.com', 'app-a.b.example.com', 'app.example.com', 'x.y.dev.example.com', 'dev.example.com', 'exact.example.com.evil', 'evil-exact.example.com', 'appx1.example.com']) {
      assert.ok(!hostAllowed(r, h), h);
    }
    assert.ok(hostAllowed(FULL_RIGHTS, 'anything.at.all'));
  });

  test('regex characters in patterns are literal', () => {
    const dots = parseTokenRules(['allow=a-b.example.com'], 'x');
    assert.ok(!hostAllowed(dots, 'a-bxexample.com'));
  });

  test('port ranges', () => {
    for (const p of [100, 101, 102, 200]) assert.ok(portAllowed(r, p), String(p));
    for (const p of [99, 103, 199, 201]) assert.ok(!portAllowed(r, p), String(p));
    assert.ok(portAllowed(FULL_RIGHTS, 1));
  });

  test('a Bind without a name gets one inside the first pattern under the domain', () => {
    assert.equal(hostnameForRandomBind(r, 'example.com', () => 'rnd'), 'app-rnd.example.com');
    assert.equal(hostnameForRandomBind(parseTokenRules(['allow=only.example.com'], 'x'), 'example.com', () => 'rnd'), 'only.example.com');
    assert.equal(hostnameForRandomBind(r, 'other.org', () => 'rnd'), '');
    assert.equal(hostnameForRandomBind(FULL_RIGHTS, 'example.com', () => 'rnd'), '');
  });
});

describe('tokens file with rules', () => {
  test('plain lines keep full rights; sha256: lines and rules; ids are the first 16 hex digits of the hash', async (t) => {
    const h2 = sha('second-token-xxxxxxxxxx');
    const { dir, path } = file(t, `${T1}\nsha256:${h2.toUpperCase()} allow=a-*.x.test sessions=2\n${T1} sessions=9\n`);
    const store = await loadTokens({ dataDir: dir, tokensFile: path });
    assert.equal(store.count, 2, 'a repeated token counts once (first line wins)');
    const [plain, hashed] = store.entries;
    assert.deepEqual(plain!.rules, FULL_RIGHTS);
    assert.equal(plain!.id, sha(T1).slice(0, 16));
    assert.equal(hashed!.hash, h2);
    assert.deepEqual(hashed!.rules.allow, ['a-*.x.test']);
    assert.equal(lookup(store, 'second-token-xxxxxxxxxx'), hashed);
    assert.equal(lookup(store, T1), plain);
    assert.equal(lookup(store, 'nope-nope-nope-nope'), null);
    assert.equal(check(store, 'second-token-xxxxxxxxxx'), true);
  });

  test('a bad hash or a bad rule names the file and line; the token is never echoed', async (t) => {
    for (const [line, re] of [
      ['sha256:abc', /line 2: sha256: must be followed by 64 hex digits/],
      [`${T1} allow=bad!name`, /line 2: rule "allow=bad!name" has a bad hostname pattern/],
      [`${T1} # comment`, /line 2: the line contains spaces and a # comment after the token/],
    ] as const) {
      const { dir, path } = file(t, `# c\n${line}\n`);
      await assert.rejects(loadTokens({ dataDir: dir, tokensFile: path }), (e: unknown) => {
        assert.ok(isBurrowError(e, 'BURROW_ERR_CONFIG_FILE'), String(e));
        assert.match((e as Error).message, re);
        assert.ok(!(e as Error).message.includes(T1), 'no token in the message');
        return true;
      });
    }
  });
});

describe('AuthLimiter', () => {
  test('N failures a minute per IP, then blocked until the bucket refills; other IPs unaffected', () => {
    const l = new AuthLimiter(3);
    const t0 = 1_000_000;
    for (let i = 0; i < 3; i++) {
      assert.equal(l.blockedFor('192.0.2.1', t0), 0);
      l.fail('192.0.2.1', t0);
    }
    const wait = l.blockedFor('192.0.2.1', t0);
    assert.ok(wait > 0 && wait <= 20_000, `blocked for ${wait} ms (one try refills in 20 s)`);
    assert.equal(l.blockedFor('192.0.2.2', t0), 0);
    assert.equal(l.blockedFor('192.0.2.1', t0 + wait), 0, 'one try is back after the wait');
    l.fail('192.0.2.1', t0 + wait);
    assert.ok(l.blockedFor('192.0.2.1', t0 + wait) > 0);
    assert.equal(l.blockedFor('192.0.2.1', t0 + wait + 60_000), 0);
    assert.equal(l.tracked, 0, 'a full bucket is forgotten');
  });

  test('IPv6 clients are counted by their /64: a new address in the same block gets no fresh budget', () => {
    const l = new AuthLimiter(2);
    l.fail('2001:db8:0:1::1', 0);
    l.fail('2001:db8:0:1:ffff:ffff:ffff:ffff', 0);
    assert.ok(l.blockedFor('2001:0db8:0000:0001:abcd::7', 0) > 0, 'same /64, other spelling');
    assert.equal(l.blockedFor('2001:db8:0:2::1', 0), 0, 'the next /64 is another client');
    assert.equal(limitKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(limitKey('::1'), '0:0:0:0::/64');
    // Where one /64 holds many unrelated clients, each address is its own: NAT64, Teredo, link-local.
    assert.equal(limitKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0:0:0:c000:201');
    assert.notEqual(limitKey('64:ff9b::192.0.2.1'), limitKey('64:ff9b::198.51.100.9'));
    assert.notEqual(limitKey('2001:0:4136:e378:8000:63bf:3fff:fdd2'), limitKey('2001:0:4136:e378:8000:63bf:3fff:fdd3'));
    assert.equal(limitKey('fe80::1%eth0'), 'fe80:0:0:0:0:0:0:1%eth0');
    assert.notEqual(limitKey('fe80::1%eth0'), limitKey('fe80::2%eth0'));
    assert.equal(limitKey('192.0.2.1'), '192.0.2.1');
  });

  test('memory is bounded: at most 10 000 addresses are tracked', () => {
    const l = new AuthLimiter(1);
    for (let i = 0; i < 12_000; i++) l.fail(`10.0.${i >> 8}.${i & 255}`, 0);
    assert.equal(l.tracked, 10_000);
    assert.ok(l.blockedFor('10.0.46.223', 0) > 0, 'the newest are kept');
    assert.equal(l.blockedFor('10.0.0.0', 0), 0, 'the oldest were dropped');
  });
});
