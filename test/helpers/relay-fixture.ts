// Test fixture for the real relay (src/relay/relay.ts) on 127.0.0.1 ephemeral ports: a temp data dir with the dev CA,
// a test token, worker threads, the official @ngrok/ngrok SDK as agent, local upstreams (HTTP echo + WebSocket echo,
// TCP echo, a TLS server with its own CA and ALPN h2), async curl/openssl runners, and LIFO cleanup. Test-only.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import ngrok from '@ngrok/ngrok';
import { WebSocketServer } from 'ws';
import { ensureRelayPki } from '../../src/config/dev-pki.js';
import { startRelay, type Relay, type RelayStartOptions } from '../../src/relay/relay.js';
import type { HostPort } from '../../src/relay/acceptor/acceptor.js';
import { makeTestPki, type TestPki } from './certs.js';

export type NgrokSession = Awaited<ReturnType<InstanceType<typeof ngrok.SessionBuilder>['connect']>>;
export type NgrokListener = Awaited<ReturnType<ReturnType<NgrokSession['httpEndpoint']>['listenAndForward']>>;

export const TEST_DOMAIN = 'burrow.localhost';
/** Bound on any single wait in a fixture step, so a hang fails with the step's name. */
export const STEP_TIMEOUT_MS = 15_000;

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------------------------------------------------------
// waiting

/** `p`, or a rejection naming `what` after `ms`. */
export async function withTimeout<T>(what: string, p: Promise<T>, ms = STEP_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with the args of the first `event` on `em` for which `pred` holds, or fails naming `what`. */
export function waitEvent<A extends unknown[]>(
  em: EventEmitter,
  event: string,
  what: string,
  pred: (...a: A) => boolean = () => true,
  ms = STEP_TIMEOUT_MS,
): Promise<A> {
  return withTimeout(
    what,
    new Promise<A>((resolve) => {
      const fn = (...a: unknown[]): void => {
        if (!pred(...(a as A))) return;
        em.off(event, fn);
        resolve(a as A);
      };
      em.on(event, fn);
    }),
    ms,
  );
}

/**
 * Resolve with `check()`'s first non-undefined value. For state that has no event to wait on (the acceptor's route
 * table changes by a message from a worker thread; a metric reaching a value in another process), checked every
 * 10 ms up to a deadline (an async check is awaited first); a miss fails naming `what`.
 */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = STEP_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// cleanup

/** Cleanup steps run last-in first-out; each is bounded so one stuck step cannot hang the test process. */
export class Cleanup {
  private readonly steps: Array<{ what: string; fn: () => unknown }> = [];

  defer(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    while (this.steps.length > 0) {
      const { what, fn } = this.steps.pop()!;
      try {
        await withTimeout(`cleanup: ${what}`, Promise.resolve().then(fn), 10_000);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `cleanup failed: ${errors.map((e) => String(e)).join('; ')}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the relay

export interface RelayFixture {
  readonly relay: Relay;
  readonly domain: string;
  readonly dataDir: string;
  readonly caPem: string;
  readonly caPath: string;
  readonly token: string;
  readonly http: HostPort;
  readonly https: HostPort;
  readonly agent: HostPort;
  readonly tcpPorts: { from: number; to: number };
  /** Everything started through this fixture; run by close(). */
  readonly cleanup: Cleanup;
  /** The acceptor counter `key` (0 when never counted). */
  counter(key: string): number;
  /** Snapshot of all acceptor counters; `delta(snap)` gives what changed since, keys with non-zero change only. */
  counters(): Map<string, number>;
  delta(since: Map<string, number>): Record<string, number>;
  /** An SDK session authenticated with the fixture's token (no reconnects); closed by close(). */
  connectSdk(what?: string): Promise<NgrokSession>;
  /** Listeners first (Unbind), then sessions, upstreams, the relay, and the data dir. Idempotent. */
  close(): Promise<void>;
}

export interface RelayFixtureOptions extends Partial<RelayStartOptions> {
  /** Workers (default 2). */
  workers?: number;
  /** More tokens the relay accepts besides `fx.token` (a second owner). */
  extraTokens?: string[];
}

/** A random 100-port range for TCP endpoints (the relay skips ports it cannot bind). */
function tcpRange(): { from: number; to: number } {
  const from = 30_000 + Math.floor(Math.random() * 200) * 100;
  return { from, to: from + 99 };
}

/** Start a relay in-process on 127.0.0.1 ephemeral ports with a fresh data dir (dev CA + leaf) and a test token. */
export async function startRelayFixture(opts: RelayFixtureOptions = {}): Promise<RelayFixture> {
  const cleanup = new Cleanup();
  const dataDir = mkdtempSync(join(tmpdir(), 'burrow-relay-test-'));
  cleanup.defer('remove the data dir', () => rmSync(dataDir, { recursive: true, force: true }));
  try {
    const domain = opts.domain ?? TEST_DOMAIN;
    const pki = await ensureRelayPki({ dataDir, domain });
    const token = `relay-test-${randomBytes(12).toString('hex')}`;
    const tcpPorts = opts.tcpPorts ?? tcpRange();
    const relay = await startRelay({
      domain,
      httpAddr: { host: '127.0.0.1', port: 0 },
      httpsAddr: { host: '127.0.0.1', port: 0 },
      agentAddr: { host: '127.0.0.1', port: 0 },
      tcpPorts,
      tcpHost: '127.0.0.1',
      workers: 2,
      prereadMax: 16 * 1024,
      prereadTimeoutMs: 5_000,
      tcpKeepaliveMs: 30_000,
      graceMs: 1_000,
      certPem: pki.certPem,
      keyPem: pki.keyPem,
      tokenHashes: [sha256(token), ...(opts.extraTokens ?? []).map(sha256)],
      version: 'test',
      ...opts,
    });
    cleanup.defer('close the relay', () => relay.close());
    const fx: RelayFixture = {
      relay,
      domain,
      dataDir,
      caPem: pki.caPem!,
      caPath: pki.caPath!,
      token,
      http: relay.address('http')!,
      https: relay.address('https')!,
      agent: relay.address('agent')!,
      tcpPorts,
      cleanup,
      counter: (key) => relay.acceptor.counters.get(key) ?? 0,
      counters: () => new Map(relay.acceptor.counters),
      delta(since) {
        const out: Record<string, number> = {};
        for (const [k, v] of relay.acceptor.counters) {
          const d = v - (since.get(k) ?? 0);
          if (d !== 0) out[k] = d;
        }
        return out;
      },
      async connectSdk(what = 'the SDK to connect (TLS + Auth)') {
        const session = await withTimeout(
          what,
          new ngrok.SessionBuilder()
            .authtoken(token)
            .serverAddr(`localhost:${relay.address('agent')!.port}`)
            .caCert(Buffer.from(pki.caPem!))
            // Never reconnect: a reconnect would hide a session the relay dropped, and would outlive the test.
            .handleDisconnection(() => false)
            .connect(),
        );
        cleanup.defer('close an SDK session', () => session.close().catch(() => {}));
        return session;
      },
      close: () => cleanup.run(),
    };
    return fx;
  } catch (err) {
    await cleanup.run().catch(() => {});
    throw err;
  }
}

/** Await a listenAndForward (Bind) with a deadline; the listener is closed (Unbind) before its session at cleanup. */
export async function forward(
  cleanup: Cleanup,
  what: string,
  listen: Promise<NgrokListener>,
): Promise<NgrokListener> {
  const listener = await withTimeout(`Bind of ${what}`, listen);
  cleanup.defer(`close listener ${what}`, () => listener.close().catch(() => {}));
  return listener;
}

// ---------------------------------------------------------------------------------------------------------------
// upstreams

export async function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

export interface EchoReport {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  bodyLength: number;
  bodySha256: string;
  /** 1, 2, ... per TCP connection the upstream accepted. */
  connId: number;
}

export interface HttpUpstream extends EventEmitter {
  readonly port: number;
  /** Every request answered (or held), in arrival order. */
  readonly requests: EchoReport[];
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * HTTP upstream: answers every request with a JSON EchoReport (method, path, headers, body length + SHA-256, the
 * connection it came on); `/hang...` paths emit 'hang' (report) and are never answered; any Upgrade is served by a
 * `ws` WebSocketServer that echoes messages. Emits 'request' (report) for every request.
 */
export async function startHttpUpstream(cleanup: Cleanup): Promise<HttpUpstream> {
  const events = new EventEmitter() as HttpUpstream;
  const requests: EchoReport[] = [];
  const connIds = new WeakMap<net.Socket, number>();
  let connections = 0;
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    req.on('end', () => {
      const report: EchoReport = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyLength: length,
        bodySha256: hash.digest('hex'),
        connId: connIds.get(req.socket) ?? 0,
      };
      requests.push(report);
      events.emit('request', report);
      if (report.url.startsWith('/hang')) {
        events.emit('hang', report);
        return;
      }
      const body = Buffer.from(JSON.stringify(report));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'x-upstream': 'echo' });
      res.end(body);
    });
  });
  server.on('connection', (s: net.Socket) => connIds.set(s, ++connections));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    events.emit('ws', req);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  const port = await listen(server);
  Object.defineProperty(events, 'port', { value: port });
  Object.defineProperty(events, 'requests', { value: requests });
  Object.defineProperty(events, 'connections', { get: () => connections });
  const close = async (): Promise<void> => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  Object.defineProperty(events, 'close', { value: close });
  cleanup.defer('close the HTTP upstream', close);
  return events;
}

/** TCP echo upstream (half-close forwarded: the echo ends when the client's data ends). */
export async function startTcpEcho(cleanup: Cleanup): Promise<{ port: number }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  const port = await listen(server);
  cleanup.defer('close the TCP echo upstream', async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { port };
}

export interface TlsUpstream extends EventEmitter {
  readonly port: number;
  /** Its own CA and leaf (not the relay's). */
  readonly pki: TestPki;
  /** Per accepted TLS session: ALPN and SNI the upstream saw. */
  readonly sessions: Array<{ alpn: string | false | null; servername: string | false }>;
}

/** TLS upstream with its own certificate for `hosts`, offering ALPN h2; echoes bytes. Emits 'secure' per session. */
export async function startTlsUpstream(cleanup: Cleanup, hosts: string[]): Promise<TlsUpstream> {
  const pki = makeTestPki({ hosts });
  cleanup.defer('remove the TLS upstream PKI', () => pki.cleanup());
  const events = new EventEmitter() as TlsUpstream;
  const sessions: TlsUpstream['sessions'] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key: pki.keyPem, cert: pki.certPem, ALPNProtocols: ['h2'] }, (s) => {
    const seen = { alpn: s.alpnProtocol, servername: (s as tls.TLSSocket & { servername?: string | false }).servername ?? false };
    sessions.push(seen);
    events.emit('secure', seen);
    s.on('error', () => {});
    s.pipe(s);
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', (err) => events.emit('tlsClientError', err));
  const port = await listen(server);
  Object.defineProperty(events, 'port', { value: port });
  Object.defineProperty(events, 'pki', { value: pki });
  Object.defineProperty(events, 'sessions', { value: sessions });
  cleanup.defer('close the TLS upstream', async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return events;
}

// ---------------------------------------------------------------------------------------------------------------
// clients

export interface CmdResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a command without blocking the event loop (the relay and the SDK live in this process). stdin is empty. */
export function runCmd(cmd: string, args: string[], timeoutMs = STEP_TIMEOUT_MS): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms\n${Buffer.concat(err).toString()}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

export interface CurlResult extends CmdResult {
  /** Response status of the last transfer (from -w), 0 when none. */
  status: number;
  /** Response body (stdout without the -w trailer). */
  body: string;
  /** The -w fields, one object per transfer. */
  transfers: Array<Record<string, string>>;
}

const CURL_W = '\n@@curl{"status":"%{http_code}","num_connects":"%{num_connects}","http_version":"%{http_version}","local_port":"%{local_port}"}';

/** curl with `args` (silent, no retries); `--resolve` for *.burrow.localhost is up to the caller. */
export async function curl(args: string[], timeoutMs = STEP_TIMEOUT_MS): Promise<CurlResult> {
  const r = await runCmd('curl', ['-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), '-w', CURL_W, ...args], timeoutMs + 2_000);
  const parts = r.stdout.split('\n@@curl');
  const transfers: Array<Record<string, string>> = [];
  const bodies: string[] = [parts[0]!];
  for (const p of parts.slice(1)) {
    const end = p.indexOf('}') + 1;
    transfers.push(JSON.parse(p.slice(0, end)) as Record<string, string>);
    bodies.push(p.slice(end));
  }
  const last = transfers[transfers.length - 1];
  return { ...r, status: last ? Number(last['status']) : 0, body: bodies.join(''), transfers };
}

/** `--resolve` arguments pointing `host` at 127.0.0.1 for `port`. */
export function resolveArgs(host: string, port: number): string[] {
  return ['--resolve', `${host}:${port}:127.0.0.1`];
}

export interface RawExchange {
  data: Buffer;
  /** How the connection ended: 'end' (FIN) or the socket error code (ECONNRESET ...). */
  ending: string;
}

/**
 * Connect to 127.0.0.1:`port`, write `chunks` (in order; a function is called with the socket), then collect
 * everything until the relay closes. Bounded by `timeoutMs`.
 */
export function rawExchange(port: number, send: Buffer | string | ((s: net.Socket) => void), timeoutMs = STEP_TIMEOUT_MS): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const got: Buffer[] = [];
    let ending = 'end';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close from 127.0.0.1:${port} within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(got).toString('latin1').slice(0, 300))}`));
    }, timeoutMs);
    s.on('data', (c: Buffer) => got.push(c));
    s.on('error', (e: NodeJS.ErrnoException) => {
      ending = e.code ?? e.message;
    });
    s.on('end', () => s.end());
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(got), ending });
    });
    s.once('connect', () => {
      if (typeof send === 'function') send(s);
      else s.write(send);
    });
  });
}

/** Status code of the first HTTP response in `data` (0 when there is none). */
export function statusOf(data: Buffer | string): number {
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(typeof data === 'string' ? data : data.toString('latin1'));
  return m === null ? 0 : Number(m[1]);
}
