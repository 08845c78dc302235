// Dials one local upstream (host:port) for the agent, behind an opossum 9 circuit breaker: refused or timed-out dials
// count as failures; once enough fail the breaker opens and connections are answered at once without dialling, until
// a half-open probe connects again. Once per proxied connection (one dial); not per chunk.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type CircuitBreaker from 'opossum';
import { breakerStateOf, createBreaker, type BreakerState } from '../breaker/opossum-breaker.js';
import { BurrowError } from '../core/errors.js';
import { PIPE_WRITE_HIGH_WATER_MARK, type WritableHighWaterMarkOption } from '../mux/batched-pipe.js';

export interface UpstreamAddress {
  host: string;
  port: number;
}

export interface BreakerOptions {
  /** Dial (TCP connect) deadline, ms; a slower dial is a failure (default 5000). */
  dialTimeoutMs?: number;
  /** Failure percentage in the rolling window above which the breaker opens (default 50). */
  errorThresholdPercentage?: number;
  /** How long the breaker stays open before one probe may dial, ms (default 10000). */
  resetTimeoutMs?: number;
  /** Dials in the window before the breaker may open at all (default 3: three straight failures open it). */
  volumeThreshold?: number;
  /** Rolling statistics window, ms (default 10000). */
  rollingWindowMs?: number;
  /** TCP keepalive idle time on upstream sockets, ms (default 30000; 0 = off). */
  keepaliveMs?: number;
}

export type { BreakerState };

/** One dial; kept so a dial the breaker gave up on (timeout) can still be torn down when it completes. */
interface DialAttempt {
  socket: net.Socket | null;
}

/**
 * Events: 'state' (state: BreakerState, lastError: Error | null) on every breaker transition.
 * dial() resolves with a connected socket (allowHalfOpen, noDelay, keepalive) or rejects with
 * BURROW_ERR_AGENT_UPSTREAM (the dial failed) / BURROW_ERR_AGENT_BREAKER_OPEN (not dialled).
 */
export class UpstreamDialer extends EventEmitter {
  readonly address: UpstreamAddress;
  /** "host:port" as shown in messages and 502 pages. */
  readonly label: string;
  readonly resetTimeoutMs: number;
  readonly dialTimeoutMs: number;
  /** The last dial failure (null after a success). */
  lastError: Error | null;
  /** lastError's reason without the upstream's name ("refused the connection (ECONNREFUSED); …"). */
  lastReason: string;
  /** Dials attempted, failed, and connections refused by the open breaker. */
  dials: number;
  private readonly breaker: CircuitBreaker<[DialAttempt], net.Socket>;
  private readonly keepaliveMs: number;
  private openedAt: number;

  constructor(address: UpstreamAddress, options: BreakerOptions = {}) {
    super();
    this.address = address;
    this.label = `${net.isIPv6(address.host) ? `[${address.host}]` : address.host}:${address.port}`;
    this.dialTimeoutMs = options.dialTimeoutMs ?? 5000;
    this.resetTimeoutMs = options.resetTimeoutMs ?? 10_000;
    this.keepaliveMs = options.keepaliveMs ?? 30_000;
    this.lastError = null;
    this.lastReason = 'none yet';
    this.dials = 0;
    this.openedAt = 0;
    this.breaker = createBreaker(
      this.label,
      (attempt: DialAttempt) => this.connect(attempt),
      {
        timeoutMs: this.dialTimeoutMs,
        errorThresholdPercentage: options.errorThresholdPercentage ?? 50,
        resetTimeoutMs: this.resetTimeoutMs,
        volumeThreshold: options.volumeThreshold ?? 3,
        rollingWindowMs: options.rollingWindowMs ?? 10_000,
      },
      (to) => {
        if (to === 'open') this.openedAt = Date.now();
        this.emit('state', to, this.lastError);
      },
    );
  }

  get state(): BreakerState {
    return breakerStateOf(this.breaker);
  }

  /** Connect to the upstream through the breaker. */
  async dial(): Promise<net.Socket> {
    const attempt: DialAttempt = { socket: null };
    try {
      const s = await this.breaker.fire(attempt);
      this.lastError = null;
      return s;
    } catch (err) {
      attempt.socket?.destroy(); // a dial the breaker timed out may still connect later: never leak it
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EOPENBREAKER') {
        const left = Math.max(0, this.openedAt + this.resetTimeoutMs - Date.now());
        throw new BurrowError(
          'BURROW_ERR_AGENT_BREAKER_OPEN',
          `upstream ${this.label} keeps failing (last: ${this.lastReason}); circuit breaker open, ` +
            `next attempt in ${Math.ceil(left / 1000)} s`,
          { cause: this.lastError ?? undefined },
        );
      }
      if (code === 'ESHUTDOWN') throw new BurrowError('BURROW_ERR_AGENT_CLOSED', `upstream ${this.label}: the agent is closing`);
      const reason =
        code === 'ETIMEDOUT'
          ? `did not accept the connection within ${this.dialTimeoutMs} ms`
          : code === 'ECONNREFUSED'
          ? 'refused the connection (ECONNREFUSED); check that the service is listening there'
          : `cannot be reached (${(err as Error).message})`;
      const e = new BurrowError('BURROW_ERR_AGENT_UPSTREAM', `upstream ${this.label} ${reason}`, { cause: err });
      this.lastError = e;
      this.lastReason = reason;
      throw e;
    }
  }

  /** Stop the breaker's timers. Later dials reject with BURROW_ERR_AGENT_CLOSED. */
  close(): void {
    this.breaker.shutdown();
  }

  private connect(attempt: DialAttempt): Promise<net.Socket> {
    this.dials++;
    return new Promise((resolve, reject) => {
      const options: net.NetConnectOpts & WritableHighWaterMarkOption = {
        host: this.address.host,
        port: this.address.port,
        allowHalfOpen: true, // half-close is forwarded both ways (PROTOCOL.md §10 Closing)
        noDelay: true,
        // Room for a whole transport read's pieces of the proxy stream per writev (mux/batched-pipe.ts).
        writableHighWaterMark: PIPE_WRITE_HIGH_WATER_MARK,
        keepAlive: this.keepaliveMs > 0,
        keepAliveInitialDelay: this.keepaliveMs,
      };
      const s = net.connect(options);
      attempt.socket = s;
      const onError = (err: Error): void => {
        s.destroy();
        reject(err);
      };
      s.once('error', onError);
      s.once('connect', () => {
        s.off('error', onError);
        resolve(s);
      });
    });
  }
}
