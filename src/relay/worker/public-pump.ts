// Public connection → proxy stream pumps (DESIGN.md §2): HTTP with streaming head inspection, HTTPS terminated here,
// TLS passthrough and TCP as opaque byte pipes. HOT PATH: the data handlers below run per chunk; they are methods
// bound once per connection, write straight through, and honour write() === false / 'drain' both ways so memory is
// bounded by the stream windows.
import tls from 'node:tls';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { MuxStream } from '../../mux/mux-stream.js';
import { enableDirectReads } from '../../mux/direct-reads.js';
import { enableHeadroomReads } from '../../mux/headroom-reads.js';
import { HttpResponseTracker } from '../../sniff/http-response-tracker.js';
import { ResponseHeadRewriter } from '../../sniff/response-head-rewriter.js';
import { HttpRequestFilter, type HttpFilterSink } from '../../sniff/http-request-filter.js';
import type { PublicTask, PublicTaskMeta, TaskResult } from '../relay-messages.js';
import type { Endpoint } from './agent-session.js';
import type { WorkerRuntime } from './worker-runtime.js';
import { SHUTTING_DOWN_DETAIL, STATUS_TEXT, errorPage, unavailablePage } from '../../core/error-page.js';
import { endWith, turnAway } from '../close-with.js';
import { ownChunk } from './shared-read.js';
import { proxyProtocolHeader } from './proxy-protocol.js';
import { RequestClock } from './request-clock.js';
import { EP_REQUESTS, TYPE_HTTP, TYPE_HTTPS, endpointTypeIndex, wallMs, type RelayRecorder } from '../../metrics/relay-recorder.js';


/** `endpointRow`: the per-endpoint counters (`--metrics-per-endpoint`), or null. */
export function pumpPublic(
  runtime: WorkerRuntime,
  socket: net.Socket,
  head: Buffer,
  task: PublicTaskMeta,
  endpointRow: Float64Array | null = null,
): Promise<TaskResult> {
  const ep = runtime.endpoints.get(task.endpointKey);
  if (task.remoteAddress === '') {
    // The client reset before the acceptor could read its address: nothing to serve, and X-Forwarded-For could not
    // be written (HttpRequestFilter refuses an empty client IP).
    socket.destroy();
    return Promise.resolve({ bytesIn: 0, bytesOut: 0, outcome: 'closed' });
  }
  const clientAddr = formatAddr(task.remoteAddress, task.remotePort);
  if (runtime.draining) {
    // Handed over as the shutdown began: a retry reaches the relay that replaces this one.
    return refuse(socket, task.entry, 'draining', task.hostname, '', () => unavailablePage(SHUTTING_DOWN_DETAIL));
  }
  if (ep === undefined) {
    // The endpoint went away between routing and handoff.
    return refuse(socket, task.entry, 'endpoint-gone', task.hostname, 'The tunnel for this host went offline a moment ago.');
  }
  if (ep.ipPolicy !== null && !ep.ipPolicy.allows(task.remoteAddress)) {
    // Opts.IPRestriction (endpoint-options.ts). The page does not name the allowed networks: they are the owner's.
    runtime.recorder.error('BURROW_ERR_RELAY_IP_RESTRICTED');
    const page = (): Buffer => errorPage(403, 'Forbidden', `${task.hostname} does not accept connections from ${task.remoteAddress}.`);
    if (task.entry === 'https') return refuseOverTls(runtime, socket, head, 'ip-restricted', page);
    // TCP and TLS passthrough: closed, no alert (unrecognized_name would be untrue).
    return refuse(socket, task.entry === 'http' ? 'http' : 'tcp', 'ip-restricted', task.hostname, '', page);
  }
  const limit = runtime.settings.limits.maxConnsPerEndpoint;
  if (ep.active >= limit) {
    // One endpoint must not take every socket of the worker.
    runtime.recorder.error('BURROW_ERR_RELAY_CONN_LIMIT');
    const page = (): Buffer => errorPage(503, 'Service Unavailable', `${task.hostname} has ${limit} open connections, its limit; retry shortly.`);
    return refuse(socket, task.entry, 'endpoint-limit', task.hostname, '', page);
  }
  if (task.entry === 'tcp' || task.entry === 'tls') {
    const opened = openOnMember(runtime, ep, clientAddr, socket, task, head.length > 0 ? head : undefined);
    if (opened === null) return refuse(socket, task.entry, 'stream-refused', task.hostname, '');
    runtime.recorder.streamOpened(endpointTypeIndex(task.entry), task.acceptedAt);
    return new BytePipe(runtime, socket, opened.stream, opened.ep, task, head, clientAddr, task.rerouted || opened.ep !== ep).done;
  }
  if (task.entry === 'https') {
    const t = terminateTls(runtime, socket, head);
    // Each decrypted record to the pump without an allocation + Readable push; one read buffer per thread, since
    // public connections are many and mostly idle (mux/direct-reads.ts).
    enableDirectReads(t, { shared: true });
    if (runtime.recorder.enabled) {
      const tlsStart = wallMs(); // with --metrics off: no clock read, no listener
      t.once('secure', () => runtime.recorder.tlsHandshake(false, tlsStart));
    }
    return new HttpPump(runtime, t, socket, ep, 'https', task, clientAddr, null, endpointRow).done;
  }
  return new HttpPump(runtime, socket, socket, ep, 'http', task, clientAddr, head, endpointRow).done;
}

const EMPTY_HEAD = Buffer.alloc(0);
/**
 * ALPN of a terminated https endpoint: HTTP/1.1 only (the pump speaks nothing else). A client that offers h2 and
 * http/1.1 gets http/1.1 named; one that offers only h2 (gRPC) gets the no_application_protocol alert (RFC 7301 §3.2)
 * instead of a handshake followed by an HTTP/1.1 error page it cannot read. gRPC belongs on a tls endpoint, where ALPN
 * is end to end. Wire format (length-prefixed names), built once.
 */
const HTTPS_ALPN = Buffer.from('\x08http/1.1', 'latin1');

function refuse(socket: net.Socket, entry: PublicTask['entry'], outcome: string, host: string, detail: string, page?: () => Buffer): Promise<TaskResult> {
  return new Promise((resolve) => {
    socket.once('close', () => resolve({ bytesIn: socket.bytesRead, bytesOut: socket.bytesWritten, outcome }));
    // The same answers the acceptor gives when it has no route (the TLS handshake has not started here).
    turnAway(socket, entry, page ?? (() => errorPage(502, 'Bad Gateway', `No agent is serving ${host} right now. ${detail}`)));
  });
}

/**
 * The PROXY protocol header for a stream to `ep` (Opts.ProxyProto), or undefined when it has none. The relay-side
 * address is the client's socket's own (getsockname on this worker's descriptor), read only for such endpoints.
 */
function leadFor(ep: Endpoint, socket: net.Socket, task: PublicTaskMeta): Buffer | undefined {
  if (ep.proxyProto === 0) return undefined;
  return proxyProtocolHeader(ep.proxyProto, task.remoteAddress, task.remotePort, socket.localAddress ?? '', socket.localPort ?? 0);
}

/** TLS terminated here for an https endpoint: the ClientHello the acceptor read goes back in front of the socket for OpenSSL. */
function terminateTls(runtime: WorkerRuntime, socket: net.Socket, head: Buffer): tls.TLSSocket {
  if (head.length > 0) socket.unshift(head);
  return new tls.TLSSocket(socket, { isServer: true, secureContext: runtime.secureContext, ALPNProtocols: HTTPS_ALPN });
}

/**
 * An https connection refused with a page: TLS is terminated here first (the client would not read a page in clear), then
 * the page is sent and the connection closed. A handshake that does not finish in time is cut.
 */
function refuseOverTls(runtime: WorkerRuntime, socket: net.Socket, head: Buffer, outcome: string, page: () => Buffer): Promise<TaskResult> {
  return new Promise((resolve) => {
    const t = terminateTls(runtime, socket, head);
    const timer = setTimeout(() => socket.destroy(), REFUSAL_HANDSHAKE_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ bytesIn: socket.bytesRead, bytesOut: socket.bytesWritten, outcome });
    });
    t.on('error', () => socket.destroy());
    t.once('secure', () => {
      clearTimeout(timer);
      endWith(t, page());
    });
  });
}

/** How long refuseOverTls waits for the client's TLS handshake. */
const REFUSAL_HANDSHAKE_MS = 10_000;

/**
 * Opaque bidirectional pipe (tcp, tls passthrough) with half-close and backpressure. On a pooled endpoint the first
 * outcome is reported, and a stream that fails before any byte either way is retried once on another local member
 * (the head — a TLS ClientHello — is sent again; nothing else had been forwarded).
 *
 * Memory: thousands of these sit idle at once (issue #7: ≤ 10 KiB per idle connection at the relay), so the pipe
 * holds no closures. Its listeners are the module-level functions below, which find the pipe through a symbol field
 * on the socket or stream (`this` is the emitter). Two `pipe()` calls cost ~2 KiB per connection (nine closures, a
 * context and two `once` wrappers each; heap snapshot of a worker, bench/RESULTS.md 2026-11-28 perf entry).
 * Throughput: stream → socket writes are corked for one event-loop turn (one writev for every piece of a turn, as
 * BatchedPipe does at the agent); a mux stream delivers one piece per TLS record.
 */
class BytePipe {
  readonly done: Promise<TaskResult>;
  private resolve!: (r: TaskResult) => void;
  private readonly runtime: WorkerRuntime;
  readonly socket: net.Socket;
  stream: MuxStream;
  private ep: Endpoint;
  private readonly task: PublicTaskMeta;
  private readonly connId: number;
  /** The bytes to send again on a retry (a TLS ClientHello); dropped once no retry is possible. */
  private head: Buffer;
  private readonly clientAddr: string;
  private retried: boolean;
  /** Handed back to the acceptor for another worker (its end is counted there, not here). */
  private rerouted: boolean;
  private gotData: boolean;
  /** The stream whose failure before any byte was reported (one report per stream). */
  private failedStream: MuxStream | null;
  /** The socket is corked until the next setImmediate (stream → socket pieces of this turn go out as one writev). */
  corked: boolean;
  private readonly openedAt: number;
  /** Client bytes read before the pipe started (the single-threaded fallback hands over a socket that read the head). */
  private readonly baseRead: number;
  /** Endpoint type index for the recorder (burrow_ttfb_seconds). */
  private readonly type: number;

  constructor(
    runtime: WorkerRuntime,
    socket: net.Socket,
    stream: MuxStream,
    ep: Endpoint,
    task: PublicTaskMeta,
    head: Buffer,
    clientAddr: string,
    retried: boolean,
  ) {
    const connId = task.connId;
    this.runtime = runtime;
    this.socket = socket;
    this.stream = stream;
    this.ep = ep;
    this.task = task;
    this.connId = connId;
    this.head = head;
    this.clientAddr = clientAddr;
    this.retried = retried;
    this.rerouted = false;
    this.gotData = false;
    this.failedStream = null;
    this.corked = false;
    this.openedAt = connId !== 0 ? performance.now() : 0;
    this.baseRead = socket.bytesRead;
    this.type = endpointTypeIndex(task.entry);
    this.done = new Promise((r) => (this.resolve = r));
    ep.session.connectionStarted(ep);
    // Client → stream: write()/'drain' backpressure, the client's FIN becomes ours. Stream → client: the stream's end
    // is forwarded by hand (streamEnd) so a pooled stream that ends before answering can still be retried.
    (socket as PipedEmitter)[PIPE] = this;
    // Bulk reads carry room for their frame header, so they leave as one buffer with the turn's other frames of this
    // stream (mux/headroom-reads.ts); idle and small reads hold nothing per socket.
    enableHeadroomReads(socket);
    socket.on('data', onSocketData);
    socket.on('drain', onSocketDrain);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    this.attach(stream);
    if (socket.isPaused()) socket.resume(); // the single-threaded fallback's socket was left paused by the preread
  }

  private attach(stream: MuxStream): void {
    (stream as PipedEmitter)[PIPE] = this;
    stream.on('data', onStreamData);
    stream.on('drain', onStreamDrain);
    stream.on('end', onStreamEnd);
    stream.on('error', onStreamError);
  }

  /** The stream has no room: stop reading the client (watched for a reset meanwhile, WorkerRuntime.sweepPaused). */
  pauseClient(): void {
    this.socket.pause();
    this.runtime.watchPaused(this.socket);
  }

  resumeClient(): void {
    this.runtime.unwatchPaused(this.socket);
    this.socket.resume();
  }

  /** Stream → client, corked for this event-loop turn. */
  streamData(chunk: Buffer): void {
    if (!this.gotData) this.firstData(); // TTFB (accept → first byte back), and the pool report
    const sock = this.socket;
    if (sock.destroyed || sock.writableEnded) return;
    if (!this.corked) {
      this.corked = true;
      sock.cork();
      setImmediate(uncorkPipe, this);
    }
    if (!sock.write(chunk)) this.stream.pause(); // resumed by onSocketDrain
  }

  uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  private firstData(): void {
    this.gotData = true;
    this.head = EMPTY_HEAD; // retries happen only before any byte came back: no longer needed
    this.runtime.recorder.ttfb(this.type, this.task.acceptedAt);
    reportMember(this.runtime, this.connId, this.ep, true, Math.round((performance.now() - this.openedAt) * 1000), '');
  }

  streamEnd(): void {
    if (this.failedBeforeData('stream ended before any byte')) return;
    this.socket.end(); // end() flushes a corked socket first
  }

  streamError(): void {
    if (this.failedBeforeData('stream reset before any byte')) return;
    // The agent reset the stream after bytes came back (its upstream connection broke mid-stream): the client gets a
    // reset too, not a FIN that would read as a clean end of the byte stream. Before any byte (a failed dial that
    // cannot be retried) and after the agent's FIN (our end() is under way, the data is complete) it just closes.
    if (this.gotData && !this.socket.writableEnded) this.socket.resetAndDestroy();
    else this.socket.destroy();
  }

  /**
   * The stream ended before any byte came back: that is the member's failure whether or not a retry is allowed (a
   * client that spoke first, or a connection already retried, must still count against the member's breaker, else
   * the task's end settles the call as a success). Then one retry if allowed; true when it took over.
   */
  private failedBeforeData(reason: string): boolean {
    if (this.gotData || this.failedStream === this.stream) return false; // an 'error' after 'end': reported already
    this.failedStream = this.stream;
    // A client that sent nothing and closed (a TCP health check, a port probe): the end answers its own FIN. Neither
    // a failure of the member nor a reason to try another one.
    if (this.head.length === 0 && this.socket.bytesRead === this.baseRead && this.socket.readableEnded) return false;
    // A pooled TCP connection that stood --breaker-timeout counted as a success (acceptor beginConn): an end now (an
    // upstream closing an idle connection) is the connection's normal end, not a failure to retry.
    if (this.task.entry === 'tcp' && this.connId !== 0 && performance.now() - this.openedAt >= this.runtime.settings.breakerTimeoutMs) {
      return false;
    }
    reportMember(this.runtime, this.connId, this.ep, false, 0, reason);
    return this.canRetry() && this.retry();
  }

  /** Pooled, not retried yet, nothing came back, and the client sent nothing beyond the head. */
  private canRetry(): boolean {
    return this.connId !== 0 && !this.retried && !this.gotData && this.socket.bytesRead === this.baseRead && !this.socket.destroyed;
  }

  private retry(): boolean {
    const alt = this.runtime.alternateMember(this.ep, this.task.remoteAddress);
    if (alt === null) {
      // No other member here: hand the connection (head only; nothing else was read) to the acceptor for another worker.
      if (!this.runtime.reroute(this.socket, this.head, this.task, this.ep)) return false;
      this.retried = true;
      this.rerouted = true;
      this.detachStream();
      this.socket.off('data', onSocketData);
      this.socket.destroy(); // closes our descriptor only: the acceptor holds a dup
      return true;
    }
    const s = alt.session.openProxyStream(alt, this.clientAddr, this.head.length > 0 ? this.head : undefined, leadFor(alt, this.socket, this.task));
    if (s === null) return false;
    this.detachStream();
    this.moveTo(alt);
    this.retried = true;
    this.stream = s;
    this.attach(s);
    if (this.socket.readableEnded) s.end(); // the client's FIN went to the failed stream only
    return true;
  }

  private detachStream(): void {
    const old = this.stream;
    old.off('data', onStreamData);
    old.off('drain', onStreamDrain);
    old.off('end', onStreamEnd);
    old.off('error', onStreamError);
    old.on('error', noop);
    if (!old.destroyed) old.destroy();
  }

  private moveTo(alt: Endpoint): void {
    this.ep = moveConnection(this.ep, alt);
  }

  finish(): void {
    this.ep.session.connectionEnded(this.ep);
    this.runtime.unwatchPaused(this.socket);
    const s = this.stream;
    if (s.readableEnded && s.writableEnded && !s.writableFinished && !s.destroyed) {
      // Both sides said FIN, but the client's last bytes (and our FIN) still wait for the stream's send window: let
      // them go, or the upstream misses the tail of the upload (a reset also makes the agent drop what it buffered).
      // Bounded: a window that never opens ends in a reset after STREAM_LINGER_MS.
      const timer = setTimeout(() => s.destroy(), STREAM_LINGER_MS);
      timer.unref();
      s.once('close', () => clearTimeout(timer));
    } else if (!s.destroyed) {
      s.destroy();
    }
    this.resolve({ bytesIn: this.socket.bytesRead, bytesOut: this.socket.bytesWritten, outcome: this.rerouted ? 'rerouted' : 'closed' });
  }
}

// ---- BytePipe listeners: shared by every pipe (no per-connection closures); `this` is the emitting socket/stream ----

const PIPE = Symbol('burrow.bytePipe');
/** How long a finished pipe's stream may take to send the client's last bytes and its FIN (BytePipe.finish). */
const STREAM_LINGER_MS = 30_000;
interface PipedEmitter {
  [PIPE]?: BytePipe;
}

function onSocketData(this: PipedEmitter, chunk: Buffer): void {
  const pipe = this[PIPE]!;
  if (!pipe.stream.write(chunk)) pipe.pauseClient(); // resumed by onStreamDrain
}

function onSocketDrain(this: PipedEmitter): void {
  this[PIPE]!.stream.resume();
}

function onSocketEnd(this: PipedEmitter): void {
  const s = this[PIPE]!.stream;
  if (!s.destroyed) s.end();
}

function onSocketError(this: PipedEmitter): void {
  this[PIPE]!.stream.destroy();
}

function onSocketClose(this: PipedEmitter): void {
  this[PIPE]!.finish();
}

function onStreamData(this: PipedEmitter, chunk: Buffer): void {
  this[PIPE]!.streamData(chunk);
}

function onStreamDrain(this: PipedEmitter): void {
  const pipe = this[PIPE]!;
  if (this === pipe.stream) pipe.resumeClient();
}

function onStreamEnd(this: PipedEmitter): void {
  this[PIPE]!.streamEnd();
}

function onStreamError(this: PipedEmitter): void {
  this[PIPE]!.streamError();
}

function uncorkPipe(pipe: BytePipe): void {
  pipe.uncork();
}

const noop = (): void => {};

/**
 * Open a proxy stream for a public connection on `ep`. A pooled connection (connId ≠ 0) whose member refuses the
 * stream (closed, going away, at its stream limit) reports the refusal and tries one other member of this worker.
 * Null when no stream could be opened. Once per connection.
 */
function openOnMember(
  runtime: WorkerRuntime,
  ep: Endpoint,
  clientAddr: string,
  socket: net.Socket,
  task: PublicTaskMeta,
  first: Buffer | undefined,
): { stream: MuxStream; ep: Endpoint } | null {
  const connId = task.connId;
  const stream = ep.session.openProxyStream(ep, clientAddr, first, leadFor(ep, socket, task));
  if (stream !== null) return { stream, ep };
  if (connId === 0) return null;
  reportMember(runtime, connId, ep, false, 0, 'stream refused by the agent session');
  const alt = runtime.alternateMember(ep, task.remoteAddress);
  if (alt === null) return null;
  const again = alt.session.openProxyStream(alt, clientAddr, first, leadFor(alt, socket, task));
  if (again === null) reportMember(runtime, connId, alt, false, 0, 'stream refused by the agent session');
  return again === null ? null : { stream: again, ep: alt };
}

/**
 * A retried connection now counts on `to` instead of `from` (a drain waits on each session's count). Counted on `to`
 * first: with both on one session, a draining session would otherwise see 0 for a moment and end under the stream
 * just opened on it. Returns `to`.
 */
function moveConnection(from: Endpoint, to: Endpoint): Endpoint {
  to.session.connectionStarted(to);
  from.session.connectionEnded(from);
  return to;
}

/** Tell the acceptor how a pooled connection's member did (breaker + EWMA). Once per connection and member. */
function reportMember(runtime: WorkerRuntime, connId: number, ep: Endpoint, ok: boolean, ttfbUs: number, reason: string): void {
  if (connId === 0) return;
  runtime.reportMember(connId, { endpointKey: ep.key, ok, ttfbUs, reason });
}

/**
 * HTTP/1.1 pump for one public connection: client bytes go through HttpRequestFilter (Host re-check, smuggling
 * rules, X-Forwarded-*), then into one proxy stream; agent bytes go back untouched (1:1 connection mapping keeps
 * responses in order). An agent failure before the first response byte becomes a 502 page; after, a cut.
 */
class HttpPump implements HttpFilterSink {
  readonly done: Promise<TaskResult>;
  private resolve!: (r: TaskResult) => void;
  private readonly runtime: WorkerRuntime;
  private readonly client: Duplex;
  private readonly raw: net.Socket;
  private ep: Endpoint;
  private readonly clientAddr: string;
  private readonly filter: HttpRequestFilter;
  /** Where the service's responses end: a page of ours waits until every forwarded request is answered (onError). */
  private readonly responses: HttpResponseTracker;
  /** The endpoint's response header rules at work (it feeds `responses` then), or null when it has none. */
  private rewriter: ResponseHeadRewriter | null;
  /** What the rewriter gives for one response chunk (reused). */
  private readonly rewritten: Buffer[];
  private stream: MuxStream | null;
  private responseStarted: boolean;
  /** Our answer to a request behind others still being answered: sent once they are (streamData), then close. */
  private errorResponse: Buffer | null;
  /** Forwarded requests errorResponse does not wait for: 1 when the error cut the last one (it will not be answered). */
  private errorAllowance: number;
  /** The relay is draining: close as soon as no request is in progress (drain()). */
  private draining: boolean;
  private finished: boolean;
  private headTimer: NodeJS.Timeout | null;
  /**
   * The client is paused because its stream is over its high-water mark (the agent is slow to take the bytes): no head
   * deadline runs meanwhile, since the rest of a head may be waiting unread in the kernel because of us.
   */
  private throttled: boolean;
  /** Client bytes read behind the Upgrade request, held (not forwarded) until the answer is known. */
  private held: Buffer | null;
  /** https: the TLS handshake finished (before that a head timeout closes without an answer). */
  private secured: boolean;
  /** The relay answered a request itself with an error page (onError, a 421 for the TLS name): outcome `rejected`. */
  private rejected: boolean;
  /** https: the SNI the acceptor routed by (from the same ClientHello the handshake read). */
  private readonly routedSni: string;
  /**
   * Pooled connections: when the first request had been sent whole (performance.now(); 0 = not yet), and the member's
   * first-byte deadline that starts then. The time a client takes to send its body is not the member's: counting it
   * let slow uploads open every breaker of a healthy pool and skewed p2c-ewma (review finding).
   */
  private firstSentAt: number;
  private firstByteTimer: NodeJS.Timeout | null;
  // Request timing (burrow_ttfb_seconds, burrow_request_duration_seconds): each request is recorded when the response
  // tracker sees its response complete (request-clock.ts); a close-delimited one ends with its last byte (recorded at
  // the close), one it cannot frame with the last response byte before the next request, or the close.
  private readonly recorder: RelayRecorder;
  /** Null when metrics are off. */
  private readonly clock: RequestClock | null;
  private readonly type: number;
  private readonly acceptedAt: number;
  private readonly endpointRow: Float64Array | null;
  private readonly onClientData: (chunk: Buffer) => void;
  private readonly onStreamData: (chunk: Buffer) => void;
  private readonly onStreamDrain: () => void;
  private readonly onClientDrain: () => void;
  private readonly onStreamEnd: () => void;
  private readonly onStreamError: () => void;
  // ---- pooled endpoints only (connId !== 0): first-outcome report and one retry of an idempotent first request ----
  private readonly connId: number;
  private readonly task: PublicTaskMeta;
  /** The first request's bytes as forwarded, while it may still be retried; null = no retry possible. */
  private replay: Buffer[] | null;
  private replayBytes: number;
  /** The client's raw bytes so far (plain http only), while the connection may be handed to another worker. */
  private rawReplay: Buffer[] | null;
  private rawBytes: number;
  private rerouted: boolean;
  /** Closed between requests to free its stream for another connection (evict()). */
  private evicted: boolean;
  /** WorkerRuntime.tick at the last byte either way (idleTicks()). */
  private lastActive: number;
  private requests: number;
  private retried: boolean;
  private reported: boolean;
  private streamOpenedAt: number;

  constructor(
    runtime: WorkerRuntime,
    client: Duplex,
    raw: net.Socket,
    ep: Endpoint,
    proto: 'http' | 'https',
    task: PublicTaskMeta,
    clientAddr: string,
    head: Buffer | null,
    endpointRow: Float64Array | null,
  ) {
    this.runtime = runtime;
    this.client = client;
    this.raw = raw;
    this.ep = ep;
    this.clientAddr = clientAddr;
    this.stream = null;
    this.responses = new HttpResponseTracker();
    this.rewriter = ep.responseHeaders === null ? null : new ResponseHeadRewriter(ep.responseHeaders, this.responses);
    this.rewritten = [];
    this.responseStarted = false;
    this.errorResponse = null;
    this.errorAllowance = 0;
    this.draining = false;
    this.finished = false;
    this.headTimer = null;
    this.throttled = false;
    this.held = null;
    this.secured = false;
    this.rejected = false;
    this.routedSni = task.sni;
    this.firstSentAt = 0;
    this.firstByteTimer = null;
    this.connId = task.connId;
    this.task = task;
    this.replay = null;
    this.replayBytes = 0;
    this.rawReplay = task.connId !== 0 && proto === 'http' ? [] : null;
    this.rawBytes = 0;
    this.rerouted = false;
    this.evicted = false;
    this.lastActive = runtime.tick;
    this.retried = task.rerouted; // a rerouted connection's one retry is spent
    this.reported = task.connId === 0;
    this.streamOpenedAt = 0;
    this.recorder = runtime.recorder;
    this.type = proto === 'https' ? TYPE_HTTPS : TYPE_HTTP;
    this.acceptedAt = task.acceptedAt;
    this.endpointRow = endpointRow;
    this.clock = this.recorder.enabled ? new RequestClock(this.recorder, this.type) : null;
    this.requests = 0;
    this.done = new Promise((r) => (this.resolve = r));
    const hostname = ep.hostname;
    this.filter = new HttpRequestFilter(this, {
      isAllowedHost: (h: string) => h === hostname,
      proto,
      clientIp: task.remoteAddress,
      maxHeadSize: runtime.settings.limits.httpHeadMax,
      authorize: ep.basicAuth,
      requestHeaders: ep.requestHeaders,
    });
    this.onClientData = (chunk: Buffer) => this.clientData(chunk);
    this.onStreamData = (chunk: Buffer) => this.streamData(chunk);
    this.onStreamDrain = () => {
      this.throttled = false;
      if (this.filter.awaitingUpgrade) return; // still paused for the Upgrade's answer: still watched
      this.runtime.unwatchPaused(this.raw);
      this.client.resume();
      this.armHeadTimer();
    };
    this.onClientDrain = () => this.stream?.resume();
    this.onStreamEnd = () => this.streamEnd();
    this.onStreamError = () => this.streamFailed();
    ep.session.connectionStarted(ep);
    ep.session.httpConnections.add(this);
    // Drain handlers are attached once (not per blocked write), so a burst of blocked writes adds no listeners.
    client.on('drain', this.onClientDrain);
    client.on('error', () => this.abort());
    raw.once('close', () => this.finish());
    client.on('end', () => this.clientEnd());
    if (proto === 'https') {
      // The acceptor's preread deadline ended with the ClientHello: the handshake and the first request head get the
      // head deadline here (slowloris, DESIGN.md §6), or a client that stalls either holds the socket until the idle
      // timeout.
      this.headTimer = setTimeout(() => this.headTimeout(), runtime.settings.limits.httpHeadTimeoutMs);
      (client as tls.TLSSocket).once('secure', () => this.onSecure());
    } else {
      client.on('data', this.onClientData);
      // The single-threaded fallback hands over the acceptor's own socket, which preread left paused (a 'data'
      // listener does not restart an explicitly paused stream). Resume first: a pause for backpressure while the
      // head below is forwarded still wins (flowing restarts on the next tick only if nothing paused it again).
      client.resume();
      if (head !== null && head.length > 0) this.clientData(head);
    }
  }

  // ---- HttpFilterSink ----

  forward(data: Buffer): void {
    // Body and opaque bytes arrive as views of the client's read (a borrowed chunk on plain http, shared-read.ts);
    // the stream queues them until its flush, the replay keeps them.
    const buf = ownChunk(data);
    const replay = this.replay;
    if (replay !== null) {
      if (this.replayBytes + buf.length > MAX_REPLAY_BYTES) this.replay = null;
      else {
        replay.push(buf);
        this.replayBytes += buf.length;
      }
    }
    let s = this.stream;
    if (s === null) {
      // The endpoint this connection was routed to may have been unbound since (its name may even belong to another
      // agent by now): the connection no longer routes anywhere. 421 lets the client retry on a new connection,
      // which the acceptor routes afresh (RFC 9110 §15.5.20).
      if (this.runtime.endpoints.get(this.ep.key) !== this.ep) {
        this.onError(421, 'BURROW_ERR_HTTP_MISDIRECTED', `${this.ep.hostname} is no longer served on this connection; retry on a new connection`);
        return;
      }
      // Nothing was sent yet, so any method may go to another member when this one refuses the stream.
      const opened = openOnMember(this.runtime, this.ep, this.clientAddr, this.raw, this.task, undefined);
      if (opened === null) {
        this.onError(502, 'BURROW_ERR_UPSTREAM_UNAVAILABLE', `the agent for ${this.ep.hostname} cannot take another connection right now; retry shortly`);
        return;
      }
      if (opened.ep !== this.ep) {
        this.moveTo(opened.ep);
        this.retried = true; // the refusal was reported; the new member's first answer is reported as its own
      }
      s = opened.stream;
      this.recorder.streamOpened(this.type, this.acceptedAt);
      this.attachStream(s);
    }
    if (!s.write(buf)) this.throttle(); // resumed by onStreamDrain
  }

  onRequest(method: string): void {
    this.responses.request(method);
    const clock = this.clock;
    if (clock !== null) {
      // Responses the tracker cannot frame: the one under way is taken to end where this request begins.
      if (this.responses.lost) clock.endOldest();
      // The first request starts at accept (what the client waited for includes routing and handoff).
      clock.begin(this.requests === 0 ? this.acceptedAt : wallMs());
    }
    this.requests++;
    if (this.endpointRow !== null) this.endpointRow[EP_REQUESTS]! += 1;
    if (this.connId === 0) return;
    // Only the first request of a connection, and only an idempotent one, may be replayed on another member
    // (RFC 9110 §9.2.2); a second request in flight before any answer (pipelining) ends that possibility.
    this.replay = this.requests === 1 && !this.responseStarted && !this.retried && IDEMPOTENT.has(method) ? [] : null;
    if (this.replay === null) this.rawReplay = null;
  }

  onUpgrade(): void {
    // The filter stopped at the end of the Upgrade request. Whether what follows is WebSocket (forwarded untouched) or
    // the next HTTP request (filtered) depends on the answer: read nothing more until its status line shows which
    // (checkUpgradeAnswer). What this read already holds behind the request is kept in `held` (clientData).
    // Paused, the socket is not watched by libuv: a client that resets while the service takes its time would hold the
    // stream, the upstream connection and a slot of the session's streams until the idle timeout (review finding).
    this.client.pause();
    this.runtime.watchPaused(this.raw);
  }

  onError(status: number, code: string, reason: string): void {
    // Called by the filter, or by this pump (forward() found no stream, head timeout) possibly in the middle of a
    // filter.push(): stop the filter so the rest of that read calls neither forward() nor onError() again (a second
    // end() would cut the error page short with ERR_STREAM_WRITE_AFTER_END).
    this.filter.stop();
    this.recorder.error(code);
    this.rejected = true;
    this.clearHeadTimer();
    // A 401 names the scheme and realm (RFC 7235 §4.1), so that a browser asks for the user name and password.
    const challenge = status === 401 ? `WWW-Authenticate: Basic realm="${this.ep.hostname}", charset="UTF-8"\r\n` : '';
    const page = errorPage(status, STATUS_TEXT[status] ?? 'Error', reason, challenge);
    this.client.off('data', this.onClientData);
    const s = this.stream;
    // A request cut in its body (a bad chunk line) was forwarded in part and will not be answered: ours answers it.
    const allowance = this.filter.requestCut ? 1 : 0;
    if (s === null || this.responses.settledBut(allowance)) {
      // Nothing forwarded, or every other forwarded request answered in full: ours is the next response on the wire.
      if (s !== null) s.reset();
      this.client.end(page);
      return;
    }
    // Requests pipelined before this one are still being answered. A client reads responses in request order, so
    // ours waits until theirs are complete (streamData), and the service gets no FIN meanwhile: some servers (Node's
    // http) drop the requests in progress when the client half-closes. Only when the end of a response cannot be
    // seen (no length, or unframeable) does the service's close have to end it, and then no page follows.
    this.errorResponse = page;
    this.errorAllowance = allowance;
    if (this.responses.closeDelimited || this.responses.lost) s.end();
  }

  // ---- internals ----

  private onSecure(): void {
    this.secured = true;
    const t = this.client as tls.TLSSocket;
    // A resumed TLS 1.2 session has no server name on the server side (OpenSSL keeps none in the session), though the
    // ClientHello the acceptor routed by carried one: use that (review finding: every resumed connection got 421).
    const named = typeof t.servername === 'string' && t.servername !== '' ? t.servername.toLowerCase() : '';
    const sniNow = named !== '' ? named : t.isSessionReused() ? this.routedSni : '';
    if (sniNow !== this.ep.hostname) {
      // The acceptor routed by this SNI; a mismatch would mean the handshake changed it — refuse (no fronting).
      this.rejected = true;
      this.client.end(errorPage(421, 'Misdirected Request', `TLS server name ${sniNow || '(none)'} does not match ${this.ep.hostname}`));
      return;
    }
    this.client.on('data', this.onClientData);
  }

  private clientData(chunk: Buffer): void {
    this.lastActive = this.runtime.tick;
    const raw = this.rawReplay;
    if (raw !== null) {
      if (this.rawBytes + chunk.length > MAX_REPLAY_BYTES) this.rawReplay = null;
      else {
        // The replay's own copy goes on to the filter too, so forward() finds it owned and does not copy it again.
        chunk = ownChunk(chunk);
        raw.push(chunk);
        this.rawBytes += chunk.length;
      }
    }
    const used = this.filter.push(chunk);
    if (used < chunk.length) this.hold(chunk.subarray(used));
    if (this.connId !== 0 && this.firstSentAt === 0 && this.requests > 0 && !this.filter.inBody) this.firstRequestSent();
    if (this.draining) this.closeIfIdle(); // an upload that outlived its (early) answer ends here
    if (this.filter.inHead) this.armHeadTimer();
    // Not before the first request: the https deadline from the handshake runs until one came (empty lines before a
    // request line are skipped by the filter and must not cancel it).
    else if (this.requests > 0) this.clearHeadTimer();
  }

  /** Start the head deadline for a started head, unless it runs already or the client is paused by us. */
  private armHeadTimer(): void {
    if (this.headTimer === null && !this.throttled && !this.finished && this.filter.inHead) {
      this.headTimer = setTimeout(() => this.headTimeout(), this.runtime.settings.limits.httpHeadTimeoutMs);
    }
  }

  /** The stream is over its high-water mark: stop reading the client, and the head deadline with it. */
  private throttle(): void {
    this.throttled = true;
    this.client.pause();
    this.runtime.watchPaused(this.raw); // a reset while paused is seen only by polling (WorkerRuntime.sweepPaused)
    this.clearHeadTimer();
  }

  /**
   * Bytes behind an Upgrade request, kept until the answer: at most the rest of the read that carried the request (the
   * client is paused from there; the acceptor's head is one such read). Bounded anyway, in case a read slips in.
   */
  private hold(rest: Buffer): void {
    const held = this.held;
    if (held === null) {
      this.held = ownChunk(rest); // copied only if it is a view of the thread's shared read buffer
    } else if (held.length + rest.length > MAX_HELD_BYTES) {
      // Cut, not answered: the service's answer to the Upgrade may be on its way. Counted, so the cut shows.
      this.recorder.error('BURROW_ERR_HTTP_BAD_REQUEST');
      this.abort();
    } else {
      this.held = Buffer.concat([held, rest]);
    }
  }

  private headTimeout(): void {
    this.headTimer = null;
    if ((this.type === TYPE_HTTPS && !this.secured) || (this.requests === 0 && !this.filter.inHead)) {
      // Handshake not finished: there is no HTTP to answer in. Or no byte of a request came after it (a browser's
      // preconnect): close without answering a request that was never made, as nginx does.
      this.client.destroy();
      return;
    }
    this.onError(408, 'BURROW_ERR_HTTP_HEAD_TIMEOUT', `the request head was not complete within ${this.runtime.settings.limits.httpHeadTimeoutMs} ms`);
  }

  private clearHeadTimer(): void {
    if (this.headTimer !== null) {
      clearTimeout(this.headTimer);
      this.headTimer = null;
    }
  }

  private attachStream(s: MuxStream): void {
    this.stream = s;
    if (this.connId !== 0) this.streamOpenedAt = performance.now();
    s.on('data', this.onStreamData);
    s.on('drain', this.onStreamDrain);
    s.on('end', this.onStreamEnd);
    s.on('error', this.onStreamError);
  }

  /**
   * Pooled: the first request is out whole. Time to first byte counts from here, and without one within
   * --breaker-timeout the member is reported as failing (the acceptor's breaker call has no deadline of its own for
   * HTTP members). A connection that never completes its request reports nothing on this account.
   */
  private firstRequestSent(): void {
    this.firstSentAt = performance.now();
    if (this.reported || this.responseStarted) return;
    this.firstByteTimer = setTimeout(() => {
      this.firstByteTimer = null;
      if (!this.reported && !this.responseStarted && !this.finished) {
        this.report(false, `no response within ${this.runtime.settings.breakerTimeoutMs} ms of the request`);
      }
    }, this.runtime.settings.breakerTimeoutMs);
  }

  private clearFirstByteTimer(): void {
    if (this.firstByteTimer !== null) {
      clearTimeout(this.firstByteTimer);
      this.firstByteTimer = null;
    }
  }

  /** Report this connection's first outcome on its member (pooled endpoints; once per member). */
  private report(ok: boolean, reason: string): void {
    if (this.reported) return;
    this.reported = true;
    this.clearFirstByteTimer();
    const from = this.firstSentAt !== 0 ? this.firstSentAt : this.streamOpenedAt;
    const ttfbUs = ok ? Math.max(0, Math.round((performance.now() - from) * 1000)) : 0;
    reportMember(this.runtime, this.connId, this.ep, ok, ttfbUs, reason);
  }

  /**
   * The member failed before any response byte reached the client: send the first request again on another member of
   * this worker, once. False when that is not allowed (not pooled, non-idempotent, body too large, already retried)
   * or no other member is here.
   */
  private retry(reason: string): boolean {
    this.report(false, reason);
    if (this.replay === null || this.retried || this.responseStarted || this.finished) return false;
    const alt = this.runtime.alternateMember(this.ep, this.task.remoteAddress);
    if (alt === null) return this.rerouteElsewhere();
    const s = alt.session.openProxyStream(alt, this.clientAddr, undefined, leadFor(alt, this.raw, this.task));
    if (s === null) return false;
    this.detachStream();
    this.moveTo(alt);
    this.retried = true;
    this.reported = false;
    this.attachStream(s);
    const replay = this.replay;
    this.replay = null;
    let ok = true;
    for (const b of replay) ok = s.write(b);
    // The failed stream's 'drain' listener went with it: a client it held back is released here, as its drain would.
    if (!ok) this.throttle();
    else if (this.throttled) this.onStreamDrain();
    if (this.client.readableEnded) s.end(); // the client's FIN went to the failed stream only
    if (this.firstSentAt !== 0) this.firstRequestSent(); // the new member's deadline, from the replay
    return true;
  }

  /** No other member on this worker: hand the raw connection to the acceptor for a member of another worker. */
  private rerouteElsewhere(): boolean {
    const raw = this.rawReplay;
    if (raw === null) return false;
    // The acceptor picks a member with this one's basic-auth credentials (the raw bytes carry the client's
    // Authorization for them), or answers 502 itself.
    if (!this.runtime.reroute(this.raw, raw.length === 1 ? raw[0]! : Buffer.concat(raw, this.rawBytes), this.task, this.ep)) return false;
    this.rerouted = true;
    this.retried = true;
    this.replay = this.rawReplay = null;
    this.detachStream();
    this.client.off('data', this.onClientData);
    this.raw.destroy(); // closes our descriptor only: the acceptor holds a dup
    return true;
  }

  private detachStream(): void {
    const old = this.stream!;
    old.off('data', this.onStreamData);
    old.off('drain', this.onStreamDrain);
    old.off('end', this.onStreamEnd);
    old.off('error', this.onStreamError);
    old.on('error', noop);
    if (!old.destroyed) old.reset();
  }

  /** Before any response byte: the member that answers decides the response header rules. */
  private moveTo(alt: Endpoint): void {
    this.ep.session.httpConnections.delete(this);
    alt.session.httpConnections.add(this);
    this.ep = moveConnection(this.ep, alt);
    this.rewriter = alt.responseHeaders === null ? null : new ResponseHeadRewriter(alt.responseHeaders, this.responses);
  }

  private streamData(chunk: Buffer): void {
    if (!this.responseStarted && !this.reported) {
      const failed = isAgentDialFailure(chunk);
      if (failed && this.retry('the agent could not reach its upstream')) return;
      this.report(!failed, failed ? 'the agent could not reach its upstream' : '');
    }
    this.replay = this.rawReplay = null;
    this.responseStarted = true;
    this.lastActive = this.runtime.tick;
    const clock = this.clock;
    if (clock !== null && clock.waiting > 0) clock.bytes(wallMs());
    if (this.rewriter === null) {
      if (!this.client.write(chunk)) this.stream!.pause(); // resumed by onClientDrain
      this.responses.push(chunk);
    } else {
      this.rewriter.push(chunk, this.rewritten);
      this.writeRewritten();
    }
    // Answered in full: recorded now, not when the next request comes (a keep-alive connection can idle for minutes).
    if (clock !== null && clock.waiting > 0) clock.settle(this.responses.unanswered, !this.responses.atHead);
    if (this.errorResponse !== null) {
      if (this.responses.settledBut(this.errorAllowance)) this.sendHeldError();
      return;
    }
    if (this.draining) this.closeIfIdle();
    if (this.filter.awaitingUpgrade) this.checkUpgradeAnswer();
  }

  /** The rewriter's output for the client; the stream pauses when the client's buffer is over its mark. */
  private writeRewritten(): void {
    const out = this.rewritten;
    let ok = true;
    const several = out.length > 1;
    if (several) this.client.cork(); // body tail, new head, body: one writev (one TLS record on https), not three
    for (let k = 0; k < out.length; k++) ok = this.client.write(out[k]!);
    if (several) this.client.uncork();
    out.length = 0;
    if (!ok) this.stream!.pause(); // resumed by onClientDrain
  }

  /**
   * Between requests (every forwarded request answered in full, no request head or body under way, nothing held) with
   * a stream still open: ticks since its last byte either way; else -1. Read only at the session's stream limit.
   */
  idleTicks(): number {
    const s = this.stream;
    return s !== null && !s.destroyed && this.betweenRequests ? this.runtime.tick - this.lastActive : -1;
  }

  /**
   * No request in progress: every forwarded one answered in full, no request head or body under way (an early answer
   * to an upload is not the end of it), no page of ours waiting, nothing held behind an Upgrade.
   */
  private get betweenRequests(): boolean {
    return !this.finished && this.errorResponse === null && this.held === null && this.responses.settled && this.filter.betweenMessages;
  }

  /** Stop reading; FIN (close_notify on https) once what is queued is written, then close. */
  private closeQuietly(): void {
    this.client.off('data', this.onClientData);
    (this.client as net.Socket).destroySoon();
  }

  /**
   * The session is at its stream limit and this connection has been idle the longest: its stream is freed now and
   * the client gets the keep-alive close it would get at the idle timeout (clients send their next request on a new
   * connection).
   */
  evict(): void {
    this.detachStream(); // reset: the session's count drops at once
    this.stream = null;
    this.evicted = true;
    this.ep.session.httpConnections.delete(this);
    this.closeQuietly();
  }

  /** Relay shutdown: a connection between requests closes now, one with a request in progress after its response. */
  drain(): void {
    this.draining = true;
    this.closeIfIdle();
  }

  endpointDropped(ep: Endpoint): void {
    // As a drain, for this endpoint only: idle now, the others after the response under way. Without it a keep-alive
    // connection kept reaching the agent that unbound the name, even after another agent had bound it (review finding).
    if (ep === this.ep) this.drain();
  }

  /**
   * Close if no request is in progress (betweenRequests). A client that sends its next request just now meets the
   * close, the keep-alive race clients retry on another connection.
   */
  private closeIfIdle(): void {
    if (this.betweenRequests) this.closeQuietly();
  }

  /** The responses a held page of ours waited for are out: the page follows them, and the connection ends. */
  private sendHeldError(): void {
    const page = this.errorResponse!;
    this.errorResponse = null;
    if (!this.stream!.destroyed) this.stream!.reset();
    this.client.end(page);
  }

  /**
   * The answer to a WebSocket Upgrade request, once the response tracker has read its final head. It is the first
   * response of the connection (the filter refuses an Upgrade behind another request). 101: the held bytes and
   * everything after them are the new protocol, forwarded untouched. Anything else: the service stayed in HTTP/1.1
   * (RFC 9110 §7.8) and has read the Upgrade request (a GET without a body) as a complete message, so the held bytes
   * are the next request for the service as for the filter: they go through the filter like any other (Host check,
   * X-Forwarded-*, framing). Closing instead would be safe too, but would drop a pipelined request without an answer.
   * Interim 1xx answers (a 103) before it are skipped; an answer that is not HTTP reads as declined, and the filter
   * then parses whatever comes as HTTP and fails closed (400), never open.
   */
  private checkUpgradeAnswer(): void {
    const r = this.responses;
    if (!r.switched && !r.lost && r.awaitingHeads > 0) return; // its final head is still to come
    if (r.switched) {
      this.clock?.endOldest(); // the rest is the upgraded protocol, not this request's answer
      this.filter.upgradeAccepted();
    } else {
      this.filter.upgradeDeclined();
    }
    const held = this.held;
    this.held = null;
    // Resume first: a pause for backpressure while the held bytes are forwarded still wins (see the constructor). Not
    // while the stream is over its high-water mark: its 'drain' resumes the client then (and ends the watch).
    if (!this.throttled) {
      this.runtime.unwatchPaused(this.raw);
      this.client.resume();
    }
    if (held !== null) this.clientData(held);
  }

  private streamEnd(): void {
    if (!this.responseStarted && !this.reported && this.retry('stream ended before a response')) return;
    if (this.rewriter !== null) {
      this.rewriter.flush(this.rewritten); // a head cut short by the service goes as it came
      this.writeRewritten();
    }
    // A held page goes out only after complete responses: behind a close-delimited one (or responses that could not
    // be framed) it would read as part of the body, so the connection just ends.
    const page = this.errorResponse;
    this.errorResponse = null;
    if (page !== null && this.responses.settledBut(this.errorAllowance)) this.client.end(page);
    else this.client.end();
  }

  private streamFailed(): void {
    if (this.finished) return;
    if (!this.responseStarted && this.retry('stream reset before a response')) return;
    if (!this.responseStarted) {
      this.recorder.error('BURROW_ERR_UPSTREAM_UNAVAILABLE');
      this.client.off('data', this.onClientData);
      this.client.end(errorPage(502, 'Bad Gateway', `The agent serving ${this.ep.hostname} closed the connection before answering.`));
    } else if (this.responses.closeDelimited) {
      // A body that ends with the connection (no length, or an upgraded one): a FIN here would read as its end, so
      // the cut is an RST. Bytes still queued for the client go with it; the client learns the transfer broke.
      this.raw.resetAndDestroy();
    } else {
      this.client.destroy(); // the response's own framing (Content-Length, chunked) shows the cut
    }
  }

  private clientEnd(): void {
    this.clearHeadTimer();
    if (this.stream !== null) this.stream.end();
    else this.client.end();
  }

  private abort(): void {
    this.clearHeadTimer();
    if (this.stream !== null && !this.stream.destroyed) this.stream.reset();
    this.client.destroy();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.ep.session.httpConnections.delete(this);
    this.runtime.unwatchPaused(this.raw);
    this.clearHeadTimer();
    this.clearFirstByteTimer();
    this.clock?.endOldest(); // a response that ends with the connection (the later requests got none)
    this.ep.session.connectionEnded(this.ep);
    if (this.stream !== null && !this.stream.destroyed) this.stream.reset();
    if (!this.client.destroyed) this.client.destroy();
    this.resolve({ bytesIn: this.raw.bytesRead, bytesOut: this.raw.bytesWritten, outcome: this.outcome() });
  }

  /** burrow_connections_total's outcome for this connection, read once at its end. */
  private outcome(): string {
    if (this.rerouted) return 'rerouted';
    if (this.evicted) return 'evicted';
    if (this.responseStarted) return 'ok';
    // Without a response from the agent: a client that failed its TLS handshake (no CA, wrong name), one the relay
    // answered itself (400, 401, 421, ...) or one that left before its first request is not an agent failure, which
    // is what no-response reports (review finding: a curl without --cacert read as one).
    if (this.type === TYPE_HTTPS && !this.secured) return 'tls-failed';
    if (this.rejected) return 'rejected';
    return this.requests === 0 ? 'closed' : 'no-response';
  }
}

/** Methods whose request may be sent twice (RFC 9110 §9.2.2) — the ones a pool retries on another member. */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Most bytes of a first request kept for a retry (a GET head; a larger request is not retried). */
const MAX_REPLAY_BYTES = 64 * 1024;
/** Most client bytes held behind an Upgrade request: one read (libuv reads ≤ 64 KiB) plus the acceptor's head. */
const MAX_HELD_BYTES = 128 * 1024;

/**
 * Is this first response chunk the agent's own "could not reach the upstream" answer (status 502/503/504)? Our agent
 * marks its pages with X-Burrow-Error-Code; the ngrok SDK answers 502 with the body `failed to dial backend: …`
 * (probed with @ngrok/ngrok 1.7.0). A 502 from the user's own service carries neither and is passed on as is.
 */
export function isAgentDialFailure(chunk: Buffer): boolean {
  // "HTTP/1.1 50x": status digits at bytes 9..11
  if (chunk.length < 13 || chunk[9] !== 0x35 || chunk[10] !== 0x30 || chunk[11]! < 0x32 || chunk[11]! > 0x34) return false;
  const text = chunk.toString('latin1', 0, Math.min(chunk.length, 2048));
  return /\r\nx-burrow-error-code:/i.test(text) || text.includes('\r\n\r\nfailed to dial backend');
}


/** `ip:port`, IPv6 in brackets (the form the ngrok SDK parses in ProxyHeader.ClientAddr). */
export function formatAddr(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
