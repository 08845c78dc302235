// Per-token rules of the tokens file (docs/security.md §Tokens): which hostnames and TCP ports a token may bind, how
// many sessions and endpoints it may hold. Parsing (start-up) and matching (once per Auth/Bind). No I/O, so worker
// threads use it too; rules cross the thread boundary as plain structured-clone data.
//
//   line   = ( token | "sha256:" 64HEXDIG ) *( WSP rule )
//   rule   = "allow=" pattern *("," pattern)      hostname patterns, `*` = one or more of [a-z0-9-] inside one label
//          / "tcp=" range *("," range)             range = port / port "-" port
//          / "sessions=" 1*DIGIT                   most live sessions with this token, across all workers
//          / "endpoints=" 1*DIGIT                  most endpoints per session
import { BurrowError } from '../core/errors.js';

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

export interface TokenRules {
  /** Hostname patterns the token may bind (lowercase). null = any name under the relay's domain. */
  readonly allow: readonly string[] | null;
  /** TCP ports the token may bind. null = any port in --tcp-ports. */
  readonly tcp: readonly PortRange[] | null;
  /** Most live agent sessions with this token across the relay; null = --max-sessions-per-token. */
  readonly sessions: number | null;
  /** Most endpoints one session of this token may bind; null = --max-endpoints-per-session. */
  readonly endpoints: number | null;
}

/** A plain token line (the original format): everything under the relay's domain, relay-wide limits. */
export const FULL_RIGHTS: TokenRules = Object.freeze({ allow: null, tcp: null, sessions: null, endpoints: null });

/** What workers know of an accepted token: its hash, a non-secret identity, its rules. */
export interface TokenEntry {
  /** SHA-256 of the token, lowercase hex. */
  readonly hash: string;
  /** Stable, non-secret identity for logs, limits and ownership: the first 16 hex digits of the hash. */
  readonly id: string;
  readonly rules: TokenRules;
}

export const TOKEN_ID_LENGTH = 16;
const MAX_COUNT = 100_000;
const RULE_KEYS: ReadonlySet<string> = new Set(['allow', 'tcp', 'sessions', 'endpoints']);
const PATTERN_LABEL = /^[a-z0-9*]([a-z0-9*-]{0,61}[a-z0-9*])?$/;

export function tokenIdOf(hashHex: string): string {
  return hashHex.slice(0, TOKEN_ID_LENGTH);
}

/** How parseTokenRules names a rule in its messages, and the code it throws: a tokens-file line by default. */
export interface RuleSource {
  code: 'BURROW_ERR_CONFIG_FILE' | 'BURROW_ERR_CONFIG_INVALID';
  /** The rule as the user wrote it: `rule "tcp=1-2"` in a file, `--tcp "1-2"` on a command line. */
  name(key: string, value: string): string;
}

const TOKENS_FILE_LINE: RuleSource = {
  code: 'BURROW_ERR_CONFIG_FILE',
  name: (key, value) => `rule ${JSON.stringify(`${key}=${value}`.slice(0, 80))}`,
};

/**
 * Parses the rule fields after the token on one line. `where` names the line for messages ("tokens file F, line 3").
 * Throws `source.code` (BURROW_ERR_CONFIG_FILE for a tokens file) saying which rule is wrong and what is expected.
 */
export function parseTokenRules(fields: readonly string[], where: string, source: RuleSource = TOKENS_FILE_LINE): TokenRules {
  let allow: string[] | null = null;
  let tcp: PortRange[] | null = null;
  let sessions: number | null = null;
  let endpoints: number | null = null;
  const seen = new Set<string>();
  for (let f = 0; f < fields.length; f++) {
    const field = fields[f]!;
    const eq = field.indexOf('=');
    const key = eq < 0 ? field : field.slice(0, eq);
    const value = eq < 0 ? '' : field.slice(eq + 1);
    if (!RULE_KEYS.has(key)) {
      // Not echoed: a field that is no rule may be the rest of a token written with a space, and tokens are secrets.
      throw new BurrowError(
        source.code,
        `${where}: field ${f + 2} is unknown; rules are allow=PATTERNS, tcp=RANGES, sessions=N, endpoints=N, and a token ` +
          'cannot contain spaces (the field is not shown, as it may be part of a token)',
      );
    }
    const bad = (expected: string): BurrowError =>
      new BurrowError(source.code, `${where}: ${source.name(key, value)} ${expected}`);
    if (seen.has(key)) throw bad(`repeats ${key}=; give each rule once (lists are comma-separated)`);
    seen.add(key);
    if (value === '') throw bad('has no value; rules are key=value (allow=, tcp=, sessions=, endpoints=)');
    switch (key) {
      case 'allow':
        allow = value.split(',').map((p) => {
          const problem = patternProblem(p);
          if (problem !== null) throw bad(`has a bad hostname pattern ${JSON.stringify(p)}: ${problem}`);
          return p.toLowerCase().replace(/\.$/, '');
        });
        break;
      case 'tcp':
        tcp = value.split(',').map((r) => {
          const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(r);
          const from = m === null ? NaN : Number(m[1]);
          const to = m === null ? NaN : Number(m[2] ?? m[1]);
          if (!(from >= 1 && to <= 65535 && from <= to)) throw bad(`has a bad port range ${JSON.stringify(r)}: expected a or a-b within 1..65535, a <= b`);
          return Object.freeze({ from, to });
        });
        break;
      case 'sessions':
      case 'endpoints': {
        const n = /^\d{1,6}$/.test(value) ? Number(value) : NaN;
        if (!(n >= 1 && n <= MAX_COUNT)) throw bad(`is not a whole number in 1..${MAX_COUNT}`);
        if (key === 'sessions') sessions = n;
        else endpoints = n;
        break;
      }
    }
  }
  return Object.freeze({
    allow: allow === null ? null : Object.freeze(allow),
    tcp: tcp === null ? null : Object.freeze(tcp),
    sessions,
    endpoints,
  });
}

/** What is wrong with a hostname pattern, or null. */
function patternProblem(p: string): string | null {
  const name = p.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > 253) return 'empty or longer than 253 characters';
  if (!name.split('.').every((l) => PATTERN_LABEL.test(l))) {
    return "labels are letters, digits, '-' and '*' (a '*' stands for one or more letters, digits or '-' within its label)";
  }
  return null;
}

/** The rules as rule fields for a tokens file line (inverse of parseTokenRules). */
export function formatTokenRules(r: TokenRules): string[] {
  const out: string[] = [];
  if (r.allow !== null) out.push(`allow=${r.allow.join(',')}`);
  if (r.tcp !== null) out.push(`tcp=${r.tcp.map((p) => (p.from === p.to ? `${p.from}` : `${p.from}-${p.to}`)).join(',')}`);
  if (r.sessions !== null) out.push(`sessions=${r.sessions}`);
  if (r.endpoints !== null) out.push(`endpoints=${r.endpoints}`);
  return out;
}

const compiled = new Map<string, RegExp>();

/** A pattern as an anchored regex: `*` → one or more of [a-z0-9-], so it never crosses a dot. Cached per pattern. */
function patternRegex(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (re === undefined) {
    const body = pattern
      .split('*')
      .map((s) => s.replace(/[.\\^$+?()[\]{}|-]/g, '\\$&'))
      .join('[a-z0-9-]+');
    re = new RegExp(`^${body}$`);
    if (compiled.size < 10_000) compiled.set(pattern, re);
  }
  return re;
}

/** May a token with `rules` bind `hostname` (lowercase, no trailing dot)? The domain check is the caller's. */
export function hostAllowed(rules: TokenRules, hostname: string): boolean {
  if (rules.allow === null) return true;
  for (const p of rules.allow) if (patternRegex(p).test(hostname)) return true;
  return false;
}

/** May a token with `rules` bind TCP port `port`? (The --tcp-ports check is the caller's.) */
export function portAllowed(rules: TokenRules, port: number): boolean {
  if (rules.tcp === null) return true;
  for (const r of rules.tcp) if (port >= r.from && port <= r.to) return true;
  return false;
}

/**
 * A hostname for a Bind that names none, within the token's patterns: the first pattern under `domain`, each `*`
 * replaced by `label()`. '' when the token has no restriction (the acceptor then picks a random name) or when no
 * pattern lies under the domain.
 */
export function hostnameForRandomBind(rules: TokenRules, domain: string, label: () => string): string {
  if (rules.allow === null) return '';
  const under = rules.allow.filter((p) => p.endsWith(`.${domain}`));
  const wild = under.find((p) => p.includes('*')) ?? under[0];
  return wild === undefined ? '' : wild.split('*').join(label());
}
