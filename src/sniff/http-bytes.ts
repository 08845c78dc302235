// Byte helpers shared by the HTTP/1.1 request filter, response tracker and head rewriter: digits, OWS, ASCII
// case-insensitive names, head ends.
// Pure. HOT PATH (called per header line).

const SP = 0x20;
const HTAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;

export function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

/** RFC 9110 §5.6.3 OWS: space or horizontal tab. */
export function isOWS(b: number): boolean {
  return b === SP || b === HTAB;
}

/** Case-insensitive compare of buf[start, start+len) with a lowercase ASCII name. */
export function nameIs(buf: Buffer, start: number, len: number, lower: Buffer): boolean {
  if (len !== lower.length) return false;
  for (let k = 0; k < len; k++) {
    const b = buf[start + k]!;
    if ((b >= 0x41 && b <= 0x5a ? b | 0x20 : b) !== lower[k]) return false;
  }
  return true;
}

/**
 * Whether buf[start, start+len) is one of `names` (lowercase ASCII, '-' for '_'), reading A–Z as a–z and '_' as '-':
 * nginx ($http_x_user) and CGI (HTTP_X_USER) give both spellings of a field name to the service as one variable.
 */
export function isNamedFolded(buf: Buffer, start: number, len: number, names: readonly Buffer[]): boolean {
  for (let k = 0; k < names.length; k++) if (names[k]!.length === len && foldedPrefixIs(buf, start, names[k]!)) return true;
  return false;
}

/** Whether buf[start, start + lower.length) equals `lower`, reading A–Z as a–z and '_' as '-'. */
export function foldedPrefixIs(buf: Buffer, start: number, lower: Buffer): boolean {
  for (let k = 0; k < lower.length; k++) {
    const b = buf[start + k]!;
    if ((b >= 0x41 && b <= 0x5a ? b | 0x20 : b === 0x5f ? 0x2d : b) !== lower[k]) return false;
  }
  return true;
}

/** Whether buf[start, start+len) is one of `names` (lowercase ASCII), case-insensitively. */
export function isNamed(buf: Buffer, start: number, len: number, names: readonly Buffer[]): boolean {
  for (let k = 0; k < names.length; k++) if (nameIs(buf, start, len, names[k]!)) return true;
  return false;
}

/** Whether buf[start, end) begins with the lowercase ASCII `lower`, case-insensitively. */
export function hasPrefixCI(buf: Buffer, start: number, end: number, lower: Buffer): boolean {
  return end - start >= lower.length && nameIs(buf, start, lower.length, lower);
}

/**
 * Copies chunk[from, to) into `buf` at `len` (a head assembled across reads) and returns the buffer that now holds
 * the bytes: `buf` itself, or a larger copy (doubling from 1 KiB, at most `cap` unless more is needed right away).
 */
export function appendBytes(buf: Buffer, len: number, chunk: Buffer, from: number, to: number, cap: number): Buffer {
  const need = len + (to - from);
  let out = buf;
  if (need > buf.length) {
    out = Buffer.allocUnsafe(Math.max(need, Math.min(cap, Math.max(1024, buf.length * 2))));
    buf.copy(out, 0, 0, len);
  }
  chunk.copy(out, len, from, to);
  return out;
}

/** 1*DIGIT up to 2^53−1, else −1 (RFC 9110 §8.6: no sign, no list, no hex). */
export function parseDecimal(buf: Buffer, start: number, end: number): number {
  if (start === end || end - start > 16) return -1;
  let v = 0;
  for (let k = start; k < end; k++) {
    const b = buf[k]!;
    if (!isDigit(b)) return -1;
    v = v * 10 + (b - 0x30);
  }
  return v <= Number.MAX_SAFE_INTEGER ? v : -1;
}

/** The position after the first empty line (CRLF CRLF, or LF LF) that ends a line found at or after `from`, else -1. */
export function findHeadEnd(b: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    if (b[i] !== LF) continue;
    if (i + 1 >= end) return -1;
    const n = b[i + 1];
    if (n === LF) return i + 2;
    if (n === CR) {
      if (i + 2 >= end) return -1;
      if (b[i + 2] === LF) return i + 3;
    }
  }
  return -1;
}
