// The forms of the endpoint rules that burrow's agent (flags, burrow.yml, forward()) and the relay (Bind.Opts) both
// read: client networks (IPRestriction), user:password credentials (basic auth), the PROXY protocol version. One
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
