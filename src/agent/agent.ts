// burrow's agent: one session at a time to the relay (TLS → muxado client → heartbeat → Auth → Bind per endpoint),
// relay-opened streams dispatched (proxy → upstream or Listener; Restart / Stop / Update / StopTunnel commands),
// reconnect with backoff rebinding the same URLs, graceful close. Per-connection path: onStream → proxy (one dial,
// then pipe); everything else runs once per session or per command.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { BurrowError, isBurrowError } from '../core/errors.js';
import { Heartbeater, serveHeartbeat } from '../mux/heartbeat.js';
import { MuxSession } from '../mux/mux-session.js';
import { enableDirectReads } from '../mux/direct-reads.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { callRpc, readJsonMessage, respondRpc } from '../mux/rpc.js';
import { readStreamType } from '../mux/typed-stream.js';
import { MUX_PROTOCOL_ERROR, MUX_STREAM_REFUSED, muxErrorName } from '../protocol/error-codes.js';
import {
  CLIENT_PROTOCOL_VERSIONS,
  STREAM_TYPE_AUTH,
  STREAM_TYPE_BIND,
  STREAM_TYPE_HEARTBEAT,
  STREAM_TYPE_PROXY,
  STREAM_TYPE_RESTART,
  STREAM_TYPE_STOP,
  STREAM_TYPE_STOP_TUNNEL,
  STREAM_TYPE_UNBIND,
  STREAM_TYPE_UPDATE,
  type Auth,
  type AuthResp,
  type Bind,
  type BindResp,
  type ProxyHeader,
} from '../protocol/messages.js';
import { AgentStats } from './agent-stats.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { dialRelay, isCertificateError, isWrongServerError } from './dial-relay.js';
import { Endpoint, Listener, type EndpointOwner } from './endpoint.js';
import { endpointSpec, type EndpointKind, type EndpointLabels, type EndpointSpec } from './endpoint-spec.js';
import { forwardConnection } from './forward-connection.js';
import { readProxyHeader } from './read-proxy-header.js';
import { UpstreamDialer, type BreakerOptions, type BreakerState } from './upstream-dialer.js';

/**
 * Receive window per stream. The protocol's 256 KiB start is widened with one WNDINC after the SYN; the relay (our
 * mux) honours it, the ngrok cloud would simply cap it. A wider window lets the relay keep more in flight while we
 * write to the upstream (bench/RESULTS.md, tcp-bulk): on 2 cores shared by four busy processes, scheduling gaps of a
 * few ms are the norm, and 1 MiB is only ~2.5 ms of an upload at 400 MB/s (2 MiB: +7 % over 1 MiB; 4 MiB no better
 * than 2). It is also what one stream may hold in this process while its upstream reads slower than the relay sends.
 */
const AGENT_WINDOW = 2 * 1024 * 1024;
/**
 * The window above the protocol's 256 KiB, summed over a session's streams: 32 streams at the full 2 MiB. Without it,
 * uploads through the relay's 480 streams to upstreams that read and then stall could make this process hold ~1 GiB;
 * with it at most 480 × 256 KiB + 56 MiB (~176 MiB). Streams past the budget run at 256 KiB windows.
 */
const AGENT_EXTRA_WINDOW_BUDGET = 32 * (AGENT_WINDOW - 256 * 1024);

export interface AgentOptions {
  /** The relay's agent address: "host:port" (IPv6 as "[::1]:4443") or { host, port }. */
  server: string | { host: string; port: number };
  authtoken: string;
  /** PEM CA to trust for the relay (a dev relay's ca.pem); default: the system roots. */
  ca?: string | Buffer | undefined;
  /** Heartbeat interval and tolerance, ms (defaults 10 s and 15 s, as the ngrok SDKs). */
  heartbeatIntervalMs?: number;
  heartbeatToleranceMs?: number;
  /** Deadline for TLS + Auth, and for each Bind/Unbind answer, ms (default 10 s). */
  connectTimeoutMs?: number;
  /** Reconnect backoff (defaults: base 1 s, cap 30 s, reset after 30 s up). */
  backoff?: BackoffOptions;
  /** Per-upstream circuit breaker settings. */
  breaker?: BreakerOptions;
  /**
   * Keep retrying when the very first connection fails for network reasons (the CLI does; a library connect()
   * rejects instead). Auth refusals and untrusted relay certificates never retry.
   */
  retryFirstConnect?: boolean;
  /** Default grace period of close(), ms (default 10 s). */
  graceMs?: number;
  /** Sent in Auth.Extra.Metadata. */
  metadata?: string;
}

/**
 * ```
 *   idle ─start()─► connecting ─Auth ok─► online ─session lost─► reconnecting ─Auth ok─► online …
 *                        │                  │                         │
 *                        └──── close(), Stop command, fatal error ────┴──► closing ──► closed
 * ```
 */
export type AgentState = 'idle' | 'connecting' | 'online' | 'reconnecting' | 'closing' | 'closed';

/** Describes the session for events and the status view. */
export interface SessionInfo {
  clientId: string;
  server: string;
  /** True for every session after the first. */
  reconnected: boolean;
}

/** Options of Agent.forward(). */
export interface ForwardOptions {
  /** http (default), tcp or tls; else taken from the scheme of `url` or of the upstream. */
  kind?: EndpointKind;
  /** Public URL wanted: "http://app.burrow.localhost", "tls://name.domain", "tcp://" or "tcp://host:port". */
  url?: string;
  /** Name in events and the status view (default: the first label of the hostname, or the kind). */
  name?: string;
  /** Sent as Bind.Extra.PoolingEnabled: several agents may serve one URL (the relay balances between them). */
  pool?: boolean;
  /** Balancing strategy for the URL's pool (random, round-robin, least-outstanding, p2c-ewma); default: the relay's. */
  lb?: string;
  /** http: `user:password` (or several) the relay asks every request for (401 otherwise); not passed to the service. */
  basicAuth?: string | string[];
  /** Only clients from these networks reach the endpoint (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`). */
  allowCidrs?: string | string[];
  /** Clients from these networks are refused (wins over allowCidrs). */
  denyCidrs?: string | string[];
  /** 1 or 2: the relay sends the service a PROXY protocol header (v1 text, v2 binary) with the client's address. */
  proxyProto?: 0 | 1 | 2;
  /** http: `Name: value` fields the relay adds to every request (the service sees them; the client cannot remove them). */
  requestHeaderAdd?: string | string[];
  /** http: field names the relay removes from every request before it reaches the service. */
  requestHeaderRemove?: string | string[];
  /** http: `Name: value` fields the relay adds to every response (final ones, 101 included; not 1xx interim ones). */
  responseHeaderAdd?: string | string[];
  /** http: field names the relay removes from every response before it reaches the client. */
  responseHeaderRemove?: string | string[];
}

/** Options of Agent.listen(); as ForwardOptions (the kind defaults to http, or the scheme of `url`). */
export type ListenOptions = ForwardOptions;

const LIBRARY_LABELS: EndpointLabels = {
  name: 'name', url: 'url', upstream: 'upstream', lb: 'lb', basicAuth: 'basicAuth', allowCidrs: 'allowCidrs', denyCidrs: 'denyCidrs', proxyProto: 'proxyProto',
  requestHeaderAdd: 'requestHeaderAdd', requestHeaderRemove: 'requestHeaderRemove',
  responseHeaderAdd: 'responseHeaderAdd', responseHeaderRemove: 'responseHeaderRemove',
};

/** Kind from the URL's scheme, else from the upstream's, else http. */
function defaultKind(url: string | undefined, upstream: string | number | null): EndpointKind {
  for (const text of [url, upstream]) {
    const m = typeof text === 'string' ? /^([a-z]+):\/\//i.exec(text) : null;
    const scheme = m?.[1]?.toLowerCase();
    if (scheme === 'tcp' || scheme === 'tls') return scheme;
    if (scheme === 'http' || scheme === 'https') return 'http';
  }
  return 'http';
}

/** One live session and its heartbeater. */
interface Live {
  mux: MuxSession;
  heartbeater: Heartbeater;
  upAt: number;
}

/** Why a session ended. */
interface Lost {
  err: Error | undefined;
}

const UPDATE_UNSUPPORTED = 'burrow agent does not self-update';
/**
 * Bind retry after a reconnect, when the name is held by another session: 1 s doubling to 5 s. A burrow relay ends our
 * own old session when we come back with its ClientId; another session that took the name in the gap, or a relay
 * without that rule (which frees a silent session's names about 30 s after its last bytes), keeps it for a while, and
 * a 30 s cap could miss the moment it is freed by up to 30 s.
 */
const REBIND_BASE_MS = 1000;
const REBIND_CAP_MS = 5_000;
/** At shutdown, the longest wait for the relay's answers to the Unbinds (within the grace period). */
const UNBIND_WAIT_MAX_MS = 2_000;
/** Largest command (Restart/Stop/Update/StopTunnel) JSON accepted from the relay. */
const MAX_COMMAND_SIZE = 64 * 1024;

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** The agent's version (package.json), sent in Auth. */
export const AGENT_VERSION = readVersion();

function parseServer(server: AgentOptions['server']): { host: string; port: number } {
  if (typeof server !== 'string') return server;
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):([0-9]{1,5})$/.exec(server.trim());
  const port = m === null ? 0 : Number(m[3]);
  if (m === null || port < 1 || port > 65535) {
    throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `server '${server}' is not host:port (example: localhost:4443 or [::1]:4443)`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

/** Bind.Opts for a first bind, with every key the SDK writes (PROTOCOL.md §9): the relay sees us as it sees the SDK. */
function initialOpts(spec: EndpointSpec): Record<string, unknown> {
  // The shapes the SDK writes for allowCidr/denyCidr and basicAuth (snake_case inside, PROTOCOL.md §9).
  const IPRestriction =
    spec.allowCidrs.length === 0 && spec.denyCidrs.length === 0 ? null : { allow_cidrs: [...spec.allowCidrs], deny_cidrs: [...spec.denyCidrs] };
  const ProxyProto = spec.proxyProto;
  if (spec.kind === 'tcp') return { Addr: spec.addr, ProxyProto, IPRestriction, TrafficPolicy: null };
  if (spec.kind === 'tls') {
    return {
      Domain: '', Hostname: spec.hostname, Subdomain: '', ProxyProto, MutualTLSAtAgent: false, MutualTLSAtEdge: null,
      TLSTermination: null, IPRestriction, TrafficPolicy: null,
    };
  }
  // The SDK's requestHeader()/responseHeader() shape: "name:value" entries, lowercased names (PROTOCOL.md §9).
  const rules = (add: readonly string[], remove: readonly string[]): object | null =>
    add.length === 0 && remove.length === 0 ? null : { add: [...add], remove: [...remove] };
  const RequestHeaders = rules(spec.requestHeaderAdd, spec.requestHeaderRemove);
  const ResponseHeaders = rules(spec.responseHeaderAdd, spec.responseHeaderRemove);
  const BasicAuth =
    spec.basicAuth.length === 0 ? null : { credentials: spec.basicAuth.map((c) => ({ username: c.username, cleartext_password: c.password })) };
  return {
    Domain: '', Hostname: spec.hostname, Auth: '', Subdomain: '', HostHeaderRewrite: false, LocalUrlScheme: null,
    ProxyProto, Compression: null, CircuitBreaker: null, IPRestriction, BasicAuth, OAuth: null, OIDC: null,
    WebhookVerification: null, MutualTLSCA: null, RequestHeaders, ResponseHeaders,
    WebsocketTCPConverter: null, UserAgentFilter: null, TrafficPolicy: null,
  };
}

/**
 * Events (all informational; failures that end the agent arrive as 'close' with the error):
 * - 'state' (AgentState)
 * - 'online' (SessionInfo) after Auth; 'offline' (err | undefined) when that session is lost
 * - 'reconnecting' ({ attempt, delayMs, error }) before each wait
 * - 'endpoint-online' (Endpoint) after each successful Bind; 'endpoint-bind-error' (Endpoint, err, willRetry);
 *   'endpoint-closed' (Endpoint, err | undefined)
 * - 'breaker' ({ upstream, state, error }) on every circuit-breaker transition
 * - 'upstream-error' (Endpoint, err) when a connection could not be forwarded
 * - 'command' ({ type: 'restart' | 'stop' | 'update' | 'stop-tunnel', detail }) for relay commands
 * - 'close' (err | undefined) once, when closed
 */
export class Agent extends EventEmitter implements EndpointOwner {
  readonly server: { host: string; port: number };
  /** "host:port" of the relay, for display. */
  readonly serverText: string;
  readonly stats: AgentStats;
  state: AgentState;
  /** Session id from the relay ('' before the first Auth); sent back on reconnect. */
  clientId: string;
  /** The error that closed the agent, if any. */
  closeError: Error | undefined;
  private readonly authtoken: string;
  private readonly ca: string | Buffer | undefined;
  private readonly heartbeatIntervalMs: number;
  private readonly heartbeatToleranceMs: number;
  private readonly connectTimeoutMs: number;
  private readonly breakerOptions: BreakerOptions;
  private readonly retryFirstConnect: boolean;
  private readonly graceMs: number;
  private readonly metadata: string;
  private readonly backoff: Backoff;
  private readonly endpointSet: Set<Endpoint>;
  private readonly byId: Map<string, Endpoint>;
  private readonly dialers: Map<string, { dialer: UpstreamDialer; refs: number }>;
  /** Sessions draining after a GOAWAY or close(), finished by close(). */
  private readonly retiring: Set<Live>;
  private live: Live | null;
  private cookie: string;
  private stopping: boolean;
  private wake: (() => void) | null;
  private pauseTimer: NodeJS.Timeout | null;
  /** Aborts the session being set up (dial, TLS, Auth): close() must not wait for a relay that does not answer. */
  private establishing: AbortController | null;
  private startPromise: Promise<void> | null;
  private startResolve: (() => void) | null;
  private startReject: ((err: Error) => void) | null;
  private closePromise: Promise<void> | null;
  private lostHook: ((lost: Lost) => void) | null;
  private readonly onUpstreamError: (ep: Endpoint, err: Error) => void;

  constructor(options: AgentOptions) {
    super();
    this.server = parseServer(options.server);
    this.serverText = `${isIP(this.server.host) === 6 ? `[${this.server.host}]` : this.server.host}:${this.server.port}`;
    this.authtoken = options.authtoken;
    this.ca = options.ca;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000;
    this.heartbeatToleranceMs = options.heartbeatToleranceMs ?? 15_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.breakerOptions = options.breaker ?? {};
    this.retryFirstConnect = options.retryFirstConnect ?? false;
    this.graceMs = options.graceMs ?? 10_000;
    this.metadata = options.metadata ?? '';
    this.backoff = new Backoff(options.backoff);
    this.stats = new AgentStats();
    this.state = 'idle';
    this.clientId = '';
    this.closeError = undefined;
    this.endpointSet = new Set();
    this.byId = new Map();
    this.dialers = new Map();
    this.retiring = new Set();
    this.live = null;
    this.cookie = '';
    this.stopping = false;
    this.wake = null;
    this.pauseTimer = null;
    this.establishing = null;
    this.startPromise = null;
    this.startResolve = null;
    this.startReject = null;
    this.closePromise = null;
    this.lostHook = null;
    this.onUpstreamError = (ep, err) => this.emit('upstream-error', ep, err);
  }

  /** Endpoints added and not closed, in the order they were added. */
  get endpoints(): Endpoint[] {
    return [...this.endpointSet];
  }

  /** Open the first session (TLS + Auth). Resolves once it is up; endpoints are bound in the background. */
  start(): Promise<void> {
    if (this.startPromise !== null) return this.startPromise;
    this.startPromise = new Promise<void>((resolve, reject) => {
      this.startResolve = resolve;
      this.startReject = reject;
    });
    void this.run();
    return this.startPromise;
  }

  /**
   * Forward public connections to `upstream` (3000, "host:port", "http://host:port", "tcp://…", "tls://…"). The kind
   * comes from options.kind, else the scheme of options.url, else of `upstream`, else http. Resolves once bound.
   */
  forward(upstream: string | number, options: ForwardOptions = {}): Promise<Endpoint> {
    let spec: EndpointSpec;
    try {
      spec = endpointSpec({ ...options, kind: options.kind ?? defaultKind(options.url, upstream), upstream }, LIBRARY_LABELS);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.addEndpoint(spec);
  }

  /** Take public connections in the program (async iterator / 'connection' events). Resolves once bound. */
  listen(options: ListenOptions = {}): Promise<Listener> {
    let spec: EndpointSpec;
    try {
      spec = endpointSpec({ ...options, kind: options.kind ?? defaultKind(options.url, null) }, LIBRARY_LABELS, true);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.addEndpoint(spec) as Promise<Listener>;
  }

  /** Add an endpoint from a validated spec (what the CLI uses): a forwarder when it has an upstream, else a Listener. */
  addEndpoint(spec: EndpointSpec): Promise<Endpoint> {
    if (spec.upstream === null) return this.add(new Listener(this, spec));
    const label = `${spec.upstream.host}:${spec.upstream.port}`;
    let d = this.dialers.get(label);
    if (d === undefined) {
      const dialer = new UpstreamDialer(spec.upstream, this.breakerOptions);
      dialer.on('state', (state: BreakerState, error: Error | null) =>
        this.emit('breaker', { upstream: dialer.label, state, error }),
      );
      d = { dialer, refs: 0 };
      this.dialers.set(label, d);
    }
    d.refs++;
    return this.add(new Endpoint(this, spec, d.dialer));
  }

  /** EndpointOwner: Unbind at the relay and forget the endpoint. */
  async unbind(ep: Endpoint): Promise<void> {
    if (ep.isClosed) return;
    const mux = ep.boundOn;
    const id = ep.id;
    this.dropEndpoint(ep, undefined);
    if (mux !== null && !mux.isClosed && id !== '') {
      await sendUnbind(mux, id, this.connectTimeoutMs);
    }
  }

  /**
   * Graceful: stop reconnecting, Unbind every endpoint (the relay routes nothing new here and frees the URLs), GOAWAY,
   * let open connections finish for up to `graceMs`, then cut what is left. Resolves when everything is closed.
   */
  close(graceMs: number = this.graceMs): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    this.closePromise = this.shutdown(graceMs, undefined);
    return this.closePromise;
  }

  /** Abortive: close with no grace period. */
  destroy(err?: Error): void {
    if (this.closePromise !== null) return;
    this.closePromise = this.shutdown(0, err);
  }

  // ---- session loop ----

  private async run(): Promise<void> {
    let everUp = false;
    while (!this.stopping) {
      this.setState(everUp ? 'reconnecting' : 'connecting');
      let live: Live;
      try {
        live = await this.establish(everUp);
      } catch (err) {
        if (this.stopping) break;
        const e = err as Error;
        // A session or rate limit after the agent has been online is retried with backoff: another session of the
        // token may have taken the slot meanwhile (our own old one is ended when we send its ClientId), or the
        // address may be rate-limited for a while.
        const fatal =
          isBurrowError(e, 'BURROW_ERR_AGENT_AUTH') ||
          (!everUp && (isBurrowError(e, 'BURROW_ERR_AGENT_AUTH_LIMIT') || isCertificateError(e) || isWrongServerError(e) || !this.retryFirstConnect));
        if (fatal) {
          this.destroy(e);
          return;
        }
        await this.pause(e);
        continue;
      }
      everUp = true;
      this.startResolve?.();
      const lost = await this.untilLost(live);
      this.backoff.sessionEnded(Date.now() - live.upAt);
      if (this.stopping) break;
      for (const ep of this.endpointSet) if (ep.state === 'online') ep.state = 'rebinding';
      this.emit('offline', lost.err);
      // Always through the backoff, the relay's Restart command included: after a healthy session that is a jittered
      // 0–1 s (a fleet told to restart does not come back in one instant), and a relay that keeps asking gets ever
      // longer waits instead of a reconnect loop.
      await this.pause(lost.err);
    }
  }

  /** TLS, mux, heartbeat, Auth; then Bind of every endpoint (in the background). Throws BurrowError on failure. */
  private async establish(reconnected: boolean): Promise<Live> {
    const aborter = new AbortController();
    this.establishing = aborter;
    // close() from a listener of the 'state' event emitted just before this call found nothing to abort.
    if (this.stopping) aborter.abort();
    try {
      return await this.establishWith(aborter.signal, reconnected);
    } finally {
      this.establishing = null;
    }
  }

  private async establishWith(signal: AbortSignal, reconnected: boolean): Promise<Live> {
    const socket = await dialRelay({ host: this.server.host, port: this.server.port, ca: this.ca, timeoutMs: this.connectTimeoutMs, signal });
    if (this.stopping) {
      socket.destroy();
      throw new BurrowError('BURROW_ERR_AGENT_CLOSED', 'the agent is closing');
    }
    // Records reach the mux without a per-read allocation, in read buffers that are reused once the upstream write
    // of their pieces is done (src/mux/direct-reads.ts, read-buffers.ts).
    enableDirectReads(socket, { recycle: true });
    const mux = new MuxSession(socket, {
      role: 'client',
      windowSize: AGENT_WINDOW,
      extraWindowBudget: AGENT_EXTRA_WINDOW_BUDGET,
    });
    mux.on('stream', (s: MuxStream) => this.onStream(mux, s));
    // PROTOCOL.md §12: the SDK opens its heartbeat stream first, then Auth; we do the same.
    const heartbeater = new Heartbeater(mux, {
      intervalMs: this.heartbeatIntervalMs,
      toleranceMs: this.heartbeatToleranceMs,
      onRtt: (ms) => this.stats.recordRtt(ms),
    });
    heartbeater.start();
    // close() during Auth ends this session at once (the RPC then fails with the session). Nothing needs flushing, so
    // the socket goes too: ending it would wait for a FIN from a relay that may not answer at all.
    const onAbort = (): void => {
      mux.destroy(new BurrowError('BURROW_ERR_AGENT_CLOSED', 'the agent closed during Auth'));
      socket.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    let resp: AuthResp;
    try {
      resp = await callRpc<AuthResp>(mux, STREAM_TYPE_AUTH, this.authRequest(), { timeoutMs: this.connectTimeoutMs });
    } catch (err) {
      heartbeater.stop();
      mux.destroy();
      if (isBurrowError(err, 'BURROW_ERR_RPC_REMOTE')) {
        const text = remoteText(err);
        if (TEMPORARY_AUTH_REFUSAL.test(text)) {
          throw new BurrowError('BURROW_ERR_AGENT_AUTH_LIMIT', `the relay at ${this.serverText} refused the agent for now: ${text}`, {
            cause: err,
          });
        }
        // The relay's code rides at the end of its text (AuthResp has only an Error string): named as the relay's, so
        // the line does not read as two codes of ours.
        const code = / \[(BURROW_ERR_[A-Z_]+)\]$/.exec(text);
        const why = code === null ? text : `${text.slice(0, code.index)} (relay: ${code[1]})`;
        throw new BurrowError(
          'BURROW_ERR_AGENT_AUTH',
          `the relay at ${this.serverText} refused the agent: ${why}; check the token given by --authtoken, BURROW_AUTHTOKEN or agent.authtoken in --config`,
          { cause: err },
        );
      }
      throw new BurrowError('BURROW_ERR_AGENT_CONNECT', `session with the relay at ${this.serverText} failed during Auth: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (mux.isClosed || this.stopping) {
      heartbeater.stop();
      mux.destroy();
      throw new BurrowError('BURROW_ERR_AGENT_CONNECT', `session with the relay at ${this.serverText} closed right after Auth`);
    }
    this.clientId = typeof resp.ClientId === 'string' ? resp.ClientId : '';
    const cookie = resp.Extra?.Cookie;
    this.cookie = typeof cookie === 'string' ? cookie : '';
    const live: Live = { mux, heartbeater, upAt: Date.now() };
    this.live = live;
    this.stats.sessions++;
    this.setState('online');
    this.emit('online', { clientId: this.clientId, server: this.serverText, reconnected } satisfies SessionInfo);
    for (const ep of this.endpointSet) void this.bind(live.mux, ep);
    return live;
  }

  /** Resolves when `live` stops being the session to use: it closed, the relay sent GOAWAY, or asked to restart. */
  private untilLost(live: Live): Promise<Lost> {
    return new Promise((resolve) => {
      const { mux } = live;
      let done = false;
      const finish = (lost: Lost): void => {
        if (done) return;
        done = true;
        this.lostHook = null;
        if (this.live === live) this.live = null;
        resolve(lost);
      };
      const onGoAway = (info: { code: number; message: string }): void => {
        // The relay is draining (shutting down or moving us): let this session's streams finish and reconnect after
        // the backoff delay: 0–1 s of jitter after a long session, so a fleet of agents does not reconnect in one
        // instant, and growing if the relay keeps sending GOAWAY right after Auth.
        this.retire(live, this.graceMs);
        finish({
          err: new BurrowError('BURROW_ERR_MUX_GOAWAY', `the relay sent GOAWAY (${muxErrorName(info.code)}${info.message ? `: ${info.message}` : ''})`),
        });
      };
      mux.once('close', (err?: Error) => finish({ err }));
      mux.once('goaway', onGoAway);
      this.lostHook = finish;
      if (mux.isClosed) finish({ err: mux.closeError });
      // A GOAWAY read together with the AuthResp was emitted before this listener existed.
      else if (mux.remoteGoAway !== null) {
        mux.off('goaway', onGoAway);
        onGoAway(mux.remoteGoAway);
      }
    });
  }

  /** Wait the next backoff delay (cut short by close()). */
  private async pause(err: Error | undefined): Promise<void> {
    if (this.stopping) return;
    const delayMs = this.backoff.next();
    this.stats.reconnectAttempts++;
    this.setState('reconnecting');
    this.emit('reconnecting', { attempt: this.backoff.attempt, delayMs, error: err });
    if (this.stopping) return; // a 'reconnecting' listener closed the agent
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      this.pauseTimer = setTimeout(resolve, delayMs);
    });
    this.wake = null;
    this.pauseTimer = null;
  }

  /** Stop using `live`: heartbeat off, GOAWAY, let its streams finish for up to graceMs. */
  private retire(live: Live, graceMs: number): Promise<void> {
    if (this.live === live) this.live = null;
    this.retiring.add(live);
    live.heartbeater.stop();
    const timer = setTimeout(
      () => live.mux.destroy(new BurrowError('BURROW_ERR_AGENT_CLOSED', `grace period of ${graceMs} ms over; ${live.mux.streamCount} streams cut`)),
      graceMs,
    );
    return live.mux.close().then(() => {
      clearTimeout(timer);
      this.retiring.delete(live);
    });
  }

  private async shutdown(graceMs: number, err: Error | undefined): Promise<void> {
    this.stopping = true;
    this.closeError = err;
    this.setState('closing');
    if (this.pauseTimer !== null) clearTimeout(this.pauseTimer);
    this.wake?.();
    this.establishing?.abort(); // a dial or Auth in progress (e.g. a relay that accepted but does not answer)
    this.startReject?.(err ?? new BurrowError('BURROW_ERR_AGENT_CLOSED', 'the agent was closed before its first session came up'));
    for (const ep of this.endpointSet) {
      if (ep.retryTimer !== null) clearTimeout(ep.retryTimer);
      ep.retryTimer = null;
    }
    const live = this.live;
    if (live !== null) {
      this.live = null;
      this.lostHook?.({ err: undefined });
      // Unbind first: the relay sends no new connections here and frees the names at once (pool members take the
      // traffic; an agent restarted with the same URLs can bind them), while open connections finish below. One
      // deadline for both: a relay that does not answer the Unbinds must not stretch the grace period.
      const deadline = Date.now() + graceMs;
      if (graceMs > 0) await this.unbindAll(live.mux, Math.min(graceMs, this.connectTimeoutMs, UNBIND_WAIT_MAX_MS));
      void this.retire(live, Math.max(0, deadline - Date.now()));
    }
    await Promise.all([...this.retiring].map((l) => (graceMs === 0 ? (l.mux.destroy(err), l.mux.close()) : l.mux.close())));
    for (const ep of [...this.endpointSet]) this.dropEndpoint(ep, err);
    for (const d of this.dialers.values()) d.dialer.close();
    this.dialers.clear();
    this.setState('closed');
    this.emit('close', err);
  }

  /** Unbind every endpoint bound on `mux`, waiting at most `timeoutMs` for the answers. */
  private async unbindAll(mux: MuxSession, timeoutMs: number): Promise<void> {
    const calls: Promise<void>[] = [];
    for (const ep of this.endpointSet) {
      if (ep.boundOn !== mux || ep.id === '' || mux.isClosed) continue;
      calls.push(sendUnbind(mux, ep.id, timeoutMs));
    }
    await Promise.all(calls);
  }

  private setState(state: AgentState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  private authRequest(): Auth {
    return {
      Version: [...CLIENT_PROTOCOL_VERSIONS],
      ClientId: this.clientId,
      Extra: {
        OS: process.platform,
        Arch: process.arch,
        AuthToken: this.authtoken,
        Version: AGENT_VERSION,
        Hostname: '',
        UserAgent: `burrow-agent/${AGENT_VERSION}`,
        Metadata: this.metadata,
        Cookie: this.cookie,
        HeartbeatInterval: this.heartbeatIntervalMs * 1_000_000,
        HeartbeatTolerance: this.heartbeatToleranceMs * 1_000_000,
        UpdateUnsupportedError: UPDATE_UNSUPPORTED,
        StopUnsupportedError: '',
        RestartUnsupportedError: '',
        ProxyType: '',
        MutualTLS: false,
        ServiceRun: false,
        ConfigVersion: '',
        CustomInterface: false,
        CustomCAs: this.ca !== undefined,
        ClientType: 'burrow',
      },
    };
  }

  // ---- endpoints ----

  private add<E extends Endpoint>(ep: E): Promise<E> {
    if (this.stopping) {
      this.releaseDialer(ep);
      return Promise.reject(new BurrowError('BURROW_ERR_AGENT_CLOSED', `cannot add endpoint ${ep.name}: the agent is closed`));
    }
    for (const other of this.endpointSet) {
      if (other.name === ep.name) {
        this.releaseDialer(ep);
        return Promise.reject(new BurrowError('BURROW_ERR_CONFIG_INVALID', `an endpoint named ${ep.name} already exists on this agent; give each endpoint its own name`));
      }
    }
    this.endpointSet.add(ep);
    const bound = new Promise<E>((resolve, reject) => {
      const onOnline = (): void => {
        ep.off('close', onClose);
        resolve(ep);
      };
      const onClose = (err?: Error): void => {
        ep.off('online', onOnline);
        reject(err ?? new BurrowError('BURROW_ERR_AGENT_CLOSED', `endpoint ${ep.name} closed before it was bound`));
      };
      ep.once('online', onOnline);
      ep.once('close', onClose);
    });
    if (this.live !== null) void this.bind(this.live.mux, ep);
    return bound;
  }

  private bindRequest(ep: Endpoint): Bind {
    const s = ep.spec;
    return {
      Id: ep.id,
      // The SDK binds http endpoints as "https" (served on the relay's http and https listeners alike).
      Proto: s.kind === 'http' ? 'https' : s.kind,
      ForwardsTo: s.forwardsTo,
      ForwardsProto: '',
      // On rebind the Opts the relay returned go back unchanged (PROTOCOL.md §8.4): they carry the assigned hostname
      // or port, so the endpoint gets the same URL again.
      Opts: (ep.boundOpts ?? initialOpts(s)) as unknown as Bind['Opts'],
      Extra: { Token: ep.bindToken, IPPolicyRef: '', Metadata: s.lb === null ? '' : `burrow-lb=${s.lb}`, Bindings: [], PoolingEnabled: s.pool },
    };
  }

  private async bind(mux: MuxSession, ep: Endpoint): Promise<void> {
    if (ep.isClosed || ep.bindingOn === mux || ep.boundOn === mux || mux.isClosed) return;
    ep.bindingOn = mux;
    ep.bindAttempts++;
    let resp: BindResp;
    try {
      resp = await callRpc<BindResp>(mux, STREAM_TYPE_BIND, this.bindRequest(ep), { timeoutMs: this.connectTimeoutMs });
      // An answer without the endpoint's Id and URL is no bind: retried below like a Bind that got no answer.
      if (typeof resp.Id !== 'string' || resp.Id === '' || typeof resp.URL !== 'string' || resp.URL === '') {
        throw new BurrowError('BURROW_ERR_RPC_BAD_JSON', `the relay's BindResp has no Id or URL: ${JSON.stringify(resp).slice(0, 200)}`);
      }
    } catch (err) {
      if (ep.bindingOn === mux) ep.bindingOn = null;
      if (ep.isClosed || mux.isClosed || this.live?.mux !== mux) return; // the next session binds again
      const wanted = ep.spec.hostname || ep.spec.addr || (ep.url !== '' ? ep.url : 'any name');
      const e = isBurrowError(err, 'BURROW_ERR_RPC_REMOTE')
        ? new BurrowError('BURROW_ERR_AGENT_BIND', `the relay refused endpoint ${ep.name} (${wanted}): ${remoteText(err)}`, { cause: err })
        : new BurrowError('BURROW_ERR_AGENT_BIND', `Bind of endpoint ${ep.name} (${wanted}) failed: ${(err as Error).message}`, { cause: err });
      ep.lastError = e;
      if (ep.url === '' && isBurrowError(err, 'BURROW_ERR_RPC_REMOTE')) {
        // Never bound: a refusal is the user's to fix (name taken, outside the relay's domain, ...). A timeout or a
        // failed stream is not a refusal: it is retried below (the timed-out call reset its stream, so a relay that
        // answers late releases that Bind).
        this.dropEndpoint(ep, e);
        this.emit('endpoint-bind-error', ep, e, false);
        return;
      }
      // Bound before: after a reconnect the name can be held by another session that took it in the gap (or, on a
      // relay that does not supersede by ClientId, by our old session until the relay drops it). Retry on this
      // session, doubling the wait. (Also a first Bind that got no answer.)
      const delay = Math.min(REBIND_CAP_MS, REBIND_BASE_MS * 2 ** Math.min(ep.bindAttempts - 1, 10));
      ep.retryTimer = setTimeout(() => {
        ep.retryTimer = null;
        void this.bind(mux, ep);
      }, delay);
      ep.retryTimer.unref();
      ep.emit('bind-error', e, true);
      this.emit('endpoint-bind-error', ep, e, true);
      return;
    }
    if (ep.bindingOn === mux) ep.bindingOn = null;
    if (ep.isClosed) {
      // Closed while the Bind was in flight: undo it.
      void sendUnbind(mux, resp.Id, this.connectTimeoutMs);
      return;
    }
    if (mux.isClosed || this.live?.mux !== mux) return;
    if (ep.id !== '' && ep.id !== resp.Id && this.byId.get(ep.id) === ep) this.byId.delete(ep.id);
    ep.id = resp.Id;
    ep.url = resp.URL;
    ep.boundOpts = resp.Opts !== null && typeof resp.Opts === 'object' ? (resp.Opts as unknown as Record<string, unknown>) : null;
    ep.bindToken = typeof resp.Extra?.Token === 'string' ? resp.Extra.Token : '';
    ep.boundOn = mux;
    ep.bindAttempts = 0;
    ep.lastError = null;
    ep.state = 'online';
    this.byId.set(ep.id, ep);
    ep.emit('online', ep.url);
    this.emit('endpoint-online', ep);
  }

  private dropEndpoint(ep: Endpoint, err: Error | undefined): void {
    if (!this.endpointSet.delete(ep)) return;
    if (ep.id !== '' && this.byId.get(ep.id) === ep) this.byId.delete(ep.id);
    this.releaseDialer(ep);
    ep.markClosed(err);
    this.emit('endpoint-closed', ep, err);
  }

  private releaseDialer(ep: Endpoint): void {
    const u = ep.spec.upstream;
    if (ep.dialer === null || u === null) return;
    const label = `${u.host}:${u.port}`;
    const d = this.dialers.get(label);
    if (d !== undefined && --d.refs === 0) {
      d.dialer.close();
      this.dialers.delete(label);
    }
  }

  // ---- relay-opened streams ----

  private onStream(mux: MuxSession, s: MuxStream): void {
    s.on('error', noop); // owners attach their own; an RST before that must not become an uncaught 'error'
    readStreamType(s).then(
      (type) => this.dispatch(mux, s, type),
      () => s.destroy(),
    );
  }

  private dispatch(mux: MuxSession, s: MuxStream, type: number): void {
    switch (type) {
      case STREAM_TYPE_PROXY:
        readProxyHeader(s).then(
          (h) => this.proxy(s, h),
          () => s.reset(MUX_PROTOCOL_ERROR),
        );
        return;
      case STREAM_TYPE_RESTART:
        this.command(s, {}, () => {
          this.emit('command', { type: 'restart', detail: 'the relay asked the agent to restart' });
          this.restart(mux);
        });
        return;
      case STREAM_TYPE_STOP:
        this.command(s, {}, () => {
          this.emit('command', { type: 'stop', detail: 'the relay asked the agent to stop' });
          void this.close();
        });
        return;
      case STREAM_TYPE_UPDATE:
        this.command(s, { Error: UPDATE_UNSUPPORTED }, () => this.emit('command', { type: 'update', detail: UPDATE_UNSUPPORTED }));
        return;
      case STREAM_TYPE_STOP_TUNNEL:
        readJsonMessage(s, { maxSize: MAX_COMMAND_SIZE, timeoutMs: this.connectTimeoutMs }).then(
          (req) => {
            // No answer on StopTunnel: just close our side (PROTOCOL.md §11).
            s.end();
            s.resume();
            const ep = typeof req['Id'] === 'string' ? this.byId.get(req['Id']) : undefined;
            const why = typeof req['Message'] === 'string' && req['Message'] !== '' ? req['Message'] : 'no reason given';
            this.emit('command', { type: 'stop-tunnel', detail: `${ep?.name ?? String(req['Id'])}: ${why}` });
            if (ep !== undefined) {
              this.dropEndpoint(ep, new BurrowError('BURROW_ERR_AGENT_TUNNEL_STOPPED', `the relay stopped endpoint ${ep.name} (${ep.url}): ${why}`));
            }
          },
          () => {},
        );
        return;
      case STREAM_TYPE_HEARTBEAT:
        serveHeartbeat(mux, s); // the relay may beat too (the SDK echoes such streams); reset when we close
        return;
      default:
        s.reset(MUX_STREAM_REFUSED);
    }
  }

  /** Relay → agent command RPC (PROTOCOL.md §11): read the request, answer, FIN; then act. */
  private command(s: MuxStream, answer: object, after: () => void): void {
    readJsonMessage(s, { maxSize: MAX_COMMAND_SIZE, timeoutMs: this.connectTimeoutMs }).then(
      () => {
        respondRpc(s, answer);
        s.resume();
        after();
      },
      () => {},
    );
  }

  /** Restart command: drop this session (the answer is already queued; ending the transport flushes it) and reconnect. */
  private restart(mux: MuxSession): void {
    if (this.live?.mux !== mux) return;
    const hook = this.lostHook;
    setImmediate(() => {
      hook?.({ err: new BurrowError('BURROW_ERR_MUX_SESSION_CLOSED', 'the relay asked the agent to restart') });
      mux.destroy();
    });
  }

  private proxy(s: MuxStream, h: ProxyHeader): void {
    const ep = this.byId.get(h.Id);
    if (ep === undefined || ep.isClosed) {
      s.reset(MUX_STREAM_REFUSED); // unknown tunnel id (closed meanwhile): nothing here serves it
      return;
    }
    forwardConnection(s, ep, h, this.stats, this.onUpstreamError);
  }
}

function noop(): void {}

/** Unbind tunnel `id` on `mux`; best effort (the session's end releases it anyway), never rejects. */
function sendUnbind(mux: MuxSession, id: string, timeoutMs: number): Promise<void> {
  return callRpc(mux, STREAM_TYPE_UNBIND, { Id: id }, { timeoutMs }).then(
    () => {},
    () => {},
  );
}

/** An Auth refusal that may pass later: the relay puts the code in AuthResp's Error text (agent-session.ts). */
const TEMPORARY_AUTH_REFUSAL = /\[BURROW_ERR_AUTH_(SESSION_LIMIT|RATE_LIMITED)\]/;

/** The relay's text from a BURROW_ERR_RPC_REMOTE error ("RPC type 1 failed at the peer: <text>"). */
function remoteText(err: unknown): string {
  const m = /failed at the peer: ([\s\S]*)$/.exec((err as Error).message);
  return (m === null ? (err as Error).message : m[1]!).trim();
}
