// Agent auth tokens: loads --tokens FILE, or keeps a generated dev token in the data dir. Holds only SHA-256 hashes
// and checks in constant time. Loading is start-up only; check() runs once per agent Auth (not per byte).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { link, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BurrowError } from '../core/errors.js';
import { errorReason, readConfigText, readIfExists } from './config-files.js';
import { ensureDataDir } from './relay-config.js';

export interface TokenStore {
  /** 'file' = --tokens; 'dev' = the generated dev token. */
  readonly source: 'file' | 'dev';
  /** The dev token in clear, for the start-up banner; null for 'file' (never printed). */
  readonly devToken: string | null;
  /** Absolute path of the tokens file or of `<dataDir>/dev-token`. */
  readonly path: string;
  /** Distinct tokens accepted. */
  readonly count: number;
  /** SHA-256 of each accepted token, lowercase hex — what worker threads receive instead of the tokens. */
  readonly hashes: readonly string[];
  /** True if `token` is one of the accepted tokens. Constant time with respect to the stored tokens. */
  check(token: string): boolean;
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

/** Loads the tokens agents may authenticate with (DESIGN.md §5 --tokens). Throws BURROW_ERR_CONFIG_FILE naming the file. */
export async function loadTokens(opts: LoadTokensOptions): Promise<TokenStore> {
  if (opts.tokensFile !== undefined && opts.tokensFile !== null) return loadTokensFile(resolve(opts.tokensFile));
  return loadDevToken(resolve(opts.dataDir));
}

async function loadTokensFile(path: string): Promise<TokenStore> {
  const text = await readConfigText(path, '--tokens');
  const tokens: string[] = [];
  // U+FEFF: editors on Windows like to start files with a byte-order mark.
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const problem = tokenProblem(line);
    // The message names the line, never the token: it is a secret and errors end up in logs.
    if (problem !== null) {
      throw new BurrowError(
        'BURROW_ERR_CONFIG_FILE',
        `tokens file ${path}, line ${i + 1}: ${problem}; ${TOKEN_RULE}, one per line (comments go on their own line, starting with #)`,
      );
    }
    tokens.push(line);
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
  return makeStore('dev', token, path, [token]);
}

/** What is wrong with a candidate token, or null. Never includes the token itself. */
function tokenProblem(token: string): string | null {
  if (token.length === 0) return 'the token is empty';
  if (!/^[\x21-\x7e]*$/.test(token)) return 'the token contains spaces, control or non-ASCII characters';
  if (token.length < TOKEN_MIN_LENGTH) return `the token is ${token.length} characters, too short`;
  if (token.length > TOKEN_MAX_LENGTH) return `the token is ${token.length} characters, too long`;
  return null;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function makeStore(source: 'file' | 'dev', devToken: string | null, path: string, tokens: readonly string[]): TokenStore {
  const hashHex = [...new Set(tokens.map((t) => sha256(t).toString('hex')))];
  const hashes = hashHex.map((h) => Buffer.from(h, 'hex'));
  return Object.freeze({
    source,
    devToken,
    path,
    count: hashes.length,
    hashes: Object.freeze(hashHex),
    check(token: string): boolean {
      // Tokens longer than any valid one are refused before hashing: bounds the work an unauthenticated peer can cause,
      // and the limit is public (TOKEN_RULE), so refusing early leaks nothing.
      if (typeof token !== 'string' || token.length === 0 || token.length > TOKEN_MAX_LENGTH) return false;
      // Fixed-length digests make timingSafeEqual applicable; comparing against every hash without an early exit keeps
      // the time independent of which (if any) stored token matched.
      const h = sha256(token);
      let ok = false;
      for (const stored of hashes) ok = timingSafeEqual(h, stored) || ok;
      return ok;
    },
  });
}



