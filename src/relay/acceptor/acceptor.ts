// The acceptor (main thread, DESIGN.md §1): owns every listening socket, reads only what it needs to route a new
// connection (HTTP request head or TLS ClientHello, bounded, under a deadline), looks up the route and hands the
// connection to the worker that owns the endpoint. It also answers the workers' route reservations.
// Per-connection path: preread, one sniff per read, one route lookup, one handoff. Never touches payload after that.
import net from 'node:net';
import { once } from 'node:events';
import { BurrowError } from '../../core/errors.js';
import { parseClientHello, sniffOutcome } from '../../sniff/parse-client-hello.js';
import { headOutcome, sniffHttpHead } from '../../sniff/sniff-http-head.js';
import type {
  AcceptorToWorker,
  AuthReply,
  AuthRequest,
  MemberOutcome,
  MemberReport,
  PublicEntry,
  RerouteRequest,
  ReserveRequest,
  WorkerToAcceptor,
} from '../relay-messages.js';
import type { RelayLimits } from '../../config/relay-limits.js';
import { AuthLimiter } from './auth-limiter.js';
import { SHUTTING_DOWN_DETAIL, STATUS_TEXT, errorPage, unavailablePage } from '../../core/error-page.js';
import { isBalanceStrategy, pickMember, updateEwma, type BalanceStrategy } from '../../balancer/pick-member.js';
import { MemberBreaker, type BreakerCall, type BreakerState, type MemberBreakerOptions } from '../../breaker/member-breaker.js';
import { alertAndClose, endWith, turnAway } from '../close-with.js';
import { RouteTable, randomLabel, routeKey, type PoolMember, type Route } from './route-table.js';
import { wallMs } from '../../metrics/relay-recorder.js';
import type { ConnectionDispatcher } from './worker-pool.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface AcceptorOptions {
  domain: string;
  httpAddr: HostPort | null;
  httpsAddr: HostPort | null;
  agentAddr: HostPort | null;
  /** Host to bind TCP endpoint listeners on, and the host named in tcp:// URLs. */
  tcpBindHost: string;
  tcpPublicHost: string;
  tcpPorts: { from: number; to: number };
  /**
   * Whether the relay's certificate names `hostname` (RFC 6125 matching: a wildcard covers one label). An HTTP
   * endpoint on a name it does not cover gets its http:// URL in BindResp, since https:// would fail every client's
   * check. Absent: every name is covered.
   */
  certCovers?: (hostname: string) => boolean;
  prereadMax: number;
  prereadTimeoutMs: number;
  /** Balancing strategy for pools whose endpoints do not ask for one. */
  defaultStrategy: BalanceStrategy;
  /** After its last member leaves, a name or port stays reserved for its owner this long, ms. */
  reclaimGraceMs: number;
  /** Breaker settings for pool members. */
  breaker: MemberBreakerOptions;
  /** Randomness for the pickers (tests pin it). */
  rand?: () => number;
  limits: RelayLimits;
}

/** A pooled connection whose task has not ended: its member, its breaker call until settled, reports applied so far. */
interface PendingConn {
  member: PoolMember;
  call: BreakerCall | null;
  applied: number;
  /** TCP: settles the call as a success once the connection has stood --breaker-timeout without failing. */
  timer: NodeJS.Timeout | null;
  /** The timer settled the call: later reports of this connection's member are no verdict on it (applyReport). */
  stood: boolean;
}

/** Weight of a new time-to-first-byte sample in a member's EWMA. */
const EWMA_ALPHA = 0.3;
/** A ClientId the relay takes from Auth: printable ASCII, no spaces, bounded (ours are `sess_` + 12 base64url). */
const CLIENT_ID_RE = /^[\x21-\x7e]{1,128}$/;
/** A failure counts as this slow in the EWMA (µs), so P2C moves away from a failing member even before its breaker opens. */
const FAILURE_PENALTY_US = 1_000_000;
/**
 * An idle member's latency estimate is forgotten after this long without a sample (it is then "unknown" and gets the
 * next tie): p2c only samples the members it picks, so one slow answer or one failure would otherwise keep a healthy
 * member out of the pool for good (review finding).
 */
const EWMA_STALE_MS = 10_000;

/** Counters the acceptor keeps (read by metrics at scrape time). Keys are bounded: listener:outcome. */
export type AcceptorCounters = Map<string, number>;


export class Acceptor {
  readonly routes: RouteTable;
  readonly counters: AcceptorCounters;
  /** Pool member breaker transitions since start, by the state entered (burrow_breaker_transitions_total). */
  readonly breakerTransitions: Record<BreakerState, number>;
  private readonly opts: AcceptorOptions;
  private dispatcher: ConnectionDispatcher | null;
  private readonly servers: Map<string, net.Server>;
  private readonly tcpServers: Map<number, net.Server>;
  private readonly bound: Map<string, HostPort>;
  private readonly connectHost: string;
  private closing: boolean;
  private readonly emptyWaiters: Array<() => void>;
  private readonly pending: Map<number, PendingConn>;
  private nextConnId: number;
  private readonly rand: () => number;
  /** Open connections per client IP (every listener), for --max-conns-per-ip. */
  private readonly connsByIp: Map<string, number>;
  /** Sockets a worker task now owns: their end is reported by onConnectionDone, not by their 'close' here. */
  private readonly handedOff: WeakSet<net.Socket>;
  private readonly authLimiter: AuthLimiter;
  /** Live authenticated sessions per token id, and each session's token and worker (for --max-sessions-per-token). */
  private readonly sessionsByToken: Map<string, number>;
  private readonly sessionTokens: Map<string, { tokenId: string; workerId: number; clientId: string }>;
  /** Live authenticated session by its ClientId (an agent sends it again when it reconnects). */
  private readonly sessionsByClientId: Map<string, string>;

  constructor(opts: AcceptorOptions) {
    this.opts = opts;
    this.routes = new RouteTable();
    this.counters = new Map();
    this.breakerTransitions = { closed: 0, open: 0, 'half-open': 0 };
    this.dispatcher = null;
    this.servers = new Map();
    this.tcpServers = new Map();
    this.bound = new Map();
    this.connectHost = `connect.${opts.domain}`;
    this.closing = false;
    this.emptyWaiters = [];
    this.pending = new Map();
    this.nextConnId = 1;
    this.rand = opts.rand ?? Math.random;
    this.connsByIp = new Map();
    this.handedOff = new WeakSet();
    this.authLimiter = new AuthLimiter(opts.limits.authFailuresPerMinute);
    this.sessionsByToken = new Map();
    this.sessionTokens = new Map();
    this.sessionsByClientId = new Map();
  }

  /** Live authenticated sessions of token `tokenId` (0 when none). */
  sessionsOf(tokenId: string): number {
    return this.sessionsByToken.get(tokenId) ?? 0;
  }

  /** Open connections from `ip` the acceptor is accounting for. */
  connectionsFrom(ip: string): number {
    return this.connsByIp.get(ip) ?? 0;
  }

  /**
   * A handed-off connection's task ended (DispatcherOptions.onTaskDone); `connId` ≠ 0 settles its pool member's call,
   * after applying the reports (`reports`, from the task's result) the control port has not delivered yet.
   */
  onConnectionDone(remoteAddress: string, connId: number, reports?: readonly MemberOutcome[]): void {
    this.releaseIp(remoteAddress);
    if (connId !== 0) this.connDone(connId, reports);
  }

  setDispatcher(d: ConnectionDispatcher): void {
    this.dispatcher = d;
  }

  /** True between listen() and stopListening(): every configured listener is bound. */
  get listening(): boolean {
    return !this.closing && this.servers.size > 0;
  }

  /** The address each listener actually bound (port 0 resolved). */
  address(name: 'http' | 'https' | 'agent'): HostPort | null {
    return this.bound.get(name) ?? null;
  }

  async listen(): Promise<void> {
    const { httpAddr, httpsAddr, agentAddr } = this.opts;
    if (httpAddr !== null) await this.listenOne('http', httpAddr, (s) => this.onHttp(s));
    if (httpsAddr !== null) await this.listenOne('https', httpsAddr, (s) => this.onHttps(s));
    if (agentAddr !== null) await this.listenOne('agent', agentAddr, (s) => this.onAgent(s));
  }

  /** Stop accepting new connections on every listener (connections already handed off carry on). */
  async stopListening(): Promise<void> {
    this.closing = true;
    const all = [...this.servers.values(), ...this.tcpServers.values()];
    this.servers.clear();
    this.tcpServers.clear();
    // Not close(callback): that waits for every connection the server ever accepted to end, i.e. for sockets still
    // in preread or lingering after an error page, and in the single-threaded fallback for the live agent and public
    // connections themselves (relay.close() then never returned). The listening sockets close right here.
    for (const s of all) s.close();
  }

  /** Stop every pool member's breaker timers (after the workers are gone). */
  destroy(): void {
    for (const id of this.routes.endpointsWhere(() => true)) this.forget(id, 0);
    for (const p of this.pending.values()) {
      if (p.timer !== null) clearTimeout(p.timer);
      p.call?.ok();
    }
    this.pending.clear();
  }

  // ---- control channel from workers ----

  onControl(workerId: number, msg: WorkerToAcceptor, reply: (m: AcceptorToWorker) => void): void {
    switch (msg.op) {
      case 'reserve':
        this.reserve(workerId, msg).then(reply, (err: Error) =>
          reply({ op: 'reserve-reply', reqId: msg.reqId, ok: false, error: err.message, code: (err as BurrowError).code ?? 'BURROW_ERR_BIND_INVALID' }),
        );
        return;
      case 'release':
        // The key includes the session id: a stale session's release can never match a route reclaimed since.
        this.dropEndpoints([msg.endpointKey]);
        return;
      case 'session-gone':
        this.forgetSession(msg.sessionId);
        this.dropEndpoints(this.routes.endpointsWhere((m) => m.sessionId === msg.sessionId));
        return;
      case 'auth':
        reply(this.admit(workerId, msg));
        return;
      case 'stats-reply': // answered by the dispatcher, never forwarded here
      case 'control-ready':
        return;
      case 'member-report':
        this.onMemberReport(msg);
        return;
      case 'reroute':
        this.onReroute(msg);
        return;
    }
  }

  /** A worker died: every route it owned is gone (its agents reconnect and bind again). */
  onWorkerGone(workerId: number): void {
    for (const [sessionId, s] of this.sessionTokens) if (s.workerId === workerId) this.forgetSession(sessionId);
    this.dropEndpoints(this.routes.endpointsWhere((m) => m.workerId === workerId));
  }

  /**
   * An agent authenticates. Order matters: an address over its failure budget is refused whatever it sends (so a
   * guesser learns nothing while blocked); then an unknown token counts as a failure; then the token's session limit.
   */
  private admit(workerId: number, req: AuthRequest): AuthReply {
    const no = (code: string, error: string): AuthReply => ({ op: 'auth-reply', reqId: req.reqId, ok: false, code, error });
    // One admission per session: a second (the worker refuses one while another is in flight) would run the session
    // under one token while it is counted under another.
    if (this.sessionTokens.has(req.sessionId)) return no('BURROW_ERR_AUTH_FAILED', 'this session is already authenticated');
    const now = Date.now();
    const wait = this.authLimiter.blockedFor(req.remoteAddress, now);
    if (wait > 0) {
      this.count('agent:auth-rate-limited');
      return no(
        'BURROW_ERR_AUTH_RATE_LIMITED',
        `authentication refused: too many failed attempts from ${req.remoteAddress}; retry in ${Math.ceil(wait / 1000)} s with a valid token`,
      );
    }
    if (req.tokenId === '') {
      this.authLimiter.fail(req.remoteAddress, now);
      this.count('agent:auth-failed');
      return no('BURROW_ERR_AUTH_FAILED', req.reason);
    }
    const clientId = this.clientIdFor(req);
    const n = this.sessionsOf(req.tokenId);
    if (n >= req.maxSessions) {
      this.count('agent:session-limit');
      return no(
        'BURROW_ERR_AUTH_SESSION_LIMIT',
        `authentication refused: token ${req.tokenId} already has ${n} live sessions (limit ${req.maxSessions}); ` +
          "close one, or raise the token's sessions= rule or --max-sessions-per-token",
      );
    }
    this.sessionsByToken.set(req.tokenId, n + 1);
    this.sessionTokens.set(req.sessionId, { tokenId: req.tokenId, workerId, clientId });
    this.sessionsByClientId.set(clientId, req.sessionId);
    this.count('agent:authenticated');
    return { op: 'auth-reply', reqId: req.reqId, ok: true, clientId };
  }

  /**
   * The ClientId of an admitted session. An agent that reconnects sends the one it was given; when a live session of
   * the same token still has it, that session is the abandoned end of a link the agent gave up on (its heartbeat
   * failed, the laptop slept, the NAT forgot the flow) and the relay would keep its names for up to the liveness
   * timeout, refusing the agent's rebinds. It is superseded instead: its routes go now, its worker ends it. The same
   * rule as ngrok's: the newest session of a client wins. A ClientId live under another token, or not of the form
   * this relay hands out, is not taken over: the session gets a fresh one (its own session id).
   */
  private clientIdFor(req: AuthRequest): string {
    const wanted = req.clientId;
    if (!CLIENT_ID_RE.test(wanted)) return req.sessionId;
    const oldId = this.sessionsByClientId.get(wanted);
    if (oldId === undefined) return wanted;
    const old = this.sessionTokens.get(oldId);
    if (old === undefined || old.tokenId !== req.tokenId) return req.sessionId;
    this.forgetSession(oldId);
    this.dropEndpoints(this.routes.endpointsWhere((m) => m.sessionId === oldId));
    this.dispatcher?.postControl(old.workerId, {
      op: 'end-session',
      sessionId: oldId,
      reason: `superseded: the agent reconnected as ClientId ${wanted} on session ${req.sessionId} from ${req.remoteAddress}`,
    });
    this.count('agent:superseded');
    return wanted;
  }

  private forgetSession(sessionId: string): void {
    const s = this.sessionTokens.get(sessionId);
    if (s === undefined) return;
    this.sessionTokens.delete(sessionId);
    if (this.sessionsByClientId.get(s.clientId) === sessionId) this.sessionsByClientId.delete(s.clientId);
    const n = (this.sessionsByToken.get(s.tokenId) ?? 1) - 1;
    if (n <= 0) this.sessionsByToken.delete(s.tokenId);
    else this.sessionsByToken.set(s.tokenId, n);
    this.wakeIfDrained();
  }

  private async reserve(workerId: number, req: ReserveRequest): Promise<AcceptorToWorker> {
    if (this.closing) throw new BurrowError('BURROW_ERR_BIND_INVALID', 'the relay is shutting down; reconnect and bind again');
    // One route member per endpoint key: a second would be reachable from no index (byEndpoint keeps one entry per
    // key), so nothing could ever remove it and its name or port would stay taken.
    if (this.routes.getEndpoint(req.endpointKey) !== undefined) {
      throw new BurrowError('BURROW_ERR_BIND_CONFLICT', 'this endpoint Id is already bound on this session; Unbind it first, or bind without an Id');
    }
    const strategy = this.strategyFor(req);
    if (req.proto === 'tcp') return this.reserveTcp(workerId, req, strategy);
    if (req.proto !== 'tls' && this.opts.httpAddr === null && this.opts.httpsAddr === null) {
      throw new BurrowError('BURROW_ERR_BIND_INVALID', 'this relay has no http or https listener; it cannot serve HTTP endpoints');
    }
    if (req.proto === 'tls' && this.opts.httpsAddr === null) {
      throw new BurrowError('BURROW_ERR_BIND_INVALID', 'this relay has no https listener (--https-addr off); it cannot serve TLS endpoints');
    }
    const now = Date.now();
    let hostname = req.hostname;
    if (hostname === '') {
      do hostname = `${randomLabel()}.${this.opts.domain}`;
      while (this.routes.lookupHost(hostname) !== undefined || this.routes.reservedFor(`h:${hostname}`, now) !== null);
    }
    const existing = this.routes.lookupHost(hostname);
    if (existing !== undefined) {
      this.joinPool(existing, workerId, req, hostname);
    } else {
      this.checkReservation(routeKey(req.proto, hostname, 0), hostname, req.owner, now);
      this.routes.create(
        { proto: req.proto, hostname, port: 0, owner: req.owner, pooled: req.pooling, strategy },
        this.newMember(workerId, req, req.pooling, hostname),
      );
    }
    return { op: 'reserve-reply', reqId: req.reqId, ok: true, hostname, port: 0, url: this.urlFor(req.proto, hostname) };
  }

  /** The endpoint's own strategy (validated by the worker) or the relay's default. */
  private strategyFor(req: ReserveRequest): BalanceStrategy {
    return isBalanceStrategy(req.strategy) ? req.strategy : this.opts.defaultStrategy;
  }

  /**
   * A Bind for a name or port that is online: it may join only a pool of the same owner and kind, and only when both
   * sides enabled pooling. Every refusal says what to change.
   */
  private joinPool(route: Route, workerId: number, req: ReserveRequest, what: string): void {
    if (route.owner !== req.owner) {
      throw new BurrowError(
        'BURROW_ERR_BIND_CONFLICT',
        `${what} is already online and belongs to another auth token; pools are per owner, so choose another name`,
      );
    }
    if (!route.pooled || !req.pooling) {
      throw new BurrowError(
        'BURROW_ERR_BIND_CONFLICT',
        `${what} is already online (bound by another agent session); to serve it from several agents enable pooling on ` +
          'every one of them (burrow --pool, pool: true in burrow.yml, or poolingEnabled(true) in the ngrok SDK), or choose another name',
      );
    }
    if (route.proto !== req.proto) {
      throw new BurrowError(
        'BURROW_ERR_BIND_CONFLICT',
        `${what} is pooled as a ${route.proto} endpoint; a ${req.proto} endpoint cannot join it`,
      );
    }
    this.routes.join(route, this.newMember(workerId, req, true, what));
  }

  private checkReservation(key: string, what: string, owner: string, now: number): void {
    const holder = this.routes.reservedFor(key, now);
    if (holder !== null && holder !== owner) {
      throw new BurrowError(
        'BURROW_ERR_BIND_CONFLICT',
        `${what} was online a moment ago and is held for its owner for up to ${Math.ceil(this.opts.reclaimGraceMs / 1000)} s ` +
          'so that agent can reconnect; choose another name',
      );
    }
  }

  private newMember(workerId: number, req: ReserveRequest, pooled: boolean, what: string): PoolMember {
    const member: PoolMember = {
      endpointKey: req.endpointKey,
      sessionId: req.sessionId,
      workerId,
      authKey: req.authKey,
      available: true,
      outstanding: 0,
      ewmaUs: 0,
      ewmaAt: 0,
      breaker: null,
    };
    if (pooled) {
      // TCP: silence is not a failure. Client-speaks-first protocols (a database pool's idle connections) and
      // push-only ones get no first byte back for as long as they like; a broken member shows as a stream that ends
      // or is reset before any byte while the client is still there (public-pump.ts BytePipe), and a connection that
      // stands the deadline without that counts as a success (beginConn). HTTP(S): the worker keeps the first-byte
      // deadline itself, from when the first request has been sent whole (public-pump.ts firstRequestSent), so a
      // client's slow upload is not the member's failure. TLS passthrough: from the handoff (the ClientHello is in).
      const settings = req.proto === 'tls' ? this.opts.breaker : { ...this.opts.breaker, openTimeoutMs: 0 };
      member.breaker = new MemberBreaker(`${what}/${req.endpointKey}`, settings, (to) => {
        this.breakerTransitions[to]++;
        // `available` itself is recomputed from the breaker by pick(); the member's worker needs it for its retries.
        // Half-open is not available to them: its one probe is the acceptor's to send (a retry's outcome there would
        // not count, and the client's one retry would be spent on a member that may still be broken).
        this.dispatcher?.postControl(workerId, { op: 'member-state', endpointKey: req.endpointKey, available: to === 'closed' });
      });
    }
    return member;
  }

  private urlFor(proto: Route['proto'], hostname: string): string {
    const http = this.bound.get('http');
    const https = this.bound.get('https');
    const withPort = (scheme: string, hp: HostPort | undefined, dflt: number): string =>
      hp === undefined || hp.port === dflt ? `${scheme}://${hostname}` : `${scheme}://${hostname}:${hp.port}`;
    if (proto === 'tls') return withPort('tls', https, 443);
    if (proto === 'http' || https === undefined) return withPort('http', http, 80);
    // The dev certificate's *.<domain> does not cover a.b.<domain>: name the URL that works, when there is one.
    if (http !== undefined && this.opts.certCovers !== undefined && !this.opts.certCovers(hostname)) return withPort('http', http, 80);
    return withPort('https', https, 443);
  }

  private async reserveTcp(workerId: number, req: ReserveRequest, strategy: BalanceStrategy): Promise<AcceptorToWorker> {
    const { from, to } = this.opts.tcpPorts;
    const wanted = req.port;
    if (wanted !== 0 && (wanted < from || wanted > to)) {
      throw new BurrowError('BURROW_ERR_BIND_INVALID', `TCP port ${wanted} is outside this relay's --tcp-ports range ${from}-${to}`);
    }
    const url = (port: number): AcceptorToWorker =>
      ({ op: 'reserve-reply', reqId: req.reqId, ok: true, port, hostname: '', url: `tcp://${this.opts.tcpPublicHost}:${port}` });
    const now = Date.now();
    if (wanted !== 0) {
      const existing = this.routes.lookupPort(wanted);
      if (existing !== undefined) {
        if (!this.tcpServers.has(wanted)) {
          // Its first member's listen is still pending: if that fails, the route goes with that member, and a member
          // joined meanwhile would think it serves a port nothing listens on.
          throw new BurrowError('BURROW_ERR_BIND_CONFLICT', `TCP port ${wanted} is being bound by another session; retry the Bind`);
        }
        this.joinPool(existing, workerId, req, `TCP port ${wanted}`);
        return url(wanted);
      }
      this.checkReservation(`p:${wanted}`, `TCP port ${wanted}`, req.owner, now);
    }
    // A token's tcp= rule narrows where a random port may come from.
    const ranges = req.portRanges ?? [{ from, to }];
    // Relay-wide ports per token: without it, one tenant's sessions × endpoints (20 × 50 by default) cover the whole
    // default range, and rebinding within the reclaim grace would keep it. At the limit, a token may still take back
    // a port held for it in its grace period (an agent reconnecting), which does not raise its count.
    const maxPorts = this.opts.limits.maxTcpPortsPerToken;
    const atLimit = this.routes.tcpPortsHeldBy(req.owner, now) >= maxPorts;
    let candidates: number[];
    if (!atLimit) {
      candidates =
        wanted !== 0 ? [wanted] : ranges.flatMap((r) => this.freePortOrder(Math.max(from, r.from), Math.min(to, r.to), now, req.owner));
    } else if (wanted !== 0) {
      candidates = this.routes.reservedFor(`p:${wanted}`, now) === req.owner ? [wanted] : [];
    } else {
      candidates = ranges.flatMap((r) => this.routes.portsReservedFor(req.owner, Math.max(from, r.from), Math.min(to, r.to), now));
    }
    if (atLimit && candidates.length === 0) {
      throw new BurrowError(
        'BURROW_ERR_BIND_LIMIT',
        `this token already holds ${maxPorts} TCP ports on the relay (--max-tcp-ports-per-token ${maxPorts}, ports of ` +
          `endpoints that went offline included for --reclaim-grace); stop unused TCP endpoints or ask the operator to raise the limit`,
      );
    }
    for (const port of candidates) {
      if (wanted === 0 && this.routes.isPortTaken(port, now, req.owner)) continue;
      const route = this.routes.create(
        { proto: 'tcp', hostname: '', port, owner: req.owner, pooled: req.pooling, strategy },
        this.newMember(workerId, req, req.pooling, `TCP port ${port}`),
      );
      try {
        await this.listenTcp(port);
      } catch (err) {
        this.forget(req.endpointKey, 0);
        if (wanted !== 0) {
          throw new BurrowError('BURROW_ERR_BIND_CONFLICT', `TCP port ${port} cannot be bound: ${(err as Error).message}`);
        }
        continue;
      }
      if (this.routes.getEndpoint(req.endpointKey)?.route !== route) {
        // Released while we were binding.
        if (this.routes.lookupPort(port) === undefined) this.closeTcp(port);
        throw new BurrowError('BURROW_ERR_BIND_INVALID', 'endpoint released during Bind');
      }
      if (this.closing) {
        // Shutdown began while we were binding: stopListening() has closed every listener but this new one.
        this.forget(req.endpointKey, 0);
        this.closeTcp(port);
        throw new BurrowError('BURROW_ERR_BIND_INVALID', 'the relay is shutting down; reconnect and bind again');
      }
      return url(port);
    }
    if (req.portRanges !== undefined) {
      const mine = req.portRanges.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(', ');
      throw new BurrowError('BURROW_ERR_BIND_EXHAUSTED', `no free TCP port among this token's ports ${mine} within --tcp-ports ${from}-${to}; stop unused TCP endpoints`);
    }
    throw new BurrowError('BURROW_ERR_BIND_EXHAUSTED', `no free TCP port in --tcp-ports ${from}-${to}; widen the range or stop unused TCP endpoints`);
  }

  /** Ports of the range in a random rotation, so endpoints do not all pile on the first ports. */
  private freePortOrder(from: number, to: number, now: number, owner: string): number[] {
    const n = to - from + 1;
    if (n <= 0) return [];
    const start = Math.floor(Math.random() * n);
    const out: number[] = [];
    for (let i = 0; i < n && out.length < 64; i++) {
      const p = from + ((start + i) % n);
      if (!this.routes.isPortTaken(p, now, owner)) out.push(p);
    }
    return out;
  }

  /**
   * Remove endpoints from the table (keys no route holds are skipped): breakers stop, TCP listeners of emptied routes
   * close, names stay reserved for their owners a while.
   */
  private dropEndpoints(keys: string[]): void {
    for (const key of keys) this.forget(key, this.opts.reclaimGraceMs);
  }

  private forget(endpointKey: string, graceMs: number): void {
    const gone = this.routes.remove(endpointKey, graceMs, Date.now());
    if (gone === undefined) return;
    gone.member.breaker?.shutdown();
    if (gone.last && gone.route.proto === 'tcp') this.closeTcp(gone.route.port);
    this.wakeIfDrained();
  }

  /** No route and no authenticated session left: what a shutdown waits for (whenDrained). */
  private get drained(): boolean {
    return this.routes.size === 0 && this.sessionTokens.size === 0;
  }

  private wakeIfDrained(): void {
    if (this.emptyWaiters.length > 0 && this.drained) for (const w of this.emptyWaiters.splice(0)) w();
  }

  // ---- pools: picking a member, breaker outcomes ----

  /**
   * The member for a new connection, or null when none can take it (every breaker open). A route without pooling has
   * one member and no breaker: that path is one array read. A reroute names the member that failed (`exclude`) and
   * its credentials (`authKey`): the client's bytes carry an Authorization for them, which a member without basic
   * auth would pass to its service and one with other credentials would refuse.
   */
  private pick(route: Route, exclude: string | null = null, authKey: string | null = null): PoolMember | null {
    const members = route.members;
    if (!route.pooled) return members[0] ?? null;
    const now = route.strategy === 'p2c-ewma' ? Date.now() : 0;
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!;
      m.available = m.endpointKey !== exclude && (authKey === null || m.authKey === authKey) && (m.breaker === null || m.breaker.admits);
      if (now !== 0 && m.ewmaUs !== 0 && m.outstanding === 0 && now - m.ewmaAt > EWMA_STALE_MS) m.ewmaUs = 0;
    }
    const i = pickMember(route.strategy, members, route, this.rand);
    return i < 0 ? null : members[i]!;
  }

  /** Hand a routed connection to the picked member's worker; pooled members get a breaker call and a conn id. */
  private dispatchTo(socket: net.Socket, buf: Buffer, member: PoolMember, entry: PublicEntry, hostname: string, sni: string): void {
    const connId = this.beginConn(member, entry === 'tcp');
    if (connId < 0) {
      closeRefused(socket, entry, hostname);
      return;
    }
    const owned = this.dispatcher!.dispatchPublic(
      socket,
      buf,
      { entry, endpointKey: member.endpointKey, hostname, sni, connId, rerouted: false, ...meta(socket) },
      member.workerId,
    );
    if (owned) this.handedOff.add(socket);
    else if (connId !== 0) this.connDone(connId); // no task will end for it
  }

  /**
   * Breaker call + conn id for a connection to `member`: 0 for a member without a breaker (nothing to settle), -1 when
   * its breaker refuses (the half-open probe slot went between pick and here — not possible on one thread; a guard).
   * The task's end (onConnectionDone) settles it.
   *
   * TCP members' breakers have no first-byte deadline (newMember): a TCP connection that has stood that long without
   * its stream failing settles as a success instead, so a half-open member's probe (an idle connection of a
   * client-speaks-first protocol) decides in that time rather than when the client finally speaks or leaves.
   */
  private beginConn(member: PoolMember, tcp: boolean): number {
    if (member.breaker === null) return 0;
    const call = member.breaker.begin();
    if (call === null) return -1;
    const connId = this.nextConnId++;
    if (this.nextConnId > 0x3fffffff) this.nextConnId = 1;
    const p: PendingConn = { member, call, applied: 0, timer: null, stood: false };
    if (tcp) {
      p.timer = setTimeout(() => {
        p.timer = null;
        p.stood = p.call !== null;
        p.call?.ok();
        p.call = null;
      }, this.opts.breaker.openTimeoutMs);
      p.timer.unref();
    }
    this.pending.set(connId, p);
    member.outstanding++;
    return connId;
  }

  /** A worker hands back a connection whose member failed: one more try on a member of another worker. */
  private onReroute(msg: RerouteRequest): void {
    this.count(`${msg.entry}:rerouted`);
    const route = this.routes.lookupKey(msg.poolKey);
    const member = route === undefined ? null : this.pick(route, msg.failedEndpointKey, msg.authKey);
    const connId = member === null ? -1 : this.beginConn(member, msg.entry === 'tcp');
    const head = Buffer.from(msg.head.buffer, msg.head.byteOffset, msg.head.byteLength);
    if (member === null || connId < 0) {
      // Nobody else can take it: answer here, as the worker would have (and count its end, which no worker does).
      this.count(`${msg.entry}:reroute-failed`);
      const socket = new net.Socket({ fd: msg.fd, readable: true, writable: true, allowHalfOpen: true });
      turnAway(socket, msg.entry, () => errorPage(502, 'Bad Gateway', `No agent serving ${msg.hostname} could take this request; try again shortly.`));
      return;
    }
    const { fd: _fd, head: _head, op: _op, poolKey: _key, failedEndpointKey: _failed, authKey: _auth, ...rest } = msg;
    // The first task's end releases this client's per-IP count; the new task holds the connection now and releases it
    // again when it ends.
    this.connsByIp.set(msg.remoteAddress, (this.connsByIp.get(msg.remoteAddress) ?? 0) + 1);
    this.dispatcher!.dispatchPublicFd(msg.fd, head, { ...rest, endpointKey: member.endpointKey, connId, rerouted: true }, member.workerId);
  }

  private onMemberReport(msg: MemberReport): void {
    const p = this.pending.get(msg.connId);
    // After the task's end the result carried this report already (connDone applied it): nothing left to do.
    if (p === undefined) return;
    this.applyReport(p, msg);
  }

  /** One member report of a pooled connection: EWMA, and its breaker call (or, for a retry's member, a record). */
  private applyReport(p: PendingConn, r: MemberOutcome): void {
    p.applied++;
    const member = p.member.endpointKey === r.endpointKey ? p.member : this.routes.getEndpoint(r.endpointKey)?.member;
    if (member === undefined) return;
    // A TCP connection that stood the deadline counted as a success; what it meets later (an upstream that closes an
    // idle connection without a byte) is not the member's failure, nor a time to first byte.
    if (member === p.member && p.stood) return;
    member.ewmaUs = updateEwma(member.ewmaUs, r.ok ? r.ttfbUs : Math.max(r.ttfbUs, FAILURE_PENALTY_US), EWMA_ALPHA);
    member.ewmaAt = Date.now();
    if (p.member === member && p.call !== null) {
      if (r.ok) p.call.ok();
      else p.call.fail(r.reason);
      p.call = null;
    } else {
      member.breaker?.record(r.ok, r.reason); // a retry the worker made on this member
    }
  }

  /**
   * A pooled connection's task ended: apply the reports the control port has not delivered (they went out first, but
   * on another port), then settle the call if nothing did: neutral, counted as ok (the client left before a request).
   */
  private connDone(connId: number, reports?: readonly MemberOutcome[]): void {
    const p = this.pending.get(connId);
    if (p === undefined) return;
    if (reports !== undefined) for (let i = p.applied; i < reports.length; i++) this.applyReport(p, reports[i]!);
    this.pending.delete(connId);
    p.member.outstanding--;
    if (p.timer !== null) clearTimeout(p.timer);
    p.call?.ok();
  }

  /**
   * Resolves once no endpoint is bound and no authenticated session is left, or after `timeoutMs`. Sessions count on
   * their own: one whose endpoints were unbound still carries their open connections until they end.
   */
  whenDrained(timeoutMs: number): Promise<void> {
    if (this.drained) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const waiters = this.emptyWaiters;
      function done(): void {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      }
      waiters.push(done);
    });
  }

  // ---- listeners ----

  private async listenOne(name: 'http' | 'https' | 'agent', addr: HostPort, onConn: (s: net.Socket) => void): Promise<void> {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true }, onConn);
    server.listen({ host: addr.host, port: addr.port, backlog: 4096 });
    try {
      await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
    } catch (err) {
      throw new BurrowError(
        'BURROW_ERR_RELAY_LISTEN',
        `--${name}-addr ${addr.host}:${addr.port}: cannot listen (${(err as Error).message}); free the port or pick another address`,
      );
    }
    // Only now: a failed listen is the error above, not also a warning printed before it.
    server.on('error', (err) => process.emitWarning(`burrow ${name} listener error: ${err.message}`));
    const a = server.address() as net.AddressInfo;
    this.bound.set(name, { host: addr.host, port: a.port });
    this.servers.set(name, server);
  }

  private async listenTcp(port: number): Promise<void> {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true }, (s) => this.onTcp(port, s));
    server.listen({ host: this.opts.tcpBindHost, port, backlog: 1024 });
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
    server.on('error', (err) => process.emitWarning(`burrow tcp:${port} listener error: ${err.message}`));
    this.tcpServers.set(port, server);
  }

  private closeTcp(port: number): void {
    const s = this.tcpServers.get(port);
    if (s !== undefined) {
      this.tcpServers.delete(port);
      s.close();
    }
  }

  private count(key: string): void {
    this.counters.set(key, (this.counters.get(key) ?? 0) + 1);
  }

  /**
   * Per-IP connection accounting (--max-conns-per-ip): false (socket closed, counted) when `socket`'s address is at
   * its limit. The count drops when the socket closes here, or, once handed off, when its worker task ends.
   */
  private admitConnection(socket: net.Socket, listener: string): boolean {
    const ip = clientIp(socket);
    const n = this.connsByIp.get(ip) ?? 0;
    if (n >= this.opts.limits.maxConnsPerIp) {
      this.count(`${listener}:ip-limit`);
      socket.destroy();
      return false;
    }
    this.connsByIp.set(ip, n + 1);
    socket.once('close', () => {
      if (!this.handedOff.has(socket)) this.releaseIp(ip);
    });
    return true;
  }

  private releaseIp(ip: string): void {
    const n = (this.connsByIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.connsByIp.delete(ip);
    else this.connsByIp.set(ip, n);
  }

  private handAgent(socket: net.Socket, head: Buffer): void {
    // A connection still in preread when the drain began would become a session on a draining worker, which refuses
    // its Binds and would hold it until the pool is destroyed: refuse it now, so the agent reconnects elsewhere.
    if (this.closing) {
      this.count('agent:draining');
      socket.destroy();
      return;
    }
    if (this.dispatcher!.dispatchAgent(socket, head, meta(socket))) this.handedOff.add(socket);
  }

  private onAgent(socket: net.Socket): void {
    this.count('agent:accepted');
    if (!this.admitConnection(socket, 'agent')) return;
    // Nothing to sniff: every connection here is an agent; the worker's TLS handshake validates it.
    this.handAgent(socket, Buffer.alloc(0));
  }

  private onTcp(port: number, socket: net.Socket): void {
    if (!this.admitConnection(socket, 'tcp')) return;
    const route = this.routes.lookupPort(port);
    if (route === undefined) {
      this.count('tcp:no-route');
      socket.destroy();
      return;
    }
    const member = this.pick(route);
    if (member === null) {
      this.count('tcp:pool-unavailable');
      socket.destroy();
      return;
    }
    this.count('tcp:routed');
    this.dispatchTo(socket, Buffer.alloc(0), member, 'tcp', '', '');
  }

  private onHttp(socket: net.Socket): void {
    if (!this.admitConnection(socket, 'http')) return;
    preread(socket, this.opts.prereadMax, this.opts.prereadTimeoutMs, (how) => this.count(`http:${how}`), (buf, timedOut, chunk) => {
      // A head ends with a blank line: after the first read (which catches non-HTTP early), re-sniff only when a read
      // brings one, or at the size limit or the deadline. Re-sniffing on every LF cost O(n²) for a client sending one
      // header line per read (~170 ms of this thread per 16 KiB head, review finding); by the sniff's prefix rule
      // (sniff-http-head.ts) skipping reads changes no answer, only how early an error in a header line shows.
      if (!timedOut && buf !== chunk && buf.length < this.opts.prereadMax && !mayEndHead(buf, buf.length - chunk.length)) {
        return false;
      }
      // Sniffed at the deadline too: a head with a bad line already read gets its 400 (or 505), as it would have at that
      // line; only one still incomplete gets the 408.
      const r = sniffHttpHead(buf, this.opts.prereadMax);
      if (r.kind === 'need-more') {
        if (!timedOut) return false;
        this.count('http:timeout');
        // Nothing sent at all (a browser's preconnect, a port scan): close without an answer to no request, as nginx
        // and haproxy do. A started head gets its 408.
        if (buf.length === 0) return () => endWith(socket, EMPTY_PREREAD);
        return () => endWith(socket, errorPage(408, 'Request Timeout', `No complete request head within ${this.opts.prereadTimeoutMs} ms.`));
      }
      this.count(`http:${headOutcome(r)}`);
      if (r.kind === 'head') {
        if (this.closing) {
          // Read before the drain began: the sessions are leaving, so the route may be gone already. Not a 404.
          this.count('http:draining');
          return () => endWith(socket, unavailablePage(SHUTTING_DOWN_DETAIL));
        }
        const route = this.routes.lookupHost(r.hostname);
        if (route === undefined || route.proto === 'tcp' || route.proto === 'tls') {
          this.count('http:no-route');
          const what = r.hostname || '(no Host header)';
          return () => endWith(socket, errorPage(404, 'Not Found', `Tunnel ${what} not found: no agent is serving this host on this relay.`));
        }
        const member = this.pick(route);
        if (member === null) {
          this.count('http:pool-unavailable');
          return () => closeRefused(socket, 'http', r.hostname);
        }
        return () => this.dispatchTo(socket, buf, member, 'http', r.hostname, '');
      }
      if (r.kind === 'too-large') {
        return () => endWith(socket, errorPage(431, 'Request Header Fields Too Large', `The request head exceeds ${this.opts.prereadMax} bytes.`));
      }
      // 400, or the sniff's own status for an invalid head (505 for an unsupported version).
      const status = r.kind === 'invalid' ? r.status : 400;
      const why = r.kind === 'not-http' ? 'This port speaks HTTP/1.1.' : r.reason;
      return () => endWith(socket, errorPage(status, STATUS_TEXT[status]!, why));
    });
  }

  private onHttps(socket: net.Socket): void {
    if (!this.admitConnection(socket, 'https')) return;
    let atLeast = 0; // the parser tells how many bytes it needs before its answer can change
    preread(socket, this.opts.prereadMax, this.opts.prereadTimeoutMs, (how) => this.count(`https:${how}`), (buf, timedOut) => {
      if (timedOut) {
        this.count('https:timeout');
        return () => socket.destroy();
      }
      if (buf.length < atLeast) return false;
      const r = parseClientHello(buf, this.opts.prereadMax);
      if (r.kind === 'need-more') {
        atLeast = r.atLeast;
        return false;
      }
      this.count(`https:${sniffOutcome(r)}`);
      if (r.kind !== 'hello') return () => socket.destroy();
      if (r.sni === null) return () => alertAndClose(socket);
      const sni = r.sni;
      if (sni === this.connectHost) return () => this.handAgent(socket, buf);
      if (this.closing) {
        this.count('https:draining'); // a close, not an unrecognized_name alert: the name may be fine elsewhere
        return () => socket.destroy();
      }
      const route = this.routes.lookupHost(sni);
      if (route === undefined || route.proto === 'tcp') {
        this.count('https:no-route');
        return () => alertAndClose(socket);
      }
      const entry = route.proto === 'tls' ? 'tls' : 'https';
      const member = this.pick(route);
      if (member === null) {
        this.count('https:pool-unavailable');
        return () => closeRefused(socket, entry, sni);
      }
      return () => this.dispatchTo(socket, buf, member, entry, sni, sni);
    });
  }
}

type Act = () => void;

/**
 * Whether the bytes from `from` on bring an LF that ends a blank line (after LF, or after LF CR), i.e. may complete a
 * request head. Looks back up to two bytes across the read boundary; cost linear in the new bytes.
 */
function mayEndHead(buf: Buffer, from: number): boolean {
  for (let i = buf.indexOf(0x0a, from); i >= 0; i = buf.indexOf(0x0a, i + 1)) {
    if (i >= 1 && buf[i - 1] === 0x0a) return true;
    if (i >= 2 && buf[i - 1] === 0x0d && buf[i - 2] === 0x0a) return true;
  }
  return false;
}

/**
 * No member of the pool can take the connection (every breaker open): HTTP gets a 503 page with Retry-After (the
 * breakers half-open within seconds), TLS an alert, TCP a close.
 */
function closeRefused(socket: net.Socket, entry: PublicEntry, hostname: string): void {
  turnAway(socket, entry, () => unavailablePage(`Every agent serving ${hostname} is failing right now; try again in a few seconds.`));
}

/**
 * The client's address as agents and limits see it: an IPv4 client of a dual-stack (`::`) listener arrives as
 * `::ffff:a.b.c.d`; it is the same client as `a.b.c.d` on an IPv4 listener (one per-IP count, an IPv4 ProxyHeader).
 */
export function clientIp(socket: net.Socket): string {
  const a = socket.remoteAddress ?? '';
  if (!a.startsWith('::ffff:')) return a; // libuv prints addresses in lowercase; the usual case allocates nothing
  const v4 = a.slice(7);
  return net.isIPv4(v4) ? v4 : a;
}

function meta(socket: net.Socket): { remoteAddress: string; remotePort: number; acceptedAt: number } {
  return { remoteAddress: clientIp(socket), remotePort: socket.remotePort ?? 0, acceptedAt: wallMs() };
}

const EMPTY_PREREAD = Buffer.alloc(0);

/**
 * Read from a paused socket until `decide` returns an action (hand off or answer; run once reading has stopped)
 * or the deadline passes.
 * `decide` sees everything read so far. Reading stops in the same tick as the decision, so bytes not yet read stay
 * in the kernel for whoever gets the descriptor next. `onCut` runs when the client ends its side ('truncated': a
 * truncated ClientHello or head) or the connection fails ('reset') before a decision (DESIGN.md §6: every outcome is
 * counted).
 */
function preread(
  socket: net.Socket,
  max: number,
  timeoutMs: number,
  onCut: (how: 'truncated' | 'reset') => void,
  decide: (buf: Buffer, timedOut: boolean, chunk: Buffer) => Act | false,
): void {
  let buf: Buffer = Buffer.alloc(0);
  let store: Buffer | null = null;
  let done = false;
  const finish = (): void => {
    done = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.pause();
  };
  // The 'error' listener below outlives the preread and shares this scope: drop the bytes once decided, or the
  // single-threaded fallback (which keeps this socket) would hold them for the connection's life.
  const release = (): void => {
    buf = EMPTY_PREREAD;
    store = null;
  };
  const onData = (chunk: Buffer): void => {
    if (done) return;
    // Whole chunks are kept (a body may follow the head in the same read and must reach the worker); the
    // sniffers stop looking at `max`, so this holds at most max + one read. The usual case is one read (no copy);
    // after that, bytes go into a doubling store so a byte-at-a-time client costs O(n) copying.
    if (buf.length === 0) {
      buf = chunk;
    } else {
      const need = buf.length + chunk.length;
      if (store === null || need > store.length) {
        const next = Buffer.allocUnsafe(Math.max(need, 2 * (store?.length ?? 2048)));
        buf.copy(next, 0);
        store = next;
      } else if (buf.buffer !== store.buffer) {
        buf.copy(store, 0);
      }
      chunk.copy(store, buf.length);
      buf = store.subarray(0, need);
    }
    const act = decide(buf, false, chunk);
    if (act !== false) {
      finish(); // stop reading before the handoff: an unshift or a new owner must not re-enter here
      release();
      act();
    } else if (buf.length > max) {
      // A sniffer that still wants more past the limit is a bug; never buffer on.
      finish();
      socket.destroy();
    }
  };
  const onEnd = (): void => {
    if (done) return;
    finish();
    onCut('truncated');
    socket.destroy();
  };
  const timer = setTimeout(() => {
    if (done) return;
    finish();
    const read = buf;
    release();
    const act = decide(read, true, read);
    if (act !== false) act();
  }, timeoutMs);
  timer.unref();
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', () => {
    if (!done) {
      finish();
      onCut('reset');
    }
    socket.destroy();
  });
  socket.resume();
}
