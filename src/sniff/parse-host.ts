// Parses a Host value or a request-target authority (RFC 9110 §7.2, RFC 3986 §3.2.2) into a normalized hostname and
// port: the one definition both the acceptor's sniffer (routing) and the worker's filter (re-check) use, so they can
// never disagree on which endpoint a request names. Pure. Once per request head.

export interface HostParts {
  /** Lowercased, without brackets (IPv6) and without one trailing dot. */
  hostname: string;
  port: number | null;
}

const COLON = 0x3a;
const DOT = 0x2e;
/** reg-name characters burrow accepts in a hostname (letters, digits, '-', '.', '_'). */
const HOST_CHAR = new Uint8Array(256);
const HEX = new Uint8Array(256);
for (let b = 0; b < 128; b++) {
  const digit = b >= 0x30 && b <= 0x39;
  const alpha = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
  HOST_CHAR[b] = digit || alpha || b === 0x2d || b === DOT || b === 0x5f ? 1 : 0;
  HEX[b] = digit || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66) ? 1 : 0;
}

/**
 * `buf[s..e)` as host [":" port]: an IPv6 literal in brackets or dot-separated labels of at most 63 characters (253 in
 * all), and a port of 1–5 digits ≤ 65535 (required when `needPort`). Null when it is not one. An empty input gives
 * hostname '' (callers decide whether that is allowed).
 */
export function parseHost(buf: Uint8Array, s: number, e: number, needPort: boolean): HostParts | null {
  if (s >= e) return needPort ? null : { hostname: '', port: null };
  let hs: number;
  let he: number;
  let p: number;
  if (buf[s] === 0x5b) {
    // IP-literal, IPv6 only (no IPvFuture, no zone id)
    let close = s + 1;
    let colon = false;
    while (close < e && buf[close] !== 0x5d) {
      const b = buf[close]!;
      if (b === COLON) colon = true;
      else if (HEX[b] !== 1 && b !== DOT) return null;
      close++;
    }
    if (close >= e || !colon) return null;
    hs = s + 1;
    he = close;
    p = close + 1;
  } else {
    p = s;
    let label = 0;
    while (p < e && HOST_CHAR[buf[p]!] === 1) {
      if (buf[p] === DOT) {
        if (label === 0) return null; // empty label
        label = 0;
      } else if (++label > 63) {
        return null;
      }
      p++;
    }
    if (p === s) return null;
    hs = s;
    he = p;
    if (buf[he - 1] === DOT) he--; // one trailing dot: the same FQDN (labels checked above, so he > hs)
    if (he - hs > 253) return null;
  }
  let port: number | null = null;
  if (p < e) {
    if (buf[p] !== COLON) return null;
    const digits = e - p - 1;
    if (digits < 1 || digits > 5) return null;
    port = 0;
    for (let k = p + 1; k < e; k++) {
      const d = buf[k]! - 0x30;
      if (d < 0 || d > 9) return null;
      port = port * 10 + d;
    }
    if (port > 65535) return null;
  } else if (needPort) {
    return null;
  }
  // Only ASCII got here (HOST_CHAR / hex): one latin1 decode and toLowerCase, not a string concat per byte.
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return { hostname: bytes.toString('latin1', hs, he).toLowerCase(), port };
}
