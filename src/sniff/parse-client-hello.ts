// Finds SNI and ALPN in the TLS ClientHello at the start of a public connection, so the acceptor can route it without
// consuming more than the ClientHello's own records. Pure: bytes in, result out. Runs once per read until decided.
//
// Wire layout (RFC 8446 §5.1, §4.1.2; RFC 5246 §7.4.1.2):
//
//   record:    type(1)=0x16 · version(2)=0x03 0x00..0x04 · length(2)=1..16384 · fragment
//   handshake: type(1)=1 · length(3) · body        (one message, possibly spread over several records)
//   body:      legacy_version(2) · random(32) · session_id<0..32> · cipher_suites<2..2^16-2> (even)
//              · compression_methods<1..2^8-1> · [ extensions<0..2^16-1> ]
//   extension: type(2) · length(2) · data
//
// Guarantees, relied on by the acceptor and checked by test/unit/sniff/parse-client-hello.test.ts:
// * never throws, never reads outside `buf`, cost linear in `buf.length`, memory at most min(buf.length, maxSize);
// * decisions are made in stream order, so for any prefix P of B, parseClientHello(P) is either need-more or
//   exactly parseClientHello(B): an answer other than need-more never changes when more bytes arrive;
// * need-more carries `atLeast`, the smallest total length at which the answer could become `hello`. Re-sniffing
//   earlier is allowed (errors may show up sooner) but a paced one-byte-per-read client can then cost O(n²) work;
//   waiting for `atLeast` bytes keeps the acceptor linear.
//
// Decisions (documented in the result types below):
// * record version 0x0300 is accepted with 0x0301..0x0304: RFC 5246 Appendix E.1 lets clients put {03,00} in the
//   record layer of the first ClientHello, and RFC 8446 §5.1 says the field MUST be ignored; 0x0305+ is invalid.
//   A second byte other than 0x03 means the stream is not TLS at all (not-tls).
// * the ClientHello must end exactly at a record boundary: handshake bytes after it in the same record are invalid
//   (a client sends nothing else until the server's flight).
// * SNI that is framed correctly but unusable as a route (IP literal, bad characters, trailing dot, too long, empty)
//   is still a `hello`, with `sni: null` and a `sniProblem`, so the acceptor can answer with a clean close and count
//   it. RFC 6066 §3 forbids IP literals and the trailing dot; only LDH labels are accepted (A-labels for IDN).
// * server_name must hold exactly one entry of type host_name (as OpenSSL enforces; RFC 6066 §3 allows one name per
//   type and no other type was ever defined).

/** RFC 8446 §5.1: a plaintext record fragment MUST NOT exceed 2^14 bytes (ClientHello is never protected). */
export const TLS_MAX_FRAGMENT = 16384;
/** Reason carried by not-tls when the first byte has the high bit set (SSLv2-compatible CLIENT-HELLO header). */
export const NOT_TLS_SSLV2 = 'sslv2 hello';
/** ALPN lists longer than this are refused as hostile (real clients send 1-3 names). */
export const MAX_ALPN_PROTOCOLS = 64;

const RECORD_HEADER = 5;
const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_HEADER = 4;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0; // RFC 6066 §3
const EXT_ALPN = 16; // RFC 7301 §3.1
const SNI_HOST_NAME = 0;
const MAX_SESSION_ID = 32; // RFC 8446 §4.1.2 legacy_session_id<0..32>
const MAX_HOSTNAME = 253; // RFC 1035 §2.3.4 (255 octets on the wire = 253 characters in dotted form)
const MAX_LABEL = 63;

/** Why a present, well-framed SNI cannot be used as a route. */
export type SniProblem = 'ip-literal' | 'bad-chars' | 'trailing-dot' | 'too-long' | 'empty';

/** Which rule a malformed ClientHello broke (a bounded set, usable as a metric label). */
export type ClientHelloProblem =
  | 'record' // record layer: version, zero or oversized fragment, other record type inside the hello, trailing bytes
  | 'not-client-hello' // first handshake message is not a ClientHello
  | 'version' // legacy_version major is not 3
  | 'length' // a length field disagrees with its enclosing block, or a fixed-field rule (session id, suites) fails
  | 'duplicate-extension' // RFC 8446 §4.2
  | 'server-name' // server_name extension framing (RFC 6066 §3)
  | 'alpn'; // ALPN extension framing, empty list or name, more than MAX_ALPN_PROTOCOLS (RFC 7301 §3.1)

export type ClientHelloResult =
  /** A valid prefix: read more. Answer cannot become `hello` before `atLeast` total bytes. */
  | { kind: 'need-more'; atLeast: number }
  /** The first byte(s) are not a TLS handshake record (HTTP, SSH, SSLv2 hello: reason NOT_TLS_SSLV2, ...). */
  | { kind: 'not-tls'; reason: string }
  /** The ClientHello's records would exceed maxSize bytes (decided from the length fields, before the bytes come). */
  | { kind: 'too-large' }
  /** TLS framing but malformed. */
  | { kind: 'invalid'; problem: ClientHelloProblem; reason: string }
  /**
   * A complete, well-formed ClientHello. `sni` is lowercased, or null when absent or unusable (then `sniProblem`
   * says why). `alpn` names are decoded as latin1 (one char per byte). `recordBytes` is the length of the records
   * holding the ClientHello (bytes after it in `buf` are not looked at).
   */
  | {
      kind: 'hello';
      sni: string | null;
      sniProblem?: SniProblem;
      alpn: string[];
      recordBytes: number;
      legacyVersion: number;
    };

/** Stable metric labels, one per distinct outcome (see clientHelloOutcome). */
export const CLIENT_HELLO_OUTCOMES = [
  'hello',
  'hello-no-sni',
  'sni-ip-literal',
  'sni-bad-chars',
  'sni-trailing-dot',
  'sni-too-long',
  'sni-empty',
  'need-more',
  'not-tls',
  'not-tls-sslv2',
  'too-large',
  'invalid-record',
  'invalid-not-client-hello',
  'invalid-version',
  'invalid-length',
  'invalid-duplicate-extension',
  'invalid-server-name',
  'invalid-alpn',
] as const;
export type ClientHelloOutcome = (typeof CLIENT_HELLO_OUTCOMES)[number];

/** A stable, bounded label for counting sniff outcomes (DESIGN.md §6, §7: one counter per outcome). */
export function sniffOutcome(result: ClientHelloResult): ClientHelloOutcome {
  switch (result.kind) {
    case 'hello':
      if (result.sni !== null) return 'hello';
      return result.sniProblem === undefined ? 'hello-no-sni' : `sni-${result.sniProblem}`;
    case 'not-tls':
      return result.reason === NOT_TLS_SSLV2 ? 'not-tls-sslv2' : 'not-tls';
    case 'invalid':
      return `invalid-${result.problem}`;
    default:
      return result.kind;
  }
}

type Invalid = Extract<ClientHelloResult, { kind: 'invalid' }>;
type Body = { sni: string | null; sniProblem: SniProblem | undefined; alpn: string[]; legacyVersion: number };

const NEED = 0; // parseBody ran out of collected bytes before finding an error

function invalid(problem: ClientHelloProblem, reason: string): Invalid {
  return { kind: 'invalid', problem, reason };
}

/**
 * Parse the ClientHello at the start of `buf`. `maxSize` bounds the total size of the records holding it (the
 * acceptor's preread limit, 16 KiB).
 */
export function parseClientHello(buf: Uint8Array, maxSize = 16384): ClientHelloResult {
  const n = buf.length;
  if (!(maxSize >= 0)) maxSize = 0; // NaN or negative: nothing fits
  // First record: type and major version tell TLS from anything else, byte by byte (RFC 8446 §5.1).
  if (n < 1) return { kind: 'need-more', atLeast: RECORD_HEADER };
  const b0 = buf[0]!;
  if (b0 !== CONTENT_HANDSHAKE) {
    // SSLv2 record headers have the high bit set (RFC 6101 Appendix E.1); TLS content types are 20..24.
    if ((b0 & 0x80) !== 0) return { kind: 'not-tls', reason: NOT_TLS_SSLV2 };
    if (b0 >= 0x14 && b0 <= 0x18) return { kind: 'not-tls', reason: `first record has content type ${b0}, not handshake` };
    return { kind: 'not-tls', reason: `first byte 0x${hex2(b0)} is not a TLS handshake record` };
  }
  if (n < 2) return { kind: 'need-more', atLeast: RECORD_HEADER };
  if (buf[1] !== 0x03) return { kind: 'not-tls', reason: `record version major 0x${hex2(buf[1]!)} is not 0x03` };

  // Record walk: check each record header in stream order and gather the handshake bytes it carries.
  // `pending` is a result decided at a record header after some handshake bytes were gathered; a body error found
  // in those earlier bytes wins over it (stream order).
  let pending: ClientHelloResult | null = null;
  let off = 0; // stream offset of the current record header
  let single: Uint8Array | null = null; // the handshake bytes while they come from one record (no copy)
  let joined: Uint8Array | null = null; // reassembly buffer once a second record appears
  let got = 0; // handshake bytes gathered
  let declared = 0; // handshake bytes announced by the record headers seen
  let msgEnd = -1; // 4 + handshake body length, once the handshake header is complete
  let recordEnd = 0; // stream offset just past the last record header seen (declared length)
  let first = true;
  for (;;) {
    if (msgEnd >= 0 && declared >= msgEnd) break; // every record of the ClientHello has been announced
    // --- record header, decided byte by byte ---
    if (off >= n) {
      pending = needMore(lowerBound(off, declared, msgEnd), n);
      break;
    }
    if (!first) {
      if (buf[off] !== CONTENT_HANDSHAKE) {
        // RFC 8446 §5.1: handshake messages MUST NOT be interleaved with other record types.
        pending = invalid('record', `record of type ${buf[off]} inside the ClientHello`);
        break;
      }
      if (off + 1 >= n) {
        pending = needMore(lowerBound(off, declared, msgEnd), n);
        break;
      }
      if (buf[off + 1] !== 0x03) {
        pending = invalid('record', `record version major 0x${hex2(buf[off + 1]!)} is not 0x03`);
        break;
      }
    }
    if (off + 2 >= n) {
      pending = needMore(lowerBound(off, declared, msgEnd), n);
      break;
    }
    if (buf[off + 2]! > 0x04) {
      pending = invalid('record', `record version 0x03${hex2(buf[off + 2]!)} is unknown`);
      break;
    }
    if (off + RECORD_HEADER > n) {
      pending = needMore(lowerBound(off, declared, msgEnd), n);
      break;
    }
    const len = (buf[off + 3]! << 8) | buf[off + 4]!;
    // RFC 8446 §5.1: no zero-length handshake fragments; plaintext fragments are at most 2^14 bytes.
    if (len === 0) {
      pending = invalid('record', 'zero-length handshake record');
      break;
    }
    if (len > TLS_MAX_FRAGMENT) {
      pending = invalid('record', `record length ${len} exceeds ${TLS_MAX_FRAGMENT} (record_overflow)`);
      break;
    }
    const fragStart = off + RECORD_HEADER;
    recordEnd = fragStart + len;
    declared += len;
    if (msgEnd >= 0 && declared > msgEnd) {
      pending = invalid('record', 'record carries bytes after the ClientHello');
      break;
    }
    if (lowerBound(recordEnd, declared, msgEnd) > maxSize) {
      pending = { kind: 'too-large' };
      break;
    }

    // --- gather the fragment's available bytes ---
    const take = Math.min(len, n - fragStart);
    const gotBefore = got;
    if (first) {
      single = buf.subarray(fragStart, fragStart + take);
    } else {
      if (joined === null) {
        // Bounded by the input and by maxSize: every gathered byte is inside records that passed the too-large check.
        joined = new Uint8Array(Math.min(got + (n - fragStart), maxSize));
        joined.set(single!, 0);
      }
      joined.set(buf.subarray(fragStart, fragStart + take), got);
    }
    got += take;
    const hs = joined ?? single!;

    // --- handshake header, decided as soon as its bytes are here (they may straddle records) ---
    if (msgEnd < 0) {
      if (gotBefore === 0 && got >= 1 && hs[0] !== HANDSHAKE_CLIENT_HELLO) {
        return invalid('not-client-hello', `handshake message type ${hs[0]} is not ClientHello`);
      }
      if (got >= HANDSHAKE_HEADER) {
        msgEnd = HANDSHAKE_HEADER + ((hs[1]! << 16) | (hs[2]! << 8) | hs[3]!);
        if (declared > msgEnd) return invalid('record', 'record carries bytes after the ClientHello');
        if (lowerBound(recordEnd, declared, msgEnd) > maxSize) return { kind: 'too-large' };
      }
    }
    if (take < len) {
      // Buffer ends inside this record's fragment.
      pending = needMore(lowerBound(recordEnd, declared, msgEnd), n);
      break;
    }
    off = recordEnd;
    first = false;
  }

  if (msgEnd < 0) return pending!; // the handshake header is not complete: nothing to parse yet
  const hs = joined ?? single!;
  const body = parseBody(hs, got, msgEnd);
  if (body === NEED) return pending ?? needMore(lowerBound(recordEnd, declared, msgEnd), n);
  if ('kind' in body) return body; // invalid, found before anything in `pending`
  if (pending !== null) return pending; // unreachable: a complete body means every record was read
  const hello: ClientHelloResult = {
    kind: 'hello',
    sni: body.sni,
    alpn: body.alpn,
    recordBytes: recordEnd,
    legacyVersion: body.legacyVersion,
  };
  if (body.sniProblem !== undefined) hello.sniProblem = body.sniProblem;
  return hello;
}

/**
 * Smallest total size of the records holding the ClientHello, given the records announced so far end at `end`
 * and carry `declared` handshake bytes: any missing handshake bytes need at least one more record header per
 * 2^14 bytes. While the handshake length is unknown, at least the 4-byte handshake header is still missing.
 */
function lowerBound(end: number, declared: number, msgEnd: number): number {
  const missing = (msgEnd >= 0 ? msgEnd : HANDSHAKE_HEADER) - declared;
  if (missing <= 0) return end;
  return end + missing + RECORD_HEADER * Math.ceil(missing / TLS_MAX_FRAGMENT);
}

function needMore(bound: number, n: number): ClientHelloResult {
  return { kind: 'need-more', atLeast: bound > n ? bound : n + 1 };
}

/**
 * Parse the ClientHello body in `h[0..msgEnd)` of which `avail` bytes are present. Returns the extracted fields,
 * an invalid result at the first rule broken, or NEED when the bytes run out first. Length fields are checked
 * against their enclosing block as soon as they are read (so a lie is caught before its bytes arrive).
 */
function parseBody(h: Uint8Array, avail: number, msgEnd: number): Body | Invalid | typeof NEED {
  let p = HANDSHAKE_HEADER;

  // legacy_version(2) random(32)
  if (p + 34 > msgEnd) return invalid('length', 'ClientHello ends inside legacy_version/random');
  if (p + 2 > avail) return NEED;
  if (h[p] !== 0x03) return invalid('version', `legacy_version 0x${hex2(h[p]!)}${hex2(h[p + 1]!)}`);
  const legacyVersion = (h[p]! << 8) | h[p + 1]!;
  p += 34;

  // legacy_session_id<0..32>
  if (p + 1 > msgEnd) return invalid('length', 'ClientHello ends before session_id');
  if (p + 1 > avail) return NEED;
  const sidLen = h[p]!;
  if (sidLen > MAX_SESSION_ID) return invalid('length', `session_id length ${sidLen} > ${MAX_SESSION_ID}`);
  p += 1;
  if (p + sidLen > msgEnd) return invalid('length', 'session_id runs past the ClientHello');
  p += sidLen;

  // cipher_suites<2..2^16-2>, two bytes per suite
  if (p + 2 > msgEnd) return invalid('length', 'ClientHello ends before cipher_suites');
  if (p + 2 > avail) return NEED;
  const csLen = (h[p]! << 8) | h[p + 1]!;
  if (csLen < 2 || (csLen & 1) !== 0) return invalid('length', `cipher_suites length ${csLen} is odd or empty`);
  p += 2;
  if (p + csLen > msgEnd) return invalid('length', 'cipher_suites run past the ClientHello');
  p += csLen;

  // legacy_compression_methods<1..2^8-1>
  if (p + 1 > msgEnd) return invalid('length', 'ClientHello ends before compression_methods');
  if (p + 1 > avail) return NEED;
  const cmLen = h[p]!;
  if (cmLen < 1) return invalid('length', 'empty compression_methods');
  p += 1;
  if (p + cmLen > msgEnd) return invalid('length', 'compression_methods run past the ClientHello');
  p += cmLen;

  const out: Body = { sni: null, sniProblem: undefined, alpn: [], legacyVersion };
  // RFC 5246 §7.4.1.2: a ClientHello may end here (no extensions block at all).
  if (p === msgEnd) return avail >= msgEnd ? out : NEED;

  // extensions<0..2^16-1>: must fill the rest of the message exactly
  if (p + 2 > msgEnd) return invalid('length', 'one stray byte where the extensions block starts');
  if (p + 2 > avail) return NEED;
  const extLen = (h[p]! << 8) | h[p + 1]!;
  p += 2;
  if (p + extLen !== msgEnd) {
    return invalid('length', `extensions length ${extLen} does not match the ${msgEnd - p} bytes left`);
  }
  let seen: Set<number> | null = null;
  while (p < msgEnd) {
    if (p + 4 > msgEnd) return invalid('length', 'extension header runs past the extensions block');
    if (p + 4 > avail) return NEED;
    const type = (h[p]! << 8) | h[p + 1]!;
    const len = (h[p + 2]! << 8) | h[p + 3]!;
    p += 4;
    if (p + len > msgEnd) return invalid('length', `extension ${type} runs past the extensions block`);
    seen ??= new Set();
    if (seen.has(type)) return invalid('duplicate-extension', `extension ${type} appears twice`); // RFC 8446 §4.2
    seen.add(type);
    if (type === EXT_SERVER_NAME || type === EXT_ALPN) {
      if (p + len > avail) return NEED;
      const bad = type === EXT_SERVER_NAME ? readServerName(h, p, p + len, out) : readAlpn(h, p, p + len, out);
      if (bad !== null) return bad;
    }
    p += len;
  }
  return avail >= msgEnd ? out : NEED;
}

/** RFC 6066 §3: ServerNameList server_name_list<1..2^16-1>; exactly one entry, of type host_name. */
function readServerName(h: Uint8Array, s: number, e: number, out: Body): Invalid | null {
  if (e - s < 2) return invalid('server-name', 'server_name extension shorter than its list length');
  const listLen = (h[s]! << 8) | h[s + 1]!;
  if (listLen !== e - s - 2) return invalid('server-name', 'server_name list length disagrees with the extension');
  if (listLen === 0) return invalid('server-name', 'empty server_name list');
  if (h[s + 2] !== SNI_HOST_NAME) return invalid('server-name', `server_name type ${h[s + 2]} is not host_name`);
  if (s + 5 > e) return invalid('server-name', 'server_name entry truncated');
  const nameLen = (h[s + 3]! << 8) | h[s + 4]!;
  if (s + 5 + nameLen !== e) return invalid('server-name', 'server_name must hold exactly one host_name');
  const r = checkHostName(h, s + 5, e);
  if (typeof r === 'string') out.sni = r;
  else out.sniProblem = r.problem;
  return null;
}

/** RFC 7301 §3.1: ProtocolNameList protocol_name_list<2..2^16-1>; ProtocolName<1..2^8-1>. */
function readAlpn(h: Uint8Array, s: number, e: number, out: Body): Invalid | null {
  if (e - s < 2) return invalid('alpn', 'ALPN extension shorter than its list length');
  const listLen = (h[s]! << 8) | h[s + 1]!;
  if (listLen !== e - s - 2) return invalid('alpn', 'ALPN list length disagrees with the extension');
  if (listLen === 0) return invalid('alpn', 'empty ALPN list');
  const names: string[] = [];
  let p = s + 2;
  while (p < e) {
    const len = h[p]!;
    p += 1;
    if (len === 0) return invalid('alpn', 'empty ALPN protocol name');
    if (p + len > e) return invalid('alpn', 'ALPN protocol name runs past the list');
    if (names.length === MAX_ALPN_PROTOCOLS) return invalid('alpn', `more than ${MAX_ALPN_PROTOCOLS} ALPN protocols`);
    names.push(latin1(h, p, p + len));
    p += len;
  }
  out.alpn = names;
  return null;
}

/**
 * Validate an SNI host_name (RFC 6066 §3: ASCII, no trailing dot, A-labels for IDN; RFC 1123 §2.1 LDH labels of
 * 1..63 characters, 253 in all). Returns the lowercased name, or why it cannot be used.
 */
function checkHostName(h: Uint8Array, s: number, e: number): string | { problem: SniProblem } {
  const len = e - s;
  if (len === 0) return { problem: 'empty' };
  if (h[e - 1] === 0x2e) return { problem: 'trailing-dot' };
  if (len > MAX_HOSTNAME) return { problem: 'too-long' };
  let bad = false; // a byte outside LDH, an empty label, or a label starting or ending with '-'
  let longLabel = false;
  let ipv6Shape = true; // only hex digits, ':', '.', '[', ']'
  let colon = false;
  let allNumeric = true; // every label is all digits (dotted IPv4, or inet_aton forms like "10.1")
  let labelLen = 0;
  let labelDigits = true;
  let prev = 0x2e;
  for (let i = s; i < e; i++) {
    const c = h[i]!;
    const digit = c >= 0x30 && c <= 0x39;
    const lower = c | 0x20;
    const alpha = lower >= 0x61 && lower <= 0x7a;
    if (!(digit || (lower >= 0x61 && lower <= 0x66) || c === 0x3a || c === 0x2e || c === 0x5b || c === 0x5d)) {
      ipv6Shape = false;
    }
    if (c === 0x3a) colon = true;
    if (c === 0x2e) {
      if (labelLen === 0 || prev === 0x2d) bad = true;
      if (!labelDigits) allNumeric = false;
      labelLen = 0;
      labelDigits = true;
    } else if (alpha || digit || c === 0x2d) {
      if (c === 0x2d && labelLen === 0) bad = true;
      if (!digit) labelDigits = false;
      if (++labelLen > MAX_LABEL) longLabel = true;
    } else {
      bad = true;
      labelDigits = false;
    }
    prev = c;
  }
  if (prev === 0x2d) bad = true;
  if (!labelDigits) allNumeric = false;
  if ((colon && ipv6Shape) || (!bad && allNumeric)) return { problem: 'ip-literal' };
  if (longLabel) return { problem: 'too-long' };
  if (bad) return { problem: 'bad-chars' };
  let name = '';
  for (let i = s; i < e; i++) {
    const c = h[i]!;
    name += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c | 0x20 : c);
  }
  return name;
}

function latin1(h: Uint8Array, s: number, e: number): string {
  let out = '';
  for (let i = s; i < e; i++) out += String.fromCharCode(h[i]!);
  return out;
}

function hex2(b: number): string {
  return (b < 16 ? '0' : '') + b.toString(16);
}
