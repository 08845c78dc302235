// One bound endpoint of an agent as users see it: its public URL, state and counters, close() (Unbind); a Listener
// also hands out incoming connections (async iterator or 'connection' events). Per-connection work is one queue step.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { BurrowError } from '../core/errors.js';
import type { MuxSession } from '../mux/mux-session.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { MUX_ACCEPT_QUEUE_FULL } from '../protocol/error-codes.js';
import { newCounters, type ConnectionCounters } from './agent-stats.js';
import type { EndpointKind, EndpointSpec } from './endpoint-spec.js';
import type { UpstreamDialer } from './upstream-dialer.js';

/**
 * ```
 *   binding ──Bind ok──► online ──session lost──► rebinding ──Bind ok──► online
 *      │                   │                          │
 *      └── Bind refused ───┴──── close() / StopTunnel ┴──────────────► closed
 * ```
 */
export type EndpointState = 'binding' | 'online' | 'rebinding' | 'closed';

/** A public connection delivered to a Listener. */
export interface IncomingConnection {
  /** The public client's bytes both ways: plain HTTP for http endpoints (TLS ends at the relay), raw for tcp/tls. */
  readonly stream: Duplex;
  /** The public client's address as the relay saw it ('' and 0 when the relay did not say). */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** ProxyHeader.Proto: how the endpoint was bound ('https' for http endpoints, 'tcp', 'tls'). */
  readonly proto: string;
  readonly endpoint: Endpoint;
}

/** Hooks the owning agent gives its endpoints (kept narrow so the endpoint does not reach into the agent). */
export interface EndpointOwner {
  unbind(ep: Endpoint): Promise<void>;
}

/**
 * Events: 'online' (url) after each successful Bind (again after a reconnect), 'bind-error' (err, willRetry),
 * 'close' (err | undefined) once.
 */
export class Endpoint extends EventEmitter {
  readonly spec: EndpointSpec;
  readonly name: string;
  readonly kind: EndpointKind;
  /** Tunnel id from the relay ('' before the first Bind); sent again on rebind. */
  id: string;
  /** Public URL reported by the relay ('' before the first Bind). */
  url: string;
  state: EndpointState;
  /** Why the last Bind failed, or why the endpoint closed. */
  lastError: Error | null;
  readonly counters: ConnectionCounters;
  /** The upstream's dialer (shared per upstream); null for a Listener. */
  readonly dialer: UpstreamDialer | null;
  // ---- owned by the agent ----
  /** Bind.Opts as the relay returned them: sent again on rebind (PROTOCOL.md §8.4). */
  boundOpts: Record<string, unknown> | null;
  /** BindResp.Extra.Token, sent back in Bind.Extra.Token on rebind. */
  bindToken: string;
  /** The session this endpoint is bound on, or being bound on. */
  boundOn: MuxSession | null;
  bindingOn: MuxSession | null;
  retryTimer: NodeJS.Timeout | null;
  bindAttempts: number;
  private readonly owner: EndpointOwner;
  private closePromise: Promise<void> | null;

  constructor(owner: EndpointOwner, spec: EndpointSpec, dialer: UpstreamDialer | null) {
    super();
    this.owner = owner;
    this.spec = spec;
    this.name = spec.name;
    this.kind = spec.kind;
    this.id = '';
    this.url = '';
    this.state = 'binding';
    this.lastError = null;
    this.counters = newCounters();
    this.dialer = dialer;
    this.boundOpts = null;
    this.bindToken = '';
    this.boundOn = null;
    this.bindingOn = null;
    this.retryTimer = null;
    this.bindAttempts = 0;
    this.closePromise = null;
  }

  /** Where connections go, as text ("http://127.0.0.1:3000"), or "listener". */
  get upstream(): string {
    return this.spec.forwardsTo === '' ? 'listener' : this.spec.forwardsTo;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Unbind at the relay (when online) and stop taking connections. Idempotent. */
  close(): Promise<void> {
    if (this.closePromise === null) this.closePromise = this.owner.unbind(this);
    return this.closePromise;
  }

  /** Called by the agent when the endpoint is gone for good. */
  markClosed(err?: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (err !== undefined) this.lastError = err;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.boundOn = null;
    this.bindingOn = null;
    this.onClosed(err);
    this.emit('close', err);
  }

  /** Hand over a proxied connection; false when this endpoint cannot take it (the caller resets the stream). */
  deliver(_conn: IncomingConnection): boolean {
    return false;
  }

  protected onClosed(_err?: Error): void {}
}

/** Incoming connections queued per Listener before accept(); beyond this they are refused (AcceptQueueFull). */
const LISTENER_BACKLOG = 128;

/**
 * An endpoint whose connections are handed to the program instead of an upstream: `for await (const c of listener)`,
 * `await listener.accept()`, or 'connection' events (when a 'connection' listener is attached, nothing queues).
 */
export class Listener extends Endpoint implements AsyncIterable<IncomingConnection> {
  private readonly queue: IncomingConnection[];
  private readonly waiters: Array<(c: IncomingConnection | null) => void>;

  constructor(owner: EndpointOwner, spec: EndpointSpec) {
    super(owner, spec, null);
    this.queue = [];
    this.waiters = [];
  }

  /** The next connection, or null once the listener is closed. */
  accept(): Promise<IncomingConnection | null> {
    const c = this.queue.shift();
    if (c !== undefined) return Promise.resolve(c);
    if (this.state === 'closed') return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<IncomingConnection> {
    for (;;) {
      const c = await this.accept();
      if (c === null) return;
      yield c;
    }
  }

  override deliver(conn: IncomingConnection): boolean {
    if (this.state === 'closed') return false;
    const w = this.waiters.shift();
    if (w !== undefined) {
      w(conn);
      return true;
    }
    if (this.listenerCount('connection') > 0) {
      this.emit('connection', conn);
      return true;
    }
    if (this.queue.length >= LISTENER_BACKLOG) {
      (conn.stream as MuxStream).reset(MUX_ACCEPT_QUEUE_FULL);
      return true;
    }
    this.queue.push(conn);
    return true;
  }

  protected override onClosed(err?: Error): void {
    for (const c of this.queue.splice(0)) {
      c.stream.destroy(err ?? new BurrowError('BURROW_ERR_AGENT_CLOSED', `listener ${this.name} closed`));
    }
    for (const w of this.waiters.splice(0)) w(null);
  }
}
