// loadTokens: --tokens FILE parsing (comments, blanks, whitespace, CRLF, BOM, validation with file + line in errors,
// secrets never echoed), the generated dev token (created once, mode 0600, reused), and check().
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBurrowError, type ErrorCode } from '../../../src/core/errors.js';
import { DEV_TOKEN_FILE, loadTokens, tokenMatcher, type TokenStore } from '../../../src/config/tokens.js';
import type { TokenEntry } from '../../../src/config/token-rules.js';

// The workers' matcher over a store's entries (what the relay hands them), for the checks below.
const lookup = (s: TokenStore, token: string): TokenEntry | null => tokenMatcher(s.entries)(token);
const check = (s: TokenStore, token: string): boolean => lookup(s, token) !== null;
const hashes = (s: TokenStore): string[] => s.entries.map((e) => e.hash);

const T1 = 'tok-aaaaaaaaaaaaaaaa';
const T2 = 'tok-bbbbbbbbbbbbbbbb';
const T3 = 'Z'.repeat(256);

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-tokens-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function tokensFile(t: TestContext, text: string): string {
  const path = join(tempDir(t), 'tokens.txt');
  writeFileSync(path, text);
  return path;
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, fragments: string[], secret?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isBurrowError(err, code), `expected ${code}, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    if (secret !== undefined) assert.ok(!err.message.includes(secret), 'the message must not echo the token');
    return true;
  });
}

const sha256hex = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

describe('--tokens FILE', () => {
  test('one token per line; comments, blank lines and surrounding whitespace ignored; CRLF and BOM tolerated', async (t) => {
    const path = tokensFile(t, `\uFEFF# agents for team A\r\n\r\n   ${T1}  \r\n\t${T2}\n  # indented comment\n${T3}\n${T1}\n`);
    const store = await loadTokens({ dataDir: tempDir(t), tokensFile: path });
    assert.equal(store.source, 'file');
    assert.equal(store.devToken, null);
    assert.equal(store.path, path);
    assert.equal(store.count, 3); // T1 twice counts once
    assert.deepEqual([...hashes(store)].sort(), [T1, T2, T3].map(sha256hex).sort());
    assert.ok(Object.isFrozen(store));
    for (const tok of [T1, T2, T3]) assert.equal(check(store, tok), true, tok);
  });

  test('check refuses near misses, other tokens, comments, empty and oversized input', async (t) => {
    const store = await loadTokens({ dataDir: tempDir(t), tokensFile: tokensFile(t, `# ${T2}\n${T1}\n`) });
    assert.equal(check(store, T1), true);
    for (const bad of [T2, `# ${T2}`, T1.slice(0, -1), `${T1}x`, ` ${T1}`, T1.toUpperCase(), '', 'x'.repeat(257), 'x'.repeat(1 << 20)]) {
      assert.equal(check(store, bad), false, JSON.stringify(bad.slice(0, 40)));
    }
    // Not a string (a JSON field of the wrong type reaching the check).
    assert.equal(check(store, undefined as unknown as string), false);
    assert.equal(check(store, 123 as unknown as string), false);
  });

  test('a relative path is made absolute', async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'tokens'), `${T1}\n`);
    const cwd = process.cwd();
    process.chdir(dir);
    t.after(() => process.chdir(cwd));
    const store = await loadTokens({ dataDir: dir, tokensFile: 'tokens' });
    assert.equal(store.path, join(dir, 'tokens'));
  });

  test('a bad token names the file and the line, says the rule, and never echoes the token', async (t) => {
    const cases: Array<[string, string, number, string]> = [
      ['short-token', 'is 11 characters, too short', 3, 'short-token'],
      ['x'.repeat(257), 'is 257 characters, too long', 3, 'x'.repeat(257)],
      [`${T1} # trailing comment`, 'contains spaces', 3, T1],
      [`tok\u00e9-aaaaaaaaaaaaaaaa`, 'non-ASCII', 3, 'tok\u00e9'],
      [`tok\u0007-aaaaaaaaaaaaaaaa`, 'control', 3, 'aaaaaaaaaaaaaaaa'],
    ];
    for (const [line, problem, lineNo, secret] of cases) {
      const path = tokensFile(t, `# header\n${T2}\n${line}\n`);
      await rejectsWith(
        loadTokens({ dataDir: tempDir(t), tokensFile: path }),
        'BURROW_ERR_CONFIG_FILE',
        [`tokens file ${path}, line ${lineNo}: `, problem, '16..256 printable ASCII characters without spaces', 'own line'],
        secret,
      );
    }
  });


  test('a misspelt hash prefix or a line that starts with a rule is refused, not loaded as a plain token', async (t) => {
    const hex = sha256hex(T1);
    const cases: Array<[string, string]> = [
      [`SHA256:${hex}`, 'a hash must start with sha256: exactly'],
      [`sha-256:${hex}`, 'a hash must start with sha256: exactly'],
      [`Sha256:${hex} sessions=2`, 'a hash must start with sha256: exactly'],
      ['allow=app-*.burrow.example.com sessions=2', 'the line starts with a rule, not a token'],
      ['sessions=2', 'the line starts with a rule, not a token'],
    ];
    for (const [line, problem] of cases) {
      const path = tokensFile(t, `${T2}\n${line}\n`);
      await rejectsWith(loadTokens({ dataDir: tempDir(t), tokensFile: path }), 'BURROW_ERR_CONFIG_FILE', [`tokens file ${path}, line 2: `, problem]);
    }
  });
  test('boundary lengths 16 and 256 are accepted, 15 is not', async (t) => {
    const store = await loadTokens({ dataDir: tempDir(t), tokensFile: tokensFile(t, `${'a'.repeat(16)}\n${'b'.repeat(256)}\n`) });
    assert.equal(store.count, 2);
    await rejectsWith(loadTokens({ dataDir: tempDir(t), tokensFile: tokensFile(t, `${'a'.repeat(15)}\n`) }), 'BURROW_ERR_CONFIG_FILE', [
      'line 1',
      'too short',
    ]);
  });

  test('a file with no tokens is an error', async (t) => {
    for (const text of ['', '\n\n', '# only a comment\n   \n# another\n']) {
      const path = tokensFile(t, text);
      await rejectsWith(loadTokens({ dataDir: tempDir(t), tokensFile: path }), 'BURROW_ERR_CONFIG_FILE', [
        `tokens file ${path} has no tokens`,
        'add one token per line',
      ]);
    }
  });

  test('a missing file is an error naming it', async (t) => {
    const path = join(tempDir(t), 'nope');
    await rejectsWith(loadTokens({ dataDir: tempDir(t), tokensFile: path }), 'BURROW_ERR_CONFIG_FILE', [`--tokens ${path} cannot be read`]);
  });

  test('the data dir is not touched', async (t) => {
    const dataDir = join(tempDir(t), 'never-made');
    await loadTokens({ dataDir, tokensFile: tokensFile(t, `${T1}\n`) });
    assert.throws(() => statSync(dataDir), { code: 'ENOENT' });
  });
});

describe('dev token', () => {
  test('created once in <dataDir>/dev-token with mode 0600, reused after', async (t) => {
    const dataDir = join(tempDir(t), 'data');
    const first = await loadTokens({ dataDir });
    assert.equal(first.source, 'dev');
    assert.equal(first.path, join(dataDir, DEV_TOKEN_FILE));
    assert.match(first.devToken!, /^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
    assert.equal(first.count, 1);
    assert.deepEqual(hashes(first), [sha256hex(first.devToken!)]);
    assert.equal(readFileSync(first.path, 'utf8'), `${first.devToken}\n`);
    assert.equal(statSync(first.path).mode & 0o777, 0o600);
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    assert.equal(check(first, first.devToken!), true);
    assert.equal(check(first, first.devToken!.slice(1)), false);

    const second = await loadTokens({ dataDir, tokensFile: null });
    assert.equal(second.devToken, first.devToken);
    assert.equal(check(second, first.devToken!), true);
  });

  test('each data dir gets its own random token', async (t) => {
    const a = await loadTokens({ dataDir: tempDir(t) });
    const b = await loadTokens({ dataDir: tempDir(t) });
    assert.notEqual(a.devToken, b.devToken);
    assert.equal(check(a, b.devToken!), false);
  });

  test('a dev-token file edited by hand is used (trimmed)', async (t) => {
    const dataDir = tempDir(t);
    writeFileSync(join(dataDir, DEV_TOKEN_FILE), `  ${T1}\n\n`);
    const store = await loadTokens({ dataDir });
    assert.equal(store.devToken, T1);
    assert.equal(check(store, T1), true);
  });

  test('an unusable dev-token file is an error naming it, not silently replaced', async (t) => {
    const dataDir = tempDir(t);
    const path = join(dataDir, DEV_TOKEN_FILE);
    writeFileSync(path, 'short\n');
    await rejectsWith(loadTokens({ dataDir }), 'BURROW_ERR_CONFIG_FILE', [`dev token file ${path}`, 'too short', 'Delete the file'], 'short\n');
    assert.equal(readFileSync(path, 'utf8'), 'short\n');
  });

  test('concurrent first loads agree on one token', async (t) => {
    const dataDir = tempDir(t);
    const stores = await Promise.all([1, 2, 3, 4].map(() => loadTokens({ dataDir })));
    for (const s of stores) assert.equal(s.devToken, stores[0]!.devToken);
    assert.equal(readFileSync(join(dataDir, DEV_TOKEN_FILE), 'utf8').trim(), stores[0]!.devToken);
  });

  test('a data dir that is a file is an error naming it', async (t) => {
    const file = join(tempDir(t), 'f');
    writeFileSync(file, 'x');
    await rejectsWith(loadTokens({ dataDir: file }), 'BURROW_ERR_CONFIG_FILE', [file]);
  });
});
