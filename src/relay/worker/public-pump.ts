// Public connection → proxy stream pumps (DESIGN.md §2): HTTP with streaming head inspection, HTTPS terminated here,
// TLS passthrough and TCP as opaque byte pipes. HOT PATH: the data handlers below run per chunk; they are methods
// bound once per connection, write straight through, and honour write() === false / 'drain' both ways so memory is
// bounded by the stream windows.
import tls from 'node:tls';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { MuxStream } from '../../mux/mux-stream.js';
import { HttpRequestFilter, type HttpFilterSink } from '../../sniff/http-request-filter.js';
import type { PublicTask, TaskResult } from '../relay-messages.js';
import type { Endpoint } from './agent-session.js';
import type { WorkerRuntime } from './worker-runtime.js';
import { errorPage } from '../../core/error-page.js';
import { alertAndClose, endWith } from '../close-with.js';
import { EP_REQUESTS, TYPE_HTTP, TYPE_HTTPS, endpointTypeIndex, wallMs, type RelayRecorder } from '../../metrics/relay-recorder.js';

type PublicMeta = Omit<PublicTask, 'kind' | 'fd' | 'head'>;

/** `endpointRow`: the per-endpoint counters (`--metrics-per-endpoint`), or null. */
export function pumpPublic(
  runtime: WorkerRuntime,
  socket: net.Socket,
  head: Buffer,
  task: PublicMeta,
  endpointRow: Float64Array | null = null,
): Promise<TaskResult> {
  const ep = runtime.endpoints.get(task.endpointId);
  const clientAddr = formatAddr(task.remoteAddress, task.remotePort);
  if (ep === undefined || runtime.draining) {
    // The endpoint went away between routing and handoff.
    return refuse(socket, task.entry, 'endpoint-gone', task.hostname, 'The tunnel for this host went offline a moment ago.');
  }
  if (task.entry === 'tcp' || task.entry === 'tls') {
    const stream = ep.session.openProxyStream(ep, clientAddr, head.length > 0 ? head : undefined);
    if (stream === null) return refuse(socket, task.entry, 'stream-refused', task.hostname, '');
    const type = endpointTypeIndex(task.entry);
    runtime.recorder.streamOpened(type, task.acceptedAt);
    return new BytePipe(socket, stream, ep, runtime.recorder, type, task.acceptedAt).done;
  }
  if (task.entry === 'https') {
    // TLS terminated here: the ClientHello the acceptor read goes back in front of the socket for OpenSSL.
    if (head.length > 0) socket.unshift(head);
    const t = new tls.TLSSocket(socket, { isServer: true, secureContext: runtime.secureContext });
    const tlsStart = wallMs();
    t.once('secure', () => runtime.recorder.tlsHandshake(false, tlsStart));
    return new HttpPump(runtime, t, socket, ep, 'https', task, clientAddr, null, endpointRow).done;
  }
  return new HttpPump(runtime, socket, socket, ep, 'http', task, clientAddr, head, endpointRow).done;
}

function refuse(socket: net.Socket, entry: PublicTask['entry'], outcome: string, host: string, detail: string): Promise<TaskResult> {
  return new Promise((resolve) => {
    socket.once('close', () => resolve({ bytesIn: socket.bytesRead, bytesOut: socket.bytesWritten, outcome }));
    // The same answers the acceptor gives when it has no route (the TLS handshake has not started here).
    if (entry === 'http') endWith(socket, errorPage(502, 'Bad Gateway', `No agent is serving ${host} right now. ${detail}`));
    else if (entry === 'https' || entry === 'tls') alertAndClose(socket);
    else socket.destroy();
  });
}

/** Opaque bidirectional pipe (tcp, tls passthrough, and HTTP after an Upgrade) with half-close and backpressure. */
class BytePipe {
  readonly done: Promise<TaskResult>;
  private resolve!: (r: TaskResult) => void;
  private readonly socket: net.Socket;
  private readonly stream: MuxStream;
  private readonly ep: Endpoint;

  constructor(socket: net.Socket, stream: MuxStream, ep: Endpoint, recorder: RelayRecorder, type: number, acceptedAt: number) {
    this.socket = socket;
    this.stream = stream;
    this.ep = ep;
    this.done = new Promise((r) => (this.resolve = r));
    ep.active++;
    // TTFB: accept → first byte back from the agent (once per connection; pipe() below reads the same chunks).
    stream.once('data', () => recorder.ttfb(type, acceptedAt));
    // pipe() gives write()/drain backpressure both ways and forwards each side's end as the other's FIN.
    socket.pipe(stream);
    stream.pipe(socket);
    socket.on('error', () => stream.destroy());
    stream.on('error', () => socket.destroy());
    socket.once('close', () => this.finish());
  }

  private finish(): void {
    this.ep.active--;
    this.ep.session.connectionEnded();
    if (!this.stream.destroyed) this.stream.destroy();
    this.resolve({ bytesIn: this.socket.bytesRead, bytesOut: this.socket.bytesWritten, outcome: 'closed' });
  }
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
  private readonly ep: Endpoint;
  private readonly clientAddr: string;
  private readonly filter: HttpRequestFilter;
  private stream: MuxStream | null;
  private responseStarted: boolean;
  private errorResponse: Buffer | null;
  private finished: boolean;
  private headTimer: NodeJS.Timeout | null;
  /** Non-null while the answer to an Upgrade request is awaited: the first bytes of it seen so far. */
  private upgradeCheck: Buffer | null;
  // Request timing (burrow_ttfb_seconds, burrow_request_duration_seconds). Responses are piped untouched, so a
  // request's answer is taken to end with the last response byte before the next request (or the close).
  private readonly recorder: RelayRecorder;
  private readonly type: number;
  private readonly acceptedAt: number;
  private readonly endpointRow: Float64Array | null;
  private requests: number;
  private reqOpen: boolean;
  private reqStart: number;
  private reqFirstByte: boolean;
  private reqLastByteAt: number;
  private readonly onClientData: (chunk: Buffer) => void;
  private readonly onStreamData: (chunk: Buffer) => void;
  private readonly onStreamDrain: () => void;
  private readonly onClientDrain: () => void;

  constructor(
    runtime: WorkerRuntime,
    client: Duplex,
    raw: net.Socket,
    ep: Endpoint,
    proto: 'http' | 'https',
    task: PublicMeta,
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
    this.responseStarted = false;
    this.errorResponse = null;
    this.finished = false;
    this.headTimer = null;
    this.upgradeCheck = null;
    this.recorder = runtime.recorder;
    this.type = proto === 'https' ? TYPE_HTTPS : TYPE_HTTP;
    this.acceptedAt = task.acceptedAt;
    this.endpointRow = endpointRow;
    this.requests = 0;
    this.reqOpen = false;
    this.reqStart = 0;
    this.reqFirstByte = false;
    this.reqLastByteAt = 0;
    this.done = new Promise((r) => (this.resolve = r));
    const hostname = ep.hostname;
    this.filter = new HttpRequestFilter(this, {
      isAllowedHost: (h: string) => h === hostname,
      proto,
      clientIp: task.remoteAddress,
      maxHeadSize: runtime.settings.maxHeadSize,
    });
    this.onClientData = (chunk: Buffer) => this.clientData(chunk);
    this.onStreamData = (chunk: Buffer) => this.streamData(chunk);
    this.onStreamDrain = () => {
      if (this.upgradeCheck === null) this.client.resume();
    };
    this.onClientDrain = () => this.stream?.resume();
    ep.active++;
    // Drain handlers are attached once (not per blocked write), so a burst of blocked writes adds no listeners.
    client.on('drain', this.onClientDrain);
    client.on('error', () => this.abort());
    raw.once('close', () => this.finish());
    client.on('end', () => this.clientEnd());
    if (proto === 'https') {
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

  forward(buf: Buffer): void {
    let s = this.stream;
    if (s === null) {
      s = this.ep.session.openProxyStream(this.ep, this.clientAddr);
      if (s === null) {
        this.onError(502, 'BURROW_ERR_UPSTREAM_UNAVAILABLE', `the agent for ${this.ep.hostname} cannot take another connection right now`);
        return;
      }
      this.recorder.streamOpened(this.type, this.acceptedAt);
      this.attachStream(s);
    }
    if (!s.write(buf)) this.client.pause(); // resumed by onStreamDrain
  }

  onRequest(): void {
    this.closeRequest();
    // The first request starts at accept (what the client waited for includes routing and handoff).
    this.reqStart = this.requests === 0 ? this.acceptedAt : wallMs();
    this.requests++;
    if (this.endpointRow !== null) this.endpointRow[EP_REQUESTS]! += 1;
    this.reqOpen = true;
    this.reqFirstByte = false;
  }

  /** Record the open request if its answer has started. */
  private closeRequest(): void {
    if (this.reqOpen && this.reqFirstByte) this.recorder.requestDone(this.type, this.reqStart, this.reqLastByteAt);
    this.reqOpen = false;
  }

  onUpgrade(): void {
    // The filter now forwards every later byte untouched. That is only right if the agent's service accepts the
    // upgrade (101): hold further client bytes until the answer's status line shows which (see streamData).
    this.client.pause();
    this.upgradeCheck = Buffer.alloc(0);
  }

  onError(status: number, code: string, reason: string): void {
    this.recorder.error(code);
    this.clearHeadTimer();
    const page = errorPage(status, STATUS_TEXT[status] ?? 'Error', reason);
    this.client.off('data', this.onClientData);
    if (this.stream === null || !this.responseStarted) {
      if (this.stream !== null) this.stream.reset();
      this.client.end(page);
      return;
    }
    // A response is in flight on the stream: let it finish, then answer and close.
    this.errorResponse = page;
    this.stream.end();
  }

  // ---- internals ----

  private onSecure(): void {
    const t = this.client as tls.TLSSocket;
    const sniNow = typeof t.servername === 'string' ? t.servername.toLowerCase() : '';
    if (sniNow !== this.ep.hostname) {
      // The acceptor routed by this SNI; a mismatch would mean the handshake changed it — refuse (no fronting).
      this.client.end(errorPage(421, 'Misdirected Request', `TLS server name ${sniNow || '(none)'} does not match ${this.ep.hostname}`));
      return;
    }
    this.client.on('data', this.onClientData);
  }

  private clientData(chunk: Buffer): void {
    this.filter.push(chunk);
    const inHead = this.filter.inHead;
    if (inHead && this.headTimer === null && !this.finished) {
      this.headTimer = setTimeout(() => this.headTimeout(), this.runtime.settings.headTimeoutMs);
    } else if (!inHead) {
      this.clearHeadTimer();
    }
  }

  private headTimeout(): void {
    this.headTimer = null;
    this.onError(408, 'BURROW_ERR_HTTP_HEAD_TIMEOUT', `the request head was not complete within ${this.runtime.settings.headTimeoutMs} ms`);
  }

  private clearHeadTimer(): void {
    if (this.headTimer !== null) {
      clearTimeout(this.headTimer);
      this.headTimer = null;
    }
  }

  private attachStream(s: MuxStream): void {
    this.stream = s;
    s.on('data', this.onStreamData);
    s.on('drain', this.onStreamDrain);
    s.on('end', () => this.streamEnd());
    s.on('error', () => this.streamFailed());
  }

  private streamData(chunk: Buffer): void {
    this.responseStarted = true;
    if (this.reqOpen) {
      this.reqLastByteAt = wallMs();
      if (!this.reqFirstByte) {
        this.reqFirstByte = true;
        this.recorder.ttfb(this.type, this.reqStart);
      }
    }
    if (this.upgradeCheck !== null) this.checkUpgradeAnswer(chunk);
    if (!this.client.write(chunk)) this.stream!.pause(); // resumed by onClientDrain
  }

  /**
   * An upgrade that is declined leaves the connection in HTTP, but the filter went opaque: later requests would skip
   * the Host check and the X-Forwarded-* rewrite. So a non-101 answer ends the connection after that answer.
   */
  private checkUpgradeAnswer(chunk: Buffer): void {
    const seen = this.upgradeCheck!.length === 0 ? chunk : Buffer.concat([this.upgradeCheck!, chunk]);
    if (seen.length < STATUS_LINE_PREFIX) {
      this.upgradeCheck = seen;
      return;
    }
    this.upgradeCheck = null;
    if (UPGRADE_ACCEPTED.test(seen.toString('latin1', 0, STATUS_LINE_PREFIX))) {
      this.closeRequest(); // the rest is the upgraded protocol, not this request's answer
      this.client.resume();
      return;
    }
    this.client.off('data', this.onClientData);
    this.stream?.end(); // FIN to the agent: its service finishes this answer, then the stream (and client) end
  }

  private streamEnd(): void {
    const page = this.errorResponse;
    if (page !== null) this.client.end(page);
    else this.client.end();
  }

  private streamFailed(): void {
    if (this.finished) return;
    if (!this.responseStarted) {
      this.recorder.error('BURROW_ERR_UPSTREAM_UNAVAILABLE');
      this.client.off('data', this.onClientData);
      this.client.end(errorPage(502, 'Bad Gateway', `The agent serving ${this.ep.hostname} closed the connection before answering.`));
    } else {
      this.client.destroy(); // truncation: the client must see the cut, not a clean end
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
    this.clearHeadTimer();
    this.closeRequest();
    this.ep.active--;
    this.ep.session.connectionEnded();
    if (this.stream !== null && !this.stream.destroyed) this.stream.reset();
    if (!this.client.destroyed) this.client.destroy();
    this.resolve({ bytesIn: this.raw.bytesRead, bytesOut: this.raw.bytesWritten, outcome: this.responseStarted ? 'ok' : 'no-response' });
  }
}

/** `HTTP/1.1 101` is 12 bytes: enough of an answer to tell an accepted upgrade. */
const STATUS_LINE_PREFIX = 12;
const UPGRADE_ACCEPTED = /^HTTP\/1\.[01] 101$/;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  421: 'Misdirected Request',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
};

/** `ip:port`, IPv6 in brackets (the form the ngrok SDK parses in ProxyHeader.ClientAddr). */
export function formatAddr(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
