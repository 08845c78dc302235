// `burrow relay` flags → one frozen RelayConfig: a single table of flag specs (name, env var, default, parser, help)
// drives parsing, env defaults and the help text (DESIGN.md §5). Start-up only; never on the hot path.
import { mkdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { BurrowError } from '../core/errors.js';
import { checkReadableFile, quote } from './config-files.js';
import { BALANCE_STRATEGIES, isBalanceStrategy, type BalanceStrategy } from '../balancer/pick-member.js';
import { DEFAULT_LIMITS, STREAMS_PER_SESSION_CEILING, type RelayLimits } from './relay-limits.js';
import { loadRelayFile, relayFileKey } from './relay-file.js';

/** A listen address. `host` is bare (an IPv6 literal has no brackets); `port` 0 asks the OS for an ephemeral port. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Everything `burrow relay` needs to start. Deep-frozen; paths are absolute. */
export interface RelayConfig {
  /** Public base domain, lowercased, no trailing dot: endpoints are `<name>.<domain>`. */
  readonly domain: string;
  /** null = listener disabled (`off`). */
  readonly httpAddr: HostPort | null;
  readonly httpsAddr: HostPort | null;
  /** Always on: agents connect here (and also via the https listener with SNI `connect.<domain>`). */
  readonly agentAddr: HostPort;
  readonly adminAddr: HostPort | null;
  /** Bearer token for the admin server; required when adminAddr is not loopback. */
  readonly adminToken: string | null;
  /** false = `--metrics off`: nothing is recorded (the admin server still answers). */
  readonly metrics: boolean;
  /** `--metrics-per-endpoint on`: counters per endpoint hostname / TCP port (unbounded label set, so opt-in). */
  readonly metricsPerEndpoint: boolean;
  /** Inclusive port range for TCP endpoints. */
  readonly tcpPorts: { readonly from: number; readonly to: number };
  /** Host named in tcp:// URLs; bare (an IPv6 literal has no brackets — bracket it when building a URL). */
  readonly tcpHost: string;
  /** Worker threads, 1..64. */
  readonly workers: number;
  readonly dataDir: string;
  /** Both set or both null (null = dev CA + leaf generated in dataDir). */
  readonly certPath: string | null;
  readonly keyPath: string | null;
  /** null = a dev token is generated in dataDir. */
  readonly tokensFile: string | null;
  readonly prereadTimeoutMs: number;
  readonly prereadMax: number;
  /** 0 = TCP keepalive off. */
  readonly tcpKeepaliveMs: number;
  readonly graceMs: number;
  /** Balancing strategy for pools whose endpoints ask for none. */
  readonly lbStrategy: BalanceStrategy;
  /** How long a name or port stays reserved for its owner after its last endpoint left, ms (0 = not at all). */
  readonly reclaimGraceMs: number;
  /** Pool member breakers: open → half-open after this long, ms. */
  readonly breakerResetMs: number;
  /** Pool member breakers: an HTTP(S)/TLS connection with no first response byte after this long is a failure, ms. */
  readonly breakerTimeoutMs: number;
  /** Resource limits (docs/security.md §Limits). */
  readonly limits: Readonly<RelayLimits>;
  /**
   * `--help` / `-h` was given. Help wins over everything else on the command line: no other argument or env var is
   * read or validated, and every other field holds its built-in default.
   */
  readonly help: boolean;
}

const COMMAND = 'burrow relay';
const ENV_PREFIX = 'BURROW_RELAY_';
const MAX_WORKERS = 64;

// ── value parsers ────────────────────────────────────────────────────────────────────────────────────────────────
// Each takes the raw text and a label naming its source ("--tcp-ports", or "--tcp-ports (from BURROW_RELAY_TCP_PORTS)")
// and throws BURROW_ERR_CONFIG_INVALID saying: which flag, which value, what is expected.

function invalid(label: string, value: string, expected: string): BurrowError {
  return new BurrowError('BURROW_ERR_CONFIG_INVALID', `${label}: ${quote(value)} ${expected}`);
}

const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * RFC 1123 host name check on an already lowercased name without trailing dot. Returns what is wrong, or null.
 * Letters, digits, hyphens; labels 1..63 not starting or ending with '-'; total at most 253.
 */
function dnsNameProblem(name: string): string | null {
  if (/[^\x00-\x7f]/.test(name)) return 'is not an ASCII DNS name; write internationalised names in punycode (xn--...)';
  const rule = "is not a DNS name (letters, digits, '-' and '.'; labels of 1..63 characters not starting or ending with '-')";
  if (name.length === 0 || name.length > 253) return rule;
  const labels = name.split('.');
  if (!labels.every((l) => DNS_LABEL_RE.test(l))) return rule;
  // An all-numeric last label makes it an IP address to resolvers and browsers (RFC 3696 §2).
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return 'looks like an IP address, not a DNS name';
  return null;
}

/** Lowercases and drops one trailing root dot (RFC 1034 §3.1), then checks; throws naming `value` on failure. */
function parseDnsName(value: string, label: string, example: string): string {
  const name = value.toLowerCase().replace(/\.$/, '');
  const problem = dnsNameProblem(name);
  if (problem !== null) throw invalid(label, value, `${problem} (example: ${example})`);
  return name;
}

function parseDomain(value: string, label: string): string {
  return parseDnsName(value, label, 'burrow.example.com');
}

/**
 * Parses `host:port` (IPv6 as `[::1]:8080`) into a frozen HostPort. Port 0 is allowed (ephemeral). `flag` names the
 * input in error messages (`--http-addr`, a config key, ...). Throws BURROW_ERR_CONFIG_INVALID.
 */
export function parseHostPort(value: string, flag: string): HostPort {
  const example = 'example: 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080';
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0 || value[close + 1] !== ':') throw invalid(flag, value, `is not host:port (${example})`);
    host = value.slice(1, close);
    portText = value.slice(close + 2);
    if (isIP(host) !== 6) throw invalid(flag, value, `has no IPv6 address inside [ ] (${example})`);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) throw invalid(flag, value, `is not host:port; the port is missing (${example})`);
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) throw invalid(flag, value, `has an IPv6 address without brackets; write it as [addr]:port (${example})`);
    if (host === '') throw invalid(flag, value, `has no host; for all interfaces write 0.0.0.0:port or [::]:port (${example})`);
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw invalid(flag, value, `has no valid port: ${quote(portText)} is not a whole number 0..65535 (${example})`);
  }
  let bare = host.toLowerCase();
  if (isIP(bare) === 0) {
    bare = bare.replace(/\.$/, '');
    const problem = dnsNameProblem(bare);
    if (problem !== null) throw invalid(flag, value, `has a bad host: ${quote(host)} ${problem} (${example})`);
  }
  return Object.freeze({ host: bare, port: Number(portText) });
}

/** Loopback names and addresses: what an admin or metrics server may bind without a bearer token. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/**
 * A metrics/admin server bound off loopback must have a token (BURROW_ERR_ADMIN_TOKEN_REQUIRED). A rule across two
 * flags, checked while parsing so the command fails before it binds anything; the servers check again for API callers.
 */
export function requireTokenOffLoopback(addr: HostPort | null, token: string | null, addrFlag: string, tokenHint: string): void {
  if (addr === null || isLoopback(addr.host) || (token !== null && token !== '')) return;
  throw new BurrowError(
    'BURROW_ERR_ADMIN_TOKEN_REQUIRED',
    `${addrFlag} ${formatHostPort(addr)} is not a loopback address, so the server needs a token: pass ${tokenHint}, ` +
      `or bind ${addrFlag} to 127.0.0.1`,
  );
}

/** Formats a HostPort for messages and URLs: `127.0.0.1:8080`, `[::1]:8080`. */
export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

export function parseListenerOrOff(value: string, label: string): HostPort | null {
  if (value.toLowerCase() === 'off') return null;
  return parseHostPort(value, label);
}

function parseAgentAddr(value: string, label: string): HostPort {
  if (value.toLowerCase() === 'off') {
    throw invalid(label, value, 'is not allowed: the agent listener cannot be turned off (agents connect there); give host:port');
  }
  return parseHostPort(value, label);
}

function parseTcpPorts(value: string, label: string): { readonly from: number; readonly to: number } {
  const m = /^([0-9]{1,5})-([0-9]{1,5})$/.exec(value);
  const example = '(example: 20000-20999; one port: 20000-20000)';
  if (m === null) throw invalid(label, value, `is not a port range a-b ${example}`);
  const from = Number(m[1]);
  const to = Number(m[2]);
  if (from < 1 || to > 65535) throw invalid(label, value, `is not a range a-b within 1..65535 ${example}`);
  if (from > to) throw invalid(label, value, `is not a range a-b with a <= b (example: 20000-20999)`);
  return Object.freeze({ from, to });
}

/** A bearer token for an HTTP server that may be reachable off loopback (admin, agent metrics): long enough to guess. */
export function parseBearerToken(value: string, label: string): string {
  if (!/^[\x21-\x7e]{16,256}$/.test(value)) {
    // The value is a secret: say what is wrong with it, never echo it (errors end up in logs).
    throw new BurrowError(
      'BURROW_ERR_CONFIG_INVALID',
      `${label}: the value (${value.length} characters) is not a usable token: use 16 to 256 printable characters without spaces`,
    );
  }
  return value;
}

function parseOnOff(value: string, label: string): boolean {
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw invalid(label, value, 'is not on or off');
}

function parseTcpHost(value: string, label: string): string {
  const bare = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (isIP(bare) !== 0) return bare.toLowerCase();
  return parseDnsName(value, label, 'tcp.burrow.example.com or 203.0.113.7');
}

/** A whole number in [min, max]; digits only (no sign, exponent, unit or separator). */
export function intParser(min: number, max: number, unit: string, extra = ''): (value: string, label: string) => number {
  return (value, label) => {
    const n = /^[0-9]{1,10}$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) throw invalid(label, value, `is not a whole number of ${unit} in ${min}..${max}${extra}`);
    return n;
  };
}

function parseKeepalive(value: string, label: string): number {
  const n = /^[0-9]{1,10}$/.test(value) ? Number(value) : NaN;
  // Keepalive probes are scheduled in whole seconds by the kernel (TCP_KEEPIDLE), so below 1 s is not meaningful.
  if (!(n === 0 || (n >= 1000 && n <= 86_400_000))) {
    throw invalid(label, value, 'is not 0 (off) or a whole number of milliseconds in 1000..86400000');
  }
  return n;
}

function parseDir(value: string, label: string): string {
  if (value.trim() === '') throw invalid(label, value, 'is empty; give a directory path (example: ./.burrow)');
  return resolve(value);
}

function parseStrategy(value: string, label: string): BalanceStrategy {
  if (isBalanceStrategy(value)) return value;
  throw invalid(label, value, `is not a balancing strategy; use one of ${BALANCE_STRATEGIES.join(', ')}`);
}

/** An existing, readable regular file, as an absolute path. Unreadable → BURROW_ERR_CONFIG_FILE. */
function fileParser(what: string): (value: string, label: string) => string {
  return (value, label) => {
    if (value.trim() === '') throw invalid(label, value, `is empty; give the path of ${what}`);
    return checkReadableFile(resolve(value), label, what);
  };
}

// ── the flag table ───────────────────────────────────────────────────────────────────────────────────────────────

/** Mutable during parsing; frozen into RelayConfig at the end (the RelayLimits fields into `limits`). */
interface Draft extends RelayLimits {
  domain: string;
  httpAddr: HostPort | null;
  httpsAddr: HostPort | null;
  agentAddr: HostPort;
  adminAddr: HostPort | null;
  adminToken: string | null;
  metrics: boolean;
  metricsPerEndpoint: boolean;
  tcpPorts: { readonly from: number; readonly to: number };
  tcpHost: string | null;
  workers: number;
  dataDir: string;
  certPath: string | null;
  keyPath: string | null;
  tokensFile: string | null;
  prereadTimeoutMs: number;
  prereadMax: number;
  tcpKeepaliveMs: number;
  graceMs: number;
  lbStrategy: BalanceStrategy;
  reclaimGraceMs: number;
  breakerResetMs: number;
  breakerTimeoutMs: number;
}

interface FlagSpec<K extends keyof Draft> {
  /** Without the leading `--`. */
  readonly name: string;
  readonly key: K;
  /** Placeholder shown in help: `<host:port|off>`. */
  readonly arg: string;
  /** Default as the user would type it (run through `parse`), or null when computed (see `defaultText`). */
  readonly default: string | null;
  /** Help text for the default when `default` is null or needs explaining. */
  readonly defaultText?: string;
  readonly help: string;
  readonly parse: (value: string, label: string) => Draft[K];
  /** A secret (a token): messages never repeat the value. */
  readonly secret?: true;
}

type AnyFlagSpec = { [K in keyof Draft]: FlagSpec<K> }[keyof Draft];

/** Identity helper that keeps each spec's key and parser result tied together. */
function flag<K extends keyof Draft>(spec: FlagSpec<K>): AnyFlagSpec {
  return spec as unknown as AnyFlagSpec;
}

function defaultWorkers(): number {
  return Math.min(MAX_WORKERS, Math.max(1, availableParallelism()));
}

const FLAGS: readonly AnyFlagSpec[] = [
  flag({ name: 'domain', key: 'domain', arg: '<name>', default: 'burrow.localhost', parse: parseDomain,
    help: 'public base domain; endpoints are <name>.<domain> (*.localhost resolves to loopback in curl and browsers)' }),
  flag({ name: 'http-addr', key: 'httpAddr', arg: '<host:port|off>', default: '127.0.0.1:8080', parse: parseListenerOrOff,
    help: 'public HTTP listener' }),
  flag({ name: 'https-addr', key: 'httpsAddr', arg: '<host:port|off>', default: '127.0.0.1:8443', parse: parseListenerOrOff,
    help: 'public TLS listener (HTTPS and TLS endpoints, agents via SNI connect.<domain>)' }),
  flag({ name: 'agent-addr', key: 'agentAddr', arg: '<host:port>', default: '127.0.0.1:4443', parse: parseAgentAddr,
    help: 'listener agents connect to (TLS); cannot be off' }),
  flag({ name: 'admin-addr', key: 'adminAddr', arg: '<host:port|off>', default: '127.0.0.1:9090', parse: parseListenerOrOff,
    help: 'admin server: /metrics, /healthz, /readyz, /api/sessions, /api/endpoints (off-loopback needs --admin-token)' }),
  flag({ name: 'admin-token', key: 'adminToken', arg: '<token>', default: null, parse: parseBearerToken, secret: true,
    defaultText: 'none (allowed only while --admin-addr is loopback)',
    help: 'bearer token the admin server requires (Authorization: Bearer <token>)' }),
  flag({ name: 'metrics', key: 'metrics', arg: '<on|off>', default: 'on', parse: parseOnOff,
    help: 'record latency histograms and counters (off: /metrics reports zeros; for overhead measurements)' }),
  flag({ name: 'metrics-per-endpoint', key: 'metricsPerEndpoint', arg: '<on|off>', default: 'off', parse: parseOnOff,
    help: 'also count connections, requests and bytes per endpoint hostname (labels grow with endpoints; at most 1000 per worker)' }),
  flag({ name: 'tcp-ports', key: 'tcpPorts', arg: '<a-b>', default: '20000-20999', parse: parseTcpPorts,
    help: 'port range for TCP endpoints (bound on the --http-addr host)' }),
  flag({ name: 'tcp-host', key: 'tcpHost', arg: '<host>', default: null, parse: parseTcpHost,
    defaultText: 'host of --http-addr; --domain if that is 0.0.0.0 or ::',
    help: 'host named in tcp:// endpoint URLs' }),
  flag({ name: 'workers', key: 'workers', arg: '<n>', default: null, parse: intParser(1, MAX_WORKERS, 'worker threads'),
    defaultText: `number of cores, at most ${MAX_WORKERS} (${defaultWorkers()} here)`,
    help: 'worker threads owning agent sessions and public sockets' }),
  flag({ name: 'data-dir', key: 'dataDir', arg: '<dir>', default: './.burrow', parse: parseDir,
    help: 'where the dev CA, dev certificate and dev token are kept' }),
  flag({ name: 'cert', key: 'certPath', arg: '<file>', default: null, parse: fileParser('a PEM certificate (chain) file'),
    defaultText: 'none: a dev CA and wildcard certificate are generated in --data-dir',
    help: 'TLS certificate (PEM) for the https and agent listeners; needs --key' }),
  flag({ name: 'key', key: 'keyPath', arg: '<file>', default: null, parse: fileParser('a PEM private key file'),
    defaultText: 'none', help: 'private key (PEM) for --cert' }),
  flag({ name: 'tokens', key: 'tokensFile', arg: '<file>', default: null, parse: fileParser('a tokens file (one token or sha256: hash per line, optionally with rules)'),
    defaultText: 'none: a dev token is generated in --data-dir and printed',
    help: 'agent auth tokens, one per line: a token (16-256 characters) or sha256:<hex>, optionally with rules (docs/security.md); # starts a comment line' }),
  flag({ name: 'preread-timeout', key: 'prereadTimeoutMs', arg: '<ms>', default: '5000',
    parse: intParser(1, 600_000, 'milliseconds'),
    help: 'deadline for a public client to send its TLS ClientHello or HTTP request head' }),
  flag({ name: 'preread-max', key: 'prereadMax', arg: '<bytes>', default: '16384', parse: intParser(1024, 65536, 'bytes'),
    help: 'most bytes read before routing a public connection' }),
  flag({ name: 'tcp-keepalive', key: 'tcpKeepaliveMs', arg: '<ms>', default: '30000', parse: parseKeepalive,
    help: 'TCP keepalive idle time on public and agent sockets; 0 turns it off' }),
  flag({ name: 'grace', key: 'graceMs', arg: '<ms>', default: '10000', parse: intParser(0, 3_600_000, 'milliseconds'),
    help: 'on shutdown, how long sessions may drain before they are cut' }),
  flag({ name: 'lb-strategy', key: 'lbStrategy', arg: `<${BALANCE_STRATEGIES.join('|')}>`, default: 'random', parse: parseStrategy,
    help: 'how a pooled URL picks an agent for each connection, unless the endpoint asks for its own' }),
  flag({ name: 'reclaim-grace', key: 'reclaimGraceMs', arg: '<ms>', default: '30000', parse: intParser(0, 86_400_000, 'milliseconds'),
    help: 'after its last agent leaves, a hostname or TCP port stays reserved this long for the same auth token' }),
  flag({ name: 'breaker-reset', key: 'breakerResetMs', arg: '<ms>', default: '5000', parse: intParser(100, 600_000, 'milliseconds'),
    help: 'a pool member whose breaker opened gets a probe connection after this long' }),
  flag({ name: 'breaker-timeout', key: 'breakerTimeoutMs', arg: '<ms>', default: '15000', parse: intParser(100, 600_000, 'milliseconds'),
    help: 'a pooled HTTP(S) or TLS connection without a first response byte this long after its first request was sent whole (TLS: after the handoff) counts as a failure of its member (not TCP)' }),
  // ── limits (docs/security.md §Limits) ──
  flag({ name: 'max-sessions-per-token', key: 'maxSessionsPerToken', arg: '<n>', default: String(DEFAULT_LIMITS.maxSessionsPerToken),
    parse: intParser(1, 100_000, 'sessions'), help: "live agent sessions per token across the relay (a token's sessions= rule overrides it)" }),
  flag({ name: 'max-endpoints-per-session', key: 'maxEndpointsPerSession', arg: '<n>', default: String(DEFAULT_LIMITS.maxEndpointsPerSession),
    parse: intParser(1, 100_000, 'endpoints'), help: "endpoints one agent session may bind (a token's endpoints= rule overrides it)" }),
  flag({ name: 'max-tcp-ports-per-token', key: 'maxTcpPortsPerToken', arg: '<n>', default: String(DEFAULT_LIMITS.maxTcpPortsPerToken),
    parse: intParser(1, 65_535, 'ports'), help: 'TCP ports one token may hold across the relay, ports held for it after its agents left included' }),
  flag({ name: 'max-streams-per-session', key: 'maxStreamsPerSession', arg: '<n>', default: String(DEFAULT_LIMITS.maxStreamsPerSession),
    parse: intParser(1, STREAMS_PER_SESSION_CEILING, 'streams', ' (the ngrok SDK drops a session above 512 live streams)'),
    help: 'public connections carried at once by one agent session; more are refused (HTTP: 502 page)' }),
  flag({ name: 'max-conns-per-endpoint', key: 'maxConnsPerEndpoint', arg: '<n>', default: String(DEFAULT_LIMITS.maxConnsPerEndpoint),
    parse: intParser(1, 10_000_000, 'connections'), help: 'open public connections per endpoint; more are refused (HTTP: 503 page)' }),
  flag({ name: 'max-conns-per-ip', key: 'maxConnsPerIp', arg: '<n>', default: String(DEFAULT_LIMITS.maxConnsPerIp),
    parse: intParser(1, 10_000_000, 'connections'), help: 'open connections per client IP address on all listeners; more are closed at accept' }),
  flag({ name: 'http-head-max', key: 'httpHeadMax', arg: '<bytes>', default: String(DEFAULT_LIMITS.httpHeadMax),
    parse: intParser(1024, 1024 * 1024, 'bytes'), help: 'largest HTTP request head after the first on a connection (431 above; the first is bounded by --preread-max)' }),
  flag({ name: 'http-head-timeout', key: 'httpHeadTimeoutMs', arg: '<ms>', default: String(DEFAULT_LIMITS.httpHeadTimeoutMs),
    parse: intParser(100, 600_000, 'milliseconds'), help: 'deadline for a started HTTP request head to complete (slowloris; 408 after)' }),
  flag({ name: 'idle-timeout', key: 'idleTimeoutMs', arg: '<ms>', default: String(DEFAULT_LIMITS.idleTimeoutMs),
    parse: intParser(0, 86_400_000, 'milliseconds', ' (0 = never)'), help: 'close an HTTP(S) connection after this long without bytes either way; 0 turns it off' }),
  flag({ name: 'tcp-idle-timeout', key: 'tcpIdleTimeoutMs', arg: '<ms>', default: String(DEFAULT_LIMITS.tcpIdleTimeoutMs),
    parse: intParser(0, 86_400_000, 'milliseconds', ' (0 = never)'),
    help: 'close a TCP or TLS-passthrough endpoint connection after this long without bytes either way; 0 (default) = never' }),
  flag({ name: 'rpc-max', key: 'rpcMax', arg: '<bytes>', default: String(DEFAULT_LIMITS.rpcMax),
    parse: intParser(4096, 16 * 1024 * 1024, 'bytes'), help: 'largest RPC message (Auth, Bind, ...) accepted from an agent' }),
  flag({ name: 'auth-fail-limit', key: 'authFailuresPerMinute', arg: '<n>', default: String(DEFAULT_LIMITS.authFailuresPerMinute),
    parse: intParser(1, 100_000, 'failures per minute'), help: 'failed agent authentications per IP per minute before Auth from that IP is refused for a while' }),
];

const FLAGS_BY_NAME: ReadonlyMap<string, AnyFlagSpec> = new Map(FLAGS.map((f) => [f.name, f]));

/** Settings that are paths: in a config file, relative to the file's directory. */
const PATH_KEYS: ReadonlySet<keyof Draft> = new Set<keyof Draft>(['dataDir', 'certPath', 'keyPath', 'tokensFile']);
/** The config file: `--config FILE` or this variable (not a setting itself, so not in FLAGS). */
const CONFIG_ENV = `${ENV_PREFIX}CONFIG`;

/** `http-addr` → `BURROW_RELAY_HTTP_ADDR`. */
function envName(name: string): string {
  return ENV_PREFIX + name.toUpperCase().replace(/-/g, '_');
}

function builtInDraft(): Draft {
  const d = {
    tcpHost: null,
    adminToken: null,
    workers: defaultWorkers(),
    certPath: null,
    keyPath: null,
    tokensFile: null,
  } as Partial<Draft> as Record<keyof Draft, unknown>;
  for (const f of FLAGS) {
    if (f.default !== null) d[f.key] = f.parse(f.default, `default of --${f.name}`);
  }
  return d as unknown as Draft;
}

/** Parses the arguments after `burrow relay` (env vars BURROW_RELAY_* give defaults that flags override). */
export function parseRelayArgs(argv: string[], env: NodeJS.ProcessEnv = process.env, command = COMMAND): RelayConfig {
  if (argv.some((a) => a === '--help' || a === '-h')) return finish(builtInDraft(), true);

  const draft = builtInDraft();
  const set = new Map<keyof Draft, string>(); // key → label of the source that set it (for cross-field messages)

  // 0. The config file (--config FILE or BURROW_RELAY_CONFIG): below the environment and the flags. A value either of
  // them overrides is not used, so not judged (a file shared by several relays may hold one that is wrong here).
  const { configFile, args } = takeConfigArg(argv, env, command);
  argv = args;
  if (configFile !== null) {
    const named = new Set(argv.filter((a) => a.startsWith('--')).map((a) => a.slice(2, a.includes('=') ? a.indexOf('=') : undefined)));
    const file = loadRelayFile(
      configFile.path,
      FLAGS.map((f) => relayFileKey(f.name)),
      new Set(FLAGS.filter((f) => f.secret === true).map((f) => relayFileKey(f.name))),
    );
    for (const f of FLAGS) {
      const v = file.get(relayFileKey(f.name));
      if (v === undefined || named.has(f.name) || (env[envName(f.name)] ?? '') !== '') continue;
      const value = PATH_KEYS.has(f.key) && v.value.trim() !== '' && !isAbsolute(v.value) ? resolve(dirname(configFile.path), v.value) : v.value;
      (draft as unknown as Record<string, unknown>)[f.key] = f.parse(value, v.label);
      set.set(f.key, v.label);
    }
  }

  // 1. Environment: defaults that flags override. An empty variable counts as unset.
  for (const f of FLAGS) {
    const name = envName(f.name);
    const value = env[name];
    if (value === undefined || value === '') continue;
    const label = `--${f.name} (from ${name})`;
    (draft as unknown as Record<string, unknown>)[f.key] = f.parse(value, label);
    set.set(f.key, label);
  }

  // 2. Flags: `--flag value` or `--flag=value`; each at most once.
  const seen = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      throw new BurrowError(
        'BURROW_ERR_CONFIG_INVALID',
        `unexpected argument ${quote(arg)} for '${command}': it takes only --flags; run '${command} --help'`,
      );
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = FLAGS_BY_NAME.get(name);
    if (spec === undefined) {
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `unknown flag --${name} for '${command}'; run '${command} --help'`);
    }
    let value: string;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        throw new BurrowError(
          'BURROW_ERR_CONFIG_INVALID',
          `--${name} needs a value ${spec.arg}; write --${name} ${spec.arg} or --${name}=${spec.arg}`,
        );
      }
      value = next;
      i++;
    }
    const previous = seen.get(name);
    if (previous !== undefined) {
      throw new BurrowError(
        'BURROW_ERR_CONFIG_INVALID',
        spec.secret === true
          ? `--${name} was given twice; give it once`
          : `--${name} was given twice (${quote(previous)} and ${quote(value)}); give it once`,
      );
    }
    seen.set(name, value);
    (draft as unknown as Record<string, unknown>)[spec.key] = spec.parse(value, `--${name}`);
    set.set(spec.key, `--${name}`);
  }

  // 3. Rules that span flags.
  if ((draft.certPath === null) !== (draft.keyPath === null)) {
    const given = draft.certPath !== null ? set.get('certPath')! : set.get('keyPath')!;
    const missing = draft.certPath !== null ? '--key' : '--cert';
    throw new BurrowError(
      'BURROW_ERR_CONFIG_INVALID',
      `${given} was given without ${missing}: give both --cert and --key, or neither to use the generated dev certificate`,
    );
  }
  checkListenerConflicts(draft, (key) => set.get(key));
  requireTokenOffLoopback(draft.adminAddr, draft.adminToken, '--admin-addr', '--admin-token (or BURROW_RELAY_ADMIN_TOKEN)');
  return finish(draft, false);
}

/**
 * The config file named by `--config FILE` / `--config=FILE` (at most once) or BURROW_RELAY_CONFIG, checked to be a
 * readable file, and the arguments without it.
 */
function takeConfigArg(argv: string[], env: NodeJS.ProcessEnv, command: string): { configFile: { path: string } | null; args: string[] } {
  const args: string[] = [];
  let value: string | null = null;
  let label = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a !== '--config' && !a.startsWith('--config=')) {
      args.push(a);
      continue;
    }
    if (value !== null) throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `--config was given twice; give it once`);
    if (a === '--config') {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `--config needs a value <file>; write --config relay.yml (run '${command} --help')`);
      }
      value = next;
      i++;
    } else {
      value = a.slice('--config='.length);
    }
    label = '--config';
  }
  if (value === null && (env[CONFIG_ENV] ?? '') !== '') {
    value = env[CONFIG_ENV]!;
    label = `--config (from ${CONFIG_ENV})`;
  }
  if (value === null) return { configFile: null, args };
  if (value.trim() === '') throw invalid(label, value, 'is empty; give the path of a relay YAML file');
  return { configFile: { path: checkReadableFile(resolve(value), label, 'a relay YAML file') }, args };
}

const LISTENERS: ReadonlyArray<{ key: 'httpAddr' | 'httpsAddr' | 'agentAddr' | 'adminAddr'; flag: string }> = [
  { key: 'httpAddr', flag: '--http-addr' },
  { key: 'httpsAddr', flag: '--https-addr' },
  { key: 'agentAddr', flag: '--agent-addr' },
  { key: 'adminAddr', flag: '--admin-addr' },
];

/**
 * Two listeners on one port, or a listener port inside --tcp-ports, would fail at bind time (BURROW_ERR_RELAY_LISTEN) with
 * a less helpful message; catch it here. Port 0 never conflicts (the OS picks distinct ports).
 */
function checkListenerConflicts(d: Draft, sourceOf: (key: keyof Draft) => string | undefined): void {
  // "--http-addr 127.0.0.1:8080", "--agent-addr 127.0.0.1:4443 (default)", "--http-addr (from BURROW_...) ..."
  const describe = (key: keyof Draft, flagName: string, value: string): string => {
    const source = sourceOf(key);
    return source === undefined ? `${flagName} ${value} (default)` : `${source} ${value}`;
  };
  const active = LISTENERS.flatMap((l) => {
    const hp = d[l.key];
    return hp === null || hp.port === 0 ? [] : [{ ...l, hp }];
  });
  for (let i = 0; i < active.length; i++) {
    for (let j = i + 1; j < active.length; j++) {
      const a = active[i]!;
      const b = active[j]!;
      if (a.hp.port === b.hp.port && (a.hp.host === b.hp.host || isWildcard(a.hp.host) || isWildcard(b.hp.host))) {
        throw new BurrowError(
          'BURROW_ERR_CONFIG_INVALID',
          `${describe(a.key, a.flag, formatHostPort(a.hp))} and ${describe(b.key, b.flag, formatHostPort(b.hp))} ` +
            'use the same port; give each listener its own port, or turn one off',
        );
      }
    }
  }
  const range = `${d.tcpPorts.from}-${d.tcpPorts.to}`;
  for (const a of active) {
    if (a.hp.port >= d.tcpPorts.from && a.hp.port <= d.tcpPorts.to) {
      throw new BurrowError(
        'BURROW_ERR_CONFIG_INVALID',
        `${describe(a.key, a.flag, formatHostPort(a.hp))} has a port inside ${describe('tcpPorts', '--tcp-ports', range)}` +
          ', where TCP endpoints listen; move the listener or the TCP port range',
      );
    }
  }
}

/** The unspecified address (0.0.0.0, ::, 0:0::0, ...): binds every interface, names none. */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || (isIP(host) === 6 && /^[0:]+$/.test(host));
}

function finish(d: Draft, help: boolean): RelayConfig {
  // tcp:// URLs must name a host clients can reach: the bind host, unless that is a wildcard address.
  const bindHost = (d.httpAddr ?? d.httpsAddr ?? d.agentAddr).host;
  const tcpHost = d.tcpHost ?? (isWildcard(bindHost) ? d.domain : bindHost);
  return Object.freeze({
    domain: d.domain,
    httpAddr: d.httpAddr,
    httpsAddr: d.httpsAddr,
    agentAddr: d.agentAddr,
    adminAddr: d.adminAddr,
    adminToken: d.adminToken,
    metrics: d.metrics,
    metricsPerEndpoint: d.metricsPerEndpoint,
    tcpPorts: d.tcpPorts,
    tcpHost,
    workers: d.workers,
    dataDir: d.dataDir,
    certPath: d.certPath,
    keyPath: d.keyPath,
    tokensFile: d.tokensFile,
    prereadTimeoutMs: d.prereadTimeoutMs,
    prereadMax: d.prereadMax,
    tcpKeepaliveMs: d.tcpKeepaliveMs,
    graceMs: d.graceMs,
    lbStrategy: d.lbStrategy,
    reclaimGraceMs: d.reclaimGraceMs,
    breakerResetMs: d.breakerResetMs,
    breakerTimeoutMs: d.breakerTimeoutMs,
    limits: Object.freeze(Object.fromEntries(Object.keys(DEFAULT_LIMITS).map((k) => [k, d[k as keyof RelayLimits]])) as unknown as RelayLimits),
    help,
  });
}

/** Help for `burrow relay --help`: every flag with its default and env var, generated from the flag table. */
export function relayHelpText(): string {
  const rows = [
    {
      left: '  --config <file>',
      lines: [
        'YAML file of settings: the flags below as keys with _ for - (http_addr: 127.0.0.1:8080, max_conns_per_ip: 500);',
        'relative paths in it are relative to the file',
        'default: none',
        `env: ${CONFIG_ENV}`,
      ],
    },
    ...FLAGS.map((f) => ({
      left: `  --${f.name} ${f.arg}`,
      lines: [f.help, `default: ${f.defaultText ?? f.default}`, `env: ${envName(f.name)}`, `config file: ${relayFileKey(f.name)}`],
    })),
  ];
  rows.push({ left: '  --help, -h', lines: ['show this text'] });
  const width = Math.max(...rows.map((r) => r.left.length)) + 2;
  const body = rows
    .map((r) => r.lines.map((line, i) => (i === 0 ? r.left.padEnd(width) : ' '.repeat(width)) + line).join('\n'))
    .join('\n');
  return (
    `Usage: ${COMMAND} [flags]\n\n` +
    'Runs the relay: the public edge that agents connect to.\n' +
    'Flags take a value as --flag value or --flag=value. Each flag can also be set by its environment variable or\n' +
    'a --config file key. Precedence: flag, then environment variable, then config file, then default. Listeners\n' +
    'marked |off can be disabled with the value off.\n\n' +
    `Flags:\n${body}\n`
  );
}

/**
 * Creates the data dir (and missing parents) with mode 0700 — it holds the dev CA key and the dev token. An existing
 * directory is left as it is. Throws BURROW_ERR_CONFIG_FILE naming the path when it cannot be made or is not a dir.
 */
export async function ensureDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'exists but is not a directory' : `cannot be created (${code})`;
    throw new BurrowError(
      'BURROW_ERR_CONFIG_FILE',
      `data dir ${quote(dataDir)} ${why}; give --data-dir a directory burrow may write to`,
      { cause: err },
    );
  }
}
