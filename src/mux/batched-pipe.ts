// Copies a readable (a mux stream) into a writable (a socket) with backpressure, coalescing every chunk of one
// event-loop turn into one writev. A mux stream delivers one piece per TLS record (≤ 16 KiB); written one by one that
// is a syscall per piece, which dominated the agent's CPU on bulk transfers (bench/RESULTS.md). HOT PATH: onData.
import type { Readable, Writable } from 'node:stream';

export class BatchedPipe {
  private readonly src: Readable;
  private readonly dst: Writable;
  private corked: boolean;
  private waiting: boolean;
  private readonly onData: (chunk: Buffer) => void;
  private readonly onEnd: () => void;
  private readonly onDrain: () => void;
  private readonly flush: () => void;

  /** Starts at once; `end` (default true) forwards the source's end as the destination's end (a FIN). */
  constructor(src: Readable, dst: Writable, end = true) {
    this.src = src;
    this.dst = dst;
    this.corked = false;
    this.waiting = false;
    this.flush = () => {
      if (!this.corked) return;
      this.corked = false;
      this.dst.uncork();
    };
    this.onDrain = () => {
      if (!this.waiting) return;
      this.waiting = false;
      this.src.resume();
    };
    this.onData = (chunk: Buffer) => {
      const d = this.dst;
      if (d.destroyed || d.writableEnded) return;
      if (!this.corked) {
        this.corked = true;
        d.cork();
        setImmediate(this.flush);
      }
      if (!d.write(chunk) && !this.waiting) {
        this.waiting = true;
        this.src.pause(); // resumed by onDrain, attached once below (not a once-wrapper per blocked write)
      }
    };
    this.onEnd = () => {
      this.flush();
      if (!this.dst.destroyed && !this.dst.writableEnded) this.dst.end();
    };
    dst.on('drain', this.onDrain);
    src.on('data', this.onData);
    if (end) src.once('end', this.onEnd);
    if (src.isPaused()) src.resume();
  }
}
