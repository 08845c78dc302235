// Response header rules of an HTTP(S) endpoint (Bind.Opts.ResponseHeaders: the SDK's responseHeader() and
// removeResponseHeader()): named fields are dropped from, and given lines added to, every final response head the
// service sends, before it reaches the client. The response tracker says where each head begins, so bodies (with
// any bytes in them that look like a head) pass untouched, as do 1xx interim heads. Pure: no sockets, no timers.
// On the response path only for endpoints with such rules (the pump feeds the tracker directly otherwise).
//
//   service bytes ─► [body bytes up to the next head: tracker.pushToHead] ─► out as they are
//                    [a whole head (held across reads if split)] ─► tracker.push(head) ─► out rewritten
//
// A head held across reads that passes 64 KiB before its end is not rewritten: it and everything after it pass as
// they are (the tracker stops framing there too), so memory stays bounded. A head still incomplete when the service's stream ends is sent as it is (flush()).
import { appendBytes, findHeadEnd, isDigit, isNamed } from './http-bytes.js';
import type { HeaderRules } from './http-request-filter.js';
import type { HttpResponseTracker } from './http-response-tracker.js';

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
/** As the tracker's bound: a longer head is neither framed nor rewritten. */
const MAX_HEAD = 64 * 1024;
const EMPTY = Buffer.alloc(0);

export class ResponseHeadRewriter {
  private readonly rules: HeaderRules;
  private readonly tracker: HttpResponseTracker;
  /** The start of a head that spans reads (copied), not sent until its end is here. */
  private held: Buffer;
  private heldLen: number;
  /** A head over MAX_HEAD was met: from then on every byte passes as it is. */
  private passing: boolean;

  constructor(rules: HeaderRules, tracker: HttpResponseTracker) {
    this.rules = rules;
    this.tracker = tracker;
    this.held = EMPTY;
    this.heldLen = 0;
    this.passing = false;
  }

  /** Response bytes in order, in place of tracker.push(): what goes to the client is appended to `out`, in order. */
  push(chunk: Buffer, out: Buffer[]): void {
    const t = this.tracker;
    const len = chunk.length;
    let i = 0;
    while (i < len) {
      if (this.passing) {
        const rest = i === 0 ? chunk : chunk.subarray(i);
        t.push(rest);
        out.push(rest);
        return;
      }
      if (this.heldLen === 0) {
        if (!t.atHead) {
          // Body bytes (or bytes after a 101, or after framing was lost): up to where the next head begins.
          const j = t.pushToHead(chunk, i);
          out.push(i === 0 && j === len ? chunk : chunk.subarray(i, j));
          i = j;
          continue;
        }
        const end = findHeadEnd(chunk, i, len);
        if (end !== -1) {
          this.emit(chunk.subarray(i, end), out);
          i = end;
        } else if (len - i > MAX_HEAD) {
          this.passing = true;
        } else {
          this.held = appendBytes(this.held, 0, chunk, i, len, MAX_HEAD + 4);
          this.heldLen = len - i;
          return;
        }
        continue;
      }
      // A head begun in an earlier read: look for its end in the new bytes only (3 back covers an end split across
      // reads), so a head trickled byte by byte costs linear time.
      const before = this.heldLen;
      const take = Math.min(len - i, MAX_HEAD + 4 - before);
      this.held = appendBytes(this.held, before, chunk, i, i + take, MAX_HEAD + 4);
      this.heldLen += take;
      const at = findHeadEnd(this.held, before > 3 ? before - 3 : 0, this.heldLen);
      if (at === -1) {
        if (this.heldLen > MAX_HEAD) this.release(out);
        i += take;
        continue;
      }
      const head = this.held.subarray(0, at);
      this.held = EMPTY;
      this.heldLen = 0;
      this.emit(head, out);
      i += at - before;
    }
  }

  /** The service's side ended: a head still incomplete goes to the client as it is. */
  flush(out: Buffer[]): void {
    if (this.heldLen > 0) this.release(out);
  }

  /** The held bytes go out unchanged, and so does everything after them. */
  private release(out: Buffer[]): void {
    const bytes = this.held.subarray(0, this.heldLen);
    this.held = EMPTY;
    this.heldLen = 0;
    this.passing = true;
    this.tracker.push(bytes);
    out.push(bytes);
  }

  /** One whole head: the tracker reads it (so it frames the body after it); the client gets it with the rules applied. */
  private emit(head: Buffer, out: Buffer[]): void {
    this.tracker.push(head);
    out.push(isFinalHead(head) ? this.rewrite(head) : head);
  }

  /**
   * The head without the fields named in `remove` (with their obs-fold continuation lines, RFC 9112 §5.2), and with
   * the `add` lines before the empty line that ends it.
   */
  private rewrite(head: Buffer): Buffer {
    const remove = this.rules.remove;
    const parts: Buffer[] = [];
    let kept = 0; // start of the bytes not yet copied to parts
    let dropping = false;
    let pos = head.indexOf(LF) + 1; // the first field line (isFinalHead saw the status line)
    for (;;) {
      const c = head[pos]!;
      if (c === LF || (c === CR && head[pos + 1] === LF)) break; // the empty line
      const lf = head.indexOf(LF, pos);
      if (c !== SP && c !== HTAB) {
        const colon = head.indexOf(COLON, pos);
        dropping = colon !== -1 && colon < lf && isNamed(head, pos, colon - pos, remove);
      }
      if (dropping) {
        if (pos > kept) parts.push(head.subarray(kept, pos));
        kept = lf + 1;
      }
      pos = lf + 1;
    }
    if (pos > kept) parts.push(head.subarray(kept, pos));
    parts.push(this.rules.add, head.subarray(pos));
    return Buffer.concat(parts);
  }
}

/** `HTTP/1.x nnn` with a final status (200 and up, or 101): the heads the rules apply to. 1xx interim heads are not. */
function isFinalHead(h: Buffer): boolean {
  if (h.length < 12 || h[0] !== 0x48 || h[4] !== 0x2f || h[8] !== SP || !isDigit(h[9]!) || !isDigit(h[10]!) || !isDigit(h[11]!)) return false;
  const status = (h[9]! - 0x30) * 100 + (h[10]! - 0x30) * 10 + (h[11]! - 0x30);
  return status >= 200 || status === 101;
}
