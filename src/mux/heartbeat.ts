// Heartbeat over a typed stream (type 0xFFFFFFFF, PROTOCOL.md §Heartbeat): the agent opens the stream and writes a
// 4-byte id every interval; the relay echoes each id; the agent measures RTT and fails the session when an answer
// is later than the tolerance. Not on the data path.
import { randomInt } from 'node:crypto';
import { BurrowError } from '../core/errors.js';
import { MUX_ENHANCE_YOUR_CALM, MUX_STREAM_CANCELLED } from '../protocol/error-codes.js';
import { HEARTBEAT_ID_SIZE as ID_SIZE, STREAM_TYPE_HEARTBEAT } from '../protocol/messages.js';
import type { MuxSession } from './mux-session.js';
import type { MuxStream } from './mux-stream.js';
import { openTypedStream } from './typed-stream.js';

export interface HeartbeatServeOptions {
  /** Beats per second allowed on average; beyond `burst` above that the session is terminated (flood). */
  maxPerSecond?: number;
  burst?: number;
  /**
   * End the session when no beat arrives for this long (0 = off). The ngrok SDKs do not act on a missed beat
   * themselves, so the relay must (PROTOCOL.md §Heartbeat); use interval + tolerance from the agent's Auth.
   */
  livenessMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

/**
 * Relay role: echo every id on an accepted heartbeat stream. Echoes honour backpressure (a peer that does not read
 * its echoes stalls on the stream window, so memory stays bounded). A peer that beats faster than the allowance is
 * sent GOAWAY EnhanceYourCalm and the session is ended.
 */
export function serveHeartbeat(session: MuxSession, stream: MuxStream, options: HeartbeatServeOptions = {}): void {
  const rate = options.maxPerSecond ?? 20;
  const burst = options.burst ?? 50;
  const now = options.now ?? Date.now;
  let tokens = burst;
  let last = now();
  const livenessMs = options.livenessMs ?? 0;
  let watchdog: NodeJS.Timeout | null = null;
  if (livenessMs > 0) {
    watchdog = setTimeout(() => {
      session.destroy(
        new BurrowError('BURROW_ERR_MUX_HEARTBEAT_TIMEOUT', `agent sent no heartbeat for ${livenessMs} ms; session closed`),
      );
    }, livenessMs);
    watchdog.unref();
    session.once('close', () => clearTimeout(watchdog!));
    stream.once('close', () => clearTimeout(watchdog!));
  }
  stream.on('error', () => {}); // the session reports its own failure; a reset heartbeat stream needs no more
  // The peer ends its heartbeat stream only with the session, so a graceful close() of ours, which waits for every
  // stream, would wait its whole grace period: reset it when the close begins.
  const onClosing = (): void => stream.reset(MUX_STREAM_CANCELLED);
  session.once('closing', onClosing);
  stream.once('close', () => session.off('closing', onClosing));
  stream.on('data', (chunk: Buffer) => {
    if (watchdog !== null) watchdog.refresh();
    const t = now();
    tokens = Math.min(burst, tokens + ((t - last) * rate) / 1000);
    last = t;
    tokens -= chunk.length / ID_SIZE;
    if (tokens < 0) {
      session.terminate(MUX_ENHANCE_YOUR_CALM, `heartbeat flood: more than ${rate}/s (burst ${burst})`);
      return;
    }
    if (!stream.write(chunk)) stream.pause();
  });
  stream.on('drain', () => stream.resume());
  stream.on('end', () => stream.end());
}

export interface HeartbeaterOptions {
  /** Time between beats (default 10 s, as the ngrok SDKs). */
  intervalMs?: number;
  /** How late an answer may be before the session is declared dead (default 15 s). */
  toleranceMs?: number;
  /** Called with each measured round-trip time in ms. */
  onRtt?: (ms: number) => void;
  /**
   * Destroy the session on a missed answer (default true). The relay measures RTT with its own beats but leaves
   * liveness to its session-wide check, so a late answer there only skips that sample.
   */
  failSession?: boolean;
}

/**
 * Agent role: opens the heartbeat stream and beats. When an answer is late by the tolerance and no other byte came from
 * the peer meanwhile, the session is destroyed with BURROW_ERR_MUX_HEARTBEAT_TIMEOUT. The peer may end the stream only
 * with the session (PROTOCOL.md §Heartbeat): ended or reset while the session is open, and not going away, liveness
 * could no longer be checked, so the session is destroyed too (BURROW_ERR_MUX_PROTOCOL). stop() ends the stream; when
 * the session's graceful close begins the stream is reset, since a silent peer would never end it.
 */
export class Heartbeater {
  private readonly session: MuxSession;
  private readonly intervalMs: number;
  private readonly toleranceMs: number;
  private readonly onRtt: ((ms: number) => void) | undefined;
  private readonly failSession: boolean;
  private stream: MuxStream | null;
  /** stop() was called: the stream's end or reset is ours, not the peer's doing. */
  private stopped: boolean;
  private interval: NodeJS.Timeout | null;
  private deadline: NodeJS.Timeout | null;
  private outstandingId: number;
  private sentAt: bigint;
  private pending: Buffer;
  /** session.bytesIn when the outstanding beat's deadline was (re)armed. */
  private bytesAtArm: number;
  /** Last measured RTT in ms (NaN before the first answer). */
  lastRttMs: number;

  constructor(session: MuxSession, options: HeartbeaterOptions = {}) {
    this.session = session;
    this.intervalMs = options.intervalMs ?? 10_000;
    this.toleranceMs = options.toleranceMs ?? 15_000;
    this.onRtt = options.onRtt;
    this.failSession = options.failSession ?? true;
    this.stream = null;
    this.stopped = false;
    this.interval = null;
    this.deadline = null;
    this.outstandingId = -1;
    this.sentAt = 0n;
    this.pending = Buffer.alloc(0);
    this.bytesAtArm = 0;
    this.lastRttMs = Number.NaN;
  }

  start(): void {
    if (this.stream !== null) return;
    const s = openTypedStream(this.session, STREAM_TYPE_HEARTBEAT);
    this.stream = s;
    s.on('error', () => this.peerEnded('reset'));
    s.on('data', (chunk: Buffer) => this.onEcho(chunk));
    s.on('end', () => this.peerEnded('ended'));
    this.session.once('close', () => this.stop());
    // A graceful close waits for every stream; the peer ends this one only when it sees ours end, which a stalled peer
    // never does, so the close would wait out its whole grace period.
    const onClosing = (): void => {
      this.stop();
      if (!s.destroyed) s.reset(MUX_STREAM_CANCELLED);
    };
    this.session.once('closing', onClosing);
    s.once('close', () => this.session.off('closing', onClosing));
    this.beat();
    this.interval = setInterval(() => this.beat(), this.intervalMs);
    this.interval.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.interval !== null) clearInterval(this.interval);
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.interval = null;
    this.deadline = null;
    const s = this.stream;
    if (s !== null && !s.destroyed) s.end();
  }

  /** The peer ended or reset the heartbeat stream. */
  private peerEnded(how: 'ended' | 'reset'): void {
    if (this.stopped) return;
    this.stop();
    const m = this.session;
    if (!this.failSession || m.isClosed || m.isClosing || m.remoteGoAway !== null) return; // the session is ending anyway
    m.destroy(
      new BurrowError(
        'BURROW_ERR_MUX_PROTOCOL',
        `the peer ${how} the heartbeat stream while the session is open; without it a silent peer could not be detected, so the session is ended`,
      ),
    );
  }

  private beat(): void {
    const s = this.stream;
    if (s === null || s.destroyed || this.outstandingId >= 0) return; // one beat in flight at a time
    const id = randomInt(0, 0x7fffffff);
    const b = Buffer.allocUnsafe(ID_SIZE);
    b.writeUInt32BE(id, 0);
    this.outstandingId = id;
    this.sentAt = process.hrtime.bigint();
    s.write(b);
    this.armDeadline();
  }

  private armDeadline(): void {
    this.bytesAtArm = this.session.bytesIn;
    this.deadline = setTimeout(() => this.onDeadline(), this.toleranceMs);
    this.deadline.unref();
  }

  private onDeadline(): void {
    this.deadline = null;
    if (!this.failSession) {
      this.outstandingId = -1; // give up on this beat; the next one starts afresh
      return;
    }
    // The beat and its echo share the session's one ordered byte stream with DATA, so on a saturated link they wait
    // behind up to a window of data per stream. Bytes that kept arriving show the peer alive: wait on (the relay
    // judges the session the same way, by bytes received).
    if (this.session.bytesIn !== this.bytesAtArm) {
      this.armDeadline();
      return;
    }
    this.stop();
    this.session.destroy(
      new BurrowError(
        'BURROW_ERR_MUX_HEARTBEAT_TIMEOUT',
        `no heartbeat answer and no other bytes within ${this.toleranceMs} ms; the relay or the network is unresponsive`,
      ),
    );
  }

  private onEcho(chunk: Buffer): void {
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (buf.length >= ID_SIZE) {
      const id = buf.readUInt32BE(0);
      buf = buf.subarray(ID_SIZE);
      if (id !== this.outstandingId) continue; // a stale or foreign id: ignore
      this.outstandingId = -1;
      if (this.deadline !== null) clearTimeout(this.deadline);
      this.deadline = null;
      const ms = Number(process.hrtime.bigint() - this.sentAt) / 1e6;
      this.lastRttMs = ms;
      if (this.onRtt !== undefined) this.onRtt(ms);
    }
    this.pending = buf;
  }
}
