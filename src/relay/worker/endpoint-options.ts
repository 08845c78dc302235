// What the relay does with the options of a Bind (PROTOCOL.md §9 Bind, "What the relay does with Opts"): IP
// restrictions are enforced per public connection (IpPolicy); every other option that would protect or change the
// traffic, and that this relay does not implement, refuses the Bind with its name, so that no endpoint goes online less
// protected, or behaving otherwise, than its owner asked for (an ngrok SDK program moved to burrow unchanged).
// Not on the hot path: parsed at Bind; IpPolicy.allows runs once per public connection.
import net from 'node:net';
import { BurrowError } from '../../core/errors.js';

/** Allowed and denied client networks of one endpoint (`IPRestriction`: `allow_cidrs`, `deny_cidrs`). */
export class IpPolicy {
  private readonly allow: net.BlockList | null;
  private readonly deny: net.BlockList | null;
  /** The rules as given, for messages. */
  readonly text: string;

  constructor(allow: net.BlockList | null, deny: net.BlockList | null, text: string) {
    this.allow = allow;
    this.deny = deny;
    this.text = text;
  }

  /** A denied network wins; with allowed networks listed, an address in none of them is refused. */
  allows(ip: string): boolean {
    const family = net.isIPv6(ip) ? 'ipv6' : 'ipv4';
    if (this.deny !== null && this.deny.check(ip, family)) return false;
    return this.allow === null || this.allow.check(ip, family);
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
  const text = [allow !== null ? `allow ${allow.join(', ')}` : '', deny !== null ? `deny ${deny.join(', ')}` : ''].filter(Boolean).join('; ');
  return new IpPolicy(allow === null ? null : blockList(allow), deny === null ? null : blockList(deny), text);
}

function cidrList(v: unknown, key: string): string[] | null {
  if (v === null || v === undefined) return null;
  if (!Array.isArray(v)) throw invalid(`IPRestriction.${key} must be a list of networks such as "10.0.0.0/8"`);
  if (v.length === 0) return null;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (typeof c !== 'string' || parseCidr(c) === null) {
      throw invalid(`IPRestriction.${key}[${i}] ${JSON.stringify(c)} is not a network; write it as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32`);
    }
  }
  return v as string[];
}

function parseCidr(c: string): { ip: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const slash = c.indexOf('/');
  const ip = slash < 0 ? c : c.slice(0, slash);
  const version = net.isIP(ip);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = c.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > max) return null;
  }
  return { ip, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function blockList(cidrs: string[]): net.BlockList {
  const list = new net.BlockList();
  for (const c of cidrs) {
    const n = parseCidr(c)!;
    list.addSubnet(n.ip, n.prefix, n.family);
  }
  return list;
}

/**
 * Options of the ngrok SDKs this relay does not implement, per endpoint kind: the Bind is refused when one of them is
 * set (PROTOCOL.md §9). `set` says what counts as set: the SDK writes every key, with null (or its zero value) for
 * options left unset.
 */
const UNSUPPORTED: Record<'http' | 'tcp' | 'tls', Array<{ key: string; what: string; set: (v: unknown) => boolean }>> = {
  http: [
    { key: 'Auth', what: 'basic auth (Auth "user:password")', set: nonEmptyString },
    { key: 'BasicAuth', what: 'basic auth', set: present },
    { key: 'OAuth', what: 'OAuth', set: present },
    { key: 'OIDC', what: 'OpenID Connect', set: present },
    { key: 'WebhookVerification', what: 'webhook verification', set: present },
    { key: 'MutualTLSCA', what: 'mutual TLS at the relay', set: present },
    { key: 'UserAgentFilter', what: 'user agent filtering', set: present },
    { key: 'RequestHeaders', what: 'request header rules', set: present },
    { key: 'ResponseHeaders', what: 'response header rules', set: present },
    { key: 'Compression', what: 'response compression', set: present },
    { key: 'CircuitBreaker', what: 'the error-rate circuit breaker', set: present },
    { key: 'WebsocketTCPConverter', what: 'the WebSocket-to-TCP converter', set: present },
    { key: 'HostHeaderRewrite', what: 'Host header rewriting', set: (v) => v === true },
    { key: 'ProxyProto', what: 'the PROXY protocol header', set: nonZero },
    { key: 'TrafficPolicy', what: 'traffic policies', set: nonEmptyPolicy },
  ],
  tcp: [
    { key: 'ProxyProto', what: 'the PROXY protocol header', set: nonZero },
    { key: 'TrafficPolicy', what: 'traffic policies', set: nonEmptyPolicy },
  ],
  tls: [
    { key: 'MutualTLSAtEdge', what: 'mutual TLS at the relay', set: (v) => v === true },
    { key: 'TLSTermination', what: 'TLS termination at the relay (use an https endpoint)', set: present },
    { key: 'ProxyProto', what: 'the PROXY protocol header', set: nonZero },
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
          'remove the option (IP restrictions, allow_cidrs/deny_cidrs, are supported)',
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

function nonZero(v: unknown): boolean {
  return v !== null && v !== undefined && v !== 0 && v !== '0' && v !== '';
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
