// http-new-conn load: C loops, each opening a TCP connection, sending one GET with `Connection: close`, reading the
// answer to the end and starting over, until the run's time is up. autocannon cannot measure this: with
// `Connection: close` it writes the next request into the closing socket and then charges the new connection's
// answer to that stale request (response times grow to hundreds of ms), and its `reconnectRate` option drops the
// responses it reconnects after. A response time here is connect → last byte, so it includes the TCP handshake.
// The per-connection handlers are the measured path: one preallocated request buffer.
import net from 'node:net';
import { Samples, type LoadResult, type LoadOptions } from './http-load.js';

const MAX_ERROR_SAMPLES = 5;
const TIMEOUT_MS = 10_000;

export function runNewConnLoad(
  target: { port: number; host: string; path: string },
  opts: LoadOptions,
): Promise<LoadResult> {
  const request = Buffer.from(`GET ${target.path} HTTP/1.1\r\nHost: ${target.host}\r\nConnection: close\r\n\r\n`, 'latin1');
  const samples = new Samples();
  let bytes = 0;
  let errors = 0;
  let timeouts = 0;
  let non2xx = 0;
  let short = 0;
  const errorSamples: string[] = [];
  const note = (msg: string): void => {
    if (errorSamples.length < MAX_ERROR_SAMPLES && !errorSamples.includes(msg)) errorSamples.push(msg);
  };
  const t0 = Date.now();
  const deadline = t0 + opts.durationSeconds * 1000;
  const once = (): Promise<void> =>
    new Promise<void>((resolve) => {
      const start = process.hrtime.bigint();
      const sock = net.connect(target.port, '127.0.0.1');
      sock.setTimeout(TIMEOUT_MS);
      let got = 0;
      // The status line's first 12 bytes ("HTTP/1.1 200"), which may arrive split.
      let head = '';
      let failed = false;
      sock.on('connect', () => sock.write(request));
      sock.on('data', (c: Buffer) => {
        if (head.length < 12) head += c.subarray(0, 12 - head.length).toString('latin1');
        got += c.length;
      });
      sock.on('timeout', () => {
        timeouts++;
        sock.destroy(new Error(`no complete answer within ${TIMEOUT_MS} ms`));
      });
      sock.on('error', (err) => {
        failed = true;
        errors++;
        note(err.message);
      });
      sock.on('close', () => {
        if (!failed) {
          samples.push(Number(process.hrtime.bigint() - start) / 1e6);
          bytes += got;
          if (!/^HTTP\/1\.1 2\d\d/.test(head)) {
            non2xx++;
            note(`answer began '${head}'`);
          } else if (got < opts.minResponseBytes) short++;
        }
        resolve();
      });
    });
  const loop = async (): Promise<void> => {
    while (Date.now() < deadline) await once();
  };
  return Promise.all(Array.from({ length: opts.connections }, loop)).then(() => ({
    seconds: (Date.now() - t0) / 1000,
    requests: samples.length,
    bytes,
    latenciesMs: samples.sorted(),
    errors,
    timeouts,
    non2xx,
    short,
    errorSamples,
    autocannon: {},
  }));
}
