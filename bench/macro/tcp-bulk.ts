// One tcp-bulk transfer: N bytes (after an 8-byte length header) pushed to 127.0.0.1:PORT with write/'drain'
// backpressure, timed from the first write until the sink child (tcp-sink-process.js) reports over IPC that it has
// counted all N. Shared by the relay suite and the default scenarios. The write loop is the measured path: one
// preallocated chunk, no allocation per write.
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { KiB, MiB } from '../lib/suite.js';

export const BULK_CHUNK = 64 * KiB;
/**
 * Bytes per tcp-bulk run (default, and with --quick), and per untimed warm-up run: one definition for both suites.
 * 1 GiB like the mux suite: with 256 MiB a direct run lasted ~0.17 s and the first tunnel run of every invocation
 * read ~400 MB/s against 510–540 for the next ones (ramp-up, not steady state); at 1 GiB the runs agree within
 * ~7 % (bench/RESULTS.md, session 4).
 */
export const BULK_BYTES = 1024 * MiB;
export const BULK_BYTES_QUICK = 64 * MiB;
export const BULK_WARMUP_BYTES = 16 * MiB;

/** Resolves with the byte count when the sink reports this run's connection complete; rejects on a short one. */
function sinkDone(sink: ChildProcess, timeoutMs: number): { done: Promise<number>; cancel: () => void } {
  let cancel = (): void => {};
  const done = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`sink: no completion within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: unknown): void => {
      const msg = m as { type?: string; bytes?: number; expected?: number };
      if (msg.type === 'done') finish(null, msg.bytes ?? 0);
      else if (msg.type === 'short') finish(new Error(`sink: connection closed after ${msg.bytes} of ${msg.expected} bytes`));
    };
    const finish = (err: Error | null, n = 0): void => {
      clearTimeout(timer);
      sink.off('message', onMessage);
      if (err === null) resolve(n);
      else reject(err);
    };
    cancel = () => finish(new Error('cancelled'));
    sink.on('message', onMessage);
  });
  done.catch(() => {}); // the caller awaits it or cancels it
  return { done, cancel };
}

/**
 * Write `n` bytes to `sock` as `chunk`-sized writes (one preallocated buffer, no allocation per write), waiting for
 * 'drain' whenever write() says so, then end it. Resolves once the last write was handed to the socket. The measured
 * write loop of both directions (pushBytes here, the sink's downloads in tcp-sink-process.ts).
 */
export function writeBytesThenEnd(sock: net.Socket, chunk: Buffer, n: number): Promise<void> {
  let left = n;
  return new Promise<void>((resolve) => {
    const pump = (): void => {
      while (left > 0) {
        const k = Math.min(left, chunk.length);
        left -= k;
        if (!sock.write(k === chunk.length ? chunk : chunk.subarray(0, k))) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end();
      resolve();
    };
    pump();
  });
}

/**
 * Push `bytes` to 127.0.0.1:port and resolve with the seconds from the first write until the sink counted them all.
 * Rejects (with the port in the message) on a socket error, a short count or no completion in time (>= 1 MB/s).
 * Resolves only after the socket has closed, so the next transfer starts on a quiet path.
 */
export async function pushBytes(sinkChild: ChildProcess, port: number, bytes: number): Promise<number> {
  const sink = sinkDone(sinkChild, Math.max(60_000, bytes / 1000));
  const sock = net.connect(port, '127.0.0.1');
  let sockError: Error | null = null;
  const failed = new Promise<never>((_, reject) =>
    sock.on('error', (err) => {
      sockError = err;
      reject(err);
    }),
  );
  failed.catch(() => {});
  let t0 = 0n;
  try {
    await Promise.race([new Promise<void>((resolve) => sock.once('connect', () => resolve())), failed]);
    t0 = process.hrtime.bigint();
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(bytes));
    sock.write(header);
    const sent = writeBytesThenEnd(sock, Buffer.alloc(BULK_CHUNK, 0x62), bytes);
    await Promise.race([sent, failed]);
    const got = await Promise.race([sink.done, failed]);
    if (got !== bytes) throw new Error(`sink counted ${got} bytes, ${bytes} sent`);
  } catch (err) {
    sink.cancel();
    sock.destroy();
    throw new Error(`tcp-bulk to :${port}: ${(sockError ?? (err as Error)).message}`);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await new Promise<void>((resolve) => {
    if (sock.closed) resolve();
    else sock.once('close', () => resolve());
    sock.resume();
  });
  return seconds;
}

/**
 * Ask 127.0.0.1:port (the sink, directly or through a tunnel) for `bytes` and resolve with the seconds from the request
 * until the last of them arrived and the sink ended the connection. Rejects on a socket error, a short count, or no
 * end in time (>= 1 MB/s).
 */
export function pullBytes(port: number, bytes: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const limit = Math.max(60_000, bytes / 1000);
    const timer = setTimeout(() => sock.destroy(new Error(`no end within ${limit} ms`)), limit);
    let got = 0;
    let t0 = 0n;
    sock.once('connect', () => {
      const header = Buffer.alloc(8);
      header.writeBigUInt64BE((1n << 63n) + BigInt(bytes));
      t0 = process.hrtime.bigint();
      sock.write(header);
    });
    sock.on('data', (c: Buffer) => {
      got += c.length;
    });
    sock.once('end', () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      clearTimeout(timer);
      sock.destroy();
      if (got === bytes) resolve(seconds);
      else reject(new Error(`tcp-bulk-down from :${port}: ${got} of ${bytes} bytes`));
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`tcp-bulk-down from :${port}: ${err.message}`));
    });
  });
}
