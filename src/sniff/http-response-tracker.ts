// Agent→client HTTP/1.1 response framing for HTTP(S) endpoints: where each response ends (RFC 9112 §6.3), so the relay
// knows when every request it forwarded has been answered in full. Observes only: the bytes go to the client untouched
// whatever this makes of them. Pure: no sockets, no timers. HOT PATH (every response chunk; O(1) per chunk of body data,
// heads and chunk-size lines are scanned).
//
// Why: a relay-made answer (421, 400, 408, … from the request filter) for a request pipelined behind others must wait
// until the earlier responses are out, and must not be glued onto a response whose end the relay cannot see.
//
//   HEAD ──(status line + fields)──┬── 1xx but 101 (interim) ─────────────────────────────────────────────► HEAD
//                                  ├── 101 ─────────────────────────────────────────────────────────────► OPAQUE
//                                  ├── answer to HEAD, 204, 304, Content-Length: 0 ──────── (answered) ──► HEAD
//                                  ├── Transfer-Encoding ending in chunked ─► CHUNKED (… 0, trailers) ──► HEAD
//                                  ├── other Transfer-Encoding, or no length ─► CLOSE (ends with the connection)
//                                  └── Content-Length n ─► LENGTH (n bytes) ───────────────── (answered) ──► HEAD
//   anything this cannot frame (no `HTTP/1.x nnn`, bad or conflicting lengths, a bad chunk line, a head over
//   64 KiB) ─► LOST: from then on nothing is known (`settled` stays false).
//
// API: `request(method)` for every request forwarded, in order; `push(chunk)` for every response byte, in order.
// `settled`: every forwarded request has its whole final response, and no response is under way.

import { appendBytes, findHeadEnd, hasPrefixCI, isDigit, isOWS, parseDecimal } from './http-bytes.js';

const LF = 0x0a;
const CR = 0x0d;
/** A response head larger than this is not tracked (LOST); the bytes still pass. llhttp's own limit is 16 KiB. */
const MAX_HEAD = 64 * 1024;

const R_HEAD = 0;
const R_LENGTH = 1;
const R_CHUNKED = 2;
/** Body delimited by the end of the connection. */
const R_CLOSE = 3;
/** After a 101: no longer HTTP. */
const R_OPAQUE = 4;
const R_LOST = 5;

// Chunked body sub-states (RFC 9112 §7.1).
const C_SIZE = 0; // hex digits of a chunk-size
const C_EXT = 1; // after the size: chunk extensions up to CR
const C_SIZE_LF = 2; // the LF ending a chunk-size line
const C_DATA = 3;
const C_DATA_CR = 4; // the CRLF after chunk data
const C_DATA_LF = 5;
const C_TRAILER = 6; // trailer lines, up to the empty one
const C_TRAILER_LF = 7;

const EMPTY = Buffer.alloc(0);
/** Taken entries at the front of the request queue that trigger its compaction (takeRequest). */
const HEADS_COMPACT_AT = 1024;

export class HttpResponseTracker {
  /** Requests forwarded whose final response has not ended. */
  private outstanding: number;
  /** For each outstanding request in order: 1 if it was a HEAD (its response has no body), else 0. */
  private heads: number[];
  private headsStart: number;
  private state: number;
  /** Head bytes of a response head that spans chunks (copied; rare). */
  private pending: Buffer;
  private pendingLen: number;
  /** LENGTH: body bytes still to come. CHUNKED/C_DATA: bytes of the current chunk still to come. */
  private remaining: number;
  private chunkState: number;
  private chunkDigits: number;
  /** Bytes on the current trailer line (0 at its start). */
  private trailerLine: number;

  constructor() {
    this.outstanding = 0;
    this.heads = [];
    this.headsStart = 0;
    this.state = R_HEAD;
    this.pending = EMPTY;
    this.pendingLen = 0;
    this.remaining = 0;
    this.chunkState = C_SIZE;
    this.chunkDigits = 0;
    this.trailerLine = 0;
  }

  /** Every forwarded request has its whole final response, and no response is under way: a reply of our own may go now. */
  get settled(): boolean {
    return this.settledBut(0);
  }

  /** Like `settled`, allowing the last `n` forwarded requests to have no response (requests the service will not answer). */
  settledBut(n: number): boolean {
    return this.outstanding <= n && this.state === R_HEAD && this.pendingLen === 0;
  }

  /** Forwarded requests whose final response is not complete yet. */
  get unanswered(): number {
    return this.outstanding;
  }

  /** Forwarded requests whose final response has not begun (its status line and fields not read yet). */
  get awaitingHeads(): number {
    return this.heads.length - this.headsStart;
  }

  /** A 101 was read: the connection no longer speaks HTTP/1.1. */
  get switched(): boolean {
    return this.state === R_OPAQUE;
  }

  /** The response under way ends only with the connection (no length), or the connection stopped being HTTP (101). */
  get closeDelimited(): boolean {
    return this.state === R_CLOSE || this.state === R_OPAQUE;
  }

  /** The responses could not be framed: `settled` will not become true again. */
  get lost(): boolean {
    return this.state === R_LOST;
  }

  /** A request went to the service (after the filter passed it), in order. */
  request(method: string): void {
    this.outstanding++;
    this.heads.push(method === 'HEAD' ? 1 : 0);
  }

  /** Response bytes, in order. */
  push(chunk: Buffer): void {
    this.scan(chunk, 0, false);
  }

  /** No response head is under way: the next response byte starts one (a head rewriter takes it from here). */
  get atHead(): boolean {
    return this.state === R_HEAD && this.pendingLen === 0;
  }

  /**
   * As push() of chunk[start..], but stops where a response head begins (`atHead`) and returns that offset; the
   * length when no head begins in the rest of the chunk (or nothing more can be framed).
   */
  pushToHead(chunk: Buffer, start: number): number {
    return this.scan(chunk, start, true);
  }

  private scan(chunk: Buffer, start: number, toHead: boolean): number {
    let i = start;
    const len = chunk.length;
    while (i < len) {
      switch (this.state) {
        case R_HEAD:
          if (toHead && this.pendingLen === 0) return i;
          i = this.scanHead(chunk, i);
          break;
        case R_LENGTH: {
          const n = len - i;
          if (n < this.remaining) {
            this.remaining -= n;
            return len;
          }
          i += this.remaining;
          this.remaining = 0;
          this.answered();
          break;
        }
        case R_CHUNKED:
          i = this.scanChunked(chunk, i);
          break;
        default:
          return len; // CLOSE, OPAQUE, LOST: nothing more to find
      }
    }
    return len;
  }

  // ---- heads ----

  /** Finds the end of a response head from `start`; handles it when complete. Returns where the head ended, or len. */
  private scanHead(chunk: Buffer, start: number): number {
    const len = chunk.length;
    if (this.pendingLen === 0) {
      // The usual case: the whole head is in this read. One pass finds its end and reads its fields.
      const end = this.parseHead(chunk, start, len);
      if (end !== -1) return end;
      if (len - start > MAX_HEAD) {
        this.lose();
        return len;
      }
      this.appendPending(chunk, start, len);
      return len;
    }
    // Rare: the head spans reads. Copy what this read adds and look for the end only in the new bytes (3 bytes back
    // covers an end split across reads), so a head trickled byte by byte costs linear time; parse it once whole.
    const from = this.pendingLen > 3 ? this.pendingLen - 3 : 0;
    const take = Math.min(len - start, MAX_HEAD + 4 - this.pendingLen);
    this.appendPending(chunk, start, start + take);
    const at = findHeadEnd(this.pending, from, this.pendingLen);
    if (at === -1) {
      if (this.pendingLen > MAX_HEAD) this.lose();
      return start + take;
    }
    const used = at - (this.pendingLen - take); // bytes of this read that belong to the head
    const head = this.pending;
    this.pending = EMPTY;
    this.pendingLen = 0;
    this.parseHead(head, 0, at);
    return start + used;
  }

  private appendPending(chunk: Buffer, from: number, to: number): void {
    this.pending = appendBytes(this.pending, this.pendingLen, chunk, from, to, MAX_HEAD + 4);
    this.pendingLen += to - from;
  }

  /**
   * If h[s, end) holds a whole head from s: reads its status and fields, picks the body state, returns where the head
   * ends. Else -1 and nothing changes. One indexOf per line (a JS byte loop over a typical 160-byte head took 1.5×
   * as long).
   */
  private parseHead(h: Buffer, s: number, end: number): number {
    let i = h.indexOf(LF, s); // the end of the status line
    if (i === -1 || i >= end) return -1;
    let line = i + 1;
    let length = -1;
    let te = 0; // 0 none, 1 ends in chunked, 2 other
    let bad = false;
    let headEnd: number;
    for (;;) {
      if (line >= end) return -1;
      const c = h[line]!;
      if (c === LF) {
        headEnd = line + 1;
        break;
      }
      if (c === CR) {
        if (line + 1 >= end) return -1;
        if (h[line + 1] === LF) {
          headEnd = line + 2;
          break;
        }
      }
      const j = h.indexOf(LF, line);
      if (j === -1 || j >= end) return -1;
      const lineEnd = h[j - 1] === CR ? j - 1 : j;
      const f = c | 0x20;
      if (f === 0x63 /* c */ && hasPrefixCI(h, line, lineEnd, CONTENT_LENGTH)) {
        const v = parseLength(h, line + CONTENT_LENGTH.length, lineEnd);
        if (v < 0 || (length !== -1 && v !== length)) bad = true;
        length = v;
      } else if (f === 0x74 /* t */ && hasPrefixCI(h, line, lineEnd, TRANSFER_ENCODING)) {
        te = endsInChunked(h, line + TRANSFER_ENCODING.length, lineEnd) ? 1 : 2;
      }
      line = j + 1;
    }
    // Status line: HTTP/1.x SP 3DIGIT (RFC 9112 §4).
    if (
      bad || i - s < 12 ||
      h[s] !== 0x48 || h[s + 1] !== 0x54 || h[s + 2] !== 0x54 || h[s + 3] !== 0x50 || h[s + 4] !== 0x2f ||
      h[s + 5] !== 0x31 || h[s + 6] !== 0x2e || !isDigit(h[s + 7]!) || h[s + 8] !== 0x20 ||
      !isDigit(h[s + 9]!) || !isDigit(h[s + 10]!) || !isDigit(h[s + 11]!)
    ) {
      this.lose();
      return headEnd;
    }
    const status = (h[s + 9]! - 0x30) * 100 + (h[s + 10]! - 0x30) * 10 + (h[s + 11]! - 0x30);
    if (status < 200) {
      if (status === 101) this.state = R_OPAQUE; // the connection is no longer HTTP/1.1
      else if (status < 100) this.lose();
      return headEnd; // interim (100, 103): the final response is still to come
    }
    if (this.takeRequest() || status === 204 || status === 304) {
      this.answered();
    } else if (te === 1) {
      this.state = R_CHUNKED;
      this.chunkState = C_SIZE;
      this.chunkDigits = 0;
      this.remaining = 0;
    } else if (te === 2) {
      this.state = R_CLOSE; // RFC 9112 §6.3 ¶4: a response's body then runs to the close
    } else if (length === 0) {
      this.answered();
    } else if (length > 0) {
      this.state = R_LENGTH;
      this.remaining = length;
    } else {
      this.state = R_CLOSE;
    }
    return headEnd;
  }

  /** The oldest outstanding request's final response began: was that request a HEAD? (An unsolicited one: no.) */
  private takeRequest(): boolean {
    const heads = this.heads;
    if (this.headsStart >= heads.length) return false;
    const head = heads[this.headsStart++] === 1;
    if (this.headsStart === heads.length) {
      heads.length = 0;
      this.headsStart = 0;
    } else if (this.headsStart >= HEADS_COMPACT_AT && 2 * this.headsStart >= heads.length) {
      // A pipelining client that always has a request ahead of the answers never empties the queue: drop the taken
      // front now and then, or the array grows with every request of the connection.
      heads.splice(0, this.headsStart);
      this.headsStart = 0;
    }
    return head;
  }

  /** The final response under way (or just parsed) is complete. */
  private answered(): void {
    if (this.outstanding > 0) this.outstanding--;
    this.state = R_HEAD;
  }

  private lose(): void {
    this.state = R_LOST;
    this.pending = EMPTY;
    this.pendingLen = 0;
  }

  // ---- chunked bodies ----

  private scanChunked(chunk: Buffer, start: number): number {
    const len = chunk.length;
    let i = start;
    while (i < len) {
      switch (this.chunkState) {
        case C_DATA: {
          const n = len - i;
          if (n < this.remaining) {
            this.remaining -= n;
            return len;
          }
          i += this.remaining;
          this.remaining = 0;
          this.chunkState = C_DATA_CR;
          break;
        }
        case C_SIZE: {
          const b = chunk[i]!;
          const d = hexValue(b);
          if (d >= 0) {
            // 2^53 bounds what a double holds exactly; no real chunk comes near (the filter allows 16 digits too).
            if (++this.chunkDigits > 13) return this.loseAt(len);
            this.remaining = this.remaining * 16 + d;
            i++;
          } else if (this.chunkDigits === 0) {
            return this.loseAt(len);
          } else if (b === CR) {
            this.chunkState = C_SIZE_LF;
            i++;
          } else {
            this.chunkState = C_EXT; // `;ext`, or whitespace some servers put before it
            i++;
          }
          break;
        }
        case C_EXT: {
          const cr = chunk.indexOf(CR, i);
          if (cr === -1) return len;
          this.chunkState = C_SIZE_LF;
          i = cr + 1;
          break;
        }
        case C_SIZE_LF:
          if (chunk[i] !== LF) return this.loseAt(len);
          i++;
          this.chunkDigits = 0;
          if (this.remaining === 0) {
            this.chunkState = C_TRAILER; // last-chunk: trailers, then the empty line
            this.trailerLine = 0;
          } else {
            this.chunkState = C_DATA;
          }
          break;
        case C_DATA_CR:
          if (chunk[i] !== CR) return this.loseAt(len);
          this.chunkState = C_DATA_LF;
          i++;
          break;
        case C_DATA_LF:
          if (chunk[i] !== LF) return this.loseAt(len);
          this.chunkState = C_SIZE;
          i++;
          break;
        case C_TRAILER: {
          const b = chunk[i++]!;
          if (b === CR) this.chunkState = C_TRAILER_LF;
          else this.trailerLine++;
          break;
        }
        default: {
          // C_TRAILER_LF
          if (chunk[i] !== LF) return this.loseAt(len);
          i++;
          if (this.trailerLine === 0) {
            this.answered(); // the empty line after the trailers: the response is complete
            return i;
          }
          this.trailerLine = 0;
          this.chunkState = C_TRAILER;
        }
      }
    }
    return i;
  }

  private loseAt(len: number): number {
    this.lose();
    return len;
  }
}

const CONTENT_LENGTH = Buffer.from('content-length:', 'latin1');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding:', 'latin1');
const CHUNKED = Buffer.from('chunked', 'latin1');

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const l = b | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** A Content-Length value in h[s, e): 1*DIGIT between optional whitespace; -1 when it is anything else. */
function parseLength(h: Buffer, s: number, e: number): number {
  while (s < e && isOWS(h[s]!)) s++;
  while (e > s && isOWS(h[e - 1]!)) e--;
  return parseDecimal(h, s, e);
}

/** Is the last coding in the Transfer-Encoding value h[s, e) `chunked` (RFC 9112 §6.3 ¶4)? */
function endsInChunked(h: Buffer, s: number, e: number): boolean {
  while (e > s && isOWS(h[e - 1]!)) e--;
  if (e - s < 7) return false;
  const at = e - 7;
  if (at > s && h[at - 1] !== 0x20 && h[at - 1] !== 0x09 && h[at - 1] !== 0x2c && h[at - 1] !== 0x3a) return false;
  for (let k = 0; k < 7; k++) if ((h[at + k]! | 0x20) !== CHUNKED[k]) return false;
  return true;
}
