// Client→agent HTTP/1.1 request filter for HTTP(S) endpoints (DESIGN.md §2 item 2, §6): strict streaming head parser,
// X-Forwarded-* rewriting, body framing by Content-Length / chunked. Pure: no sockets, no timers. HOT PATH.
//
// The relay worker feeds every chunk a public client sends on one connection to push(); the filter hands what to send
// to the agent to sink.forward(), in order. Heads are assembled (copied only when a head spans chunks), checked and
// rewritten into one new buffer per request; bodies and chunk framing go out as subarrays of the input chunks (zero
// copy). Per chunk the work is O(1) for body data; only chunk-size lines and trailers are scanned byte by byte.
//
// API: `new HttpRequestFilter(sink, { isAllowedHost, proto, clientIp, maxHeadSize?, maxHeaders? })`, then
// `push(chunk)` for every client read. `inHead` is true while a head is partly buffered (run the head deadline then);
// `failed` / `upgraded` tell the state. Sink calls happen synchronously inside push(), in stream order. A sink that
// fails on its own (say forward() cannot reach the agent) calls stop(): no sink call follows, not even for the rest of
// the chunk being pushed.
//
//   HEAD ──(head ok: onRequest, forward rewritten head)───┬── no body ─────────────────────────────────► HEAD
//                                                         ├── Content-Length n > 0 ─► BODY_LENGTH ──────► HEAD
//                                                         ├── chunked ─► BODY_CHUNKED (… 0, trailers) ──► HEAD
//                                                         └── WebSocket Upgrade (first request, GET, no body)
//                                                             ─► onUpgrade(), push() stops ─► UPGRADE_WAIT
//                                                                ├── upgradeAccepted() (101) ───► OPAQUE
//                                                                └── upgradeDeclined() ─────────► HEAD
//   any violation in HEAD / BODY_CHUNKED ─► onError(status, code, reason) once ─► DEAD (all later input ignored)
//
// Choices (the strictest reading of RFC 9112 that real clients pass; we may reject more than llhttp, never less):
//  * 400 for framing/syntax faults: bare LF, obs-fold, stray CR/NUL/CTL, space before ':', non-token names, missing Host
//    on 1.1, duplicate Host / Content-Length / Transfer-Encoding, CL not 1*DIGIT (so "5, 5", "+5", "0x5" fail), CL+TE,
//    TE on HTTP/1.0, TE whose final coding is not chunked (RFC 9112 §6.3 ¶4: "MUST respond with 400"), bad chunk
//    lines, forbidden trailer fields. 505 for a well-formed HTTP version other than 1.0/1.1.
//  * 501 (RFC 9110 §9.1, RFC 9112 §6.1 "coding it does not understand") for a transfer coding other than chunked in
//    front of the final chunked (`gzip, chunked`); for CONNECT (an HTTP endpoint is an origin, not a proxy; ngrok
//    refuses CONNECT too); and for a method token outside HTTP_METHODS (sniff-http-head.ts: the methods llhttp knows,
//    so whatever we forward a Node upstream can parse). All 400/501/505 use code BURROW_ERR_HTTP_BAD_REQUEST.
//  * 431 (BURROW_ERR_HTTP_HEAD_TOO_LARGE) as soon as a head buffers more than maxHeadSize bytes or maxHeaders fields,
//    and for a trailer section over the same limits.
//  * 421 (BURROW_ERR_HTTP_MISDIRECTED) when the Host header's hostname, or the authority of an absolute-form target,
//    fails isAllowedHost (syntactically bad hosts are 400). Checked on every request of a keep-alive connection; a
//    request whose Host value repeats the last accepted one byte for byte reuses that verdict (isAllowedHost must
//    answer the same for the same hostname for the filter's life), an absolute-form target is always checked.
//  * Host: lowercased, port stripped, one trailing dot stripped, IPv6 literal passed without brackets ("::1"): one parser
//    for the acceptor and this filter, parse-host.ts. Reg-names of [A-Za-z0-9._-] (labels 1–63, ≤ 253 in all), a port of 1–5 digits ≤ 65535.
//    HTTP/1.0 without Host is accepted (the connection is already bound to one endpoint) and gets no X-Forwarded-Host.
//    An empty Host is a 400 (it cannot route).
//  * Rewriting: every client-sent X-Forwarded-* field (-For, -Proto, -Host, -Port, -Prefix, -Ssl, …), Forwarded and
//    X-Real-IP are dropped, also when spelled with '_' for '-' (CGI-style servers map X_Forwarded_For to the same
//    variable); then X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host (the trimmed Host value) are appended.
//    Every other header line is kept byte for byte.
//    Leading empty lines before a request line (RFC 9112 §2.2) are consumed and not forwarded.
//  * Request-target: origin-form, absolute-form (http/https, no userinfo; its hostname must pass isAllowedHost and
//    equal Host's, else 421), or `*` for OPTIONS; bytes 0x21–0x7E only.
//  * Chunk lines: 1–16 hex digits (value ≤ 2^53−1), then chunk-ext `;name[=token|quoted-string]` without BWS, line
//    ≤ 4 KiB, exact CRLF. Trailer fields follow header syntax; Host, Content-Length, Transfer-Encoding and the
//    forwarding fields are refused in trailers (a server that merges trailers would otherwise take them as headers).
//  * Upgrade: honoured only for WebSocket — HTTP/1.1 + a Connection token `upgrade` + one Upgrade line whose only
//    protocol is `websocket`, on a GET without a body (RFC 6455 §4.1) — and only as the first request of the
//    connection (later: 400, BURROW_ERR_HTTP_UPGRADE_NOT_FIRST; the caller tells a 101 from the first response
//    bytes, it parses no responses). Any other Upgrade (h2c, TLS/1.0, a list, one with a body) is forwarded as a
//    plain request without its Upgrade line, HTTP2-Settings line and `upgrade`/`http2-settings` Connection options
//    (hop-by-hop), so the service cannot switch protocols on a connection this filter still parses. The filter
//    cannot see whether the agent answered 101: push() stops at the end of the Upgrade request (bytes after it in
//    the same chunk are not taken) and the caller, which holds them, reports the answer with upgradeAccepted()
//    (opaque from then on) or upgradeDeclined() (HTTP goes on; the held bytes are pushed as the next request).
//  * Expect: 100-continue is forwarded; the agent answers it.
//  * Request header rules (only with the `requestHeaders` option): named fields removed, given lines added before the
//    X-Forwarded-* lines, on every request head (not in trailers).
//  * Basic auth (only with the `authorize` option): one Authorization field the check accepts, on every request, else
//    401 (BURROW_ERR_HTTP_UNAUTHORIZED) after the Host checks; the field is removed before forwarding.
import { appendBytes, foldedPrefixIs, hasPrefixCI, isDigit, isNamedFolded, isOWS, nameIs, parseDecimal } from './http-bytes.js';
import type { ErrorCode } from '../core/errors.js';
import { parseHost } from './parse-host.js';
import { HTTP_METHODS } from './sniff-http-head.js';

/** Receives the filter's output. One object with methods (no closure per chunk). */
export interface HttpFilterSink {
  /** Bytes to forward to the agent, in order (request heads rewritten; bodies as views of the input). */
  forward(buf: Buffer): void;
  /** A request head was accepted (for metrics/timing). Called before its bytes are forwarded. */
  onRequest(method: string, target: string): void;
  /**
   * A WebSocket Upgrade request was forwarded completely. push() takes no more bytes (it returns how many it took)
   * until the caller reports the service's answer: upgradeAccepted() or upgradeDeclined().
   */
  onUpgrade(): void;
  /**
   * Fatal, called at most once: answer `status` (400, 401, 421, 431, 501, 505) with `reason` and close. Bytes of earlier,
   * valid input were already forwarded; nothing further is.
   */
  onError(status: number, code: HttpFilterErrorCode, reason: string): void;
}

export type HttpFilterErrorCode = Extract<
  ErrorCode,
  | 'BURROW_ERR_HTTP_BAD_REQUEST'
  | 'BURROW_ERR_HTTP_HEAD_TOO_LARGE'
  | 'BURROW_ERR_HTTP_MISDIRECTED'
  | 'BURROW_ERR_HTTP_UPGRADE_NOT_FIRST'
  | 'BURROW_ERR_HTTP_UNAUTHORIZED'
>;

export interface HttpFilterOptions {
  /**
   * Lowercased hostnames (without port, without trailing dot; IPv6 without brackets) this connection may address.
   * Must give the same answer for the same hostname for the filter's life: a repeated Host is not asked again.
   */
  isAllowedHost(hostname: string): boolean;
  /** Value for X-Forwarded-Proto. */
  proto: 'http' | 'https';
  /** Client IP for X-Forwarded-For. */
  clientIp: string;
  /** Largest request head (request line + fields + final CRLF) in bytes; more → 431. Default 64 KiB. */
  maxHeadSize?: number;
  /** Most header fields in a head (and trailer fields in a chunked body); more → 431. Default 100. */
  maxHeaders?: number;
  /**
   * The endpoint's credentials check (basic auth), or null for none: every request must carry one Authorization field
   * it accepts, else 401 (BURROW_ERR_HTTP_UNAUTHORIZED); the field is not forwarded.
   */
  authorize?: HttpAuthorizer | null;
  /**
   * The endpoint's request header rules, or null for none: header fields named in `remove` (lowercase names, '-' for
   * '_'; a field is matched with its '_' read as '-') are dropped from every request head, and `add` (whole `Name: value\r\n` lines) is appended, before the relay's own
   * X-Forwarded-* lines. The caller vets names and values (no framing or forwarding fields, no CR/LF).
   */
  requestHeaders?: HeaderRules | null;
}

/** Header rules of an endpoint (request or response heads): fields to drop, lines to add. */
export interface HeaderRules {
  /** Lowercase field names. */
  readonly remove: readonly Buffer[];
  /** Whole `name: value\r\n` lines. */
  readonly add: Buffer;
}

/** Checks the value of a request's Authorization field, given as head[start, end) (OWS trimmed). */
export interface HttpAuthorizer {
  accepts(head: Buffer, start: number, end: number): boolean;
}

const DEFAULT_MAX_HEAD_SIZE = 64 * 1024;
const DEFAULT_MAX_HEADERS = 100;
/** Longest chunk-size line (digits + extensions), CRLF excluded. */
const MAX_CHUNK_LINE = 4096;
/** Most hex digits in a chunk size (leading zeros included). */
const MAX_CHUNK_SIZE_DIGITS = 16;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMI = 0x3b;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

// Filter states.
const ST_HEAD = 0;
const ST_BODY_LENGTH = 1;
const ST_BODY_CHUNKED = 2;
const ST_OPAQUE = 3;
const ST_DEAD = 4;
/** A WebSocket Upgrade request is complete; push() consumes nothing until upgradeAccepted() / upgradeDeclined(). */
const ST_UPGRADE_WAIT = 5;

// Chunked-body states (RFC 9112 §7.1):
//   chunk = size [ext] CRLF data CRLF;  last-chunk = 1*"0" [ext] CRLF;  trailer-section = *(field-line CRLF);  CRLF
const C_SIZE_FIRST = 0; //   expect the first hex digit
const C_SIZE = 1; //         more hex digits, ';' or CR
const C_EXT_NAME_START = 2; // after ';': first tchar of the ext name
const C_EXT_NAME = 3; //     tchar, '=', ';' or CR
const C_EXT_VAL_START = 4; // after '=': tchar or '"'
const C_EXT_TOKEN = 5; //    tchar, ';' or CR
const C_EXT_QUOTED = 6; //   qdtext, '\' or '"'
const C_EXT_QPAIR = 7; //    the escaped byte
const C_EXT_AFTER_QUOTED = 8; // ';' or CR
const C_SIZE_LF = 9; //      LF ending the size line
const C_DATA = 10; //        chunk data (skipped in O(1))
const C_DATA_CR = 11; //     CR after chunk data
const C_DATA_LF = 12; //     LF after chunk data
const C_TRL_START = 13; //   start of a trailer line or of the final CRLF
const C_TRL_NAME = 14; //    trailer field name
const C_TRL_VALUE = 15; //   trailer field value
const C_TRL_LF = 16; //      LF ending a trailer line
const C_END_LF = 17; //      LF ending the message

/** tchar (RFC 9110 §5.6.2). */
const TCHAR = new Uint8Array(256);
/** field-vchar / SP / HTAB / obs-text (RFC 9110 §5.5): everything but CTLs (HTAB allowed) and DEL. */
const VALUE_CHAR = new Uint8Array(256);
/** Bytes allowed in a request-target: visible US-ASCII (RFC 3986 characters; stricter than obs-text-tolerant parsers). */
const TARGET_CHAR = new Uint8Array(256);
/** qdtext (RFC 9110 §5.6.4). */
const QDTEXT = new Uint8Array(256);
/** Hex digit value + 1, 0 for non-hex. */
const HEX = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const alnum = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
  TCHAR[b] = alnum || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(b)) ? 1 : 0;
  VALUE_CHAR[b] = b === HTAB || (b >= 0x20 && b !== 0x7f) ? 1 : 0;
  TARGET_CHAR[b] = b >= 0x21 && b <= 0x7e ? 1 : 0;
  QDTEXT[b] = b === HTAB || b === SP || b === 0x21 || (b >= 0x23 && b <= 0x5b) || (b >= 0x5d && b <= 0x7e) || b >= 0x80 ? 1 : 0;
  HEX[b] = b >= 0x30 && b <= 0x39 ? b - 0x30 + 1 : b >= 0x41 && b <= 0x46 ? b - 0x41 + 11 : b >= 0x61 && b <= 0x66 ? b - 0x61 + 11 : 0;
}

// Header names the filter acts on (lowercase ASCII).
const H_HOST = Buffer.from('host');
const H_CONTENT_LENGTH = Buffer.from('content-length');
const H_TRANSFER_ENCODING = Buffer.from('transfer-encoding');
const H_CONNECTION = Buffer.from('connection');
const H_UPGRADE = Buffer.from('upgrade');
const H_HTTP2_SETTINGS = Buffer.from('http2-settings');
const H_AUTHORIZATION = Buffer.from('authorization');
// Dropped from client heads, '_' read as '-' (see isForwardingHeader): every X-Forwarded-* field, Forwarded, X-Real-IP.
const H_XF_PREFIX = Buffer.from('x-forwarded-');
const H_FORWARDED = Buffer.from('forwarded');
const H_X_REAL_IP = Buffer.from('x-real-ip');
/** Refused in trailers: framing and routing fields (and the forwarding fields, isForwardingHeader). */
const FORBIDDEN_TRAILERS = [H_HOST, H_CONTENT_LENGTH, H_TRANSFER_ENCODING];
/** Bytes of a trailer name kept to recognise those: the longest of them, and enough for the X-Forwarded- prefix. */
const LONGEST_FORBIDDEN_TRAILER = 17;
const T_CHUNKED = Buffer.from('chunked');
const T_UPGRADE = Buffer.from('upgrade');
const T_WEBSOCKET = Buffer.from('websocket');
const T_OPTIONS = Buffer.from('OPTIONS');
const T_HTTP_SCHEME = Buffer.from('http://');
const T_HTTPS_SCHEME = Buffer.from('https://');
const XFH_PREFIX = Buffer.from('X-Forwarded-Host: ');
const EMPTY = Buffer.alloc(0);

export class HttpRequestFilter {
  private readonly sink: HttpFilterSink;
  private readonly options: HttpFilterOptions;
  private readonly authorize: HttpAuthorizer | null;
  private readonly rules: HeaderRules | null;
  private readonly maxHeadSize: number;
  private readonly maxHeaders: number;
  /** `X-Forwarded-For: <ip>\r\nX-Forwarded-Proto: <proto>\r\n`, fixed for the connection. */
  private readonly forwardedSuffix: Buffer;
  /**
   * What follows the kept field lines of a head whose Host value is the `tailHostLen` bytes in it: the forwarded
   * suffix, `X-Forwarded-Host: <host>` and the final CRLF. Built once that Host passed the checks, so a
   * keep-alive request with the same Host bytes skips parseHost/isAllowedHost and rewrites with two copies.
   */
  private tail: Buffer | null;
  private tailHostLen: number;
  /** Reused per head: [start, end) pairs of header lines to drop. */
  private readonly cuts: number[];
  /** Reused per head: [start, end) pairs to drop unless the head is a WebSocket upgrade (Upgrade lines, Connection tokens). */
  private readonly hopCuts: number[];
  /** Lowercased trailer name (enough bytes to recognise the forbidden ones). */
  private readonly trailerName: Buffer;
  private state: number;
  /** The failure reported by onError came in the body of a forwarded request (requestCut). */
  private cutRequest: boolean;
  /** A request was accepted on this connection (a WebSocket Upgrade must come first). */
  private sawRequest: boolean;

  // ---- head assembly (ST_HEAD) ----
  /** Bytes of the current head received in earlier chunks (copied), or EMPTY. */
  private pending: Buffer;
  /** Bytes of the current head seen so far, all of them in `pending` (empty lines before a request line are dropped). */
  private pendingLen: number;
  /** Head offset where the current line starts. */
  private lineStart: number;
  private sawRequestLine: boolean;
  private headerLines: number;

  // ---- bodies ----
  /** ST_BODY_LENGTH: bytes left; C_DATA: chunk bytes left. */
  private remaining: number;
  private chunkState: number;
  private chunkSize: number;
  private chunkDigits: number;
  private chunkLineLen: number;
  private trailerBytes: number;
  private trailerFields: number;
  private trailerNameLen: number;

  constructor(sink: HttpFilterSink, options: HttpFilterOptions) {
    if (!/^[0-9A-Za-z.:%_-]+$/.test(options.clientIp)) throw new TypeError(`invalid clientIp ${JSON.stringify(options.clientIp)}`);
    if (options.proto !== 'http' && options.proto !== 'https') throw new TypeError(`invalid proto ${String(options.proto)}`);
    this.sink = sink;
    this.options = options;
    this.authorize = options.authorize ?? null;
    this.rules = options.requestHeaders ?? null;
    this.maxHeadSize = options.maxHeadSize ?? DEFAULT_MAX_HEAD_SIZE;
    this.maxHeaders = options.maxHeaders ?? DEFAULT_MAX_HEADERS;
    // Not from Node's 8 KiB buffer pool: a slice kept for the connection's life would keep its whole slab alive.
    const suffix = `X-Forwarded-For: ${options.clientIp}\r\nX-Forwarded-Proto: ${options.proto}\r\n`;
    this.forwardedSuffix = Buffer.allocUnsafeSlow(suffix.length);
    this.forwardedSuffix.write(suffix, 'latin1');
    this.tail = null;
    this.tailHostLen = -1;
    this.cuts = [];
    this.hopCuts = [];
    this.trailerName = Buffer.alloc(LONGEST_FORBIDDEN_TRAILER);
    this.state = ST_HEAD;
    this.cutRequest = false;
    this.sawRequest = false;
    this.pending = EMPTY;
    this.pendingLen = 0;
    this.lineStart = 0;
    this.sawRequestLine = false;
    this.headerLines = 0;
    this.remaining = 0;
    this.chunkState = C_SIZE_FIRST;
    this.chunkSize = 0;
    this.chunkDigits = 0;
    this.chunkLineLen = 0;
    this.trailerBytes = 0;
    this.trailerFields = 0;
    this.trailerNameLen = 0;
  }

  /** True while part of a request head is buffered: the caller's head deadline (slowloris) runs. */
  get inHead(): boolean {
    return this.state === ST_HEAD && this.pendingLen > 0;
  }

  /** A request body is under way (Content-Length or chunked): the request is not complete yet. */
  get inBody(): boolean {
    return this.state === ST_BODY_LENGTH || this.state === ST_BODY_CHUNKED;
  }

  /** Between requests: no head begun, no body under way (the connection may be closed without cutting a message). */
  get betweenMessages(): boolean {
    return this.state === ST_HEAD && this.pendingLen === 0;
  }

  /**
   * True when the failure came in the body of a request already forwarded (a bad chunk line or trailer): the service
   * has part of that request and will likely never answer it. False for a failure in a head (nothing of it was sent).
   */
  get requestCut(): boolean {
    return this.cutRequest;
  }

  /** True once onError was called; further input is ignored. */
  get failed(): boolean {
    return this.state === ST_DEAD;
  }

  /** True once the connection turned opaque after an accepted Upgrade (upgradeAccepted()). */
  get upgraded(): boolean {
    return this.state === ST_OPAQUE;
  }

  /** True from the end of a WebSocket Upgrade request (onUpgrade) until upgradeAccepted() / upgradeDeclined(). */
  get awaitingUpgrade(): boolean {
    return this.state === ST_UPGRADE_WAIT;
  }

  /** The service answered the Upgrade with 101: every later byte is forwarded untouched (push() takes them all). */
  upgradeAccepted(): void {
    if (this.state === ST_UPGRADE_WAIT) this.state = ST_OPAQUE;
  }

  /**
   * The service answered the Upgrade with anything but 101, so the connection stays HTTP/1.1 (RFC 9110 §7.8: a server
   * may ignore Upgrade): the next bytes are the next request, checked like any other.
   */
  upgradeDeclined(): void {
    if (this.state === ST_UPGRADE_WAIT) this.state = ST_HEAD;
  }

  /**
   * The sink gave up on the connection itself (it could not forward, or answered an error of its own): ignore all
   * further input, with no more sink calls — also for the rest of a chunk being pushed right now. A sink error raised
   * inside forward() would otherwise be followed by more forward()/onError() calls for the same read. Idempotent.
   */
  stop(): void {
    this.state = ST_DEAD;
    this.pending = EMPTY;
    this.pendingLen = 0;
  }

  /**
   * Feed the next chunk the client sent. Bodies are forwarded as views of it, so either the chunk is not modified
   * afterwards or the sink copies what it keeps (the relay's HttpPump reuses one read buffer and does: shared-read.ts).
   * Nothing else of the chunk is kept past this call: heads are copied (rewritten, or assembled when split).
   *
   * Returns how many bytes of `chunk` it took: all of them, except when a WebSocket Upgrade request ended inside it
   * (onUpgrade was called) — then the position after that request, and 0 for every push until the caller reports the
   * answer with upgradeAccepted() / upgradeDeclined() and pushes the rest again. Until then the rest is neither HTTP
   * nor opaque: it must not reach the agent either way.
   */
  push(chunk: Buffer): number {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      switch (this.state) {
        case ST_HEAD:
          pos = this.scanHead(chunk, pos);
          break;
        case ST_BODY_LENGTH: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          if (this.remaining === 0) this.state = ST_HEAD;
          this.sink.forward(pos === 0 && n === len ? chunk : chunk.subarray(pos, pos + n));
          pos += n;
          break;
        }
        case ST_BODY_CHUNKED:
          pos = this.scanChunked(chunk, pos);
          break;
        case ST_OPAQUE:
          this.sink.forward(pos === 0 ? chunk : chunk.subarray(pos));
          return len;
        case ST_UPGRADE_WAIT:
          return pos;
        default:
          return len; // ST_DEAD
      }
    }
    return len;
  }

  // ---- heads ----

  /**
   * Finds the end of the head (an empty line) in `chunk` from `start`, checking CRLF discipline, the size and field
   * limits as it goes. Returns the position after the head (after the head was handled), or chunk.length when the
   * chunk was consumed (buffered, or an error was reported).
   */
  private scanHead(chunk: Buffer, start: number): number {
    const len = chunk.length;
    let room = this.maxHeadSize - this.pendingLen; // bytes this head may still grow by
    let i = start;
    for (;;) {
      const lf = chunk.indexOf(LF, i);
      if (lf === -1 || lf - start >= room) {
        if (lf !== -1 || len - start > room) {
          this.fail(431, 'BURROW_ERR_HTTP_HEAD_TOO_LARGE', `request head exceeds ${this.maxHeadSize} bytes`);
          return len;
        }
        this.appendPending(chunk, start, len);
        return len;
      }
      const prevIsCR = lf > start ? chunk[lf - 1] === CR : this.pendingLen > 0 && this.pending[this.pendingLen - 1] === CR;
      if (!prevIsCR) {
        this.fail(400, 'BURROW_ERR_HTTP_BAD_REQUEST', 'bare LF in request head (RFC 9112 §2.2: lines end with CRLF)');
        return len;
      }
      const lfOffset = this.pendingLen + (lf - start); // head offset of this LF
      const lineLen = lfOffset - 1 - this.lineStart;
      this.lineStart = lfOffset + 1;
      i = lf + 1;
      if (lineLen === 0) {
        if (this.sawRequestLine) break; // the empty line ending the head
        // RFC 9112 §2.2: empty lines before the request line are ignored. Dropped at once (with any earlier ones), so a
        // CRLF some clients send after a body neither starts the head deadline (inHead) nor holds a buffer on an idle
        // keep-alive connection.
        this.resetHead();
        start = i;
        room = this.maxHeadSize;
        continue;
      }
      if (!this.sawRequestLine) {
        this.sawRequestLine = true;
      } else if (++this.headerLines > this.maxHeaders) {
        this.fail(431, 'BURROW_ERR_HTTP_HEAD_TOO_LARGE', `request head has more than ${this.maxHeaders} header fields`);
        return len;
      }
    }
    // Head complete: chunk[start, i) ends it.
    let head: Buffer;
    if (this.pendingLen === 0) {
      head = chunk.subarray(start, i);
    } else {
      this.appendPending(chunk, start, i);
      head = this.pending.subarray(0, this.pendingLen);
    }
    this.resetHead();
    this.handleHead(head);
    return this.state === ST_DEAD ? len : i;
  }

  /** Copies chunk[from, to) behind the buffered head bytes (only for heads that span chunks). */
  private appendPending(chunk: Buffer, from: number, to: number): void {
    this.pending = appendBytes(this.pending, this.pendingLen, chunk, from, to, this.maxHeadSize);
    this.pendingLen += to - from;
  }

  private resetHead(): void {
    this.pending = EMPTY; // a split head is rare: do not keep up to maxHeadSize per idle connection
    this.pendingLen = 0;
    this.lineStart = 0;
    this.sawRequestLine = false;
    this.headerLines = 0;
  }

  /**
   * Checks a complete head (request line, field lines, empty line; every LF known to follow a CR),
   * rewrites it, reports and forwards it, and picks the body state. On a violation reports it and returns.
   */
  private handleHead(head: Buffer): void {
    // ---- request line: method SP request-target SP HTTP-version (RFC 9112 §3) ----
    const rlEnd = head.indexOf(LF) - 1; // the CR
    let i = 0;
    while (i < rlEnd && TCHAR[head[i]!] === 1) i++;
    if (i === 0 || i >= rlEnd || head[i] !== SP) return this.badRequest('invalid method in request line');
    const methodEnd = i++;
    const targetStart = i;
    while (i < rlEnd && TARGET_CHAR[head[i]!] === 1) i++;
    if (i === targetStart || i >= rlEnd || head[i] !== SP) return this.badRequest('invalid request-target in request line');
    const targetEnd = i++;
    if (
      rlEnd - i !== 8 ||
      head[i] !== 0x48 || head[i + 1] !== 0x54 || head[i + 2] !== 0x54 || head[i + 3] !== 0x50 || head[i + 4] !== 0x2f ||
      !isDigit(head[i + 5]!) || head[i + 6] !== 0x2e || !isDigit(head[i + 7]!)
    ) {
      return this.badRequest('invalid HTTP version in request line');
    }
    if (head[i + 5] !== 0x31 || (head[i + 7] !== 0x30 && head[i + 7] !== 0x31)) {
      return this.fail(505, 'BURROW_ERR_HTTP_BAD_REQUEST', 'HTTP version not supported: only HTTP/1.0 and HTTP/1.1');
    }
    const http11 = head[i + 7] === 0x31;

    // ---- field lines: name ":" OWS value OWS (RFC 9112 §5) ----
    const cuts = this.cuts;
    cuts.length = 0;
    let hostStart = -1;
    let hostEnd = -1;
    let contentLength = -1;
    let teStart = -1;
    let teEnd = -1;
    let connectionUpgrade = false;
    let upgradeLines = 0;
    let upgradeWebsocket = false;
    let authStart = -1;
    let authEnd = -1;
    const hopCuts = this.hopCuts;
    hopCuts.length = 0;
    const fieldsEnd = head.length - 2; // the final CRLF
    i = rlEnd + 2;
    while (i < fieldsEnd) {
      const lf = head.indexOf(LF, i);
      const lineEnd = lf - 1;
      const first = head[i]!;
      if (first === SP || first === HTAB) return this.badRequest('obsolete line folding in request head (RFC 9112 §5.2)');
      let j = i;
      while (j < lineEnd && TCHAR[head[j]!] === 1) j++;
      if (j === i || j >= lineEnd || head[j] !== COLON) {
        return this.badRequest('invalid header field name (a token followed directly by ":")');
      }
      const nameLen = j - i;
      let vs = j + 1;
      for (let k = vs; k < lineEnd; k++) {
        if (VALUE_CHAR[head[k]!] === 0) return this.badRequest('invalid character (CR, LF, NUL or other CTL) in header field value');
      }
      let ve = lineEnd;
      while (vs < ve && isOWS(head[vs]!)) vs++;
      while (ve > vs && isOWS(head[ve - 1]!)) ve--;

      if (nameIs(head, i, nameLen, H_HOST)) {
        if (hostStart !== -1) return this.badRequest('duplicate Host header');
        hostStart = vs;
        hostEnd = ve;
      } else if (nameIs(head, i, nameLen, H_CONTENT_LENGTH)) {
        if (contentLength !== -1) return this.badRequest('duplicate Content-Length header');
        contentLength = parseDecimal(head, vs, ve);
        if (contentLength < 0) return this.badRequest('Content-Length is not a plain decimal number');
      } else if (nameIs(head, i, nameLen, H_TRANSFER_ENCODING)) {
        if (teStart !== -1) return this.badRequest('duplicate Transfer-Encoding header');
        teStart = vs;
        teEnd = ve;
      } else if (nameIs(head, i, nameLen, H_CONNECTION)) {
        if (connectionHopCuts(head, i, lf + 1, vs, ve, hopCuts)) connectionUpgrade = true;
      } else if (nameIs(head, i, nameLen, H_UPGRADE)) {
        upgradeLines++;
        upgradeWebsocket = isSoleToken(head, vs, ve, T_WEBSOCKET);
        hopCuts.push(i, lf + 1);
      } else if (this.authorize !== null && nameIs(head, i, nameLen, H_AUTHORIZATION)) {
        // The relay's credentials, not the service's: checked below, never forwarded.
        if (authStart !== -1) return this.badRequest('duplicate Authorization header');
        authStart = vs;
        authEnd = ve;
        cuts.push(i, lf + 1);
      } else if (isForwardingHeader(head, i, nameLen) || nameIs(head, i, nameLen, H_HTTP2_SETTINGS)) {
        // HTTP2-Settings only serves an h2c upgrade, which is never honoured (below); hop-by-hop (RFC 9113 §3.2.1).
        cuts.push(i, lf + 1);
      } else if (this.rules !== null && isNamedFolded(head, i, nameLen, this.rules.remove)) {
        cuts.push(i, lf + 1); // the endpoint's request header rules (X_User goes with X-User, as for X-Forwarded-*)
      }
      i = lf + 1;
    }

    // ---- semantics ----
    const method = methodName(head, 0, methodEnd);
    if (method === 'CONNECT') return this.fail(501, 'BURROW_ERR_HTTP_BAD_REQUEST', 'CONNECT is not supported on HTTP endpoints');
    if (!HTTP_METHODS.has(method)) {
      return this.fail(501, 'BURROW_ERR_HTTP_BAD_REQUEST', `unknown method ${JSON.stringify(method)} (RFC 9110 §9.1)`);
    }
    if (http11 && hostStart === -1) return this.badRequest('missing Host header (RFC 9112 §3.2)');
    const t0 = head[targetStart]!;
    let authority: string | null = null;
    if (t0 === 0x2a) {
      // asterisk-form: OPTIONS only (RFC 9112 §3.2.4)
      if (targetEnd - targetStart !== 1 || methodEnd !== 7 || head.compare(T_OPTIONS, 0, 7, 0, methodEnd) !== 0) {
        return this.badRequest('"*" request-target is only valid with OPTIONS');
      }
    } else if (t0 !== 0x2f) {
      // absolute-form (RFC 9112 §3.2.2): the recipient uses the target's authority, so it must route here too.
      let a = -1;
      if (hasPrefixCI(head, targetStart, targetEnd, T_HTTP_SCHEME)) a = targetStart + T_HTTP_SCHEME.length;
      else if (hasPrefixCI(head, targetStart, targetEnd, T_HTTPS_SCHEME)) a = targetStart + T_HTTPS_SCHEME.length;
      if (a === -1) return this.badRequest('invalid request-target form');
      let ae = a;
      while (ae < targetEnd && head[ae] !== 0x2f && head[ae] !== 0x3f && head[ae] !== 0x23) ae++;
      if (head.indexOf(0x40, a) !== -1 && head.indexOf(0x40, a) < ae) return this.badRequest('userinfo in request-target');
      authority = hostnameOf(head, a, ae);
      if (authority === null) return this.badRequest('invalid authority in absolute-form request-target');
      if (!this.options.isAllowedHost(authority)) return this.misdirected(authority);
    }
    const sameHost = hostStart !== -1 && authority === null && this.isTailHost(head, hostStart, hostEnd);
    if (hostStart !== -1 && !sameHost) {
      const hostname = hostnameOf(head, hostStart, hostEnd);
      if (hostname === null) return this.badRequest('invalid Host header');
      if (!this.options.isAllowedHost(hostname)) return this.misdirected(hostname);
      // Both name a host: they must agree, so no hop can route by one and serve by the other.
      if (authority !== null && authority !== hostname) return this.misdirected(authority);
    }
    if (this.authorize !== null && (authStart === -1 || !this.authorize.accepts(head, authStart, authEnd))) {
      return this.fail(401, 'BURROW_ERR_HTTP_UNAUTHORIZED', authStart === -1 ? 'this tunnel needs a user name and password' : 'wrong user name or password');
    }
    let chunked = false;
    if (teStart !== -1) {
      if (contentLength !== -1) return this.badRequest('both Content-Length and Transfer-Encoding (RFC 9112 §6.3)');
      if (!http11) return this.badRequest('Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)');
      const verdict = checkTransferEncoding(head, teStart, teEnd);
      if (verdict === TE_NOT_FINAL) return this.badRequest('Transfer-Encoding does not end in chunked (RFC 9112 §6.3)');
      if (verdict === TE_UNSUPPORTED) {
        return this.fail(501, 'BURROW_ERR_HTTP_BAD_REQUEST', 'unsupported transfer coding: only "chunked" is accepted');
      }
      chunked = true;
    }

    // Only a WebSocket upgrade is honoured (RFC 9110 §7.8 needs HTTP/1.1 and the `upgrade` connection option). Any
    // other (h2c, TLS/1.0, …) loses its Upgrade field and `upgrade`/`HTTP2-Settings` connection options — hop-by-hop,
    // RFC 9110 §7.6.1 — and goes on as a plain request, so the service can never switch protocols on a connection
    // the relay still parses as HTTP/1.1 (a 101 for h2c would make the following bytes HTTP/2 requests no Host check
    // or X-Forwarded-* rewrite sees). Exactly one Upgrade line naming only `websocket`: with a list the service picks
    // the protocol, and the relay cannot tell which without parsing the 101. And a GET without a body, as RFC 6455
    // §4.1 has it: a service may answer a request with a body before reading it, and that answer would pass before
    // the relay starts to look for the 101.
    const upgrade =
      http11 && connectionUpgrade && upgradeLines === 1 && upgradeWebsocket && method === 'GET' && !chunked && contentLength <= 0;
    const dropped = !upgrade && hopCuts.length > 0 ? mergeCuts(cuts, hopCuts) : cuts; // rare: allocates
    // The relay does not parse responses, so it can tell the service's 101 only from the first response bytes of the
    // connection: an Upgrade behind another request would be judged by the middle of that request's answer.
    if (upgrade && this.sawRequest) {
      return this.fail(400, 'BURROW_ERR_HTTP_UPGRADE_NOT_FIRST', 'an Upgrade must be the first request on its connection; open a new connection for it');
    }
    this.sawRequest = true;

    // ---- accepted: report, rewrite, forward ----
    this.sink.onRequest(method, head.toString('latin1', targetStart, targetEnd));
    if (this.state === ST_DEAD) return; // stopped by the sink
    let removed = 0;
    for (let k = 0; k < dropped.length; k += 2) removed += dropped[k + 1]! - dropped[k]!;
    let tail: Buffer;
    if (hostStart === -1) {
      tail = this.hostlessTail();
    } else {
      if (!sameHost) this.setTail(head, hostStart, hostEnd);
      tail = this.tail!;
    }
    const added = this.rules === null ? EMPTY : this.rules.add;
    const out = Buffer.allocUnsafe(fieldsEnd - removed + added.length + tail.length);
    let o = 0;
    let from = 0;
    for (let k = 0; k < dropped.length; k += 2) {
      o += head.copy(out, o, from, dropped[k]!);
      from = dropped[k + 1]!;
    }
    o += head.copy(out, o, from, fieldsEnd);
    if (added.length > 0) o += added.copy(out, o);
    tail.copy(out, o);
    this.sink.forward(out);
    if (this.state === ST_DEAD) return; // the sink stopped the filter (stop())

    if (chunked) {
      this.state = ST_BODY_CHUNKED;
      this.chunkState = C_SIZE_FIRST;
      this.chunkSize = 0;
      this.chunkDigits = 0;
      this.chunkLineLen = 0;
      this.trailerBytes = 0;
      this.trailerFields = 0;
    } else if (contentLength > 0) {
      this.state = ST_BODY_LENGTH;
      this.remaining = contentLength;
    }
    // else: no body (RFC 9112 §6.3 ¶7), next head
    if (upgrade) {
      // Stop where the Upgrade request ends (it has no body): what follows waits for the answer (push()).
      this.state = ST_UPGRADE_WAIT;
      this.sink.onUpgrade();
    }
  }

  /** Whether head[start, end) is the Host value the current tail was built for (checked and allowed then). */
  private isTailHost(head: Buffer, start: number, end: number): boolean {
    const n = end - start;
    if (n !== this.tailHostLen) return false;
    const t = this.tail!;
    const at = this.forwardedSuffix.length + XFH_PREFIX.length;
    for (let k = 0; k < n; k++) if (head[start + k] !== t[at + k]) return false;
    return true;
  }

  /** Build the tail for an accepted Host value head[start, end). */
  private setTail(head: Buffer, start: number, end: number): void {
    const suffix = this.forwardedSuffix;
    const n = end - start;
    // Its own small ArrayBuffer: a slice of Node's 8 KiB pool would keep the whole slab alive for as long as the
    // connection lives (idle keep-alive connections are many).
    const t = Buffer.allocUnsafeSlow(suffix.length + XFH_PREFIX.length + n + 4);
    let o = suffix.copy(t, 0);
    o += XFH_PREFIX.copy(t, o);
    o += head.copy(t, o, start, end);
    t[o++] = CR;
    t[o++] = LF;
    t[o++] = CR;
    t[o] = LF;
    this.tail = t;
    this.tailHostLen = n;
  }

  /** The tail of an HTTP/1.0 head without Host: no X-Forwarded-Host. */
  private hostlessTail(): Buffer {
    const suffix = this.forwardedSuffix;
    const t = Buffer.allocUnsafe(suffix.length + 2);
    suffix.copy(t, 0);
    t[suffix.length] = CR;
    t[suffix.length + 1] = LF;
    return t;
  }

  // ---- chunked bodies ----

  /**
   * Walks chunked framing from `start`; forwards everything it consumed as one view of `chunk`. Returns the position
   * after the message (state back to ST_HEAD) or chunk.length.
   */
  private scanChunked(chunk: Buffer, start: number): number {
    const len = chunk.length;
    let i = start;
    let cs = this.chunkState;
    let err: string | null = null;
    let tooLarge = false;
    scan: while (i < len) {
      if (cs === C_DATA) {
        const n = Math.min(this.remaining, len - i);
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) cs = C_DATA_CR;
        continue;
      }
      const b = chunk[i]!;
      if (cs <= C_SIZE_LF) {
        if (++this.chunkLineLen > MAX_CHUNK_LINE + 1) {
          err = `chunk size line longer than ${MAX_CHUNK_LINE} bytes`;
          break;
        }
      } else if (cs >= C_TRL_START) {
        if (++this.trailerBytes > this.maxHeadSize) {
          err = `trailer section exceeds ${this.maxHeadSize} bytes`;
          tooLarge = true;
          break;
        }
      }
      switch (cs) {
        case C_SIZE_FIRST:
        case C_SIZE: {
          const h = HEX[b]!;
          if (h !== 0) {
            if (++this.chunkDigits > MAX_CHUNK_SIZE_DIGITS || this.chunkSize > (Number.MAX_SAFE_INTEGER - (h - 1)) / 16) {
              err = 'chunk size too large';
              break scan;
            }
            this.chunkSize = this.chunkSize * 16 + (h - 1);
            cs = C_SIZE;
          } else if (cs === C_SIZE && b === SEMI) {
            cs = C_EXT_NAME_START;
          } else if (cs === C_SIZE && b === CR) {
            cs = C_SIZE_LF;
          } else {
            err = 'invalid chunk size (hex digits expected)';
            break scan;
          }
          break;
        }
        case C_EXT_NAME_START:
          if (TCHAR[b] !== 1) {
            err = 'invalid chunk extension name';
            break scan;
          }
          cs = C_EXT_NAME;
          break;
        case C_EXT_NAME:
          if (b === EQUALS) cs = C_EXT_VAL_START;
          else if (b === SEMI) cs = C_EXT_NAME_START;
          else if (b === CR) cs = C_SIZE_LF;
          else if (TCHAR[b] !== 1) {
            err = 'invalid chunk extension name';
            break scan;
          }
          break;
        case C_EXT_VAL_START:
          if (b === DQUOTE) cs = C_EXT_QUOTED;
          else if (TCHAR[b] === 1) cs = C_EXT_TOKEN;
          else {
            err = 'invalid chunk extension value';
            break scan;
          }
          break;
        case C_EXT_TOKEN:
          if (b === SEMI) cs = C_EXT_NAME_START;
          else if (b === CR) cs = C_SIZE_LF;
          else if (TCHAR[b] !== 1) {
            err = 'invalid chunk extension value';
            break scan;
          }
          break;
        case C_EXT_QUOTED:
          if (b === DQUOTE) cs = C_EXT_AFTER_QUOTED;
          else if (b === BACKSLASH) cs = C_EXT_QPAIR;
          else if (QDTEXT[b] !== 1) {
            err = 'invalid character in quoted chunk extension value';
            break scan;
          }
          break;
        case C_EXT_QPAIR:
          if (VALUE_CHAR[b] !== 1) {
            err = 'invalid quoted-pair in chunk extension value';
            break scan;
          }
          cs = C_EXT_QUOTED;
          break;
        case C_EXT_AFTER_QUOTED:
          if (b === SEMI) cs = C_EXT_NAME_START;
          else if (b === CR) cs = C_SIZE_LF;
          else {
            err = 'invalid chunk extension after quoted value';
            break scan;
          }
          break;
        case C_SIZE_LF:
          if (b !== LF) {
            err = 'chunk size line not ended by CRLF';
            break scan;
          }
          this.chunkLineLen = 0;
          this.chunkDigits = 0;
          if (this.chunkSize === 0) {
            cs = C_TRL_START;
          } else {
            this.remaining = this.chunkSize;
            this.chunkSize = 0;
            cs = C_DATA;
          }
          break;
        case C_DATA_CR:
          if (b !== CR) {
            err = 'chunk data not followed by CRLF';
            break scan;
          }
          cs = C_DATA_LF;
          break;
        case C_DATA_LF:
          if (b !== LF) {
            err = 'chunk data not followed by CRLF';
            break scan;
          }
          cs = C_SIZE_FIRST;
          break;
        case C_TRL_START:
          if (b === CR) {
            cs = C_END_LF;
          } else if (TCHAR[b] === 1) {
            if (++this.trailerFields > this.maxHeaders) {
              err = `trailer section has more than ${this.maxHeaders} fields`;
              tooLarge = true;
              break scan;
            }
            this.trailerName[0] = b === 0x5f ? 0x2d : b | 0x20;
            this.trailerNameLen = 1;
            cs = C_TRL_NAME;
          } else {
            err = b === SP || b === HTAB ? 'obsolete line folding in trailer section' : 'invalid trailer field name';
            break scan;
          }
          break;
        case C_TRL_NAME:
          if (b === COLON) {
            for (const n of FORBIDDEN_TRAILERS) {
              if (nameIs(this.trailerName, 0, this.trailerNameLen, n)) err = `${n.toString('latin1')} is not allowed in a trailer section`;
            }
            // With basic auth on, an Authorization trailer would carry credentials past the check to the service.
            if (this.authorize !== null && nameIs(this.trailerName, 0, this.trailerNameLen, H_AUTHORIZATION)) {
              err = 'authorization is not allowed in a trailer section';
            }
            if (err !== null) break scan;
            // trailerName holds the name lowercased with '_' as '-': the check reads at most its first 12 bytes.
            if (isForwardingHeader(this.trailerName, 0, this.trailerNameLen)) {
              err = 'X-Forwarded-*, Forwarded and X-Real-IP are not allowed in a trailer section';
              break scan;
            }
            cs = C_TRL_VALUE;
          } else if (TCHAR[b] === 1) {
            if (this.trailerNameLen < LONGEST_FORBIDDEN_TRAILER) this.trailerName[this.trailerNameLen] = b === 0x5f ? 0x2d : b | 0x20;
            this.trailerNameLen++;
          } else {
            err = 'invalid trailer field name (a token followed directly by ":")';
            break scan;
          }
          break;
        case C_TRL_VALUE:
          if (b === CR) cs = C_TRL_LF;
          else if (VALUE_CHAR[b] !== 1) {
            err = 'invalid character in trailer field value';
            break scan;
          }
          break;
        case C_TRL_LF:
          if (b !== LF) {
            err = 'trailer line not ended by CRLF';
            break scan;
          }
          cs = C_TRL_START;
          break;
        default: // C_END_LF
          if (b !== LF) {
            err = 'chunked body not ended by CRLF';
            break scan;
          }
          i++;
          this.state = ST_HEAD;
          break scan;
      }
      i++;
    }
    this.chunkState = cs;
    if (i > start) {
      this.sink.forward(start === 0 && i === len ? chunk : chunk.subarray(start, i));
      if (this.state === ST_DEAD) return len; // the sink stopped the filter: no onError after its own
    }
    if (err !== null) {
      if (tooLarge) this.fail(431, 'BURROW_ERR_HTTP_HEAD_TOO_LARGE', err);
      else this.badRequest(err);
      return len;
    }
    return i;
  }

  // ---- errors ----

  private badRequest(reason: string): void {
    this.fail(400, 'BURROW_ERR_HTTP_BAD_REQUEST', reason);
  }

  private misdirected(hostname: string): void {
    this.fail(421, 'BURROW_ERR_HTTP_MISDIRECTED', `host ${JSON.stringify(hostname)} is not served on this connection`);
  }

  private fail(status: number, code: HttpFilterErrorCode, reason: string): void {
    this.cutRequest = this.state !== ST_HEAD;
    this.state = ST_DEAD;
    this.pending = EMPTY;
    this.pendingLen = 0;
    this.sink.onError(status, code, reason);
  }
}

// ---- byte helpers (heads only) ----

/** Whether the field name buf[start, start + len) is one of `names` (lowercase), case-insensitively. */
/**
 * A forwarding header the client must not set: any `X-Forwarded-*` (DESIGN.md §2: client X-Forwarded-* are stripped;
 * -Port, -Prefix, -Ssl, -Scheme, -Server … steer redirects and "is this https" checks in common frameworks just like
 * -For/-Proto/-Host), `Forwarded` and `X-Real-IP`. '_' counts as '-' anywhere in the name: nginx ($http_x_forwarded_for)
 * and CGI (HTTP_X_FORWARDED_FOR) map both spellings to one variable. Reads at most the first 12 bytes of the name.
 */
function isForwardingHeader(buf: Buffer, start: number, len: number): boolean {
  if (len >= H_XF_PREFIX.length) return foldedPrefixIs(buf, start, H_XF_PREFIX);
  return len === H_FORWARDED.length && (foldedPrefixIs(buf, start, H_FORWARDED) || foldedPrefixIs(buf, start, H_X_REAL_IP));
}

/** The trimmed bounds of the list element listElement() found last (a scratch record: no allocation per element). */
const elem = { a: 0, z: 0 };

/**
 * One element of a comma-separated list value buf[s, end): sets elem.a/elem.z to its bounds without OWS (a === z for
 * an empty element) and returns where it ends (its comma, or `end`). The next element starts after that.
 */
function listElement(buf: Buffer, s: number, end: number): number {
  let e = buf.indexOf(0x2c, s);
  if (e === -1 || e > end) e = end;
  let a = s;
  let z = e;
  while (a < z && isOWS(buf[a]!)) a++;
  while (z > a && isOWS(buf[z - 1]!)) z--;
  elem.a = a;
  elem.z = z;
  return e;
}

/**
 * The Connection field line buf[lineStart, lineEnd) with list value buf[vs, ve): pushes to `out` the [start, end)
 * pairs that remove its `upgrade` and `http2-settings` elements (and empty ones) while keeping the other elements'
 * bytes (`keep-alive, Upgrade` → `keep-alive`), or the whole line when nothing else is left. Nothing when it has
 * neither. Returns whether `upgrade` is among its elements (case-insensitive, OWS trimmed).
 *
 *   value:  r0 , r1 , r2 …   kept elements f…l: cut [vs, first byte of r_f), between kept j' < j [comma after j',
 *                            comma before j), and [comma after l, ve) — each kept element keeps its own comma in front.
 */
function connectionHopCuts(buf: Buffer, lineStart: number, lineEnd: number, vs: number, ve: number, out: number[]): boolean {
  const mark = out.length;
  let hasUpgrade = false;
  let removedAny = false;
  let removedSinceKept = false;
  let lastKeptEnd = -1; // end of the last kept element (its comma, or ve)
  let s = vs;
  while (s <= ve) {
    const e = listElement(buf, s, ve);
    const a = elem.a;
    const z = elem.z;
    const isUpgrade = nameIs(buf, a, z - a, T_UPGRADE);
    if (isUpgrade || a === z || nameIs(buf, a, z - a, H_HTTP2_SETTINGS)) {
      if (isUpgrade) hasUpgrade = true;
      removedAny = removedSinceKept = true;
    } else {
      if (removedSinceKept) {
        if (lastKeptEnd === -1) out.push(vs, a); // (its OWS too: `Upgrade, close` → `close`)
        else out.push(lastKeptEnd, s - 1);
      }
      lastKeptEnd = e;
      removedSinceKept = false;
    }
    s = e + 1;
  }
  if (!removedAny) return false;
  if (lastKeptEnd === -1) {
    out.length = mark;
    out.push(lineStart, lineEnd);
  } else if (removedSinceKept) {
    out.push(lastKeptEnd, ve);
  }
  return hasUpgrade;
}

/** Whether the list value buf[start, end) has exactly one non-empty element and it is `lower` (case-insensitive). */
function isSoleToken(buf: Buffer, start: number, end: number, lower: Buffer): boolean {
  let found = false;
  let s = start;
  while (s <= end) {
    const e = listElement(buf, s, end);
    const a = elem.a;
    const z = elem.z;
    if (a !== z) {
      if (found || !nameIs(buf, a, z - a, lower)) return false;
      found = true;
    }
    s = e + 1;
  }
  return found;
}

/** Two ascending lists of disjoint [start, end) pairs merged into one ascending list (a new array). */
function mergeCuts(a: number[], b: number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) {
      out.push(a[i]!, a[i + 1]!);
      i += 2;
    } else {
      out.push(b[j]!, b[j + 1]!);
      j += 2;
    }
  }
  return out;
}

const TE_CHUNKED = 0;
const TE_NOT_FINAL = 1;
const TE_UNSUPPORTED = 2;

/** Transfer-Encoding list: exactly one `chunked`, last → TE_CHUNKED; other codings before it → TE_UNSUPPORTED. */
function checkTransferEncoding(buf: Buffer, start: number, end: number): number {
  let s = start;
  let sawOther = false;
  for (;;) {
    const e = listElement(buf, s, end);
    const a = elem.a;
    const z = elem.z;
    const isChunked = nameIs(buf, a, z - a, T_CHUNKED);
    if (e === end) {
      if (!isChunked) return TE_NOT_FINAL;
      return sawOther ? TE_UNSUPPORTED : TE_CHUNKED;
    }
    if (isChunked || a === z) return TE_NOT_FINAL; // chunked applied twice / not last, or an empty element
    sawOther = true;
    s = e + 1;
  }
}

/** The method token head[start, end) as a string; the common ones without allocating one per request. */
function methodName(head: Buffer, start: number, end: number): string {
  const n = end - start;
  const b0 = head[start];
  if (n === 3 && b0 === 0x47 && head[start + 1] === 0x45 && head[start + 2] === 0x54) return 'GET';
  if (n === 4 && b0 === 0x50 && head[start + 1] === 0x4f && head[start + 2] === 0x53 && head[start + 3] === 0x54) return 'POST';
  return head.toString('latin1', start, end);
}

/** The normalized hostname of a Host value or authority (the acceptor routes with the same parser), or null. */
function hostnameOf(buf: Buffer, start: number, end: number): string | null {
  if (start >= end) return null;
  const h = parseHost(buf, start, end, false);
  return h === null ? null : h.hostname;
}
