// The forms of the endpoint rules that burrow's agent (flags, burrow.yml, forward()) and the relay (Bind.Opts) both
// read: client networks (IPRestriction), user:password credentials (basic auth), the PROXY protocol version, request
// header rules (which fields may be added or removed, and which values). One
// reading for both sides, so the agent never accepts what the relay then refuses. Each caller words its own error.
import net from 'node:net';

/** A client network: an address and a prefix length (a bare address is itself: /32 or /128). */
export interface Network {
  ip: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32` → the network, or null when it is none. */
export function parseNetwork(text: string): Network | null {
  const slash = text.indexOf('/');
  const ip = slash < 0 ? text : text.slice(0, slash);
  const version = net.isIP(ip);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > max) return null;
  }
  return { ip, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * `user:password` → its parts (RFC 7617: the user name holds no ':', the password may), or null when the user name or
 * the password is empty, or either holds a control character.
 */
export function parseCredential(text: string): { username: string; password: string } | null {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1 || /[\x00-\x1f\x7f]/.test(text)) return null;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The PROXY protocol version asked for: 0 (none: also null, undefined, ''), 1 or 2, as a number or a string; else null. */
export function proxyProtoVersion(v: unknown): 0 | 1 | 2 | null {
  if (v === null || v === undefined || v === '' || v === 0 || v === '0') return 0;
  if (v === 1 || v === '1') return 1;
  if (v === 2 || v === '2') return 2;
  return null;
}

/**
 * Fields header rules may neither add nor remove: message framing, hop-by-hop and routing fields, and the forwarding
 * fields the relay itself writes (a rule on them could smuggle a request or spoof the client address).
 */
const RESERVED_FIELDS = new Set([
  'host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive',
  'proxy-connection', 'http2-settings', 'expect', 'forwarded', 'x-real-ip',
]);
/** RFC 9110 §5.1 field name (a token), at most 128 characters. */
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/;
/** Longest value of an added field. */
export const MAX_HEADER_VALUE_BYTES = 4096;
/** Bytes the header rules may add to each head (upstreams commonly refuse heads over 8–16 KiB). */
export const MAX_ADDED_HEADER_BYTES = 8 * 1024;
/** Most add + remove rules one endpoint may have. */
export const MAX_HEADER_RULES = 32;

/** What is wrong with `name` as the field of a header rule, or null when it may be added or removed. */
export function headerFieldProblem(name: string): string | null {
  if (!FIELD_NAME.test(name)) return 'is not a header field name (letters, digits and !#$%&\'*+-.^_`|~, at most 128)';
  const lower = name.toLowerCase();
  if (RESERVED_FIELDS.has(lower) || lower.startsWith('x-forwarded-')) {
    return 'is kept by the relay as it is (framing, routing or forwarding); it cannot be added or removed';
  }
  return null;
}

/**
 * What is wrong with `value` as the value of an added field, or null when it is fine: RFC 9110 §5.5 field-vchar, SP
 * and HTAB, and obs-text (0x80–0xFF). The relay writes the value one byte per character (latin1), so a character
 * above U+00FF would lose its high byte: U+010D would reach the wire as CR, and with U+010A a whole extra field
 * (Transfer-Encoding, Content-Length) could be smuggled past the reserved-field check. Those are refused too.
 */
export function headerValueProblem(value: string): string | null {
  if (/[^\t\x20-\x7e\x80-\xff]/.test(value) || value.length > MAX_HEADER_VALUE_BYTES) {
    return `must be at most ${MAX_HEADER_VALUE_BYTES / 1024} KiB of printable characters (no CR, LF or other control characters, nothing above U+00FF)`;
  }
  return null;
}
