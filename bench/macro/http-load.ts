// One HTTP load run with autocannon's programmatic API (keep-alive connections, pipelining 1), in this process.
// autocannon's own latency histogram has 1 ms buckets, too coarse for a loopback request (≈ 0.1–1 ms), so every
// response time it reports in its 'response' event is kept here (float ms) and the percentiles are computed exactly.
// The listener is the only per-response work the bench adds to the load generator.
import autocannon from 'autocannon';

export interface LoadTarget {
  /** http://127.0.0.1:PORT/ or https://127.0.0.1:PORT/ */
  url: string;
  /** Host header to send instead of the URL's host (the relay routes by it). */
  host?: string;
  /** TLS SNI (https only); autocannon never verifies the certificate. */
  servername?: string;
}

export interface LoadOptions {
  connections: number;
  durationSeconds: number;
  /** A response shorter than this many bytes (status line and headers included) counts as a mismatch. */
  minResponseBytes: number;
}

export interface LoadResult {
  seconds: number;
  /** Responses received, any status. */
  requests: number;
  /** Response bytes received (status lines and headers included). */
  bytes: number;
  /** Response times in ms, ascending, one per response. */
  latenciesMs: Float64Array;
  errors: number;
  timeouts: number;
  non2xx: number;
  /** 2xx responses shorter than minResponseBytes (truncated bodies). */
  short: number;
  /** First few distinct request error messages. */
  errorSamples: string[];
  /** autocannon's own figures, kept for the JSON record. */
  autocannon: Record<string, unknown>;
}

const MAX_ERROR_SAMPLES = 5;

/** Growable Float64Array of response times: no per-response allocation once it has grown. */
export class Samples {
  private buf = new Float64Array(1 << 16);
  length = 0;

  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }

  sorted(): Float64Array {
    return this.buf.slice(0, this.length).sort();
  }
}

export function runLoad(target: LoadTarget, opts: LoadOptions): Promise<LoadResult> {
  const samples = new Samples();
  let short = 0;
  const errorSamples: string[] = [];
  return new Promise<LoadResult>((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.url,
        connections: opts.connections,
        duration: opts.durationSeconds,
        pipelining: 1,
        headers: target.host === undefined ? {} : { host: target.host },
        ...(target.servername === undefined ? {} : { servername: target.servername }),
      },
      (err: unknown, result: autocannon.Result) => {
        if (err !== null && err !== undefined) {
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        resolve({
          seconds: result.duration,
          requests: samples.length,
          bytes: result.throughput.total,
          latenciesMs: samples.sorted(),
          errors: result.errors,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          short,
          errorSamples,
          autocannon: {
            requestsAverage: result.requests.average,
            requestsTotal: result.requests.total,
            requestsSent: result.requests.sent,
            latency: result.latency,
            resets: result.resets,
            mismatches: result.mismatches,
            statusCodeStats: result.statusCodeStats,
          },
        });
      },
    );
    instance.on('response', (_client, status, resBytes, responseTime) => {
      samples.push(responseTime);
      if (resBytes < opts.minResponseBytes && status >= 200 && status < 300) short++; // non-2xx are counted apart
    });
    instance.on('reqError', (err: unknown) => {
      const msg = err instanceof Error ? err.message : String(err);
      if (errorSamples.length < MAX_ERROR_SAMPLES && !errorSamples.includes(msg)) errorSamples.push(msg);
    });
  });
}

/** What went wrong in a run, or null when every request got a complete 2xx answer. */
export function loadProblem(load: LoadResult): string | null {
  const parts = [
    load.requests === 0 ? 'no response at all' : '',
    load.errors > 0 ? `${load.errors} errors (${load.timeouts} of them timeouts)` : '',
    load.non2xx > 0 ? `${load.non2xx} non-2xx (${JSON.stringify(load.autocannon['statusCodeStats'] ?? {})})` : '',
    load.short > 0 ? `${load.short} short responses` : '',
  ].filter((p) => p !== '');
  if (parts.length === 0) return null;
  const samples = load.errorSamples.length > 0 ? ` [${load.errorSamples.join('; ')}]` : '';
  return `${parts.join(', ')} of ${load.requests} responses${samples}`;
}
