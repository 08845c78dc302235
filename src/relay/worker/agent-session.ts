// One agent connection on a worker: TLS termination, the mux session in relay role, and the control RPCs
// (Auth, Bind, Unbind, heartbeat) of PROTOCOL.md §6–§9. Opens proxy streams for public connections.
// Not per chunk; openProxyStream runs once per public connection.
import tls from 'node:tls';
import type net from 'node:net';
import { randomBytes } from 'node:crypto';
import { BALANCE_STRATEGIES, isBalanceStrategy } from '../../balancer/pick-member.js';
import { BurrowError, isBurrowError } from '../../core/errors.js';
import { nativeAddon } from '../../native/native-addon.js';
import { MuxSession } from '../../mux/mux-session.js';
import { enableDirectReads } from '../../mux/direct-reads.js';
import type { MuxStream } from '../../mux/mux-stream.js';
import { Heartbeater, serveHeartbeat } from '../../mux/heartbeat.js';
import { wallMs } from '../../metrics/relay-recorder.js';
import { readJsonMessage, respondRpc } from '../../mux/rpc.js';
import { readStreamType } from '../../mux/typed-stream.js';
import { MUX_NO_ERROR, MUX_STREAM_REFUSED } from '../../protocol/error-codes.js';
import {
  EDGE_TYPE_HTTPS,
  EDGE_TYPE_TCP,
  EDGE_TYPE_TLS,
  SERVER_PROTOCOL_VERSION,
  STREAM_TYPE_AUTH,
  STREAM_TYPE_BIND,
  STREAM_TYPE_BIND_LABELED,
  STREAM_TYPE_HEARTBEAT,
  STREAM_TYPE_PROXY,
  STREAM_TYPE_UNBIND,
  type ProxyHeader,
} from '../../protocol/messages.js';
import { encodeProxyHeader } from '../../protocol/proxy-header.js';
import {
  checkSupportedOptions,
  parseBasicAuth,
  parseIpRestriction,
  parseProxyProto,
  parseHeaderRules,
  type BasicAuthCheck,
  type IpPolicy,
  type EndpointHeaderRules,
} from './endpoint-options.js';
import { FULL_RIGHTS, hostAllowed, hostnameForRandomBind, portAllowed, type TokenRules } from '../../config/token-rules.js';
import { randomLabel, routeKey } from '../acceptor/route-table.js';
import { STREAMS_PER_SESSION_CEILING } from '../../config/relay-limits.js';
import type { EndpointProto, TaskResult } from '../relay-messages.js';
import { endpointKey } from '../relay-messages.js';
import type { AdoptMeta, HttpConnection, WorkerRuntime } from './worker-runtime.js';

/**
 * Receive window per stream at the relay (agent → public client direction). 256 KiB in flight through two event loops
 * capped tcp-bulk-down at ~0.2 × direct; 512 KiB gave +12 % (1 MiB +25 %, bench/RESULTS.md 2026-11-28 perf entry) at
 * half the memory a slow public reader can pin per stream. The SDK caps its credit at 256 KiB (PROTOCOL.md §Flow
 * control), so against it this changes nothing.
 */
const RELAY_STREAM_WINDOW = 512 * 1024;
/**
 * The window above the protocol's 256 KiB, summed over a session's streams: 128 streams at the full 512 KiB. A stream
 * gets its extra only once its client has read a first half window, so public clients that never read hold 256 KiB
 * each; with this budget, clients that read and then stall hold at most 480 × 256 KiB + 32 MiB per session (was
 * 480 × 512 KiB).
 */
const RELAY_EXTRA_WINDOW_BUDGET = 128 * (RELAY_STREAM_WINDOW - 256 * 1024);
/**
 * Streams an agent may have open towards the relay before Auth: its heartbeat and Auth (PROTOCOL.md §12), plus slack.
 * Every stream may hold up to --rpc-max bytes of a message being read, so an unauthenticated peer gets few.
 */
const PREAUTH_AGENT_STREAMS = 4;
/**
 * Largest Auth message read, whatever --rpc-max says: an SDK's Auth is under 1 KiB plus its metadata (ngrok caps
 * metadata at 4 KiB). Read before the peer is known, so what an unauthenticated connection can make the relay hold
 * stays small: 16 KiB per Auth stream, and no other RPC is read before Auth (dispatch).
 */
const AUTH_MAX_BYTES = 16 * 1024;

/** After Auth: a Bind and an Unbind in flight for every endpoint the session may hold, the heartbeat and slack. */
function agentStreamLimit(maxEndpoints: number): number {
  return 2 * maxEndpoints + 8;
}

/** An endpoint bound by a session, as the worker sees it. */
export interface Endpoint {
  /** The Id the agent knows (ProxyHeader Id, Bind reply, Unbind); unique only within its session. */
  id: string;
  /** endpointKey(session id, id): what the worker's maps, the acceptor's routes and tasks use. */
  key: string;
  proto: EndpointProto;
  hostname: string;
  port: number;
  url: string;
  session: AgentSession;
  /** EdgeType string sent in ProxyHeaders. */
  edgeType: string;
  /** Public connections currently open on this endpoint. */
  active: number;
  /** Bound with pooling: other members may serve the same URL (on this worker or others). */
  pooled: boolean;
  /** `h:<hostname>` / `p:<port>`: members of one pool share it. */
  poolKey: string;
  /** False while the acceptor reports this member's breaker open (retries skip it). */
  available: boolean;
  /** Opts.IPRestriction: who may connect (checked once per public connection), or null for anyone. */
  ipPolicy: IpPolicy | null;
  /** Opts.BasicAuth / Opts.Auth (HTTP endpoints): the credentials every request must carry, or null for none. */
  basicAuth: BasicAuthCheck | null;
  /** Opts.ProxyProto: the PROXY protocol version put in front of each connection's bytes (0 = none). */
  proxyProto: 0 | 1 | 2;
  /** Opts.RequestHeaders (HTTP endpoints): fields removed from and added to every request, or null for none. */
  requestHeaders: EndpointHeaderRules | null;
  /** Opts.ResponseHeaders (HTTP endpoints): fields removed from and added to every final response, or null for none. */
  responseHeaders: EndpointHeaderRules | null;
}

/** How long an agent may take to authenticate after TLS is up. */
const AUTH_DEADLINE_MS = 15_000;
/** No heartbeat for this long ends the session (ngrok SDK defaults: 10 s interval + 15 s tolerance, plus slack). */
const LIVENESS_MS = 30_000;
const LIVENESS_CHECK_MS = 5_000;

const HOST_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class AgentSession {
  readonly id: string;
  readonly runtime: WorkerRuntime;
  readonly meta: AdoptMeta;
  readonly endpoints: Map<string, Endpoint>;
  /** Ids of Binds waiting for the acceptor: RPC streams run concurrently, so a second Bind of one Id may start meanwhile. */
  private readonly binding: Set<string>;
  readonly done: Promise<TaskResult>;
  mux: MuxSession | null;
  authed: boolean;
  /** An Auth is waiting for the acceptor's verdict: a second one on the same session is refused meanwhile. */
  private authenticating: boolean;
  clientId: string;
  /**
   * Non-secret identity of the token this session authenticated with ('' before Auth): the first 16 hex digits of
   * the token's SHA-256 (config/token-rules.ts tokenIdOf). Stable across reconnects; what ownership and limits key on.
   */
  tokenId: string;
  /** The rules of that token (FULL_RIGHTS before Auth and for plain token lines). */
  tokenRules: TokenRules;
  private readonly maxStreams: number;
  private draining: boolean;
  /** Auth said ClientType burrow: our own agent (relay-opened heartbeats; GOAWAY lets its streams finish). */
  private burrowAgent: boolean;
  private readonly raw: net.Socket;
  private readonly tlsSocket: tls.TLSSocket;
  private resolveDone!: (r: TaskResult) => void;
  /** Public connections riding this session now, on any of its endpoints (bound or since unbound). */
  private activeConnections: number;
  private finished: boolean;
  private authTimer: NodeJS.Timeout | null;
  private idleTimer: NodeJS.Timeout | null;
  private heartbeater: Heartbeater | null;

  constructor(runtime: WorkerRuntime, socket: net.Socket, meta: AdoptMeta) {
    this.id = `sess_${randomBytes(9).toString('base64url')}`;
    this.runtime = runtime;
    this.meta = meta;
    this.endpoints = new Map();
    this.binding = new Set();
    this.httpConnections = new Set();
    this.mux = null;
    this.authed = false;
    this.authenticating = false;
    this.clientId = '';
    this.tokenId = '';
    this.tokenRules = FULL_RIGHTS;
    this.maxStreams = Math.min(STREAMS_PER_SESSION_CEILING, runtime.settings.limits.maxStreamsPerSession);
    this.draining = false;
    this.burrowAgent = false;
    this.raw = socket;
    this.activeConnections = 0;
    this.finished = false;
    this.done = new Promise((r) => (this.resolveDone = r));
    this.tlsSocket = new tls.TLSSocket(socket, { isServer: true, secureContext: runtime.secureContext });
    const hsTimer = setTimeout(
      () => this.fail(`TLS handshake not finished within ${runtime.settings.handshakeTimeoutMs} ms`),
      runtime.settings.handshakeTimeoutMs,
    );
    this.authTimer = null;
    this.idleTimer = null;
    this.heartbeater = null;
    const tlsStart = runtime.recorder.enabled ? wallMs() : 0; // no clock read with --metrics off
    this.tlsSocket.once('secure', () => {
      clearTimeout(hsTimer);
      runtime.recorder.tlsHandshake(true, tlsStart);
      this.start();
    });
    this.tlsSocket.on('error', (err: Error) => {
      clearTimeout(hsTimer);
      this.fail(`agent TLS error: ${err.message}`);
    });
    this.tlsSocket.on('close', () => {
      clearTimeout(hsTimer);
      this.finish('closed');
    });
  }

  /**
   * Relay shutdown: end the session as soon as no public connection is using it. burrow's agent gets GOAWAY at once
   * (it opens no new streams and lets the open ones finish); the ngrok SDK only when its last connection has ended,
   * because on GOAWAY it fails every stream it has (PROTOCOL.md §5), which would cut the answers in flight. Neither
   * closes the session by itself (the SDK keeps its heartbeat stream open), hence the count of public connections.
   */
  goAway(): void {
    this.draining = true;
    if (this.burrowAgent) this.mux?.goAway(MUX_NO_ERROR, 'relay draining');
    this.maybeEndDrain();
  }

  /**
   * A public connection now rides endpoint `ep` of this session (called by the pumps): counted on the endpoint (its
   * --max-conns-per-endpoint limit, least-active picks) and on the session (its drain).
   */
  connectionStarted(ep: Endpoint): void {
    ep.active++;
    this.activeConnections++;
  }

  /** A public connection on endpoint `ep` of this session ended, or moved to another member (called by the pumps). */
  connectionEnded(ep: Endpoint): void {
    ep.active--;
    this.activeConnections--;
    if (this.draining) this.maybeEndDrain();
  }

  private maybeEndDrain(): void {
    // The session's own count, not the sum over its bound endpoints: an endpoint the agent unbound leaves the table
    // while its open connections carry on (review finding: a drain then cut them at once, --grace ignored).
    if (this.activeConnections === 0) {
      if (this.mux === null) {
        this.tlsSocket.destroy();
      } else {
        this.mux.goAway(MUX_NO_ERROR, 'relay draining'); // flushed by destroy(); a no-op when already sent
        this.mux.destroy();
      }
    }
  }

  destroy(err: Error): void {
    if (this.mux !== null) this.mux.destroy(err);
    else this.tlsSocket.destroy();
  }

  /**
   * The agent reconnected on a new session with this one's ClientId (acceptor: clientIdFor), which has already taken
   * over its routes: end this one now instead of at the liveness timeout. Its public connections are cut as for a
   * dead link. The GOAWAY is for a peer that can still read it; it carries no error, since nothing failed here.
   */
  /**
   * This session's open HTTP(S) connections (public-pump.ts HttpPump): asked to give up their stream at the session's
   * stream limit (WorkerRuntime.evictIdle), closed as in a drain when their endpoint is unbound or the relay drains.
   */
  readonly httpConnections: Set<HttpConnection>;

  supersede(reason: string): void {
    this.finish(reason);
    if (this.mux === null) return; // finish() destroyed the socket
    this.mux.goAway(MUX_NO_ERROR, reason);
    this.mux.destroy();
  }

  /**
   * Open a proxy stream for a public connection: type, ProxyHeader and any bytes already read go out in the SYN frame.
   * Returns null when the session cannot take another stream (closed, going away, or at the SDK's stream limit with
   * no idle keep-alive connection to close for it).
   */
  openProxyStream(ep: Endpoint, clientAddr: string, first?: Buffer, lead?: Buffer): MuxStream | null {
    const mux = this.mux;
    if (mux === null || mux.isClosed || mux.remoteGoAway !== null) return null;
    // At the limit, idle keep-alive connections of this session give their streams up for the new one.
    while (mux.streamCount >= this.maxStreams) if (!this.runtime.evictIdle(this)) return null;
    let s: MuxStream;
    try {
      s = mux.openStream();
    } catch {
      return null;
    }
    const header: ProxyHeader = {
      Id: ep.id,
      ClientAddr: clientAddr,
      Proto: ep.proto,
      EdgeType: ep.edgeType,
      PassthroughTLS: ep.proto === 'tls',
    };
    const hdr = encodeProxyHeader(header);
    // `lead` (a PROXY protocol header) is the first thing the service reads, before the connection's own bytes.
    const leadLen = lead === undefined ? 0 : lead.length;
    const firstLen = first === undefined ? 0 : first.length;
    const buf = Buffer.allocUnsafe(4 + hdr.length + leadLen + firstLen);
    buf.writeUInt32BE(STREAM_TYPE_PROXY, 0);
    hdr.copy(buf, 4);
    if (lead !== undefined) lead.copy(buf, 4 + hdr.length);
    if (first !== undefined) first.copy(buf, 4 + hdr.length + leadLen);
    s.write(buf);
    return s;
  }

  private start(): void {
    // Agents that do not disable Nagle (the ngrok SDK) hold a small segment until we ACK the previous one; with
    // Linux delayed ACKs that costs ~40 ms per request/response exchange (bench/RESULTS.md: tunnel RPS ×10,
    // 1-connection p50 44 ms → 0.15 ms). Our own frames carry the ACK: a turn that reads from the agent and writes
    // to it (a busy session: requests go out in every turn's batch) needs nothing more. A turn that reads and writes
    // nothing, or whose frames may not reach the kernel soon (the TLS socket is over its mark, or the TCP socket still
    // queues earlier bytes the kernel did not take: Node then holds this turn's frames too), re-arms TCP_QUICKACK at
    // its end, which sends the pending ACK at once and makes the next ones immediate.
    // Checked once per turn, not per 'data' event: one socket read yields a 'data' event per TLS record (the SDK sends
    // a WNDINC for every read of a stream, then the response, each in its own record). Re-arming on every turn was
    // 0.2 setsockopt per request under load, each one also an extra ACK segment.
    const rawHandle = (this.raw as unknown as { _handle?: { fd?: number; writeQueueSize?: number } })._handle ?? {};
    const fd = rawHandle.fd ?? -1;
    let onTransportChunk: (() => void) | undefined;
    if (fd >= 0 && nativeAddon.setQuickAck(fd)) {
      let armed = false;
      let batchesAtRead = 0;
      let pendingAtRead = false;
      const settle = (): void => {
        armed = false;
        const m = this.mux;
        if (m === null || m.isClosed) return;
        const writes = pendingAtRead || m.writeBatches !== batchesAtRead || m.batchPending;
        if (!writes || m.transportBlocked || (rawHandle.writeQueueSize ?? 0) > 0) nativeAddon.setQuickAck(fd);
      };
      // Through the mux's read hook rather than a second 'data' listener: the SDK sends two records per request.
      onTransportChunk = () => {
        if (armed) return;
        armed = true;
        const m = this.mux!;
        batchesAtRead = m.writeBatches;
        pendingAtRead = m.batchPending;
        setImmediate(settle);
      };
    }
    // Records reach the mux without a per-read allocation and Readable push (src/mux/direct-reads.ts).
    enableDirectReads(this.tlsSocket);
    const mux = new MuxSession(this.tlsSocket, {
      role: 'server',
      windowSize: RELAY_STREAM_WINDOW,
      extraWindowBudget: RELAY_EXTRA_WINDOW_BUDGET,
      maxRemoteStreams: PREAUTH_AGENT_STREAMS,
      onTransportChunk,
    });
    this.mux = mux;
    mux.on('stream', (s: MuxStream) => this.onStream(s));
    mux.on('close', (err?: Error) => {
      if (isBurrowError(err)) this.runtime.recorder.error(err.code);
      this.finish(err ? err.message : 'closed');
    });
    this.authTimer = setTimeout(() => {
      if (!this.authed) mux.terminate(MUX_STREAM_REFUSED, `no Auth within ${AUTH_DEADLINE_MS} ms`);
    }, AUTH_DEADLINE_MS);
    this.authTimer.unref();
    // Liveness for the whole session, not only its heartbeat stream: an agent that never opens one, or closes it,
    // must still be dropped once it goes silent (the ngrok SDKs beat every 10 s by default).
    let lastBytes = -1;
    let quietSince = Date.now();
    this.idleTimer = setInterval(() => {
      if (mux.bytesIn !== lastBytes) {
        lastBytes = mux.bytesIn;
        quietSince = Date.now();
      } else if (Date.now() - quietSince >= LIVENESS_MS) {
        mux.destroy(new BurrowError('BURROW_ERR_MUX_HEARTBEAT_TIMEOUT', `agent sent nothing for ${LIVENESS_MS} ms; session closed`));
      }
    }, LIVENESS_CHECK_MS);
    this.idleTimer.unref();
  }

  private onStream(s: MuxStream): void {
    s.on('error', () => {}); // per-stream failures are answered on the stream itself; the session carries on
    readStreamType(s).then(
      (type) => this.dispatch(type, s),
      () => s.destroy(),
    );
  }

  private dispatch(type: number, s: MuxStream): void {
    const mux = this.mux!;
    if (!this.authed && type !== STREAM_TYPE_HEARTBEAT && type !== STREAM_TYPE_AUTH) {
      // Refused unread: an unauthenticated peer must not make the relay buffer up to --rpc-max per stream (every open
      // stream could, across up to 1000 connections per address). The answer, then RST for whatever follows it.
      respondRpc(s, { Error: `stream type ${type} before Auth: authenticate first` });
      s.reset(MUX_STREAM_REFUSED);
      return;
    }
    switch (type) {
      case STREAM_TYPE_HEARTBEAT:
        serveHeartbeat(mux, s); // liveness is checked for the whole session in start()
        return;
      case STREAM_TYPE_AUTH:
        this.rpc(s, (req) => this.handleAuth(req), Math.min(AUTH_MAX_BYTES, this.runtime.settings.limits.rpcMax));
        return;
      case STREAM_TYPE_BIND:
        this.rpc(s, (req) => this.handleBind(req, s));
        return;
      case STREAM_TYPE_UNBIND:
        this.rpc(s, (req) => this.handleUnbind(req));
        return;
      case STREAM_TYPE_BIND_LABELED:
        this.rpc(s, async () => ({ Error: 'burrow does not support labeled tunnels (edges); bind an endpoint with a URL instead' }));
        return;
      default:
        // Proxy (3) and commands (4, 5, 6, 9) flow relay → agent only; anything else is unknown.
        s.reset(MUX_STREAM_REFUSED);
    }
  }

  private rpc(s: MuxStream, handler: (req: Record<string, unknown>) => Promise<object>, maxSize = this.runtime.settings.limits.rpcMax): void {
    readJsonMessage(s, { maxSize })
      .then(handler)
      .then(
        (resp) => {
          if (!s.destroyed) respondRpc(s, resp);
        },
        (err: Error) => {
          if (!s.destroyed) respondRpc(s, { Error: err.message });
        },
      );
  }

  private async handleAuth(req: Record<string, unknown>): Promise<object> {
    if (this.authed) throw new BurrowError('BURROW_ERR_AUTH_FAILED', 'this session is already authenticated');
    // Two Auths in flight would both pass the check above: the acceptor counts the session under the first token it
    // admits while the last answer set this session's token and rules (one token's sessions= limit bypassed).
    if (this.authenticating) throw new BurrowError('BURROW_ERR_AUTH_FAILED', 'an Auth is already in progress on this session');
    this.authenticating = true;
    try {
      return await this.authenticate(req);
    } finally {
      this.authenticating = false;
    }
  }

  private async authenticate(req: Record<string, unknown>): Promise<object> {
    const extra = isObject(req['Extra']) ? req['Extra'] : {};
    const token = typeof extra['AuthToken'] === 'string' ? extra['AuthToken'] : '';
    const entry = token === '' ? null : this.runtime.lookupToken(token);
    const limits = this.runtime.settings.limits;
    // The session can end in the very read that completed this Auth (a protocol error in the same TLS record): its
    // session-gone is already posted, so an admission now would be counted under the token for good.
    if (this.finished) throw new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'session closed during Auth');
    // The acceptor decides (it sees every worker): a rate-limited address is refused whatever the token, so a
    // guesser learns nothing while blocked; then the token; then the token's session count.
    const verdict = await this.runtime.admit({
      sessionId: this.id,
      remoteAddress: this.meta.remoteAddress,
      tokenId: entry?.id ?? '',
      maxSessions: entry?.rules.sessions ?? limits.maxSessionsPerToken,
      reason:
        token === ''
          ? 'authentication failed: no auth token was sent; pass the token the relay printed at start-up'
          : 'authentication failed: the auth token is not valid for this relay',
      clientId: typeof req['ClientId'] === 'string' ? req['ClientId'] : '',
    });
    if (!verdict.ok) {
      // Answer, then end the session: an agent that may not authenticate has nothing else to do here.
      setTimeout(() => this.mux?.close(), 100).unref();
      const code = (verdict.code as 'BURROW_ERR_AUTH_FAILED') ?? 'BURROW_ERR_AUTH_FAILED';
      // The code rides in the text (AuthResp has only an Error string): burrow's agent retries a session limit or rate
      // limit once it has been online (the relay may not have seen its old session drop yet), never a bad token.
      throw new BurrowError(code, `${verdict.error ?? 'authentication failed'} [${code}]`);
    }
    // The acceptor's answer is asynchronous: the session may have ended meanwhile (as handleBind checks too). Its
    // session-gone may have reached the acceptor before the admission did, so tell it again (forgetting is idempotent):
    // else the session stays counted under the token until the relay restarts.
    if (this.finished || this.mux === null || this.mux.isClosed) {
      this.runtime.notify({ op: 'session-gone', sessionId: this.id });
      throw new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'session closed during Auth');
    }
    this.tokenId = entry!.id;
    this.tokenRules = entry!.rules;
    this.authed = true;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.mux.setMaxRemoteStreams(agentStreamLimit(entry!.rules.endpoints ?? limits.maxEndpointsPerSession));
    // Only burrow's agent gets relay-opened heartbeats: the SDK echoes them but misbehaves on short reads and
    // after a FIN (PROTOCOL.md §7), so SDK sessions have no relay-side RTT samples.
    this.burrowAgent = extra['ClientType'] === 'burrow';
    if (this.burrowAgent) this.startRttProbe();
    this.clientId = verdict.clientId ?? this.id;
    return {
      Version: SERVER_PROTOCOL_VERSION,
      ClientId: this.clientId,
      Extra: { Version: `burrow ${this.runtime.settings.version}`, Region: 'local', Cookie: '', AccountName: '', PlanName: '', Banner: '' },
    };
  }

  /**
   * burrow_agent_rtt_seconds: the relay beats on its own heartbeat stream, which our agent echoes (PROTOCOL.md §7).
   * Liveness stays with the session-wide check in start(); a late answer only skips that sample.
   */
  private startRttProbe(): void {
    const every = this.runtime.settings.agentRttIntervalMs;
    if (every <= 0 || this.mux === null || this.heartbeater !== null) return;
    const recorder = this.runtime.recorder;
    this.heartbeater = new Heartbeater(this.mux, {
      intervalMs: every,
      toleranceMs: Math.max(every, LIVENESS_MS),
      failSession: false,
      onRtt: (ms) => recorder.agentRtt(ms),
    });
    this.heartbeater.start();
  }

  private async handleBind(req: Record<string, unknown>, s: MuxStream): Promise<object> {
    const proto = req['Proto'];
    if (proto !== 'http' && proto !== 'https' && proto !== 'tcp' && proto !== 'tls') {
      throw new BurrowError('BURROW_ERR_BIND_INVALID', `Bind: Proto ${JSON.stringify(proto)} is not one of http, https, tcp, tls`);
    }
    const opts = isObject(req['Opts']) ? { ...req['Opts'] } : {};
    // Before anything is reserved: an option this relay cannot honour refuses the Bind (endpoint-options.ts).
    checkSupportedOptions(proto, opts, isObject(req['Extra']) ? req['Extra'] : {});
    const ipPolicy = parseIpRestriction(opts['IPRestriction']);
    const basicAuth = proto === 'http' || proto === 'https' ? parseBasicAuth(opts) : null;
    const proxyProto = parseProxyProto(opts['ProxyProto']);
    const requestHeaders = proto === 'http' || proto === 'https' ? parseHeaderRules('RequestHeaders', opts['RequestHeaders']) : null;
    const responseHeaders = proto === 'http' || proto === 'https' ? parseHeaderRules('ResponseHeaders', opts['ResponseHeaders']) : null;
    const wantedId = typeof req['Id'] === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(req['Id']) ? req['Id'] : '';
    const id = wantedId !== '' ? wantedId : `ep_${randomBytes(9).toString('base64url')}`;
    if (this.endpoints.has(id) || this.binding.has(id)) {
      // A second Bind of a live Id would leave the first endpoint in the worker's pools and the acceptor's route
      // (the new one overwrites only the id-keyed entries), outside the per-session endpoint limit.
      throw new BurrowError('BURROW_ERR_BIND_CONFLICT', `Bind: Id ${id} is already bound on this session; Unbind it first, or bind without an Id`);
    }
    const rules = this.tokenRules;
    const maxEndpoints = rules.endpoints ?? this.runtime.settings.limits.maxEndpointsPerSession;
    // RPC streams run concurrently: Binds still waiting for the acceptor count against the limit too.
    const held = this.endpoints.size + this.binding.size;
    if (held >= maxEndpoints) {
      throw new BurrowError(
        'BURROW_ERR_BIND_LIMIT',
        `Bind: this session already has ${held} endpoints (limit ${maxEndpoints} per session); unbind one first` +
          `, or raise ${rules.endpoints !== null ? "the token's endpoints= rule" : '--max-endpoints-per-session'}`,
      );
    }
    let hostname = '';
    let port = 0;
    let portRanges: Array<{ from: number; to: number }> | undefined;
    if (proto === 'tcp') {
      port = parseTcpAddr(opts['Addr']);
      if (port !== 0 && !portAllowed(rules, port)) {
        throw new BurrowError('BURROW_ERR_BIND_FORBIDDEN', `Bind: this token may not bind TCP port ${port}; it may bind ${describePorts(rules)}`);
      }
      if (port === 0 && rules.tcp !== null) portRanges = [...rules.tcp];
    } else {
      hostname = this.requestedHostname(opts);
      if (hostname === '') hostname = hostnameForRandomBind(rules, this.runtime.settings.domain, randomLabel);
      if (hostname === '' && rules.allow !== null) {
        throw new BurrowError('BURROW_ERR_BIND_FORBIDDEN', `Bind: this token may only bind ${describeHosts(rules)}; ask for one of those names`);
      }
      if (hostname !== '' && !hostAllowed(rules, hostname)) {
        throw new BurrowError('BURROW_ERR_BIND_FORBIDDEN', `Bind: this token may not bind ${hostname}; it may bind ${describeHosts(rules)}`);
      }
    }
    const extra = isObject(req['Extra']) ? req['Extra'] : {};
    const pooling = extra['PoolingEnabled'] === true;
    const strategy = requestedStrategy(extra['Metadata']);
    const key = endpointKey(this.id, id);
    this.binding.add(id); // until the endpoint is in this.endpoints (no await between the finally and there)
    let reply: Awaited<ReturnType<WorkerRuntime['reserve']>>;
    try {
      reply = await this.runtime.reserve({
        sessionId: this.id,
        endpointKey: key,
        proto,
        hostname,
        port,
        owner: this.tokenId,
        pooling,
        strategy,
        authKey: basicAuth?.key ?? '',
        ...(portRanges ? { portRanges } : {}),
      });
    } finally {
      this.binding.delete(id);
    }
    if (!reply.ok) {
      throw new BurrowError((reply.code as 'BURROW_ERR_BIND_CONFLICT') ?? 'BURROW_ERR_BIND_INVALID', reply.error ?? 'Bind refused');
    }
    if (this.mux === null || this.mux.isClosed) {
      this.runtime.notify({ op: 'release', endpointKey: key });
      throw new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'session closed during Bind');
    }
    if (s.destroyed) {
      // The agent gave up on this Bind (its RPC timed out and reset the stream): it never learns the endpoint's Id,
      // so it could not Unbind it, and the name or port would stay taken for the session's life.
      // Nobody reads an answer on a reset stream (rpc() sends none).
      this.runtime.notify({ op: 'release', endpointKey: key });
      return {};
    }
    const ep: Endpoint = {
      id,
      key,
      proto,
      hostname: reply.hostname ?? hostname,
      port: reply.port ?? port,
      url: reply.url ?? '',
      session: this,
      edgeType: proto === 'tcp' ? EDGE_TYPE_TCP : proto === 'tls' ? EDGE_TYPE_TLS : EDGE_TYPE_HTTPS,
      active: 0,
      pooled: pooling,
      poolKey: routeKey(proto, reply.hostname ?? hostname, reply.port ?? port),
      available: true,
      ipPolicy,
      basicAuth,
      proxyProto,
      requestHeaders,
      responseHeaders,
    };
    this.endpoints.set(id, ep);
    this.runtime.addEndpoint(ep);
    if (proto === 'tcp') opts['Addr'] = ep.url.replace(/^tcp:\/\//, '');
    else opts['Hostname'] = ep.hostname;
    return { Id: id, URL: ep.url, Proto: proto, Opts: opts, Extra: { Token: '' } };
  }

  private async handleUnbind(req: Record<string, unknown>): Promise<object> {
    const id = typeof req['Id'] === 'string' ? req['Id'] : '';
    // The ngrok SDK sends Unbind more than once for one tunnel (on close and again on drop): an unknown or
    // already removed id is answered as success.
    const ep = this.endpoints.get(id);
    if (ep !== undefined) this.dropEndpoint(ep);
    return {};
  }

  /** The hostname a Bind asks for: Hostname/Domain, or Subdomain under our domain, or a random one (''). */
  private requestedHostname(opts: Record<string, unknown>): string {
    const domain = this.runtime.settings.domain;
    const raw = [opts['Hostname'], opts['Domain']].find((v) => typeof v === 'string' && v !== '') as string | undefined;
    const sub = typeof opts['Subdomain'] === 'string' ? opts['Subdomain'] : '';
    let host = '';
    if (raw !== undefined) host = raw.toLowerCase().replace(/\.$/, '');
    else if (sub !== '') host = `${sub.toLowerCase()}.${domain}`;
    else return '';
    const labels = host.split('.');
    if (host.length > 253 || !labels.every((l) => HOST_LABEL.test(l))) {
      throw new BurrowError('BURROW_ERR_BIND_INVALID', `Bind: ${JSON.stringify(host)} is not a valid hostname (letters, digits and '-' in dot-separated labels)`);
    }
    if (!host.endsWith(`.${domain}`) || host === `connect.${domain}`) {
      throw new BurrowError(
        'BURROW_ERR_BIND_INVALID',
        `Bind: hostname ${host} is not allowed; endpoints must be under .${domain} (for example app.${domain})`,
      );
    }
    return host;
  }

  private dropEndpoint(ep: Endpoint): void {
    this.endpoints.delete(ep.id);
    this.runtime.removeEndpoint(ep);
    this.runtime.notify({ op: 'release', endpointKey: ep.key });
    // Its open HTTP(S) connections stop carrying requests (their Host no longer routes here); TCP and TLS ones are
    // opaque and carry on until they end.
    for (const c of [...this.httpConnections]) c.endpointDropped(ep);
  }

  private fail(reason: string): void {
    // With a mux session its 'close' handler counts the error (from the code it ends with); before it, count here.
    if (this.mux !== null) this.mux.destroy(new BurrowError('BURROW_ERR_MUX_TRANSPORT', reason));
    else {
      this.runtime.recorder.error('BURROW_ERR_MUX_TRANSPORT');
      this.tlsSocket.destroy();
    }
    this.finish(reason);
  }

  private finish(outcome: string): void {
    if (this.finished) return;
    this.finished = true;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    if (this.idleTimer !== null) clearInterval(this.idleTimer);
    this.heartbeater?.stop();
    for (const ep of [...this.endpoints.values()]) {
      this.endpoints.delete(ep.id);
      this.runtime.removeEndpoint(ep);
    }
    this.runtime.notify({ op: 'session-gone', sessionId: this.id });
    // With a mux session, its destroy() already ended the transport after its last frame (a GOAWAY with the reason)
    // and cuts it after a linger; destroying the TLS socket here threw that GOAWAY away whenever it was still queued
    // (the flood test saw a close without GOAWAY about one run in eight).
    if (this.mux === null && !this.tlsSocket.destroyed) this.tlsSocket.destroy();
    this.resolveDone({ bytesIn: this.raw.bytesRead, bytesOut: this.raw.bytesWritten, outcome });
  }
}

function describeHosts(r: TokenRules): string {
  return r.allow === null ? 'any name' : `hostnames matching ${r.allow.join(', ')}`;
}

function describePorts(r: TokenRules): string {
  return r.tcp === null ? 'any port' : `ports ${r.tcp.map((p) => (p.from === p.to ? `${p.from}` : `${p.from}-${p.to}`)).join(', ')}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Balancing strategy asked for in Bind.Extra.Metadata (burrow's extension riding in a field the SDKs already send,
 * DESIGN.md §3): a `burrow-lb=<strategy>` word anywhere in the string. '' = the relay's default.
 */
function requestedStrategy(metadata: unknown): string {
  if (typeof metadata !== 'string') return '';
  const m = /(?:^|[\s,;])burrow-lb=([a-z0-9-]+)/.exec(metadata);
  if (m === null) return '';
  if (!isBalanceStrategy(m[1]!)) {
    throw new BurrowError(
      'BURROW_ERR_BIND_INVALID',
      `Bind: metadata burrow-lb=${m[1]} is not a balancing strategy; use one of ${BALANCE_STRATEGIES.join(', ')}`,
    );
  }
  return m[1]!;
}

/** Port wanted by a TCP Bind's Opts.Addr ('' or 'host:port'); 0 = any. */
function parseTcpAddr(addr: unknown): number {
  if (typeof addr !== 'string' || addr === '') return 0;
  const m = /:(\d{1,5})$/.exec(addr);
  if (m === null) throw new BurrowError('BURROW_ERR_BIND_INVALID', `Bind: TCP Addr ${JSON.stringify(addr)} is not host:port`);
  const port = Number(m[1]);
  if (port < 1 || port > 65535) throw new BurrowError('BURROW_ERR_BIND_INVALID', `Bind: TCP port ${port} is out of range`);
  return port;
}
