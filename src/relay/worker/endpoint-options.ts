// What the relay does with the options of a Bind (PROTOCOL.md §9 Bind, "What the relay does with Opts"): IP
// restrictions are enforced per public connection (IpPolicy), basic auth per request (BasicAuthCheck, used by the
// HTTP request filter), header rules on every request / response head (parseHeaderRules); every other option that would protect or change the
// traffic, and that this relay does not implement, refuses the Bind with its name, so that no endpoint goes online less
// protected, or behaving otherwise, than its owner asked for (an ngrok SDK program moved to burrow unchanged).
// Not on the hot path: parsed at Bind; IpPolicy.allows runs once per public connection, BasicAuthCheck.accepts once
// per request of an endpoint that has basic auth.
import { createHash, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { BurrowError } from '../../core/errors.js';
import {
  MAX_ADDED_HEADER_BYTES,
  MAX_HEADER_RULES,
  headerFieldProblem,
  headerValueProblem,
  parseCredential,
  parseNetwork,
  proxyProtoVersion,
} from '../../config/endpoint-rules.js';
import { hasPrefixCI } from '../../sniff/http-bytes.js';
import type { HttpAuthorizer, HeaderRules } from '../../sniff/http-request-filter.js';

/**
 * Allowed and denied client networks of one endpoint (`IPRestriction`: `allow_cidrs`, `deny_cidrs`). Each address is
 * matched against the networks of its own family only: net.BlockList lets an IPv6 network such as ::/0 match IPv4
 * addresses too, so a rule meant for IPv6 clients would catch every IPv4 one.
 */
export class IpPolicy {
  private readonly allow4: net.BlockList | null;
  private readonly allow6: net.BlockList | null;
  private readonly deny4: net.BlockList | null;
  private readonly deny6: net.BlockList | null;
  /** Allowed networks are listed (of either family): an address in none of them is refused. */
  private readonly exclusive: boolean;

  constructor(allow: string[] | null, deny: string[] | null) {
    this.allow4 = blockList(allow, 'ipv4');
    this.allow6 = blockList(allow, 'ipv6');
    this.deny4 = blockList(deny, 'ipv4');
    this.deny6 = blockList(deny, 'ipv6');
    this.exclusive = allow !== null;
  }

  /** A denied network wins; with allowed networks listed, an address in none of them is refused. */
  allows(ip: string): boolean {
    const v6 = net.isIPv6(ip);
    const deny = v6 ? this.deny6 : this.deny4;
    if (deny !== null && deny.check(ip, v6 ? 'ipv6' : 'ipv4')) return false;
    if (!this.exclusive) return true;
    const allow = v6 ? this.allow6 : this.allow4;
    return allow !== null && allow.check(ip, v6 ? 'ipv6' : 'ipv4');
  }
}

/**
 * The endpoint's IP policy from `Opts.IPRestriction` (null when it has none), or BURROW_ERR_BIND_INVALID naming the
 * entry that is not a network. An address without a prefix length is that one address.
 */
export function parseIpRestriction(v: unknown): IpPolicy | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid('IPRestriction must be an object with allow_cidrs and/or deny_cidrs');
  const r = v as Record<string, unknown>;
  const allow = cidrList(r['allow_cidrs'], 'allow_cidrs');
  const deny = cidrList(r['deny_cidrs'], 'deny_cidrs');
  if (allow === null && deny === null) return null;
  return new IpPolicy(allow, deny);
}

function cidrList(v: unknown, key: string): string[] | null {
  if (v === null || v === undefined) return null;
  if (!Array.isArray(v)) throw invalid(`IPRestriction.${key} must be a list of networks such as "10.0.0.0/8"`);
  if (v.length === 0) return null;
  if (v.length > MAX_NETWORKS) throw invalid(`IPRestriction.${key} lists ${v.length} networks; at most ${MAX_NETWORKS} (merge them into wider ones)`);
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (typeof c !== 'string' || parseNetwork(c) === null) {
      throw invalid(`IPRestriction.${key}[${i}] ${JSON.stringify(c)} is not a network; write it as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32`);
    }
  }
  return v as string[];
}

/** Networks per IPRestriction list: every public connection is checked against them. */
const MAX_NETWORKS = 1024;
/** Credentials per endpoint: every request is compared with each of them. */
const MAX_CREDENTIALS = 64;

/** The networks of `family` among `cidrs`, or null when there are none. */
function blockList(cidrs: string[] | null, family: 'ipv4' | 'ipv6'): net.BlockList | null {
  let list: net.BlockList | null = null;
  for (const c of cidrs ?? []) {
    const n = parseNetwork(c)!;
    if (n.family !== family) continue;
    list ??= new net.BlockList();
    list.addSubnet(n.ip, n.prefix, n.family);
  }
  return list;
}

/**
 * The credentials of an endpoint with basic auth (RFC 7617). A request's `Authorization: Basic <token>` is accepted when
 * the token is one of the credentials' base64 of `user:password`. Compared as SHA-256 digests with timingSafeEqual, so
 * the time taken says nothing about how much of a token matched.
 */
export class BasicAuthCheck implements HttpAuthorizer {
  private readonly digests: Buffer[];
  /** Equal for equal credential sets: pool members may stand in for each other only with the same credentials. */
  readonly key: string;

  constructor(credentials: Array<{ username: string; password: string }>) {
    const tokens = credentials.map((c) => Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64'));
    this.digests = tokens.map((t) => sha256(Buffer.from(t, 'latin1')));
    this.key = sha256(Buffer.from([...tokens].sort().join('\n'), 'latin1')).toString('hex');
  }

  accepts(head: Buffer, start: number, end: number): boolean {
    // "Basic" (any case), one or more spaces, the token.
    if (end - start < 7 || !hasPrefixCI(head, start, end, BASIC)) return false;
    let i = start + 5;
    if (head[i] !== 0x20) return false;
    while (i < end && head[i] === 0x20) i++;
    const presented = sha256(head.subarray(i, end));
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(presented, d) || ok; // every one compared, whichever matches
    return ok;
  }
}

const BASIC = Buffer.from('basic');

function sha256(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest();
}

/**
 * The endpoint's basic auth from `Opts.BasicAuth` (`credentials`: `username` + `cleartext_password`, what the SDK's
 * basicAuth(user, password) sends) and the older `Opts.Auth` ("user:password"), or null when neither is set.
 * BURROW_ERR_BIND_INVALID names a credential the relay cannot use.
 */
export function parseBasicAuth(opts: Record<string, unknown>): BasicAuthCheck | null {
  const creds: Array<{ username: string; password: string }> = [];
  const legacy = opts['Auth'];
  if (typeof legacy === 'string' && legacy !== '') {
    const c = parseCredential(legacy);
    if (c === null) throw invalid('Auth must be "user:password" (a user name without ":", a non-empty password)');
    creds.push(c);
  }
  const v = opts['BasicAuth'];
  if (v !== null && v !== undefined) {
    const list = typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)['credentials'] : undefined;
    if (!Array.isArray(list) || list.length === 0) throw invalid('BasicAuth needs a non-empty credentials list');
    if (list.length > MAX_CREDENTIALS) throw invalid(`BasicAuth has ${list.length} credentials; at most ${MAX_CREDENTIALS}`);
    for (let i = 0; i < list.length; i++) {
      const c = list[i] as Record<string, unknown> | null;
      const user = c?.['username'];
      const pass = c?.['cleartext_password'];
      if (typeof user !== 'string' || user === '' || user.includes(':') || /[\x00-\x1f\x7f]/.test(user)) {
        throw invalid(`BasicAuth.credentials[${i}].username must be a non-empty name without ":" or control characters`);
      }
      if (typeof pass !== 'string' || pass === '') {
        throw invalid(
          `BasicAuth.credentials[${i}]: the relay needs the password itself (cleartext_password); ` +
            'hashed passwords are not supported',
        );
      }
      creds.push({ username: user, password: pass });
    }
  }
  return creds.length === 0 ? null : new BasicAuthCheck(creds);
}

/** Header rules of one endpoint (`Opts.RequestHeaders` or `Opts.ResponseHeaders`), as the relay applies them. */
export interface EndpointHeaderRules extends HeaderRules {
  /** Equal for equal rules: pool members may stand in for each other only with the same request rules. */
  readonly key: string;
}

/**
 * `Opts.RequestHeaders` / `Opts.ResponseHeaders` (`add`: "name:value" entries, what the SDK's requestHeader() and
 * responseHeader() send; `addParsed`: name → value; `remove`: names; camelCase keys): the rules, or null when there
 * are none. BURROW_ERR_BIND_INVALID names an entry that is not a field name, has a value with CR, LF or other control
 * characters, or touches a reserved field (config/endpoint-rules.ts).
 */
export function parseHeaderRules(which: 'RequestHeaders' | 'ResponseHeaders', v: unknown): EndpointHeaderRules | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid(`${which} must be an object with add and/or remove`);
  const r = v as Record<string, unknown>;
  const adds: Array<[string, string]> = [];
  const add = r['add'] ?? [];
  if (!Array.isArray(add)) throw invalid(`${which}.add must be a list of "name:value"`);
  add.forEach((e, i) => {
    const colon = typeof e === 'string' ? e.indexOf(':') : -1;
    if (colon <= 0) throw invalid(`${which}.add[${i}] ${JSON.stringify(e)} is not "name:value"`);
    adds.push([(e as string).slice(0, colon), (e as string).slice(colon + 1)]);
  });
  const parsed = r['addParsed'];
  if (adds.length === 0 && parsed !== null && parsed !== undefined) {
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid(`${which}.addParsed must map names to values`);
    for (const [k, val] of Object.entries(parsed as Record<string, unknown>)) adds.push([k, String(val)]);
  }
  const remove = r['remove'] ?? [];
  if (!Array.isArray(remove)) throw invalid(`${which}.remove must be a list of field names`);
  if (adds.length + remove.length > MAX_HEADER_RULES) throw invalid(`${which}: at most ${MAX_HEADER_RULES} rules`);
  const field = (name: unknown, where: string): string => {
    const problem = typeof name === 'string' ? headerFieldProblem(name) : 'is not a header field name';
    if (problem !== null) throw invalid(`${where} ${JSON.stringify(name)} ${problem}`);
    return (name as string).toLowerCase();
  };
  // Request fields are matched with '_' read as '-' (http-request-filter.ts), so the names are kept in that form.
  const fold = (n: string): string => (which === 'RequestHeaders' ? n.replace(/_/g, '-') : n);
  const removeNames = remove.map((n, i) => Buffer.from(fold(field(n, `${which}.remove[${i}]`)), 'latin1'));
  const lines: string[] = [];
  adds.forEach(([name, value], i) => {
    const n = field(name.trim(), `${which}.add[${i}]`);
    const val = value.trim();
    const problem = headerValueProblem(val);
    if (problem !== null) throw invalid(`${which}.add[${i}] (${n}): the value ${problem}`);
    lines.push(`${n}: ${val}\r\n`);
  });
  if (removeNames.length === 0 && lines.length === 0) return null;
  const addBuf = Buffer.from(lines.join(''), 'latin1');
  if (addBuf.length > MAX_ADDED_HEADER_BYTES) {
    throw invalid(`${which}.add: the added fields come to ${addBuf.length} bytes per ${which === 'RequestHeaders' ? 'request' : 'response'}; at most ${MAX_ADDED_HEADER_BYTES}`);
  }
  const key = `${removeNames.map((b) => b.toString('latin1')).sort().join(',')}|${lines.join('')}`;
  return { remove: removeNames, add: addBuf, key };
}

/**
 * `Opts.ProxyProto`: 0 (none), 1 or 2 (the PROXY protocol version the relay puts in front of each connection's bytes,
 * proxy-protocol.ts). The SDK sends a number; "1"/"2" are taken too.
 */
export function parseProxyProto(v: unknown): 0 | 1 | 2 {
  const version = proxyProtoVersion(v);
  if (version === null) throw invalid(`ProxyProto ${JSON.stringify(v)} is not 0 (off), 1 or 2 (the PROXY protocol version)`);
  return version;
}

type OptionRule = { key: string; what: string; set: (v: unknown) => boolean };

/** Access controls of HTTP endpoints this relay does not implement. */
const HTTP_ACCESS: OptionRule[] = [
  { key: 'OAuth', what: 'OAuth', set: present },
  { key: 'OIDC', what: 'OpenID Connect', set: present },
  { key: 'WebhookVerification', what: 'webhook verification', set: present },
  { key: 'MutualTLSCA', what: 'mutual TLS at the relay', set: present },
  { key: 'UserAgentFilter', what: 'user agent filtering', set: present },
];

/**
 * HTTP-only options on a tcp or tls Bind (never from the SDKs; a custom agent could send them): refused, since they
 * would otherwise be ignored, basic auth included.
 */
const NOT_FOR_OPAQUE: OptionRule[] = [
  { key: 'Auth', what: 'basic auth, which only http endpoints have', set: nonEmptyString },
  { key: 'BasicAuth', what: 'basic auth, which only http endpoints have', set: present },
  { key: 'RequestHeaders', what: 'request header rules, which only http endpoints have', set: present },
  { key: 'ResponseHeaders', what: 'response header rules, which only http endpoints have', set: present },
  ...HTTP_ACCESS,
];

/**
 * Options of the ngrok SDKs this relay does not implement, per endpoint kind: the Bind is refused when one of them is
 * set (PROTOCOL.md §9). `set` says what counts as set: the SDK writes every key, with null (or its zero value) for
 * options left unset.
 */
const UNSUPPORTED: Record<'http' | 'tcp' | 'tls', OptionRule[]> = {
  http: [
    ...HTTP_ACCESS,
    { key: 'Compression', what: 'response compression', set: present },
    { key: 'CircuitBreaker', what: 'the error-rate circuit breaker', set: present },
    { key: 'WebsocketTCPConverter', what: 'the WebSocket-to-TCP converter', set: present },
    { key: 'HostHeaderRewrite', what: 'Host header rewriting', set: (v) => v === true },
    { key: 'TrafficPolicy', what: 'traffic policies', set: nonEmptyPolicy },
  ],
  tcp: [...NOT_FOR_OPAQUE, { key: 'TrafficPolicy', what: 'traffic policies', set: nonEmptyPolicy }],
  tls: [
    ...NOT_FOR_OPAQUE,
    // The SDK sends {"mutual_tls_ca": "<base64 PEM>"} here (mutualTlsca() on a tls endpoint); unset is null or false.
    { key: 'MutualTLSAtEdge', what: 'mutual TLS at the relay', set: (v) => v !== null && v !== undefined && v !== false },
    { key: 'TLSTermination', what: 'TLS termination at the relay (use an https endpoint)', set: present },
    { key: 'TrafficPolicy', what: 'traffic policies', set: nonEmptyPolicy },
  ],
};

/**
 * Refuses (BURROW_ERR_BIND_INVALID) a Bind that sets an option this relay does not implement, naming the first one;
 * `Extra.IPPolicyRef` (a policy kept in ngrok's cloud) included.
 */
export function checkSupportedOptions(proto: 'http' | 'https' | 'tcp' | 'tls', opts: Record<string, unknown>, extra: Record<string, unknown>): void {
  for (const o of UNSUPPORTED[proto === 'https' ? 'http' : proto]) {
    if (o.set(opts[o.key])) {
      throw invalid(
        `Opts.${o.key}: ${o.what} is not supported by this relay, and the endpoint would go online without it; ` +
          'remove the option (IP restrictions, basic auth, request and response header rules and the PROXY protocol are supported)',
      );
    }
  }
  if (nonEmptyString(extra['IPPolicyRef'])) {
    throw invalid('Extra.IPPolicyRef: IP policies stored in ngrok\'s cloud do not exist on this relay; list the networks in IPRestriction instead');
  }
}

function present(v: unknown): boolean {
  return v !== null && v !== undefined;
}

function nonEmptyString(v: unknown): boolean {
  return typeof v === 'string' && v !== '';
}

/** A policy document as a JSON string (what the SDK sends) or an object; "", "{}" and {} are no policy. */
function nonEmptyPolicy(v: unknown): boolean {
  if (v === null || v === undefined || v === '') return false;
  if (typeof v === 'string') return v.trim() !== '{}';
  return typeof v !== 'object' || Object.keys(v).length > 0;
}

function invalid(message: string): BurrowError {
  return new BurrowError('BURROW_ERR_BIND_INVALID', `Bind: ${message}`);
}
