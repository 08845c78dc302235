// The admin HTTP server (uWebSockets.js, main thread): GET routes answering /metrics, /healthz, /readyz and the JSON
// API. Bound to loopback by default; on any other address every request needs `Authorization: Bearer <token>`.
// Not on the data path. Its listen socket must be closed before the process exits (else uWS aborts Node at exit).
import { createRequire } from 'node:module';
import net from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { BurrowError, type ErrorCode } from '../core/errors.js';
import { requireTokenOffLoopback } from '../config/relay-config.js';
import { sha256 } from '../config/tokens.js';

// uWS ships as CommonJS with a native binary; load it through require so ESM interop stays out of the way.
type UwsRes = {
  onAborted(cb: () => void): UwsRes;
  cork(cb: () => void): UwsRes;
  writeStatus(s: string): UwsRes;
  writeHeader(k: string, v: string): UwsRes;
  end(body?: string, closeConnection?: boolean): UwsRes;
  endWithoutBody(reportedContentLength?: number, closeConnection?: boolean): UwsRes;
};
type UwsReq = { getHeader(k: string): string; getUrl(): string; getMethod(): string };
type UwsApp = {
  any(pattern: string, h: (res: UwsRes, req: UwsReq) => void): UwsApp;
  listen(host: string, port: number, options: number, cb: (ls: unknown) => void): UwsApp;
  close?(): void;
};
type Uws = { App(): UwsApp; us_listen_socket_close(ls: unknown): void; us_socket_local_port(ls: unknown): number };
let uwsModule: Uws | null = null;
/** uWS ListenOptions: bind without SO_REUSEPORT. */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;

/** Loaded on first use: a relay or agent with the admin server off never loads the native module. */
function uws(): Uws {
  uwsModule ??= createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial') as Uws;
  return uwsModule;
}

export interface AdminResponse {
  status: number;
  contentType: string;
  body: string;
  /** Extra header lines (name → value). */
  headers?: Readonly<Record<string, string>>;
}

export type AdminRoute = () => Promise<AdminResponse>;

export interface AdminServerOptions {
  host: string;
  port: number;
  /** Required when `host` is not a loopback address; null = none (loopback only). */
  token: string | null;
  routes: Readonly<Record<string, AdminRoute>>;
  /** Code of the error when the address cannot be bound (default BURROW_ERR_RELAY_LISTEN; the agent has its own). */
  listenCode?: ErrorCode;
}

const STATUS_LINE: Record<number, string> = { 200: '200 OK', 401: '401 Unauthorized', 403: '403 Forbidden', 404: '404 Not Found', 405: '405 Method Not Allowed', 500: '500 Internal Server Error', 503: '503 Service Unavailable' };

/** Host header values a token-less (loopback) admin server answers: loopback names and addresses, any port, or none. */
const LOOPBACK_HOST = /^(?:|localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;

export class AdminServer {
  private readonly listenSocket: unknown;
  readonly host: string;
  readonly port: number;

  private constructor(listenSocket: unknown, host: string, port: number) {
    this.listenSocket = listenSocket;
    this.host = host;
    this.port = port;
  }

  /** `flagName` / `tokenHint` name the address flag and where a token comes from, for the error messages. */
  static async start(o: AdminServerOptions, flagName: string, tokenHint: string): Promise<AdminServer> {
    requireTokenOffLoopback({ host: o.host, port: o.port }, o.token, flagName, tokenHint); // the CLI checked already
    const tokenHash = o.token !== null && o.token !== '' ? sha256(o.token) : null;
    const app = uws().App();
    app.any('/*', (res, req) => {
      let aborted = false;
      res.onAborted(() => (aborted = true));
      // Headers and URL are valid only inside this callback: read them before any await.
      const method = req.getMethod().toUpperCase();
      const send = (r: AdminResponse): void => {
        if (aborted) return;
        // One request per connection: uWS cannot enumerate and close idle keep-alive connections at shutdown, and
        // one held open by a scraper would keep the process alive after close() (one that never sends a request is
        // dropped by uWS's own 10 s idle timeout). Scrapes are rare; reconnecting is cheap.
        res.cork(() => {
          res.writeStatus(STATUS_LINE[r.status] ?? `${r.status} Status`).writeHeader('Content-Type', r.contentType);
          for (const [k, v] of Object.entries(r.headers ?? {})) res.writeHeader(k, v);
          // HEAD: the GET answer's head, its length, no body (RFC 9110 §9.3.2).
          if (method === 'HEAD') res.endWithoutBody(Buffer.byteLength(r.body), true);
          else res.end(r.body, true);
        });
      };
      const url = req.getUrl();
      const auth = req.getHeader('authorization');
      if (tokenHash !== null && !bearerMatches(auth, tokenHash)) {
        send({ ...text(401, 'admin token required: send Authorization: Bearer <token>\n'), headers: { 'WWW-Authenticate': 'Bearer realm="burrow"' } });
        return;
      }
      if (tokenHash === null && !LOOPBACK_HOST.test(req.getHeader('host'))) {
        // Without a token the server is on loopback (requireTokenOffLoopback), but a web page in a browser on this host
        // could still reach it under a name that resolves to 127.0.0.1 (DNS rebinding) and read the answers.
        send(text(403, `without a token this server answers only Host: localhost, 127.0.0.1 or [::1]; to use another name, set ${tokenHint}\n`));
        return;
      }
      const route = o.routes[url];
      if (route === undefined) {
        send(text(404, `no such path ${url}; this server answers ${Object.keys(o.routes).join(', ')}\n`));
        return;
      }
      if (method !== 'GET' && method !== 'HEAD') {
        send({ ...text(405, 'admin paths answer GET (and HEAD) only\n'), headers: { Allow: 'GET, HEAD' } });
        return;
      }
      route().then(send, (err: Error) => send(text(500, `${err.message}\n`)));
    });
    // Exclusive: uWS binds with SO_REUSEPORT by default, so a second relay (or agent metrics server) on a taken port
    // would start without an error and share it, Prometheus then scraping whichever process answers.
    const ls = await new Promise<unknown>((resolve) => app.listen(o.host, o.port, LIBUS_LISTEN_EXCLUSIVE_PORT, resolve));
    if (ls === false || ls === null || ls === undefined) {
      // uWS says only "no": ask the kernel why with a plain listen on the same address (taken, not local, no right).
      const why = await listenError(o.host, o.port);
      throw new BurrowError(
        o.listenCode ?? 'BURROW_ERR_RELAY_LISTEN',
        `${flagName} ${o.host}:${o.port}: cannot listen${why === '' ? '' : ` (${why})`}; free the port or pick another address`,
      );
    }
    return new AdminServer(ls, o.host, uws().us_socket_local_port(ls));
  }

  close(): void {
    uws().us_listen_socket_close(this.listenSocket);
  }
}

export function text(status: number, body: string): AdminResponse {
  return { status, contentType: 'text/plain; charset=utf-8', body };
}

export function json(status: number, value: unknown): AdminResponse {
  return { status, contentType: 'application/json', body: `${JSON.stringify(value, null, 2)}\n` };
}


function bearerMatches(header: string, want: Buffer): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header);
  return m !== null && timingSafeEqual(sha256(m[1]!.trim()), want);
}

/** The error code a plain listen on host:port gets now (EADDRINUSE, EADDRNOTAVAIL, EACCES, …), or '' if it succeeds. */
function listenError(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve('')));
  });
}
