// A write target for the agent's JSON log lines (pino) that never blocks the event loop: lines queue in memory up to
// a bound and go to the file descriptor one asynchronous write at a time (libuv's thread pool). A reader that stops
// reading (a stuck log shipper, `| less` left open) costs dropped lines, counted, never a stalled agent. A pipe is
// written through its own non-blocking open of it (Node makes stdout pipes blocking, and a thread blocked in write()
// would also hold up the process's exit, which joins the thread pool). CLI layer.
import fs from 'node:fs';

/** After EAGAIN (a non-blocking pipe that is full), wait this long before trying again. */
const RETRY_MS = 100;

export class LineSink {
  private readonly fd: number;
  private readonly maxBytes: number;
  private readonly queue: Buffer[];
  private queued: number;
  /** Bytes of the write under way (they count against maxBytes too). */
  private inFlight: number;
  private writing: boolean;
  /** The descriptor failed for good (EPIPE, EBADF…): lines are dropped from then on. */
  private broken: boolean;
  private idleWaiters: Array<() => void>;
  /** Lines dropped since the last takeDropped(). */
  private droppedLines: number;

  constructor(fd: number, maxBytes: number) {
    this.fd = nonBlockingPipe(fd);
    this.maxBytes = maxBytes;
    this.queue = [];
    this.queued = 0;
    this.inFlight = 0;
    this.writing = false;
    this.broken = false;
    this.idleWaiters = [];
    this.droppedLines = 0;
  }

  /** pino's destination interface: one or more whole lines. */
  write(text: string): boolean {
    if (this.broken) return true;
    const b = Buffer.from(text, 'utf8');
    if (this.queued + this.inFlight + b.length > this.maxBytes) {
      this.droppedLines++;
      return true;
    }
    this.queue.push(b);
    this.queued += b.length;
    if (!this.writing) this.next();
    return true;
  }

  /** Lines dropped since the last call (the buffer was full), and resets the count. */
  takeDropped(): number {
    const n = this.droppedLines;
    this.droppedLines = 0;
    return n;
  }

  /** Resolves when every queued line is written, or after `timeoutMs` (a reader that stopped reading). */
  drained(timeoutMs: number): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs); // keeps the process until then: the lines are worth the wait
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private next(): void {
    const b = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue, this.queued);
    this.queue.length = 0;
    this.queued = 0;
    this.inFlight = b.length;
    this.writing = true;
    this.writeOut(b, 0);
  }

  private writeOut(b: Buffer, from: number): void {
    fs.write(this.fd, b, from, b.length - from, null, (err, n) => {
      if (err !== null) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.writeOut(b, from), RETRY_MS).unref();
          return;
        }
        this.broken = true;
        this.queue.length = 0;
        this.queued = 0;
        this.idle();
        return;
      }
      if (from + n < b.length) return this.writeOut(b, from + n);
      this.inFlight = 0;
      if (this.queue.length > 0) return this.next();
      this.idle();
    });
  }

  private idle(): void {
    this.writing = false;
    this.inFlight = 0;
    for (const w of this.idleWaiters.splice(0)) w();
  }
}

/** A pipe (FIFO) `fd`, opened again non-blocking (its own open file description); any other `fd` as it is. */
function nonBlockingPipe(fd: number): number {
  try {
    if (!fs.fstatSync(fd).isFIFO()) return fd;
    return fs.openSync(`/proc/self/fd/${fd}`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch {
    return fd; // no /proc, or the pipe's reader is gone: write to it as it is
  }
}
