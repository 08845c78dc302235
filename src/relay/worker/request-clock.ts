// Request timing of one HTTP(S) connection (burrow_ttfb_seconds, burrow_request_duration_seconds): the start of every
// request forwarded, oldest first, matched in order with the responses the tracker sees complete, so each request of
// a pipelining client is timed, not only the last one before the answers. HOT PATH (per response chunk: one or two
// comparisons; a clock read only when a request is waiting).
//
//   begin(t) ─► queue of starts ─► bytes(now): the oldest one's first byte (TTFB) ─► settle(unanswered): each one
//   answered in full is recorded (start → its last byte) and leaves the queue; the next one is now the oldest.
import type { RelayRecorder } from '../../metrics/relay-recorder.js';

/** First capacity of the queue (a power of two); it doubles when a pipelining client fills it. */
const INITIAL_CAPACITY = 4;

export class RequestClock {
  private readonly recorder: RelayRecorder;
  private readonly type: number;
  /** Start (wall ms) of each forwarded request not yet recorded: a ring, oldest at `head`, `count` of them. */
  private starts: Float64Array;
  private head: number;
  private count: number;
  /** The oldest request's response has begun (its TTFB is recorded). */
  private firstByte: boolean;
  /** When the last response byte came (the end of the oldest request's response so far). */
  private lastByteAt: number;

  constructor(recorder: RelayRecorder, type: number) {
    this.recorder = recorder;
    this.type = type;
    this.starts = new Float64Array(INITIAL_CAPACITY);
    this.head = 0;
    this.count = 0;
    this.firstByte = false;
    this.lastByteAt = 0;
  }

  /** Requests forwarded and not yet recorded. */
  get waiting(): number {
    return this.count;
  }

  /** A request went to the service; it started at `at` (wall ms). */
  begin(at: number): void {
    if (this.count === this.starts.length) this.grow();
    this.starts[(this.head + this.count) & (this.starts.length - 1)] = at;
    this.count++;
  }

  /** Response bytes arrived at `now` (before the tracker reads them): they belong to the oldest waiting request. */
  bytes(now: number): void {
    if (this.count === 0) return;
    this.lastByteAt = now;
    this.firstByteOfOldest();
  }

  /**
   * After the tracker read a chunk: of the waiting requests, `unanswered` still lack a complete response, so the
   * oldest others were answered by it and are recorded. `underWay`: a response has begun past them (the tracker is
   * in a head or a body), which is the next request's: its first byte came with this chunk too.
   */
  settle(unanswered: number, underWay: boolean): void {
    while (this.count > unanswered) {
      this.firstByteOfOldest(); // answered in full by this chunk: one behind another in it had its first byte here too
      this.endOldest();
    }
    if (underWay && this.count > 0) this.firstByteOfOldest();
  }

  /** The oldest waiting request's first response byte is here: its TTFB, once. */
  private firstByteOfOldest(): void {
    if (this.firstByte) return;
    this.firstByte = true;
    this.recorder.ttfb(this.type, this.starts[this.head]!);
  }

  /**
   * The oldest request's response ends here without the tracker seeing its end (the connection closes, the protocol
   * is switched, responses that cannot be framed): recorded if it began, and it leaves the queue.
   */
  endOldest(): void {
    if (this.count === 0) return;
    if (this.firstByte) this.recorder.requestDone(this.type, this.starts[this.head]!, this.lastByteAt);
    this.firstByte = false;
    this.head = (this.head + 1) & (this.starts.length - 1);
    this.count--;
  }

  private grow(): void {
    const old = this.starts;
    const next = new Float64Array(old.length * 2);
    for (let k = 0; k < this.count; k++) next[k] = old[(this.head + k) & (old.length - 1)]!;
    this.starts = next;
    this.head = 0;
  }
}
