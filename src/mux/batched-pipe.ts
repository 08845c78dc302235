// Copies a readable (a mux stream) into a writable (a socket) with backpressure, coalescing every chunk of one
// event-loop turn into one writev. A mux stream delivers one piece per TLS record (≤ 16 KiB); written one by one that
// is a syscall per piece, which dominated the agent's CPU on bulk transfers (bench/RESULTS.md). HOT PATH: onData.
import type { Readable, Writable } from 'node:stream';
import { ReleaseQueue } from './read-buffers.js';

/**
 * Write high-water mark for the sockets a mux stream is piped into (the agent's upstream sockets, the relay's public
 * sockets). A mux stream delivers one piece per TLS record (≤ 16 KiB); with Node's default of 16 KiB, write() returns
 * false at the second piece, the pipe pauses, and each piece went out in a write of its own (strace of the agent in
 * tcp-bulk: 16 KiB writes to the upstream). 64 KiB lets the pieces of one transport read (up to 64 KiB) go out in one
 * writev: a quarter of the write syscalls (bench/RESULTS.md, 2026-11-29 session 6). Memory per stream stays bounded:
 * the window (credit returns only as the pipe takes pieces) plus this.
 */
export const PIPE_WRITE_HIGH_WATER_MARK = 64 * 1024;

/** net.Socket passes its options on to stream.Duplex, which reads this; @types/node does not list it for sockets. */
export interface WritableHighWaterMarkOption {
  writableHighWaterMark: number;
}

export class BatchedPipe {
  private readonly src: Readable;
  private readonly dst: Writable;
  private corked: boolean;
  private waiting: boolean;
  /** Buffers of the chunks written and not yet done (releaseReads only). */
  private readonly inFlight: ReleaseQueue | null;
  private readonly onData: (chunk: Buffer) => void;
  private readonly onEnd: () => void;
  private readonly onDrain: () => void;
  private readonly flush: () => void;

  /**
   * Starts at once; `end` (default true) forwards the source's end as the destination's end (a FIN). With
   * `releaseReads`, each chunk's buffer is handed to releaseReadBuffer() once its write is done (read-buffers.ts):
   * for a source whose chunks were retained for that (MuxStream.releasesReads), and which has no other 'data'
   * listener that keeps chunks.
   */
  constructor(src: Readable, dst: Writable, end = true, releaseReads = false) {
    this.src = src;
    this.dst = dst;
    this.corked = false;
    this.waiting = false;
    this.inFlight = releaseReads ? new ReleaseQueue() : null;
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
      const q = this.inFlight;
      let ok: boolean;
      if (q === null) {
        ok = d.write(chunk);
      } else {
        q.push(chunk.buffer, 1);
        ok = d.write(chunk, q.onDone);
      }
      if (!ok && !this.waiting) {
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
