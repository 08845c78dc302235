// What one agent endpoint asks for: kind (http | tcp | tls), the public URL wanted, the upstream it forwards to, and
// pooling. Parses the user's --url / upstream text (CLI, config file, library) with messages that name the input.
// Start-up only; never on the data path.
import { isIP } from 'node:net';
import { BurrowError } from '../core/errors.js';
import {
  MAX_ADDED_HEADER_BYTES,
  MAX_HEADER_RULES,
  headerFieldProblem,
  headerValueProblem,
  parseCredential,
  parseNetwork,
  proxyProtoVersion,
} from '../config/endpoint-rules.js';
import { BALANCE_STRATEGIES, isBalanceStrategy, type BalanceStrategy } from '../balancer/pick-member.js';
import type { UpstreamAddress } from './upstream-dialer.js';

export type EndpointKind = 'http' | 'tcp' | 'tls';

export interface EndpointSpec {
  /** Name in logs, the status view and `burrow start [names…]`. */
  readonly name: string;
  readonly kind: EndpointKind;
  /** Public hostname wanted (http, tls); '' lets the relay pick a random one. */
  readonly hostname: string;
  /** Public TCP address wanted, "host:port" (tcp); '' lets the relay pick a port. */
  readonly addr: string;
  /** Where connections go; null = delivered to a listener (library `listen()`). */
  readonly upstream: UpstreamAddress | null;
  /** Bind.ForwardsTo: "http://127.0.0.1:3000" (informational for the relay). */
  readonly forwardsTo: string;
  /** Sent as Bind.Extra.PoolingEnabled: other agents may serve the same URL (the relay balances between them). */
  readonly pool: boolean;
  /** Balancing strategy asked of the relay for this URL's pool (Bind.Extra.Metadata `burrow-lb=`); null = relay's. */
  readonly lb: BalanceStrategy | null;
  /** Basic auth the relay enforces on every request (http; Bind.Opts.BasicAuth); empty for none. */
  readonly basicAuth: ReadonlyArray<{ readonly username: string; readonly password: string }>;
  /** Client networks the relay admits / refuses (Bind.Opts.IPRestriction); empty for no rule. */
  readonly allowCidrs: readonly string[];
  readonly denyCidrs: readonly string[];
  /** PROXY protocol version the relay puts in front of each connection for the service (Bind.Opts.ProxyProto); 0 = none. */
  readonly proxyProto: 0 | 1 | 2;
  /**
   * Request header rules the relay applies to every request (http; Bind.Opts.RequestHeaders): fields added, as the
   * SDK writes them ("name:value", the name lowercased), and names removed (lowercased). Empty for none.
   */
  readonly requestHeaderAdd: readonly string[];
  readonly requestHeaderRemove: readonly string[];
  /** The same for every final response the service sends (Bind.Opts.ResponseHeaders). */
  readonly responseHeaderAdd: readonly string[];
  readonly responseHeaderRemove: readonly string[];
}

export interface EndpointInput {
  name?: string;
  /** Kind; when absent it comes from the scheme of `url`, else of `upstream`. */
  kind?: EndpointKind;
  /** `http://name.domain`, `https://…`, `tls://name.domain`, `tcp://` (any port), `tcp://host:port`, or a bare hostname. */
  url?: string | null;
  /** `3000`, `host:port`, `http://host:port`, `tcp://host:port`, `tls://host:port`; null for a listener. */
  upstream?: string | number | null;
  pool?: boolean;
  lb?: string | null;
  /** `user:password` (or several): the relay asks every request for one of them (http endpoints only). */
  basicAuth?: string | readonly string[] | null;
  /** Networks (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`; a string may list several, comma-separated) the relay admits. */
  allowCidrs?: string | readonly string[] | null;
  /** Networks the relay refuses (wins over allowCidrs). */
  denyCidrs?: string | readonly string[] | null;
  /** 1 or 2: the service reads a PROXY protocol header (v1 text, v2 binary) with the client's address first. */
  proxyProto?: 0 | 1 | 2 | '0' | '1' | '2' | null;
  /** http: `Name: value` fields (one per string) the relay adds to every request before it reaches the service. */
  requestHeaderAdd?: string | readonly string[] | null;
  /** http: field names the relay removes from every request (a string may list several, comma-separated). */
  requestHeaderRemove?: string | readonly string[] | null;
  /** http: the same for every response (before it reaches the client). */
  responseHeaderAdd?: string | readonly string[] | null;
  responseHeaderRemove?: string | readonly string[] | null;
}

/** How each input is named in error messages: `--url`, `burrow.yml: endpoints[1].url`, … */
export interface EndpointLabels {
  name: string;
  url: string;
  upstream: string;
  lb?: string;
  basicAuth?: string;
  allowCidrs?: string;
  denyCidrs?: string;
  proxyProto?: string;
  requestHeaderAdd?: string;
  requestHeaderRemove?: string;
  responseHeaderAdd?: string;
  responseHeaderRemove?: string;
}

const KINDS: readonly EndpointKind[] = ['http', 'tcp', 'tls'];
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function invalid(label: string, value: string, expected: string): BurrowError {
  const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return new BurrowError('BURROW_ERR_CONFIG_INVALID', `${label}: '${shown.replace(/[\u0000-\u001f\u007f]/g, '?')}' ${expected}`);
}

function schemeOf(text: string): string | null {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  return m === null ? null : m[1]!.toLowerCase();
}

function kindOfScheme(scheme: string | null): EndpointKind | null {
  if (scheme === 'http' || scheme === 'https') return 'http';
  if (scheme === 'tcp' || scheme === 'tls') return scheme;
  return null;
}

function checkHostname(host: string, label: string, value: string): string {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h.length === 0 || h.length > 253 || !h.split('.').every((l) => DNS_LABEL.test(l))) {
    throw invalid(label, value, "does not name a valid host (letters, digits and '-' in dot-separated labels; example: app.burrow.localhost)");
  }
  return h;
}

/** Port text → 1..65535, or throws naming the input. */
function checkPort(text: string, label: string, value: string): number {
  const n = /^[0-9]{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) throw invalid(label, value, `has no valid port: '${text}' is not a whole number 1..65535`);
  return n;
}

/** Splits "host:port" / "[v6]:port"; host defaults to localhost when only a port is given. */
function splitHostPort(text: string, label: string, value: string, example: string): UpstreamAddress {
  if (/^[0-9]+$/.test(text)) return { host: 'localhost', port: checkPort(text, label, value) };
  let host: string;
  let port: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw invalid(label, value, `is not host:port (${example})`);
    host = text.slice(1, close);
    port = text.slice(close + 2);
    if (isIP(host) !== 6) throw invalid(label, value, `has no IPv6 address inside [ ] (${example})`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) throw invalid(label, value, `is not a port or host:port (${example})`);
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
    if (host.includes(':')) throw invalid(label, value, `has an IPv6 address without brackets; write [addr]:port (${example})`);
    if (isIP(host) === 0) host = checkHostname(host, label, value);
  }
  return { host, port: checkPort(port, label, value) };
}

/** Parses the upstream for an endpoint of `kind`; returns the address and the ForwardsTo text. */
function parseUpstream(kind: EndpointKind, raw: string | number, label: string): { address: UpstreamAddress; forwardsTo: string } {
  const value = String(raw).trim();
  const example = kind === 'http' ? 'example: 3000, 127.0.0.1:3000 or http://127.0.0.1:3000' : `example: 5432, 127.0.0.1:5432 or ${kind}://127.0.0.1:5432`;
  const scheme = schemeOf(value);
  let rest = value;
  let defaultPort = 0;
  if (scheme !== null) {
    rest = value.slice(scheme.length + 3);
    const allowed = kind === 'http' ? ['http'] : kind === 'tcp' ? ['tcp'] : ['tls', 'tcp'];
    if (scheme === 'https' && kind === 'http') {
      throw invalid(label, value, 'is an https:// upstream; the agent speaks plain HTTP to upstreams. Point it at the plain HTTP port, or use a tls endpoint to pass TLS through');
    }
    if (!allowed.includes(scheme)) {
      throw invalid(label, value, `has scheme ${scheme}:// but this is a ${kind} endpoint (allowed: ${allowed.map((s) => `${s}://`).join(', ')} or none)`);
    }
    if (scheme === 'http') {
      rest = rest.replace(/\/$/, '');
      defaultPort = 80;
    }
    if (/[/?#@]/.test(rest)) throw invalid(label, value, `must be scheme://host:port without a path, query or user (${example})`);
  } else if (/[/?#@]/.test(rest)) {
    throw invalid(label, value, `must be a port or host:port without a path, query or user (${example})`);
  }
  if (rest === '') throw invalid(label, value, `names no host or port (${example})`);
  // A port alone, or host:port (an IPv6 literal masked so its colons do not count).
  const hasPort = /^[0-9]+$/.test(rest) || /:[0-9]+$/.test(rest.replace(/^\[[^\]]*\]/, 'h'));
  if (!hasPort && defaultPort === 0) throw invalid(label, value, `has no port (${example})`);
  const address = splitHostPort(hasPort ? rest : `${rest}:${defaultPort}`, label, value, example);
  const hostText = isIP(address.host) === 6 ? `[${address.host}]` : address.host;
  return { address, forwardsTo: `${kind}://${hostText}:${address.port}` };
}

/** Parses the public URL wanted for an endpoint of `kind`. */
function parseUrl(kind: EndpointKind, raw: string, label: string): { hostname: string; addr: string } {
  const value = raw.trim();
  const scheme = schemeOf(value);
  if (kind === 'tcp') {
    // tcp:// (any port) or tcp://host:port; the relay uses the port.
    if (scheme !== 'tcp') throw invalid(label, value, 'is not a tcp:// URL (tcp:// for any port, or tcp://host:port for one port)');
    const rest = value.slice(6).replace(/\/$/, '');
    if (rest === '') return { hostname: '', addr: '' };
    const a = splitHostPort(rest, label, value, 'example: tcp://127.0.0.1:20001');
    if (/^[0-9]+$/.test(rest)) throw invalid(label, value, 'names only a port; write tcp://host:port (example: tcp://127.0.0.1:20001)');
    return { hostname: '', addr: `${isIP(a.host) === 6 ? `[${a.host}]` : a.host}:${a.port}` };
  }
  const allowed = kind === 'http' ? ['http', 'https'] : ['tls'];
  if (scheme !== null && !allowed.includes(scheme)) {
    throw invalid(label, value, `has scheme ${scheme}:// but this is a ${kind} endpoint (use ${allowed.map((s) => `${s}://name.domain`).join(' or ')})`);
  }
  const rest = scheme === null ? value : value.slice(scheme.length + 3);
  // The port, if any, is the relay's listener port (copied from a printed URL): it is not part of the name.
  const m = /^([^/:?#@]+)(:[0-9]{1,5})?\/?$/.exec(rest);
  if (m === null) throw invalid(label, value, `must be ${allowed[0]}://name.domain without a path, query or user (example: ${allowed[0]}://app.burrow.localhost)`);
  const host = m[1]!;
  if (isIP(host) !== 0) throw invalid(label, value, 'names an IP address; endpoints are reached by host name (example: app.burrow.localhost)');
  return { hostname: checkHostname(host, label, value), addr: '' };
}

/**
 * Validates one endpoint's inputs. Throws BURROW_ERR_CONFIG_INVALID naming the input (by `labels`) and what is wrong.
 * `listener: true` builds a listen() endpoint (no upstream).
 */
export function endpointSpec(input: EndpointInput, labels: EndpointLabels, listener = false): EndpointSpec {
  const url = input.url === undefined || input.url === null || input.url === '' ? null : input.url;
  const upstream = input.upstream === undefined || input.upstream === null || input.upstream === '' ? null : input.upstream;
  let kind = input.kind ?? null;
  if (kind !== null && !KINDS.includes(kind)) throw invalid('kind', String(kind), 'is not one of http, tcp, tls');
  if (kind === null && url !== null) kind = kindOfScheme(schemeOf(url));
  if (kind === null && upstream !== null) kind = kindOfScheme(schemeOf(String(upstream)));
  if (kind === null) {
    const urlScheme = url === null ? null : schemeOf(url);
    if (url !== null && urlScheme !== null) {
      throw invalid(labels.url, url, `has scheme ${urlScheme}://; use http://, https://, tls:// or tcp://`);
    }
    const upScheme = upstream === null ? null : schemeOf(String(upstream));
    if (upstream !== null && upScheme !== null) {
      throw invalid(labels.upstream, String(upstream), `has scheme ${upScheme}://; use http://, tcp:// or tls://`);
    }
    throw new BurrowError(
      'BURROW_ERR_CONFIG_INVALID',
      `${labels.url}: ${url === null ? 'missing' : `'${url}' has no scheme`}, so the kind of endpoint is unknown; ` +
        'write the url (or the upstream) with http://, tls:// or tcp://',
    );
  }
  const { hostname, addr } = url === null ? { hostname: '', addr: '' } : parseUrl(kind, url, labels.url);
  let address: UpstreamAddress | null = null;
  let forwardsTo = '';
  if (!listener) {
    if (upstream === null) {
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${labels.upstream}: missing; say where connections go (example: http://127.0.0.1:3000)`);
    }
    const u = parseUpstream(kind, upstream, labels.upstream);
    address = u.address;
    forwardsTo = u.forwardsTo;
  }
  const name = input.name ?? (hostname !== '' ? hostname.split('.')[0]! : kind);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    throw invalid(labels.name, name, "is not a valid name (1..64 letters, digits, '_', '.', '-')");
  }
  let lb: BalanceStrategy | null = null;
  if (input.lb !== undefined && input.lb !== null) {
    if (!isBalanceStrategy(input.lb)) {
      throw invalid(labels.lb ?? 'lb', input.lb, `is not a balancing strategy; use one of ${BALANCE_STRATEGIES.join(', ')}`);
    }
    lb = input.lb;
  }
  const basicAuth = parseCredentials(input.basicAuth, labels.basicAuth ?? 'basicAuth');
  if (basicAuth.length > 0 && kind !== 'http') {
    throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${labels.basicAuth ?? 'basicAuth'}: basic auth needs an http endpoint; this one is ${kind}`);
  }
  const allowCidrs = parseNetworks(input.allowCidrs, labels.allowCidrs ?? 'allowCidrs');
  const denyCidrs = parseNetworks(input.denyCidrs, labels.denyCidrs ?? 'denyCidrs');
  const proxyProto = proxyProtoVersion(input.proxyProto);
  if (proxyProto === null) {
    throw invalid(labels.proxyProto ?? 'proxyProto', String(input.proxyProto), 'is not a PROXY protocol version; use 1 (text) or 2 (binary)');
  }
  const request = parseHeaderRules(
    input.requestHeaderAdd, input.requestHeaderRemove, labels.requestHeaderAdd ?? 'requestHeaderAdd', labels.requestHeaderRemove ?? 'requestHeaderRemove', kind,
  );
  const response = parseHeaderRules(
    input.responseHeaderAdd, input.responseHeaderRemove, labels.responseHeaderAdd ?? 'responseHeaderAdd', labels.responseHeaderRemove ?? 'responseHeaderRemove', kind,
  );
  return Object.freeze({
    name, kind, hostname, addr, upstream: address, forwardsTo, pool: input.pool === true, lb, basicAuth, allowCidrs, denyCidrs, proxyProto,
    requestHeaderAdd: request.add, requestHeaderRemove: request.remove, responseHeaderAdd: response.add, responseHeaderRemove: response.remove,
  });
}

/**
 * Header rules (request or response): `Name: value` lines to add and names to remove, checked as the relay checks them
 * at Bind (config/endpoint-rules.ts), so a rule the relay would refuse stops the agent at start with the flag or line
 * named.
 */
function parseHeaderRules(
  addInput: string | readonly string[] | null | undefined,
  removeInput: string | readonly string[] | null | undefined,
  addLabel: string,
  removeLabel: string,
  kind: EndpointKind,
): { add: string[]; remove: string[] } {
  const lines = addInput === undefined || addInput === null ? [] : typeof addInput === 'string' ? [addInput] : [...addInput];
  // Names hold no commas, so each item may list several (a repeated flag gives a list of such items).
  const names = listOf(removeInput).flatMap((n) => listOf(n));
  if (lines.length + names.length === 0) return { add: [], remove: [] };
  if (kind !== 'http') {
    throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${lines.length > 0 ? addLabel : removeLabel}: header rules need an http endpoint; this one is ${kind}`);
  }
  if (lines.length + names.length > MAX_HEADER_RULES) {
    throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${addLabel}, ${removeLabel}: at most ${MAX_HEADER_RULES} header rules in all; there are ${lines.length + names.length}`);
  }
  const remove = names.map((n) => {
    const problem = headerFieldProblem(n);
    if (problem !== null) throw invalid(removeLabel, n, problem);
    return n.toLowerCase();
  });
  let bytes = 0;
  const add = lines.map((line) => {
    const text = String(line);
    const colon = text.indexOf(':');
    const name = colon < 0 ? '' : text.slice(0, colon).trim();
    const value = colon < 0 ? '' : text.slice(colon + 1).trim();
    if (colon < 0) throw invalid(addLabel, text, "is not 'Name: value' (example: 'X-Env: staging')");
    const fieldProblem = headerFieldProblem(name);
    if (fieldProblem !== null) throw invalid(addLabel, text, `(field ${JSON.stringify(name)}) ${fieldProblem}`);
    const valueProblem = headerValueProblem(value);
    if (valueProblem !== null) throw invalid(addLabel, text, `(its value) ${valueProblem}`);
    bytes += name.length + value.length + 4; // "name: value\r\n", as the relay writes it (one byte per character)
    return `${name.toLowerCase()}:${value}`;
  });
  if (bytes > MAX_ADDED_HEADER_BYTES) {
    throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${addLabel}: the added fields come to ${bytes} bytes per head; at most ${MAX_ADDED_HEADER_BYTES}`);
  }
  return { add, remove };
}

function listOf(v: string | readonly string[] | null | undefined): string[] {
  if (v === undefined || v === null) return [];
  const items = typeof v === 'string' ? v.split(',') : [...v];
  return items.map((x) => String(x).trim()).filter((x) => x !== '');
}

/** `user:password` items → credentials (RFC 7617: no ':' in the user name; the password may hold any). */
function parseCredentials(v: string | readonly string[] | null | undefined, label: string): Array<{ username: string; password: string }> {
  const out: Array<{ username: string; password: string }> = [];
  for (const item of typeof v === 'string' ? [v] : listOf(v)) {
    const c = parseCredential(item);
    if (c === null) {
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${label}: expects user:password (a user name without ':', a non-empty password)`);
    }
    out.push(c);
  }
  return out;
}

/** Networks as `address[/prefix]`; the relay checks them again when it binds. */
function parseNetworks(v: string | readonly string[] | null | undefined, label: string): string[] {
  const nets = listOf(v);
  for (const n of nets) {
    if (parseNetwork(n) === null) {
      throw invalid(label, n, 'is not a network; write it as 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32 (several: comma-separated)');
    }
  }
  return nets;
}
