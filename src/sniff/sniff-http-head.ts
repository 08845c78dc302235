// Reads the first HTTP/1.x request head on a public http connection far enough to route it by Host, and tells HTTP
// from anything else as early as possible. Pure: bytes in, result out. Runs once per read until decided (not per chunk
// of an established connection: the worker's http-request-filter checks every head again, with framing rules).
//
//   request-line = method SP request-target SP "HTTP/" DIGIT "." DIGIT CRLF     RFC 9112 §3, §2.3
//                  (1.0 and 1.1 route; another well-formed version is answered 505)
//   field-line   = field-name ":" OWS field-value OWS CRLF                      RFC 9112 §5
//   head         = request-line *( field-line ) CRLF
//
// Guarantees (checked by test/unit/sniff/sniff-http-head.test.ts):
// * never throws, never reads outside `buf`, looks at most at `maxSize` bytes, cost linear in that;
// * one left-to-right pass that decides each rule as soon as its bytes are there, so for any prefix P of B,
//   sniffHttpHead(P) is either need-more or exactly sniffHttpHead(B). A caller re-sniffing a growing buffer may
//   therefore skip reads that bring no LF (only a line end can complete a head) without changing any answer except
//   how early an error shows; that keeps a one-byte-per-read client linear rather than quadratic.
//
// Decisions (stricter than llhttp where they differ; never more lenient, see the differential test):
// * not-http as soon as the bytes cannot start "token SP": the first non-token byte before the first SP, a leading
//   SP or CRLF (RFC 9112 §2.2 lets servers skip empty lines before a request line; a fresh connection has none, and a
//   TLS ClientHello or binary junk must be told apart at byte 0), or a token longer than METHOD_MAX without SP.
// * a token followed by SP that is not a method Node's parser knows → invalid 'method' (this also refuses lowercase
//   methods; RFC 9110 §9.1 methods are case-sensitive). CONNECT needs authority-form, `*` only with OPTIONS.
// * only HTTP/1.0 and HTTP/1.1; exact CRLF everywhere (bare LF and bare CR are invalid, DESIGN.md §6); obs-fold and
//   whitespace before the first field line are invalid (RFC 9112 §5.2, §2.2); field names are tokens with no
//   whitespace before ':' (RFC 9112 §5.1); field values may hold HTAB, SP, VCHAR and obs-text only (no NUL, CR, LF,
//   other controls or DEL, RFC 9110 §5.5).
// * Host (RFC 9112 §3.2): exactly one on HTTP/1.1 (two → invalid on 1.0 too); on HTTP/1.0 it may be absent, then
//   host = hostname = ''. The value must be uri-host [":" port]: a reg-name of [A-Za-z0-9._-] with non-empty labels of
//   at most 63 characters and 253 in all, or an IPv6 literal in brackets; a port of 1-5 digits up to 65535. Empty
//   Host is invalid (it cannot route). `hostname` is lowercased, port removed, one trailing dot removed, IPv6 without
//   brackets (`[::1]:8080` → `::1`), the same normalization as http-request-filter's isAllowedHost.
// * absolute-form targets (http/https only, no userinfo): routing uses Host, or the target's authority when an HTTP/1.0
//   request has no Host (RFC 9112 §3.2.2). An authority naming another host than Host is not judged here: the
//   worker's filter answers it 421 like any misdirected request, on the first request as on later ones.
// * framing fields (Content-Length, Transfer-Encoding) are not judged here: the worker's filter owns them.

import { parseHost, type HostParts } from './parse-host.js';

const SP = 0x20;
const HTAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;

/** Longest method token looked at before deciding the bytes are not HTTP (longest known method is 11). */
export const METHOD_MAX = 20;

/**
 * Methods accepted in the first request: exactly those llhttp (Node 20's parser) accepts for HTTP/1.x requests,
 * so anything we route, a Node upstream can parse too.
 */
export const HTTP_METHODS: ReadonlySet<string> = new Set([
  'ACL', 'BIND', 'CHECKOUT', 'CONNECT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LINK', 'LOCK', 'M-SEARCH', 'MERGE',
  'MKACTIVITY', 'MKCALENDAR', 'MKCOL', 'MOVE', 'NOTIFY', 'OPTIONS', 'PATCH', 'POST', 'PROPFIND', 'PROPPATCH', 'PURGE',
  'PUT', 'QUERY', 'REBIND', 'REPORT', 'SEARCH', 'SOURCE', 'SUBSCRIBE', 'TRACE', 'UNBIND', 'UNLINK', 'UNLOCK',
  'UNSUBSCRIBE',
]);

/** Which rule an invalid head broke (a bounded set, usable as a metric label). All answer 400, except a well-formed
 * HTTP version other than 1.0/1.1 (505). */
export type HttpHeadProblem =
  | 'method'
  | 'target'
  | 'version'
  | 'bare-lf'
  | 'bare-cr'
  | 'obs-fold'
  | 'header-name'
  | 'header-value'
  | 'missing-host'
  | 'duplicate-host'
  | 'bad-host';

export type HttpHeadSniff =
  /** A valid prefix: read more. */
  | { kind: 'need-more' }
  /** Does not start like an HTTP/1.x request line (binary junk, a TLS ClientHello, SSH banner, ...). */
  | { kind: 'not-http'; reason: string }
  /** No end of head within maxSize bytes. */
  | { kind: 'too-large' }
  /** Starts like HTTP but breaks a rule: answer `status` (400, or 505 for an unsupported version) and close. */
  | { kind: 'invalid'; problem: HttpHeadProblem; reason: string; status: 400 | 505 }
  /**
   * A complete first head of `headLength` bytes (through the empty line). `host` is the Host value without
   * surrounding whitespace ('' on HTTP/1.0 without Host); `hostname` as described above; `port` from Host.
   */
  | {
      kind: 'head';
      method: string;
      target: string;
      version: '1.0' | '1.1';
      host: string;
      hostname: string;
      port: number | null;
      headLength: number;
    };

/** Stable metric labels, one per distinct outcome (see headOutcome). */
export const HTTP_HEAD_OUTCOMES = [
  'head',
  'head-no-host',
  'need-more',
  'not-http',
  'too-large',
  'invalid-method',
  'invalid-target',
  'invalid-version',
  'invalid-bare-lf',
  'invalid-bare-cr',
  'invalid-obs-fold',
  'invalid-header-name',
  'invalid-header-value',
  'invalid-missing-host',
  'invalid-duplicate-host',
  'invalid-bad-host',
] as const;
export type HttpHeadOutcome = (typeof HTTP_HEAD_OUTCOMES)[number];

/** A stable, bounded label for counting sniff outcomes (DESIGN.md §6, §7). */
export function headOutcome(result: HttpHeadSniff): HttpHeadOutcome {
  switch (result.kind) {
    case 'head':
      return result.host === '' ? 'head-no-host' : 'head';
    case 'invalid':
      return `invalid-${result.problem}`;
    default:
      return result.kind;
  }
}

// RFC 9110 §5.6.2 tchar (Host characters are checked by parse-host.ts)
const TCHAR = new Uint8Array(256);
for (let b = 0; b < 128; b++) {
  const digit = b >= 0x30 && b <= 0x39;
  const alpha = (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
  const ch = String.fromCharCode(b);
  TCHAR[b] = digit || alpha || "!#$%&'*+-.^_`|~".includes(ch) ? 1 : 0;
}

const NEED_MORE: HttpHeadSniff = Object.freeze({ kind: 'need-more' }) as HttpHeadSniff;
const TOO_LARGE: HttpHeadSniff = Object.freeze({ kind: 'too-large' }) as HttpHeadSniff;

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

function bad(problem: HttpHeadProblem, reason: string): HttpHeadSniff {
  return { kind: 'invalid', problem, reason, status: 400 };
}

/** Sniff the request head at the start of `buf`, looking at no more than `maxSize` bytes. */
export function sniffHttpHead(buf: Uint8Array, maxSize = 16384): HttpHeadSniff {
  const n = buf.length;
  if (!(maxSize >= 0)) maxSize = 0; // NaN or negative: nothing fits
  const lim = n < maxSize ? n : maxSize;
  // Out of bytes at index i (i >= lim): too-large when the limit, not the input, ran out.
  const short = (i: number): HttpHeadSniff => (i >= maxSize ? TOO_LARGE : NEED_MORE);

  // ---- method SP ----
  let i = 0;
  for (;;) {
    if (i >= lim) return short(i);
    const c = buf[i]!;
    if (c === SP) break;
    if (TCHAR[c] !== 1) {
      return {
        kind: 'not-http',
        reason: i === 0 ? `first byte 0x${hex2(c)} cannot start a request line` : `byte 0x${hex2(c)} in the method token`,
      };
    }
    if (++i > METHOD_MAX) return { kind: 'not-http', reason: `no space within the first ${METHOD_MAX + 1} bytes` };
  }
  if (i === 0) return { kind: 'not-http', reason: 'request line starts with a space' };
  const method = latin1(buf, 0, i);
  if (!HTTP_METHODS.has(method)) return bad('method', `unknown method ${JSON.stringify(method)}`);

  // ---- request-target SP ----
  const ts = ++i;
  for (;;) {
    if (i >= lim) return short(i);
    const c = buf[i]!;
    if (c === SP) break;
    if (c === LF) return bad('bare-lf', 'bare LF in the request line');
    if (c === CR) return bad('version', 'request line without an HTTP version');
    if (c < 0x21 || c > 0x7e) return bad('target', `byte 0x${hex2(c)} in the request target`);
    i++;
  }
  const te = i;
  if (te === ts) return bad('target', 'empty request target');
  // Authority named by the target (absolute-form, or CONNECT's authority-form); null for origin- and asterisk-form.
  let authority: HostParts | null = null;
  const t0 = buf[ts]!;
  if (method === 'CONNECT') {
    // RFC 9112 §3.2.3: authority-form = uri-host ":" port
    authority = parseHost(buf, ts, te, true);
    if (authority === null) return bad('target', 'CONNECT needs an authority-form target host:port');
  } else if (t0 === 0x2f) {
    // origin-form
  } else if (t0 === 0x2a && te - ts === 1) {
    if (method !== 'OPTIONS') return bad('target', 'asterisk-form target is only for OPTIONS'); // RFC 9112 §3.2.4
  } else {
    const as = schemeEnd(buf, ts, te);
    if (as < 0) return bad('target', 'request target is not origin-form or an http(s) absolute-form');
    let ae = as;
    while (ae < te && buf[ae] !== 0x2f && buf[ae] !== 0x3f && buf[ae] !== 0x23) ae++;
    for (let k = as; k < ae; k++) {
      if (buf[k] === 0x40) return bad('target', 'userinfo in the request target'); // RFC 9110 §4.2.4
    }
    authority = parseHost(buf, as, ae, false);
    if (authority === null || authority.hostname === '') return bad('target', 'bad authority in the request target');
  }

  // ---- SP HTTP-version CRLF (RFC 9112 §2.3: "HTTP/" DIGIT "." DIGIT) ----
  i++;
  const PREFIX = 'HTTP/';
  for (let k = 0; k < PREFIX.length; k++, i++) {
    if (i >= lim) return short(i);
    if (buf[i] !== PREFIX.charCodeAt(k)) return bad('version', 'invalid HTTP version in the request line');
  }
  if (i + 3 > lim) {
    // Judge what is there so far: a bad byte is an error now, not after more reads.
    if (i < lim && !isDigit(buf[i]!)) return bad('version', 'invalid HTTP version in the request line');
    if (i + 1 < lim && buf[i + 1] !== 0x2e) return bad('version', 'invalid HTTP version in the request line');
    return short(lim);
  }
  const major = buf[i]!;
  const minor = buf[i + 2]!;
  if (!isDigit(major) || buf[i + 1] !== 0x2e || !isDigit(minor)) return bad('version', 'invalid HTTP version in the request line');
  i += 3;
  if (i >= lim) return short(i);
  if (buf[i] === LF) return bad('bare-lf', 'request line ends with a bare LF');
  if (buf[i] !== CR) return bad('version', 'bytes after the HTTP version');
  // Well-formed but not ours: 505 (RFC 9110 §15.6.6), as the worker's filter answers on later requests.
  if (major !== 0x31 || (minor !== 0x30 && minor !== 0x31)) {
    return { kind: 'invalid', problem: 'version', reason: 'HTTP version not supported: only HTTP/1.0 and HTTP/1.1', status: 505 };
  }
  i++;
  if (i >= lim) return short(i);
  if (buf[i] !== LF) return bad('bare-cr', 'CR without LF after the request line');
  i++;

  // ---- field lines, then the empty line ----
  let hostStart = -1;
  let hostEnd = -1;
  let host: HostParts | null = null;
  for (;;) {
    const ls = i;
    if (i >= lim) return short(i);
    let c = buf[i]!;
    if (c === CR) {
      i++;
      if (i >= lim) return short(i);
      if (buf[i] !== LF) return bad('bare-cr', 'CR without LF at the end of the head');
      i++;
      break;
    }
    if (c === LF) return bad('bare-lf', 'head ends with a bare LF');
    if (c === SP || c === HTAB) {
      // RFC 9112 §5.2 obs-fold (after a field line), §2.2 whitespace before the first field line
      return bad('obs-fold', 'field line starts with whitespace (obs-fold)');
    }
    for (;;) {
      if (i >= lim) return short(i);
      c = buf[i]!;
      if (c === COLON) break;
      if (TCHAR[c] !== 1) {
        if (c === LF) return bad('bare-lf', 'bare LF in a field line');
        if (c === SP || c === HTAB) return bad('header-name', 'whitespace in a field name or before the colon');
        if (c === CR) return bad('header-name', 'field line without a colon');
        return bad('header-name', `byte 0x${hex2(c)} in a field name`);
      }
      i++;
    }
    if (i === ls) return bad('header-name', 'empty field name');
    const isHost =
      i - ls === 4 &&
      (buf[ls]! | 0x20) === 0x68 &&
      (buf[ls + 1]! | 0x20) === 0x6f &&
      (buf[ls + 2]! | 0x20) === 0x73 &&
      (buf[ls + 3]! | 0x20) === 0x74;
    if (isHost && hostStart >= 0) return bad('duplicate-host', 'more than one Host field'); // RFC 9112 §3.2
    const vs = ++i;
    for (;;) {
      if (i >= lim) return short(i);
      c = buf[i]!;
      if (c === CR) break;
      if (c === LF) return bad('bare-lf', 'bare LF in a field value');
      if (c === 0) return bad('header-value', 'NUL in a field value');
      if ((c < 0x20 && c !== HTAB) || c === 0x7f) return bad('header-value', `control byte 0x${hex2(c)} in a field value`);
      i++;
    }
    const ve = i;
    i++;
    if (i >= lim) return short(i);
    if (buf[i] !== LF) return bad('bare-cr', 'CR without LF in a field line');
    i++;
    if (isHost) {
      // strip OWS (RFC 9112 §5.1)
      let s = vs;
      let e = ve;
      while (s < e && (buf[s] === SP || buf[s] === HTAB)) s++;
      while (e > s && (buf[e - 1] === SP || buf[e - 1] === HTAB)) e--;
      host = parseHost(buf, s, e, false);
      if (host === null || host.hostname === '') return bad('bad-host', 'Host is not a valid host[:port]');
      hostStart = s;
      hostEnd = e;
    }
  }

  const version = minor === 0x31 ? '1.1' : '1.0';
  if (host === null && version === '1.1') return bad('missing-host', 'HTTP/1.1 request without Host'); // RFC 9112 §3.2
  return {
    kind: 'head',
    method,
    target: latin1(buf, ts, te),
    version,
    host: host === null ? '' : latin1(buf, hostStart, hostEnd),
    // Routed by Host; an HTTP/1.0 request without one by its absolute-form target, if it has one (RFC 9112 §3.2.2).
    hostname: host !== null ? host.hostname : authority !== null ? authority.hostname : '',
    port: host === null ? null : host.port,
    headLength: i,
  };
}

/** Offset just past "http://" or "https://" (scheme case-insensitive, RFC 3986 §3.1) at `s`, or -1. */
function schemeEnd(buf: Uint8Array, s: number, e: number): number {
  if (e - s < 7) return -1;
  if ((buf[s]! | 0x20) !== 0x68 || (buf[s + 1]! | 0x20) !== 0x74 || (buf[s + 2]! | 0x20) !== 0x74 || (buf[s + 3]! | 0x20) !== 0x70) {
    return -1;
  }
  let p = s + 4;
  if ((buf[p]! | 0x20) === 0x73) p++;
  if (p + 3 > e || buf[p] !== COLON || buf[p + 1] !== 0x2f || buf[p + 2] !== 0x2f) return -1;
  return p + 3;
}

function latin1(buf: Uint8Array, s: number, e: number): string {
  let out = '';
  for (let k = s; k < e; k++) out += String.fromCharCode(buf[k]!);
  return out;
}

function hex2(b: number): string {
  return (b < 16 ? '0' : '') + b.toString(16);
}
