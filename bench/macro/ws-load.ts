// ws-echo load: C WebSocket connections (the `ws` package as client), each sending one binary message, waiting for
// its echo, and sending the next, until the run's time is up. Round-trip times go into an HDR histogram (µs, 3
// significant digits) — autocannon cannot speak WebSocket. Bounded: every connection stops at the deadline, and the
// whole run gives up 10 s after it. The per-message handler is the measured path: one preallocated payload, no
// allocation beyond what ws does.
import * as hdr from 'hdr-histogram-js';
import WebSocket from 'ws';

export interface WsLoadOptions {
  /** ws://127.0.0.1:PORT/ */
  url: string;
  /** Host header (the relay routes by it); omit for the origin. */
  host?: string;
  connections: number;
  durationSeconds: number;
  messageBytes: number;
}

export interface WsLoadResult {
  seconds: number;
  /** Echoes received. */
  messages: number;
  /** Payload bytes received. */
  bytes: number;
  /** Round-trip percentiles in ms, from the HDR histogram. */
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  errors: number;
  errorSamples: string[];
}

const GIVE_UP_MS = 10_000;
const MAX_ERROR_SAMPLES = 5;

/** What went wrong in a run (errors, or no echo at all), for the row's note or a criterion; null when nothing did. */
export function wsLoadProblem(x: WsLoadResult): string | null {
  if (x.errors === 0 && x.messages > 0) return null;
  return `${x.errors} errors, ${x.messages} echoes${x.errorSamples.length > 0 ? ` [${x.errorSamples.join('; ')}]` : ''}`;
}

export function runWsLoad(o: WsLoadOptions): Promise<WsLoadResult> {
  const hist = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
  const payload = Buffer.alloc(o.messageBytes, 0x77);
  let messages = 0;
  let bytes = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  const note = (msg: string): void => {
    errors++;
    if (errorSamples.length < MAX_ERROR_SAMPLES && !errorSamples.includes(msg)) errorSamples.push(msg);
  };
  const t0 = Date.now();
  const deadline = t0 + o.durationSeconds * 1000;
  const one = (): Promise<void> =>
    new Promise<void>((resolve) => {
      let sentAt = 0n;
      let finished = false;
      const ws = new WebSocket(o.url, {
        perMessageDeflate: false,
        ...(o.host === undefined ? {} : { headers: { host: o.host } }),
      });
      const giveUp = setTimeout(() => {
        note(`connection still open ${GIVE_UP_MS} ms after the deadline`);
        ws.terminate();
      }, deadline - Date.now() + GIVE_UP_MS);
      const finish = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(giveUp);
        resolve();
      };
      const sendNext = (): void => {
        sentAt = process.hrtime.bigint();
        ws.send(payload, { binary: true });
      };
      ws.on('open', sendNext);
      ws.on('message', (data: Buffer) => {
        const us = Number((process.hrtime.bigint() - sentAt) / 1000n);
        hist.recordValue(Math.max(1, us));
        messages++;
        bytes += data.length;
        if (data.length !== payload.length) note(`echo of ${data.length} bytes, ${payload.length} sent`);
        if (Date.now() < deadline) sendNext();
        else ws.close(1000);
      });
      ws.on('error', (err) => note(err.message));
      ws.on('unexpected-response', (_req, res) => {
        note(`HTTP ${res.statusCode} instead of 101`);
        ws.terminate();
      });
      ws.on('close', (code) => {
        if (code !== 1000 && code !== 1005) note(`closed with code ${code} before the deadline`);
        finish();
      });
    });
  return Promise.all(Array.from({ length: o.connections }, one)).then(() => {
    const seconds = (Date.now() - t0) / 1000;
    const ms = (p: number): number => (hist.totalCount === 0 ? NaN : hist.getValueAtPercentile(p) / 1000);
    return {
      seconds,
      messages,
      bytes,
      latencyMs: {
        p50: ms(50),
        p90: ms(90),
        p99: ms(99),
        p999: ms(99.9),
        max: hist.totalCount === 0 ? NaN : hist.maxValue / 1000,
        mean: hist.totalCount === 0 ? NaN : hist.mean / 1000,
      },
      errors,
      errorSamples,
    };
  });
}
