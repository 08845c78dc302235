// `burrow http|tcp|tls <upstream>` and `burrow start --config burrow.yml [names…]` → one frozen AgentConfig. A single
// table of flag specs (name, env var, config-file key, parser, help) drives flags, environment, the file's `agent:`
// section and the help text (DESIGN.md §5). Precedence: flag > environment > config file > default.
// The YAML file is validated once, with messages naming the file, line, key and what is wrong. Start-up only.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, type Node as YamlNode, type Pair, type YAMLMap } from 'yaml';
import { endpointSpec, type EndpointInput, type EndpointKind, type EndpointSpec } from '../agent/endpoint-spec.js';
import { BurrowError } from '../core/errors.js';
import { checkReadableFile, quote, readYamlFile } from './config-files.js';
import { intParser, parseBearerToken, parseListenerOrOff, requireTokenOffLoopback, type HostPort } from './relay-config.js';

export type AgentCommand = 'http' | 'tcp' | 'tls' | 'start';

export interface ServerAddr {
  readonly host: string;
  readonly port: number;
}

/** Everything the agent CLI needs. Deep-frozen; paths absolute. */
export interface AgentConfig {
  readonly command: AgentCommand;
  readonly server: ServerAddr;
  readonly authtoken: string;
  /** --ca file and its PEM text; null = the system roots. */
  readonly caPath: string | null;
  readonly caPem: string | null;
  /** On SIGINT/SIGTERM, how long open connections may finish, ms. */
  readonly graceMs: number;
  /** Where the agent serves its own /metrics; null = off (the default). */
  readonly metricsAddr: HostPort | null;
  /** Bearer token for that server; required when metricsAddr is not loopback. */
  readonly metricsToken: string | null;
  readonly endpoints: readonly EndpointSpec[];
  /** The config file read (`start`), else null. */
  readonly configFile: string | null;
  /** `--help` / `-h` was given: nothing else was read or validated. */
  readonly help: boolean;
}

export const DEFAULT_SERVER = 'localhost:4443';
export const DEFAULT_CONFIG_FILE = 'burrow.yml';

// ── value parsers: (raw text, label naming its source) → value; throw BURROW_ERR_CONFIG_INVALID / _FILE ───────────


function invalid(label: string, value: string, expected: string): BurrowError {
  return new BurrowError('BURROW_ERR_CONFIG_INVALID', `${label}: ${quote(value)} ${expected}`);
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function parseServer(value: string, label: string): ServerAddr {
  const example = '(example: localhost:4443, relay.example.com:4443 or [::1]:4443)';
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(value.trim());
  if (m === null) throw invalid(label, value, `is not host:port ${example}`);
  const host = (m[1] ?? m[2] ?? '').toLowerCase();
  if (m[1] !== undefined && isIP(host) !== 6) throw invalid(label, value, `has no IPv6 address inside [ ] ${example}`);
  if (host === '') throw invalid(label, value, `has no host ${example}`);
  if (isIP(host) === 0) {
    const h = host.replace(/\.$/, '');
    if (h.length > 253 || !h.split('.').every((l) => DNS_LABEL.test(l))) throw invalid(label, value, `has a bad host name ${example}`);
  }
  const port = /^[0-9]{1,5}$/.test(m[3]!) ? Number(m[3]) : NaN;
  if (!(port >= 1 && port <= 65535)) throw invalid(label, value, `has no valid port (1..65535) ${example}`);
  return Object.freeze({ host: host.replace(/\.$/, ''), port });
}

function parseToken(value: string, label: string): string {
  const t = value.trim();
  if (t === '') throw invalid(label, value, 'is empty; pass the token the relay printed at start-up');
  if (!/^[\x21-\x7e]+$/.test(t)) throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${label}: the token contains spaces, control or non-ASCII characters`);
  return t;
}

const parseGrace = intParser(0, 3_600_000, 'milliseconds');

/** A readable regular file → absolute path. Relative paths resolve against `base` (the config file's directory). */
function parseFile(value: string, label: string, what: string, base = process.cwd()): string {
  if (value.trim() === '') throw invalid(label, value, `is empty; give the path of ${what}`);
  return checkReadableFile(resolve(base, value), label, what);
}

function readCa(path: string, label: string): string {
  const pem = readFileSync(path, 'utf8');
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${label}: ${quote(path)} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the relay's CA file, e.g. .burrow/ca.pem`);
  }
  return pem;
}

// ── the flag table ───────────────────────────────────────────────────────────────────────────────────────────────

interface Draft {
  url: string | null;
  server: ServerAddr;
  authtoken: string | null;
  caPath: string | null;
  pool: boolean;
  lb: string | null;
  basicAuth: string | null;
  allowCidrs: string | null;
  denyCidrs: string | null;
  proxyProto: string | null;
  requestHeaderAdd: string[] | null;
  requestHeaderRemove: string[] | null;
  responseHeaderAdd: string[] | null;
  responseHeaderRemove: string[] | null;
  graceMs: number;
  metricsAddr: HostPort | null;
  metricsToken: string | null;
  configFile: string;
}

interface FlagSpec {
  /** Without the leading `--`. */
  readonly name: string;
  readonly key: keyof Draft;
  /** Placeholder in help; null for a boolean switch (no value). */
  readonly arg: string | null;
  readonly commands: readonly AgentCommand[];
  readonly env: string | null;
  /** Key under `agent:` in the config file. */
  readonly fileKey: string | null;
  readonly defaultText: string;
  readonly help: string;
  readonly parse: (value: string, label: string, base?: string) => unknown;
  /**
   * May be given several times: the Draft key gets the list of values in order (true), or one comma-separated list
   * of them all ('join': --allow-cidr A --allow-cidr B is --allow-cidr A,B, as ngrok's --cidr-allow repeats).
   */
  readonly repeat?: true | 'join';
}

const ENDPOINT_COMMANDS: readonly AgentCommand[] = ['http', 'tcp', 'tls'];
const ALL_COMMANDS: readonly AgentCommand[] = ['http', 'tcp', 'tls', 'start'];

const FLAGS: readonly FlagSpec[] = [
  { name: 'url', key: 'url', arg: '<url>', commands: ENDPOINT_COMMANDS, env: null, fileKey: null,
    defaultText: 'a random name (http, tls) or port (tcp) chosen by the relay',
    help: 'public URL wanted: http://name.<domain> (or https://), tls://name.<domain>, tcp:// or tcp://host:port',
    parse: (v) => v },
  { name: 'server', key: 'server', arg: '<host:port>', commands: ALL_COMMANDS, env: 'BURROW_SERVER', fileKey: 'server_addr',
    defaultText: DEFAULT_SERVER, help: "the relay's agent address (its --agent-addr)", parse: parseServer },
  { name: 'authtoken', key: 'authtoken', arg: '<token>', commands: ALL_COMMANDS, env: 'BURROW_AUTHTOKEN', fileKey: 'authtoken',
    defaultText: 'none (required)', help: 'auth token the relay accepts (a dev relay prints one and keeps it in .burrow/dev-token)',
    parse: parseToken },
  { name: 'ca', key: 'caPath', arg: '<file>', commands: ALL_COMMANDS, env: 'BURROW_CA', fileKey: 'ca',
    defaultText: 'the system roots', help: "PEM CA to trust for the relay's certificate (a dev relay's .burrow/ca.pem)",
    // Checked here, where the label says where the value came from (flag, BURROW_CA, file line); finish() reads it.
    parse: (v, l, base) => {
      const path = parseFile(v, l, 'a PEM CA certificate file', base);
      readCa(path, l);
      return path;
    } },
  { name: 'pool', key: 'pool', arg: null, commands: ENDPOINT_COMMANDS, env: null, fileKey: null, defaultText: 'off',
    help: 'share the URL with other agents that also pass --pool (same auth token): the relay balances connections between them',
    parse: () => true },
  { name: 'lb', key: 'lb', arg: '<strategy>', commands: ENDPOINT_COMMANDS, env: null, fileKey: null, defaultText: "the relay's --lb-strategy",
    help: 'balancing for a pooled URL: random, round-robin, least-outstanding or p2c-ewma (the first member sets it)',
    parse: (v) => v },
  { name: 'basic-auth', key: 'basicAuth', arg: '<user:password>', commands: ['http'], env: null, fileKey: null, defaultText: 'none',
    help: 'the relay asks every request for this user name and password (401 otherwise); use the https URL, the password is plain on http',
    parse: (v) => v },
  { name: 'allow-cidr', key: 'allowCidrs', arg: '<net[,net…]>', commands: ENDPOINT_COMMANDS, env: null, fileKey: null, defaultText: 'any address',
    help: 'only clients from these networks (10.0.0.0/8, 192.0.2.7, 2001:db8::/32) reach the service; others get 403 (http) or are closed; repeatable',
    parse: (v) => v, repeat: 'join' },
  { name: 'deny-cidr', key: 'denyCidrs', arg: '<net[,net…]>', commands: ENDPOINT_COMMANDS, env: null, fileKey: null, defaultText: 'none',
    help: 'clients from these networks are refused (wins over --allow-cidr); repeatable', parse: (v) => v, repeat: 'join' },
  { name: 'proxy-proto', key: 'proxyProto', arg: '<1|2>', commands: ENDPOINT_COMMANDS, env: null, fileKey: null, defaultText: 'off',
    help: 'the service reads a PROXY protocol header (1: text, 2: binary) with the client address before each connection\'s bytes',
    parse: (v) => v },
  { name: 'request-header-add', key: 'requestHeaderAdd', arg: "<'Name: value'>", commands: ['http'], env: null, fileKey: null, defaultText: 'none',
    help: 'the relay adds this field to every request (repeat the flag for more)', parse: (v) => v, repeat: true },
  { name: 'request-header-remove', key: 'requestHeaderRemove', arg: '<name>', commands: ['http'], env: null, fileKey: null, defaultText: 'none',
    help: 'the relay removes this field from every request (repeat the flag for more)', parse: (v) => v, repeat: true },
  { name: 'response-header-add', key: 'responseHeaderAdd', arg: "<'Name: value'>", commands: ['http'], env: null, fileKey: null, defaultText: 'none',
    help: 'the relay adds this field to every response (repeat the flag for more)', parse: (v) => v, repeat: true },
  { name: 'response-header-remove', key: 'responseHeaderRemove', arg: '<name>', commands: ['http'], env: null, fileKey: null, defaultText: 'none',
    help: 'the relay removes this field from every response (repeat the flag for more)', parse: (v) => v, repeat: true },
  { name: 'grace', key: 'graceMs', arg: '<ms>', commands: ALL_COMMANDS, env: null, fileKey: 'grace_ms', defaultText: '10000',
    help: 'on SIGINT/SIGTERM: stop taking connections, let open ones finish for this long, then exit', parse: parseGrace },
  { name: 'metrics-addr', key: 'metricsAddr', arg: '<host:port|off>', commands: ALL_COMMANDS, env: 'BURROW_METRICS_ADDR',
    fileKey: 'metrics_addr', defaultText: 'off',
    help: "serve the agent's own Prometheus /metrics (relay RTT, upstream dial, TTFB) here; off-loopback needs --metrics-token",
    parse: parseListenerOrOff },
  { name: 'metrics-token', key: 'metricsToken', arg: '<token>', commands: ALL_COMMANDS, env: 'BURROW_METRICS_TOKEN',
    fileKey: 'metrics_token', defaultText: 'none', help: 'bearer token the --metrics-addr server requires (16 to 256 printable characters)', parse: parseBearerToken },
  { name: 'config', key: 'configFile', arg: '<file>', commands: ['start', 'http', 'tcp', 'tls'], env: null, fileKey: null, defaultText: DEFAULT_CONFIG_FILE,
    help: 'YAML file with an agent: section and an endpoints: list (see README "Agent")', parse: (v) => v },
];

const FLAGS_BY_NAME: ReadonlyMap<string, FlagSpec> = new Map(FLAGS.map((f) => [f.name, f]));

/** Parses the arguments after `burrow <command>`. Throws BurrowError naming the flag, variable or file key. */
export function parseAgentArgs(command: AgentCommand, argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const draft: Draft = {
    url: null,
    server: parseServer(DEFAULT_SERVER, 'default of --server'),
    authtoken: null,
    caPath: null,
    pool: false,
    lb: null,
    basicAuth: null,
    allowCidrs: null,
    denyCidrs: null,
    proxyProto: null,
    requestHeaderAdd: null,
    requestHeaderRemove: null,
    responseHeaderAdd: null,
    responseHeaderRemove: null,
    graceMs: 10_000,
    metricsAddr: null,
    metricsToken: null,
    configFile: DEFAULT_CONFIG_FILE,
  };
  if (argv.some((a) => a === '--help' || a === '-h')) return finish(command, draft, [], null, true);
  const usage = `run 'burrow ${command} --help'`;

  // 1. Flags (collected first: they win, and --config names the file read in step 3).
  const given = new Map<FlagSpec, string[]>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = FLAGS_BY_NAME.get(name);
    if (spec === undefined || !spec.commands.includes(command)) {
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `unknown flag --${name} for 'burrow ${command}'; ${usage}`);
    }
    let value: string;
    if (spec.arg === null) {
      if (eq >= 0) throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `--${name} takes no value; write just --${name}`);
      value = 'true';
    } else if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `--${name} needs a value ${spec.arg}; write --${name} ${spec.arg} or --${name}=${spec.arg}`);
      }
      value = next;
      i++;
    }
    const values = given.get(spec);
    if (values === undefined) given.set(spec, [value]);
    else if (spec.repeat !== undefined) values.push(value);
    else throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `--${name} was given twice; give it once`);
  }

  // 2. The upstream (http/tcp/tls) or the endpoint names (start).
  if (command !== 'start') {
    if (positionals.length !== 1) {
      throw new BurrowError(
        'BURROW_ERR_CONFIG_INVALID',
        positionals.length === 0
          ? `'burrow ${command}' needs the local service to forward to: a port, host:port or ${command === 'http' ? 'http' : command}://host:port (example: burrow ${command} ${command === 'http' ? '3000' : '5432'}); ${usage}`
          : `'burrow ${command}' takes one upstream, got ${positionals.map(quote).join(', ')}; ${usage}`,
      );
    }
  }

  // 3. The config file (start: --config or burrow.yml; http/tcp/tls: only a --config given, for its agent: section,
  // so `burrow http 3000 --config burrow.yml` takes the relay address and token from the file, as ngrok's agent takes
  // its authtoken from its config): it sits below the environment and flags.
  let fileEndpoints: FileEndpoint[] = [];
  let configFile: string | null = null;
  const flagValue = given.get(FLAGS_BY_NAME.get('config')!)?.[0];
  if (command === 'start' || flagValue !== undefined) {
    configFile = parseFile(flagValue ?? DEFAULT_CONFIG_FILE, flagValue === undefined ? `--config (default ${DEFAULT_CONFIG_FILE})` : '--config', 'a burrow agent YAML file');
    const file = loadAgentFile(configFile, command === 'start');
    for (const f of FLAGS) {
      const v = f.fileKey === null ? undefined : file.agent.get(f.fileKey);
      // A value the environment or a flag overrides is not used, so not judged either (step 4 parses the winner).
      const overridden = given.has(f) || (f.env !== null && f.commands.includes(command) && (env[f.env] ?? '') !== '');
      if (v !== undefined && !overridden) (draft as unknown as Record<string, unknown>)[f.key] = f.parse(v.value, v.label, dirname(configFile));
    }
    fileEndpoints = file.endpoints;
  }

  // 4. Environment, then flags. A variable a flag overrides is not used, so not judged (a stale BURROW_CA must not
  // fail a command that gives --ca).
  for (const f of FLAGS) {
    if (f.env === null || !f.commands.includes(command) || given.has(f)) continue;
    const v = env[f.env];
    if (v === undefined || v === '') continue;
    (draft as unknown as Record<string, unknown>)[f.key] = f.parse(v, `--${f.name} (from ${f.env})`);
  }
  for (const [f, vs] of given) {
    (draft as unknown as Record<string, unknown>)[f.key] =
      f.repeat === true ? vs.map((v) => f.parse(v, `--${f.name}`)) : f.parse(f.repeat === 'join' ? vs.join(',') : vs[0]!, `--${f.name}`);
  }

  if (draft.authtoken === null) {
    throw new BurrowError(
      'BURROW_ERR_CONFIG_INVALID',
      `no auth token: pass --authtoken <token>, set BURROW_AUTHTOKEN, or put authtoken: under agent: in ${configFile !== null ? configFile : 'a config file (--config)'} (a dev relay prints its token at start-up)`,
    );
  }

  // 5. Endpoints.
  let endpoints: EndpointSpec[];
  if (command === 'start') {
    const names = positionals;
    const chosen = names.length === 0 ? fileEndpoints : names.map((n) => {
      const e = fileEndpoints.find((x) => x.spec.name === n);
      if (e === undefined) {
        throw new BurrowError(
          'BURROW_ERR_CONFIG_INVALID',
          `${configFile}: no endpoint named ${quote(n)} (endpoints: ${fileEndpoints.map((x) => x.spec.name).join(', ')})`,
        );
      }
      return e;
    });
    refuseSameUrl(chosen);
    endpoints = chosen.map((e) => e.spec);
  } else {
    endpoints = [
      endpointSpec(
        {
          kind: command as EndpointKind, url: draft.url, upstream: positionals[0]!, pool: draft.pool, lb: draft.lb,
          basicAuth: draft.basicAuth, allowCidrs: draft.allowCidrs, denyCidrs: draft.denyCidrs,
          proxyProto: draft.proxyProto as EndpointInput['proxyProto'],
          requestHeaderAdd: draft.requestHeaderAdd, requestHeaderRemove: draft.requestHeaderRemove,
          responseHeaderAdd: draft.responseHeaderAdd, responseHeaderRemove: draft.responseHeaderRemove,
        },
        {
          name: '--name', url: '--url', upstream: `'burrow ${command}' upstream`, lb: '--lb',
          basicAuth: '--basic-auth', allowCidrs: '--allow-cidr', denyCidrs: '--deny-cidr', proxyProto: '--proxy-proto',
          requestHeaderAdd: '--request-header-add', requestHeaderRemove: '--request-header-remove',
          responseHeaderAdd: '--response-header-add', responseHeaderRemove: '--response-header-remove',
        },
      ),
    ];
  }
  requireTokenOffLoopback(draft.metricsAddr, draft.metricsToken, '--metrics-addr', '--metrics-token (or BURROW_METRICS_TOKEN)');
  return finish(command, draft, endpoints, configFile, false);
}

function finish(command: AgentCommand, d: Draft, endpoints: EndpointSpec[], configFile: string | null, help: boolean): AgentConfig {
  const caPem = d.caPath === null || help ? null : readCa(d.caPath, '--ca');
  return Object.freeze({
    command,
    server: d.server,
    authtoken: d.authtoken ?? '',
    caPath: d.caPath,
    caPem,
    graceMs: d.graceMs,
    metricsAddr: d.metricsAddr,
    metricsToken: d.metricsToken,
    endpoints: Object.freeze([...endpoints]),
    configFile,
    help,
  });
}

/**
 * Endpoints run together must not ask for the same name or TCP port unless they are members of one pool (all pooled,
 * one kind): the relay would refuse the second Bind with a message about another agent session. The relay's route
 * keys: a hostname is one route for http and tls alike; a TCP address is its port.
 */
function refuseSameUrl(chosen: readonly FileEndpoint[]): void {
  const seen = new Map<string, FileEndpoint>();
  for (const e of chosen) {
    const s = e.spec;
    const route = s.kind === 'tcp' ? (s.addr === '' ? '' : `port ${s.addr.slice(s.addr.lastIndexOf(':') + 1)}`) : s.hostname;
    if (route === '') continue;
    const first = seen.get(route);
    if (first === undefined) {
      seen.set(route, e);
    } else if (!(first.spec.pool && s.pool && first.spec.kind === s.kind)) {
      throw new BurrowError(
        'BURROW_ERR_CONFIG_INVALID',
        `${e.urlLabel}: asks for ${route} like ${first.key}; give each endpoint its own url, or make both ${s.kind} endpoints with pool: true to serve it from both`,
      );
    }
  }
}

// ── the config file ──────────────────────────────────────────────────────────────────────────────────────────────

interface FileEndpoint {
  spec: EndpointSpec;
  /** Where its url is in the file ("burrow.yml:7: endpoints[1].url"), for messages. */
  urlLabel: string;
  /** "endpoints[1]" */
  key: string;
}

interface FileValue {
  value: string;
  /** "burrow.yml:3: agent.server_addr" */
  label: string;
}

interface AgentFile {
  agent: Map<string, FileValue>;
  endpoints: FileEndpoint[];
}

const TOP_KEYS = ['agent', 'endpoints'] as const;
const AGENT_KEYS: readonly string[] = FLAGS.flatMap((f) => (f.fileKey === null ? [] : [f.fileKey]));
const ENDPOINT_KEYS = [
  'name', 'url', 'upstream', 'pool', 'lb', 'basic_auth', 'allow_cidrs', 'deny_cidrs', 'proxy_proto', 'request_header_add', 'request_header_remove',
  'response_header_add', 'response_header_remove',
] as const;
/** File keys holding secrets: taken only as YAML strings. */
const SECRET_KEYS: ReadonlySet<string> = new Set(['authtoken', 'metrics_token']);

/**
 * Reads and validates an agent config file:
 * ```yaml
 * agent: { server_addr: host:port, authtoken: …, ca: path, grace_ms: 10000 }
 * endpoints:
 *   - { name: web, url: http://web.burrow.localhost, upstream: http://127.0.0.1:3000, pool: false }
 *   - { name: db, url: tcp://, upstream: tcp://127.0.0.1:5432 }
 * ```
 * Unknown keys, wrong types and bad values throw BURROW_ERR_CONFIG_INVALID naming the file, line and key; a file that
 * cannot be read or is not YAML throws BURROW_ERR_CONFIG_FILE.
 */
export function loadAgentFile(path: string, needEndpoints = true): AgentFile {
  const { root, where } = readYamlFile(path);
  const bad = (node: YamlNode | null | undefined, key: string, what: string): BurrowError =>
    new BurrowError('BURROW_ERR_CONFIG_INVALID', `${where(node, key)}: ${what}`);

  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) {
    throw new BurrowError(
      'BURROW_ERR_CONFIG_INVALID',
      needEndpoints
        ? `${path}: the file is empty; it needs an endpoints: list (and usually an agent: section)`
        : `${path}: the file is empty; it needs an agent: section (server_addr, authtoken, ca, ...)`,
    );
  }
  if (!isMap(root)) throw bad(root, '(top level)', 'must be a mapping with agent: and endpoints:');
  const top = entries(root, TOP_KEYS, '', bad);

  const agent = new Map<string, FileValue>();
  const agentNode = top.get('agent');
  if (agentNode !== undefined && !(isScalar(agentNode.value) && agentNode.value.value === null)) {
    if (!isMap(agentNode.value)) throw bad(agentNode.value ?? agentNode.key, 'agent', 'must be a mapping (server_addr, authtoken, ca, grace_ms, metrics_addr, metrics_token)');
    for (const [k, pair] of entries(agentNode.value, AGENT_KEYS, 'agent.', bad)) {
      const v = pair.value;
      if (!isScalar(v) || v.value === null || typeof v.value === 'object' || typeof v.value === 'boolean') {
        throw bad(v ?? pair.key, `agent.${k}`, 'must be a single value (a string or number)');
      }
      if (SECRET_KEYS.has(k) && typeof v.value !== 'string') {
        // YAML reads an unquoted 0123… or 1e5… as a number; String() of it is not what the user wrote.
        throw bad(v, `agent.${k}`, 'is read as a number by YAML, which would change it; put the token in quotes');
      }
      agent.set(k, { value: String(v.value), label: where(v, `agent.${k}`) });
    }
  }

  const epsNode = top.get('endpoints');
  // burrow http|tcp|tls read only the agent: section; endpoints: there is still checked when present (one file serves
  // both), but may be left out.
  if (epsNode === undefined && !needEndpoints) return { agent, endpoints: [] };
  if (epsNode === undefined) throw bad(root, 'endpoints', 'missing; list the endpoints to serve (each with url and upstream)');
  const seq = epsNode.value;
  if (!isSeq(seq) || seq.items.length === 0) throw bad(seq ?? epsNode.key, 'endpoints', 'must be a non-empty list of endpoints');
  const endpoints: FileEndpoint[] = [];
  const names = new Map<string, string>();
  seq.items.forEach((item, i) => {
    const key = `endpoints[${i}]`;
    if (!isMap(item)) throw bad(item as YamlNode, key, `must be a mapping with url, upstream (and ${ENDPOINT_KEYS.filter((k) => k !== 'url' && k !== 'upstream').join(', ')})`);
    const fields = entries(item, ENDPOINT_KEYS, `${key}.`, bad);
    const scalar = (k: string, types: string[]): { value: unknown; label: string } | undefined => {
      const p = fields.get(k);
      if (p === undefined) return undefined;
      const v = p.value;
      const label = where(v ?? p.key, `${key}.${k}`);
      if (!isScalar(v) || (v.value !== null && !types.includes(typeof v.value))) {
        throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${label}: must be ${types.join(' or ')}`);
      }
      return { value: v.value, label };
    };
    const name = scalar('name', ['string']);
    const url = scalar('url', ['string']);
    const upstream = scalar('upstream', ['string', 'number']);
    const pool = scalar('pool', ['boolean']);
    const lb = scalar('lb', ['string']);
    const basicAuth = scalar('basic_auth', ['string']);
    const allowCidrs = scalar('allow_cidrs', ['string']);
    const denyCidrs = scalar('deny_cidrs', ['string']);
    const proxyProto = scalar('proxy_proto', ['number', 'string']);
    /** A string, or a list of strings (each its own rule). */
    const strings = (k: string): { value: string[] | null; label: string } | undefined => {
      const p = fields.get(k);
      if (p === undefined) return undefined;
      const v = p.value;
      const label = where(v ?? p.key, `${key}.${k}`);
      if (isScalar(v) && (v.value === null || typeof v.value === 'string')) return { value: v.value === null ? null : [v.value], label };
      if (isSeq(v) && v.items.every((x) => isScalar(x) && typeof x.value === 'string')) {
        return { value: v.items.map((x) => (x as { value: string }).value), label };
      }
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${label}: must be a string or a list of strings`);
    };
    const requestHeaderAdd = strings('request_header_add');
    const requestHeaderRemove = strings('request_header_remove');
    const responseHeaderAdd = strings('response_header_add');
    const responseHeaderRemove = strings('response_header_remove');
    if (upstream === undefined || upstream.value === null) throw bad(item, `${key}.upstream`, 'missing; say where connections go (example: http://127.0.0.1:3000)');
    const spec = endpointSpec(
      {
        name: name?.value === null || name === undefined ? `endpoint-${i + 1}` : (name.value as string),
        url: (url?.value as string | null | undefined) ?? null,
        upstream: upstream.value as string | number,
        pool: pool?.value === true,
        lb: (lb?.value as string | null | undefined) ?? null,
        basicAuth: (basicAuth?.value as string | null | undefined) ?? null,
        allowCidrs: (allowCidrs?.value as string | null | undefined) ?? null,
        denyCidrs: (denyCidrs?.value as string | null | undefined) ?? null,
        proxyProto: (proxyProto?.value as EndpointInput['proxyProto']) ?? null,
        requestHeaderAdd: requestHeaderAdd?.value ?? null,
        requestHeaderRemove: requestHeaderRemove?.value ?? null,
        responseHeaderAdd: responseHeaderAdd?.value ?? null,
        responseHeaderRemove: responseHeaderRemove?.value ?? null,
      },
      {
        name: name?.label ?? where(item, `${key}.name`),
        url: url?.label ?? where(item, `${key}.url`),
        upstream: upstream.label,
        lb: lb?.label ?? where(item, `${key}.lb`),
        basicAuth: basicAuth?.label ?? where(item, `${key}.basic_auth`),
        allowCidrs: allowCidrs?.label ?? where(item, `${key}.allow_cidrs`),
        denyCidrs: denyCidrs?.label ?? where(item, `${key}.deny_cidrs`),
        proxyProto: proxyProto?.label ?? where(item, `${key}.proxy_proto`),
        requestHeaderAdd: requestHeaderAdd?.label ?? where(item, `${key}.request_header_add`),
        requestHeaderRemove: requestHeaderRemove?.label ?? where(item, `${key}.request_header_remove`),
        responseHeaderAdd: responseHeaderAdd?.label ?? where(item, `${key}.response_header_add`),
        responseHeaderRemove: responseHeaderRemove?.label ?? where(item, `${key}.response_header_remove`),
      },
    );
    const dup = names.get(spec.name);
    if (dup !== undefined) throw bad(item, `${key}.name`, `${quote(spec.name)} is already the name of ${dup}; names must be unique`);
    names.set(spec.name, key);
    endpoints.push({ spec, key, urlLabel: url?.label ?? where(item, `${key}.url`) });
  });
  return { agent, endpoints };
}

/** The pairs of a mapping by key; unknown or non-string keys throw naming the key and listing the known ones. */
function entries(
  map: YAMLMap,
  known: readonly string[],
  prefix: string,
  bad: (node: YamlNode | null | undefined, key: string, what: string) => BurrowError,
): Map<string, Pair<YamlNode, YamlNode>> {
  const out = new Map<string, Pair<YamlNode, YamlNode>>();
  for (const pair of map.items as Array<Pair<YamlNode, YamlNode>>) {
    const k = isScalar(pair.key) ? pair.key.value : null;
    if (typeof k !== 'string') throw bad(pair.key, `${prefix}(key)`, 'keys must be plain strings');
    if (!known.includes(k)) {
      throw bad(pair.key, `${prefix}${k}`, `unknown key '${k}'; known keys${prefix === '' ? '' : ` under ${prefix.replace(/\.$/, '')}`}: ${known.join(', ')}`);
    }
    out.set(k, pair);
  }
  return out;
}

// ── help ─────────────────────────────────────────────────────────────────────────────────────────────────────────

/** Help for `burrow <command> --help`, generated from the flag table. */
export function agentHelpText(command: AgentCommand): string {
  const onlyAgentSection = (f: FlagSpec): boolean => f.name === 'config' && command !== 'start';
  const rows = FLAGS.filter((f) => f.commands.includes(command)).map((f) => ({
    left: `  --${f.name}${f.arg === null ? '' : ` ${f.arg}`}`,
    lines: [
      onlyAgentSection(f) ? "YAML file whose agent: section (server_addr, authtoken, ca, ...) supplies defaults; its endpoints: are not served (that is 'burrow start')" : f.help,
      `default: ${onlyAgentSection(f) ? 'none (no file is read)' : f.defaultText}`,
      ...(f.env !== null ? [`env: ${f.env}`] : []),
      ...(f.fileKey !== null ? [`config file: agent.${f.fileKey}`] : []),
    ],
  }));
  rows.push({ left: '  --help, -h', lines: ['show this text'] });
  const width = Math.max(...rows.map((r) => r.left.length)) + 2;
  const body = rows.map((r) => r.lines.map((line, i) => (i === 0 ? r.left.padEnd(width) : ' '.repeat(width)) + line).join('\n')).join('\n');
  const head =
    command === 'start'
      ? 'Usage: burrow start [--config burrow.yml] [flags] [endpoint names…]\n\n' +
        'Runs every endpoint of the config file (or only the ones named) in one agent session.\n\n' +
        'burrow.yml:\n' +
        '  agent: { server_addr: localhost:4443, authtoken: <token>, ca: .burrow/ca.pem }\n' +
        '  endpoints:\n' +
        '    - { name: web, url: http://web.burrow.localhost, upstream: http://127.0.0.1:3000 }\n' +
        '    - { name: db, url: "tcp://", upstream: tcp://127.0.0.1:5432 }\n' +
        'Endpoint keys: name, url (http://, https://, tls://, tcp://), upstream (required), pool, lb, basic_auth\n' +
        '(user:password, http), allow_cidrs and deny_cidrs (comma-separated networks), proxy_proto (1 or 2),\n' +
        'request_header_add ("Name: value", or a list of them; http), request_header_remove (names; http), and the same\n' +
        'for responses: response_header_add, response_header_remove.\n' +
        'Relative paths in the file are relative to the file.\n'
      : `Usage: burrow ${command} <port|host:port> [flags]\n\n` +
        (command === 'http'
          ? 'Forwards a public HTTP(S) URL on the relay to a local HTTP service (TLS ends at the relay).\n'
          : command === 'tcp'
          ? 'Forwards a public TCP port on the relay to a local TCP service.\n'
          : 'Forwards TLS connections for a public host name, unopened (passthrough), to a local TLS service.\n');
  return (
    head +
    '\nFlags take a value as --flag value or --flag=value. Precedence: flag, then environment variable, then\n' +
    'config file, then default. On a TTY the agent shows a live status screen; otherwise it logs JSON lines.\n\n' +
    `Flags:\n${body}\n`
  );
}
