// Receiving side of the mux throughput bench: a TCP server on 127.0.0.1:0 that counts payload bytes, either straight
// off the socket (raw) or off every stream of a MuxSession (server role), and reports the moment it has counted
// the expected total. Used in-process (same mode) and inside sink-process.ts (split mode). HOT PATH of the bench:
// the 'data' handler must stay cheaper than anything it measures (one add and one compare, no closure per chunk).
import net from 'node:net';
import { MuxSession } from '../../../src/mux/mux-session.js';
import type { MuxStream } from '../../../src/mux/mux-stream.js';

/** What the next incoming connection carries. */
export interface SinkPlan {
  id: number;
  kind: 'raw' | 'mux';
  /** Payload bytes to count before reporting done. */
  bytes: number;
  /** MuxSession receive window (mux only). */
  windowSize: number;
  noDelay: boolean;
}

export interface SinkDone {
  id: number;
  /** process.hrtime.bigint() when the last byte was counted. CLOCK_MONOTONIC, so comparable across processes. */
  endNs: bigint;
  /** CPU (user + system) this process spent from accepting the connection to the last byte, in ms. */
  cpuMs: number;
  received: number;
  /** Set when the run failed (connection closed early, no progress); the other fields are then partial. */
  error?: string;
}

/** A run with no new byte for this long is reported as stalled (a flow-control hang must not hang the bench). */
const STALL_MS = 10_000;

function ignore(): void {}

export class ThroughputSink {
  private readonly server: net.Server;
  private readonly sockets: Set<net.Socket>;
  private readonly report: (done: SinkDone) => void;
  private plan: SinkPlan | null;

  constructor(report: (done: SinkDone) => void) {
    this.report = report;
    this.sockets = new Set();
    this.plan = null;
    this.server = net.createServer((socket) => this.onConnection(socket));
  }

  /** Listen on 127.0.0.1, port 0; resolves with the port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** The next connection will carry `plan`. */
  expect(plan: SinkPlan): void {
    this.plan = plan;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(socket: net.Socket): void {
    const plan = this.plan;
    this.plan = null;
    if (plan === null) {
      socket.destroy(); // nobody asked for this connection
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    new Receiver(plan, socket, this.report);
  }
}

/** Counts one run's bytes. One instance per connection; its bound handler is shared by all streams. */
class Receiver {
  private readonly plan: SinkPlan;
  private readonly report: (done: SinkDone) => void;
  private readonly cpuStart: NodeJS.CpuUsage;
  private readonly session: MuxSession | null;
  private readonly watchdog: NodeJS.Timeout;
  private received: number;
  private lastChecked: number;
  private finished: boolean;
  readonly onData: (chunk: Buffer) => void;

  constructor(plan: SinkPlan, socket: net.Socket, report: (done: SinkDone) => void) {
    this.plan = plan;
    this.report = report;
    this.cpuStart = process.cpuUsage();
    this.received = 0;
    this.lastChecked = -1;
    this.finished = false;
    this.onData = (chunk: Buffer) => {
      this.received += chunk.length;
      if (this.received >= this.plan.bytes) this.finish();
    };
    socket.setNoDelay(plan.noDelay);
    socket.on('error', ignore); // the sender tears the connection down abruptly after each run
    socket.once('close', () => this.fail('connection closed before all bytes arrived'));
    if (plan.kind === 'raw') {
      this.session = null;
      socket.on('data', this.onData);
    } else {
      const session = new MuxSession(socket, { role: 'server', windowSize: plan.windowSize });
      session.on('stream', (s: MuxStream) => {
        s.on('error', ignore); // streams are cut by the sender's session teardown
        s.on('data', this.onData);
      });
      this.session = session;
    }
    this.watchdog = setInterval(() => {
      if (this.received === this.lastChecked) this.fail(`no progress for ${STALL_MS} ms`);
      this.lastChecked = this.received;
    }, STALL_MS);
    this.watchdog.unref();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    const endNs = process.hrtime.bigint();
    const cpu = process.cpuUsage(this.cpuStart);
    clearInterval(this.watchdog);
    this.report({ id: this.plan.id, endNs, cpuMs: (cpu.user + cpu.system) / 1000, received: this.received });
  }

  private fail(reason: string): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.watchdog);
    this.session?.destroy();
    this.report({
      id: this.plan.id,
      endNs: process.hrtime.bigint(),
      cpuMs: 0,
      received: this.received,
      error: `${this.plan.kind} run ${this.plan.id}: ${reason} (${this.received} of ${this.plan.bytes} bytes)`,
    });
  }
}
