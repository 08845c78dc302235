// Agent auth tokens: loads --tokens FILE (plain tokens or sha256: hashes, each optionally with rules), or keeps a
// generated dev token in the data dir; creates new tokens (`burrow token create`). Holds only SHA-256 hashes; the
// workers match with tokenMatcher() (constant time), once per agent Auth. Loading is start-up only.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFile, link, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BurrowError } from '../core/errors.js';
import { errorReason, readConfigText, readIfExists } from './config-files.js';
import { ensureDataDir } from './relay-config.js';
import { FULL_RIGHTS, formatTokenRules, parseTokenRules, tokenIdOf, type TokenEntry, type TokenRules } from './token-rules.js';

export interface TokenStore {
  /** 'file' = --tokens; 'dev' = the generated dev token. */
  readonly source: 'file' | 'dev';
  /** The dev token in clear, for the start-up banner; null for 'file' (never printed). */
  readonly devToken: string | null;
  /** Absolute path of the tokens file or of `<dataDir>/dev-token`. */
  readonly path: string;
  /** Distinct tokens accepted. */
  readonly count: number;
  /** Each accepted token's hash, identity and rules (plain lines: FULL_RIGHTS), in file order: what worker threads
   * receive instead of the tokens (they match with tokenMatcher). */
  readonly entries: readonly TokenEntry[];
}

export interface LoadTokensOptions {
  dataDir: string;
  /** --tokens; null/undefined = dev token. */
  tokensFile?: string | null;
}

export const DEV_TOKEN_FILE = 'dev-token';
export const TOKEN_MIN_LENGTH = 16;
export const TOKEN_MAX_LENGTH = 256;

const TOKEN_RULE = `tokens are ${TOKEN_MIN_LENGTH}..${TOKEN_MAX_LENGTH} printable ASCII characters without spaces`;
const LINE_RULE = 'each line is a token or sha256:<64 hex digits>, optionally followed by rules (allow=, tcp=, sessions=, endpoints=)';
const HASH_PREFIX = 'sha256:';
/** A first field that is a token rule (token-rules.ts), i.e. the token itself is missing. */
const RULE_NAME = /^(allow|tcp|sessions|endpoints)=/i;

/** Loads the tokens agents may authenticate with (DESIGN.md §5 --tokens). Throws BURROW_ERR_CONFIG_FILE naming the file. */
export async function loadTokens(opts: LoadTokensOptions): Promise<TokenStore> {
  if (opts.tokensFile !== undefined && opts.tokensFile !== null) return loadTokensFile(resolve(opts.tokensFile));
  return loadDevToken(resolve(opts.dataDir));
}

async function loadTokensFile(path: string): Promise<TokenStore> {
  const text = await readConfigText(path, '--tokens');
  const tokens: Array<{ hash: string; rules: TokenRules }> = [];
  // U+FEFF: editors on Windows like to start files with a byte-order mark.
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [first, ...fields] = line.split(/[ \t]+/);
    const where = `tokens file ${path}, line ${i + 1}`;
    if (fields.some((f) => f.startsWith('#'))) {
      throw new BurrowError(
        'BURROW_ERR_CONFIG_FILE',
        `${where}: the line contains spaces and a # comment after the token; ${TOKEN_RULE}; ${LINE_RULE} (comments go on their own line, starting with #)`,
      );
    }
    let hash: string;
    // A misspelt hash prefix or a line that starts with a rule would otherwise load as a plain token whose secret is
    // that text (a readable hash line, or a guessable `allow=...`, with full rights).
    if (!first!.startsWith(HASH_PREFIX) && /^sha[-_]?256:/i.test(first!)) {
      throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${where}: a hash must start with ${HASH_PREFIX} exactly (lowercase, no dash); ${LINE_RULE}`);
    }
    if (RULE_NAME.test(first!)) {
      throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${where}: the line starts with a rule, not a token; ${LINE_RULE}`);
    }
    if (first!.startsWith(HASH_PREFIX)) {
      hash = first!.slice(HASH_PREFIX.length).toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(hash)) {
        throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${where}: ${HASH_PREFIX} must be followed by 64 hex digits (a SHA-256); ${LINE_RULE}`);
      }
    } else {
      const problem = tokenProblem(first!);
      // The message names the line, never the token: it is a secret and errors end up in logs.
      if (problem !== null) {
        throw new BurrowError(
          'BURROW_ERR_CONFIG_FILE',
          `${where}: ${problem}; ${TOKEN_RULE}; ${LINE_RULE} (comments go on their own line, starting with #)`,
        );
      }
      hash = sha256(first!).toString('hex');
    }
    tokens.push({ hash, rules: fields.length === 0 ? FULL_RIGHTS : parseTokenRules(fields, where) });
  }
  if (tokens.length === 0) {
    throw new BurrowError(
      'BURROW_ERR_CONFIG_FILE',
      `tokens file ${path} has no tokens (only blank lines or # comments); add one token per line, or drop --tokens to use a generated dev token`,
    );
  }
  return makeStore('file', null, path, tokens);
}

async function loadDevToken(dataDir: string): Promise<TokenStore> {
  await ensureDataDir(dataDir);
  const path = join(dataDir, DEV_TOKEN_FILE);
  let token = await readIfExists(path);
  if (token === null) {
    const fresh = randomBytes(32).toString('base64url'); // 256 bits; 43 characters of [A-Za-z0-9_-]
    // Written in full to a temp file, then link()ed into place: link is atomic and fails with EEXIST if another relay
    // got there first, so nobody ever reads a half-written token and a concurrent winner's token is kept, not replaced.
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
      await link(tmp, path);
      token = fresh;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new BurrowError('BURROW_ERR_CONFIG_FILE', `could not write the dev token to ${path} (${errorReason(err)}); check the data dir's permissions`, {
          cause: err,
        });
      }
      token = (await readIfExists(path)) ?? '';
    } finally {
      await rm(tmp, { force: true });
    }
  }
  token = token.trim();
  const problem = tokenProblem(token);
  if (problem !== null) {
    throw new BurrowError(
      'BURROW_ERR_CONFIG_FILE',
      `dev token file ${path}: ${problem}; ${TOKEN_RULE}. Delete the file to generate a new dev token`,
    );
  }
  return makeStore('dev', token, path, [{ hash: sha256(token).toString('hex'), rules: FULL_RIGHTS }]);
}

/** What is wrong with a candidate token, or null. Never includes the token itself. */
function tokenProblem(token: string): string | null {
  if (token.length === 0) return 'the token is empty';
  if (!/^[\x21-\x7e]*$/.test(token)) return 'the token contains spaces, control or non-ASCII characters';
  if (token.length < TOKEN_MIN_LENGTH) return `the token is ${token.length} characters, too short`;
  if (token.length > TOKEN_MAX_LENGTH) return `the token is ${token.length} characters, too long`;
  return null;
}

/** SHA-256 of a string (UTF-8): token hashes, bearer-token comparison. */
export function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function makeStore(source: 'file' | 'dev', devToken: string | null, path: string, tokens: ReadonlyArray<{ hash: string; rules: TokenRules }>): TokenStore {
  // A token listed twice keeps its first line's rules.
  const byHash = new Map<string, TokenEntry>();
  for (const t of tokens) if (!byHash.has(t.hash)) byHash.set(t.hash, Object.freeze({ hash: t.hash, id: tokenIdOf(t.hash), rules: t.rules }));
  const entries = Object.freeze([...byHash.values()]);
  return Object.freeze({ source, devToken, path, count: entries.length, entries });
}

/**
 * Constant-time token lookup over `entries` (also used by the relay's workers). Tokens longer than any valid one are
 * refused before hashing: that bounds the work an unauthenticated peer can cause, and the limit is public
 * (TOKEN_RULE), so refusing early leaks nothing. Fixed-length digests make timingSafeEqual applicable; comparing
 * against every hash without an early exit keeps the time independent of which (if any) stored token matched.
 */
export function tokenMatcher(entries: readonly TokenEntry[]): (token: string) => TokenEntry | null {
  const hashes = entries.map((e) => Buffer.from(e.hash, 'hex'));
  return (token) => {
    if (typeof token !== 'string' || token.length === 0 || token.length > TOKEN_MAX_LENGTH) return null;
    const h = sha256(token);
    let found = -1;
    for (let i = 0; i < hashes.length; i++) if (timingSafeEqual(h, hashes[i]!)) found = i;
    return found < 0 ? null : entries[found]!;
  };
}

export interface CreatedToken {
  /** The new token in clear: shown once, never stored. */
  token: string;
  /** The line appended to the tokens file: `sha256:<hex>` and the rules. */
  line: string;
  id: string;
}

/**
 * `burrow token create`: a new 256-bit token (base64url), whose hash line (with `rules`) is appended to `path`
 * (created with mode 0600 if missing). Throws BURROW_ERR_CONFIG_FILE when the file cannot be written.
 */
export async function createToken(path: string, rules: TokenRules): Promise<CreatedToken> {
  const token = randomBytes(32).toString('base64url');
  const hash = sha256(token).toString('hex');
  const line = [`${HASH_PREFIX}${hash}`, ...formatTokenRules(rules)].join(' ');
  const existing = await readIfExists(path);
  const sep = existing !== null && existing.length > 0 && !existing.endsWith('\n') ? '\n' : '';
  try {
    await appendFile(path, `${sep}${line}\n`, { mode: 0o600 });
  } catch (err) {
    throw new BurrowError('BURROW_ERR_CONFIG_FILE', `--tokens ${path} cannot be written (${errorReason(err)}); check the path and its permissions`, {
      cause: err,
    });
  }
  return { token, line, id: tokenIdOf(hash) };
}



