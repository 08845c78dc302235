// A stand-in relay for SDK interop tests: a TLS server on 127.0.0.1:0 that runs a server-role MuxSession per
// connection, echoes heartbeats, answers Auth / Bind / Unbind with the minimal valid shapes of PROTOCOL.md §9, and
// records everything it saw (streams, RPC JSON, heartbeat times, inbound frame headers) for assertions and for
// failure messages. Test-only; never on a hot path.
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { serveHeartbeat } from '../../src/mux/heartbeat.js';
import { MuxSession } from '../../src/mux/mux-session.js';
import type { MuxStream } from '../../src/mux/mux-stream.js';
import { readJsonMessage, respondRpc } from '../../src/mux/rpc.js';
import { openTypedStream, readStreamType } from '../../src/mux/typed-stream.js';
import { FrameDecoder, type FrameHandler } from '../../src/protocol/frame-decoder.js';
import { FLAG_FIN, FLAG_SYN, MAX_FRAME_LENGTH } from '../../src/protocol/frame.js';
import {
  HEARTBEAT_ID_SIZE,
  SERVER_PROTOCOL_VERSION,
  STREAM_TYPE_AUTH,
  STREAM_TYPE_BIND,
  STREAM_TYPE_HEARTBEAT,
  STREAM_TYPE_PROXY,
  STREAM_TYPE_UNBIND,
  type AuthResp,
  type BindResp,
  type ProxyHeader,
} from '../../src/protocol/messages.js';
import { encodeProxyHeader } from '../../src/protocol/proxy-header.js';

/** One agent connection as the relay sees it. */
export interface RelayConn {
  /** 1, 2, ... in accept order. */
  readonly n: number;
  readonly socket: tls.TLSSocket;
  readonly mux: MuxSession;
  /** SNI the agent sent (false when none). */
  readonly servername: string | false;
  /** ALPN protocol negotiated (false or null when none). */
  readonly alpn: string | false | null;
  /** performance.now() of every heartbeat id echoed back, in order. */
  readonly beatTimes: number[];
  /** Set once the mux session has ended. */
  closed: boolean;
  closeError: Error | undefined;
}

export interface RpcRecord {
  conn: RelayConn;
  streamId: number;
  request: Record<string, unknown>;
  response: object;
}

export interface OtherStreamRecord {
  conn: RelayConn;
  streamId: number;
  type: number;
}

export interface SdkTestRelayOptions {
  key: string;
  cert: string;
  /** When set, an Auth whose Extra.AuthToken differs is answered with {"Error": ...} (as a real relay would). */
  expectToken?: string;
  /**
   * Passed to serveHeartbeat: end a session after this long without a beat (0 = off). The heartbeat stream opens
   * before Auth, so this is fixed up front rather than taken from Auth.Extra.
   */
  livenessMs?: number;
  /** Cap on inbound frame headers written to the log (the heartbeat alone adds two per beat). Default 400. */
  maxLoggedFrames?: number;
  /** Answer the first Bind only after this long, ms (a busy relay). */
  firstBindDelayMs?: number;
  /** Send GOAWAY right behind the AuthResp, in the same write, on this many sessions (the first ones). */
  goAwayAfterAuth?: number;
  /** Read Unbind requests but never answer them (a stalled relay). */
  ignoreUnbind?: boolean;
  /** Answer this many first Binds with `{}` (no Error, no Id, no URL: a broken relay). */
  emptyBindResps?: number;
}

/** AuthResp.ClientId the relay hands out. */
export const TEST_CLIENT_ID = 'sess_test';

/** Public URL the relay assigns to the n-th bind (the first bind is n = 1). */
export function urlForBind(proto: string, n: number): string {
  switch (proto) {
    case 'http':
    case 'https':
      return `https://t${n}.burrow.localhost`;
    case 'tls':
      return `tls://t${n}.burrow.localhost`;
    case 'tcp':
      return `tcp://127.0.0.1:${20000 + n}`;
    default:
      return '';
  }
}

/**
 * Emits 'change' whenever anything is recorded (tests wait with `until`), and 'connection' (RelayConn).
 * Every stream type other than heartbeat/Auth/Bind/Unbind is recorded in `others` and left open for the test.
 */
export class SdkTestRelay extends EventEmitter {
  readonly conns: RelayConn[] = [];
  readonly auths: RpcRecord[] = [];
  readonly binds: RpcRecord[] = [];
  readonly unbinds: RpcRecord[] = [];
  readonly others: OtherStreamRecord[] = [];
  /** Human-readable trace of what happened, for failure messages. */
  readonly log: string[] = [];
  /** Extra text appended to failure messages (e.g. the SDK's own log). */
  extraDump: (() => string) | null = null;

  private readonly server: tls.Server;
  private readonly options: SdkTestRelayOptions;
  private readonly t0: number;
  private framesLogged: number;
  private bindCount: number;
  private firstBindSeen: boolean;
  private closing: boolean;

  private constructor(options: SdkTestRelayOptions) {
    super();
    this.options = options;
    this.t0 = performance.now();
    this.framesLogged = 0;
    this.bindCount = 0;
    this.firstBindSeen = false;
    this.closing = false;
    this.server = tls.createServer({ key: options.key, cert: options.cert }, (socket) => this.onConnection(socket));
    this.server.on('tlsClientError', (err) => this.note(`TLS handshake failed: ${err.message}`));
  }

  static async start(options: SdkTestRelayOptions): Promise<SdkTestRelay> {
    const relay = new SdkTestRelay(options);
    await new Promise<void>((resolve, reject) => {
      relay.server.once('error', reject);
      relay.server.listen(0, '127.0.0.1', () => {
        relay.server.off('error', reject);
        resolve();
      });
    });
    return relay;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Total heartbeat ids echoed on all connections. */
  get beatsEchoed(): number {
    let n = 0;
    for (const c of this.conns) n += c.beatTimes.length;
    return n;
  }

  /**
   * Resolve with `check()`'s first non-undefined value, testing now and after every recorded change. Rejects after
   * `timeoutMs` with `what` and the relay's trace, so a hang fails with a message instead of a bare timeout.
   */
  until<T>(what: string, check: () => T | undefined, timeoutMs = 20_000): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const onChange = (): void => {
        let v: T | undefined;
        try {
          v = check();
        } catch (err) {
          finish();
          reject(err);
          return;
        }
        if (v === undefined) return;
        finish();
        resolve(v);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.dump()}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.off('change', onChange);
      };
      this.on('change', onChange);
    });
  }

  /**
   * Open a proxy stream (type 3) to the agent on `conn` carrying `header` and then `payload` (the public client's
   * first bytes), as the relay does for each public connection (PROTOCOL.md §10).
   */
  openProxy(conn: RelayConn, header: ProxyHeader, payload: Buffer = Buffer.alloc(0)): MuxStream {
    const s = openTypedStream(conn.mux, STREAM_TYPE_PROXY);
    s.write(payload.length === 0 ? encodeProxyHeader(header) : Buffer.concat([encodeProxyHeader(header), payload]));
    this.note(`c${conn.n} -> opened proxy stream ${s.id} ${JSON.stringify(header)} + ${payload.length} bytes`);
    return s;
  }

  /** Everything recorded, for assertion messages. */
  dump(): string {
    const parts = [`--- relay trace (${this.log.length} lines) ---`, ...this.log];
    if (this.extraDump !== null) parts.push('--- SDK log ---', this.extraDump());
    return parts.join('\n');
  }

  /** Abort every agent connection and stop listening. Idempotent. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      for (const c of this.conns) {
        c.mux.destroy();
        c.socket.destroy();
      }
    }
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- internals ----

  private note(line: string): void {
    this.log.push(`+${(performance.now() - this.t0).toFixed(1)}ms ${line}`);
    this.emit('change');
  }

  private onConnection(socket: tls.TLSSocket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    // Small interactive frames (heartbeat echoes, RPC answers) must not wait for Nagle, as on the real relay.
    socket.setNoDelay(true);
    const n = this.conns.length + 1;
    this.tapFrames(n, socket); // before the MuxSession, so the trace shows each frame before what it caused
    const conn: RelayConn = {
      n,
      socket,
      mux: new MuxSession(socket, { role: 'server' }),
      servername: (socket as tls.TLSSocket & { servername?: string | false }).servername ?? false,
      alpn: socket.alpnProtocol,
      beatTimes: [],
      closed: false,
      closeError: undefined,
    };
    this.conns.push(conn);
    this.note(`c${conn.n} connected: SNI=${JSON.stringify(conn.servername)} ALPN=${JSON.stringify(conn.alpn)} TLS=${socket.getProtocol()}`);
    conn.mux.on('stream', (s: MuxStream) => this.onStream(conn, s));
    conn.mux.on('goaway', (g: { code: number; message: string }) => this.note(`c${conn.n} <- GOAWAY code=${g.code} ${JSON.stringify(g.message)}`));
    conn.mux.on('close', (err?: Error) => {
      conn.closed = true;
      conn.closeError = err;
      this.note(`c${conn.n} mux session closed${err === undefined ? '' : `: ${err.message}`}`);
    });
    this.emit('connection', conn);
  }

  /** Log the headers of inbound frames (a second reader of the socket; the MuxSession is not affected). */
  private tapFrames(n: number, socket: tls.TLSSocket): void {
    const max = this.options.maxLoggedFrames ?? 400;
    const handler: FrameHandler = {
      onData: (id, flags, payload, first, _last, len) => {
        if (!first) return;
        const f = [(flags & FLAG_SYN) !== 0 ? 'SYN' : '', (flags & FLAG_FIN) !== 0 ? 'FIN' : ''].filter(Boolean);
        const head = payload.subarray(0, 12).toString('hex');
        this.frameNote(n, max, `DATA${f.length ? `|${f.join('|')}` : ''} sid=${id} len=${len}${len ? ` ${head}${len > 12 ? '…' : ''}` : ''}`);
      },
      onRst: (id, code) => this.frameNote(n, max, `RST sid=${id} code=${code}`),
      onWndInc: (id, inc) => this.frameNote(n, max, `WNDINC sid=${id} +${inc}`),
      onGoAway: (last, code, debug) => this.frameNote(n, max, `GOAWAY last=${last} code=${code} ${JSON.stringify(debug.toString())}`),
      onProtocolError: (code, message) => this.frameNote(n, max, `undecodable input (code ${code}): ${message}`),
    };
    const decoder = new FrameDecoder(handler, MAX_FRAME_LENGTH);
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  }

  private frameNote(n: number, max: number, text: string): void {
    if (this.framesLogged >= max) return;
    this.framesLogged++;
    this.note(`c${n} <- ${text}${this.framesLogged === max ? ' (frame log full)' : ''}`);
  }

  private onStream(conn: RelayConn, s: MuxStream): void {
    s.on('error', (err: Error) => this.note(`c${conn.n} stream ${s.id} error: ${err.message}`));
    readStreamType(s).then(
      (type) => this.onTypedStream(conn, s, type),
      (err: Error) => this.note(`c${conn.n} stream ${s.id}: no stream type: ${err.message}`),
    );
  }

  private onTypedStream(conn: RelayConn, s: MuxStream, type: number): void {
    this.note(`c${conn.n} stream ${s.id} type 0x${type.toString(16)}`);
    switch (type) {
      case STREAM_TYPE_HEARTBEAT: {
        serveHeartbeat(conn.mux, s, { livenessMs: this.options.livenessMs ?? 0 });
        // serveHeartbeat's 'data' listener runs first and writes the echo; count ids after it.
        let pending = 0;
        s.on('data', (chunk: Buffer) => {
          pending += chunk.length;
          while (pending >= HEARTBEAT_ID_SIZE) {
            pending -= HEARTBEAT_ID_SIZE;
            conn.beatTimes.push(performance.now());
          }
          this.note(`c${conn.n} echoed heartbeat ${chunk.toString('hex')} (#${conn.beatTimes.length})`);
        });
        return;
      }
      case STREAM_TYPE_AUTH:
        this.serveRpc(conn, s, 'Auth', this.auths, (req) => this.authResponse(req));
        return;
      case STREAM_TYPE_BIND:
        this.serveRpc(conn, s, 'Bind', this.binds, (req) => this.bindResponse(req));
        return;
      case STREAM_TYPE_UNBIND:
        if (this.options.ignoreUnbind === true) {
          s.resume();
          return;
        }
        this.serveRpc(conn, s, 'Unbind', this.unbinds, () => ({}));
        return;
      default:
        this.others.push({ conn, streamId: s.id, type });
        this.emit('change');
    }
  }

  private serveRpc(
    conn: RelayConn,
    s: MuxStream,
    name: string,
    records: RpcRecord[],
    answer: (req: Record<string, unknown>) => object,
  ): void {
    readJsonMessage(s).then(
      async (request) => {
        if (name === 'Bind' && !this.firstBindSeen) {
          this.firstBindSeen = true;
          const delay = this.options.firstBindDelayMs ?? 0;
          if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        }
        const response = answer(request);
        this.note(`c${conn.n} <- ${name} on stream ${s.id}: ${JSON.stringify(request)}`);
        respondRpc(s, response);
        s.resume(); // take the agent's FIN (and anything after the request) so the stream can finish
        this.note(`c${conn.n} -> ${name} answer on stream ${s.id}: ${JSON.stringify(response)}`);
        records.push({ conn, streamId: s.id, request, response });
        if (name === 'Auth' && this.auths.length <= (this.options.goAwayAfterAuth ?? 0)) {
          conn.mux.goAway(0, 'draining');
          this.note(`c${conn.n} -> GOAWAY right after the AuthResp`);
        }
        this.emit('change');
      },
      (err: Error) => this.note(`c${conn.n} ${name} on stream ${s.id} unreadable: ${err.message}`),
    );
  }

  private authResponse(req: Record<string, unknown>): object {
    const extra = (req['Extra'] ?? {}) as Record<string, unknown>;
    const want = this.options.expectToken;
    if (want !== undefined && extra['AuthToken'] !== want) {
      return { Error: `authentication failed: the test relay expected a different AuthToken\nBURROW_ERR_AUTH_FAILED` };
    }
    const resp: AuthResp = {
      Version: SERVER_PROTOCOL_VERSION,
      ClientId: TEST_CLIENT_ID,
      Extra: { Version: 'burrow-test', Region: 'local', Cookie: 'cookie_test', AccountName: 'test', SessionDuration: 0 },
    };
    return resp;
  }

  private bindResponse(req: Record<string, unknown>): object {
    if (this.binds.length < (this.options.emptyBindResps ?? 0)) return {}; // binds answered so far
    const n = ++this.bindCount;
    const proto = typeof req['Proto'] === 'string' ? req['Proto'] : '';
    const url = urlForBind(proto, n);
    if (url === '') return { Error: `the test relay does not bind proto ${JSON.stringify(proto)}` };
    // Echo Opts unchanged, filling in what the relay assigned (PROTOCOL.md §9 BindResp; the SDK keeps these Opts).
    const opts = { ...((req['Opts'] ?? {}) as Record<string, unknown>) };
    if (proto === 'tcp') opts['Addr'] = url.slice('tcp://'.length);
    else opts['Hostname'] = new URL(url).hostname;
    const resp: BindResp = {
      Id: `tun_${n}`,
      URL: url,
      Proto: proto,
      Opts: opts as unknown as BindResp['Opts'],
      Extra: { Token: `bt_${n}` },
    };
    return resp;
  }
}

