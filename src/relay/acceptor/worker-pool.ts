// Hands accepted connections to worker threads (DESIGN.md §1): dup(fd) through the native addon, destroy the
// acceptor's socket, and run a piscina task on the worker that owns the target session (affinity) or on the least
// busy worker (new agent sessions). Also carries each worker's control channel (route reservations).
// Per-connection path: one dup, one postMessage.
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import net from 'node:net';
import { Piscina } from 'piscina';
import { FdClaims } from '../fd-claims.js';
import { BurrowError } from '../../core/errors.js';
import { closeFdQuietly, nativeAddon } from '../../native/native-addon.js';
import type {
  AcceptorToWorker,
  AgentTask,
  MemberOutcome,
  PublicTask,
  PublicTaskMeta,
  RelayTask,
  SpawnTask,
  StatsDetail,
  TaskResult,
  WorkerStats,
  WorkerToAcceptor,
} from '../relay-messages.js';
import { WorkerRuntime, type WorkerData, type WorkerSettings } from '../worker/worker-runtime.js';

/** Handles a control message from worker `workerId`; `reply` answers it on that worker's channel. */
export type ControlHandler = (workerId: number, msg: WorkerToAcceptor, reply: (m: AcceptorToWorker) => void) => void;

export interface DispatchMeta {
  remoteAddress: string;
  remotePort: number;
  acceptedAt: number;
}

/** One worker's answer to a scrape; `stats` null = it did not answer in time (reported as down). */
export interface WorkerReport {
  workerId: number;
  stats: WorkerStats | null;
}

export interface ConnectionDispatcher {
  /** True when connections run on worker threads; false in the single-threaded fallback. */
  readonly threaded: boolean;
  /** Worker threads configured (1 for the in-thread runtime). */
  readonly expectedWorkers: number;
  /** Workers replaced after they died. */
  readonly restarts: number;
  /** Live worker ids (threadIds; 0 for the in-thread runtime). */
  workerIds(): number[];
  /** Workers whose control channel is up (a replaced worker counts once it has started). */
  readyWorkers(): number;
  /** Ask every worker for its stats; a worker silent for `timeoutMs` is reported with stats null, not waited on. */
  collectStats(timeoutMs: number, detail: StatsDetail): Promise<WorkerReport[]>;
  /** Send a control message to one worker (false if it has no channel). */
  postControl(workerId: number, msg: AcceptorToWorker): boolean;
  /** Hand a connection over. True when a task now owns it (onTaskDone will report its end); false = it was closed. */
  dispatchAgent(socket: net.Socket, head: Buffer, meta: DispatchMeta): boolean;
  /** Like dispatchAgent for a public connection, to worker `workerId`. */
  dispatchPublic(socket: net.Socket, head: Buffer, task: PublicTaskMeta, workerId: number): boolean;
  /** Like dispatchPublic for a descriptor the acceptor already owns (a connection a worker handed back). */
  dispatchPublicFd(fd: number, head: Buffer, task: PublicTaskMeta, workerId: number): void;
  /** Tell every worker to stop taking new work and GOAWAY its agents. */
  drain(): void;
  /**
   * Test hook, only with env BURROW_TEST_HOOKS=1 (else throws): make one live worker (`workerId`, else round-robin)
   * throw an uncaught error so the pool replaces it. Returns the id of the worker told to crash.
   */
  crashWorkerForTest(workerId?: number): number;
  destroy(): Promise<void>;
}

function requireTestHooks(): void {
  if (process.env['BURROW_TEST_HOOKS'] !== '1') {
    throw new BurrowError('BURROW_ERR_RELAY_TEST_HOOK', 'worker crash test hook called without BURROW_TEST_HOOKS=1 in the relay environment');
  }
}

export interface DispatcherOptions {
  workers: number;
  settings: WorkerSettings;
  onControl: ControlHandler;
  /** A worker died (crash) or was removed: drop what it owned. */
  onWorkerGone: (workerId: number) => void;
  /**
   * A connection task ended (its connection is closed): `remoteAddress` is its client's, `connId` the pooled
   * connection's id (0 when not pooled), `reports` the member outcomes its worker recorded (undefined when the task
   * failed or never ran).
   */
  onTaskDone?: (remoteAddress: string, connId: number, reports: readonly MemberOutcome[] | undefined) => void;
}

/** Worker isolates' young generation, MiB: V8 splits it 1:1:1 into two semi-spaces and new large objects (4 MiB each). */
const WORKER_YOUNG_GEN_MB = 12;

const WORKER_ENTRY = new URL('../worker/worker-entry.js', import.meta.url);

/** Queue options piscina hands to our balancer (set on the task object under Piscina.queueOptionsSymbol). */
interface QueueOpts {
  workerId?: number;
  control?: boolean;
  /** A SpawnTask: never placed (see ensureWorkers). */
  spawn?: boolean;
}

/** First wait before starting a worker piscina did not replace; doubles per failed start, up to the cap. */
const RESPAWN_FIRST_MS = 100;
const RESPAWN_MAX_MS = 30_000;
/** Start-up gives the first workers this long to come up (a normal start takes well under a second). */
const START_DEADLINE_MS = 30_000;

/** Create the dispatcher: worker threads when the native addon is there, else an in-thread runtime. */
export async function createDispatcher(opts: DispatcherOptions): Promise<ConnectionDispatcher> {
  if (!nativeAddon.available || opts.workers === 0) return new InThreadDispatcher(opts);
  const d = new ThreadedDispatcher(opts);
  try {
    await d.start();
  } catch (err) {
    await d.destroy();
    throw err;
  }
  return d;
}

class ThreadedDispatcher implements ConnectionDispatcher {
  readonly threaded = true;
  private readonly opts: DispatcherOptions;
  private readonly pool: Piscina;
  /** Who owns each posted descriptor, acceptor or worker (fd-claims.ts); shared with the workers. */
  private readonly claims: FdClaims;
  /** Handoffs are being refused because the ring is full (warned once per stall). */
  private refusing: boolean;
  private readonly ports: Map<number, MessagePort>;
  /**
   * Start-up, until every first worker is running or has failed: settle() resolves once one runs, rejects when none
   * does. null once settled.
   */
  private starting: { first: Set<number>; failures: number; reason: string; settle: (err: Error | null) => void } | null;
  private destroyed: boolean;
  private readonly ready: Set<number>;
  private readonly pendingStats: Map<number, { workerId: number; resolve: (s: WorkerStats | null) => void }>;
  private nextStatsId: number;
  restarts: number;
  private lastCrashed: number;
  /**
   * Workers that died while their control task may still wait in piscina's queue. The balancer hands such a task to
   * any live worker, which ends it at once (worker-entry.ts): a task no worker takes would stall the whole queue.
   */
  private readonly gone: Set<number>;
  /** Workers in a row that died before their control channel came up (start failures): sets the respawn backoff. */
  private failedStarts: number;
  private respawnTimer: NodeJS.Timeout | null;
  /** Workers that just died, reported once the reason is known (the pool's error, or a failed task's): id → reason. */
  private readonly crashReports: Map<number, string>;

  constructor(opts: DispatcherOptions) {
    this.opts = opts;
    this.ready = new Set();
    this.pendingStats = new Map();
    this.nextStatsId = 1;
    this.restarts = 0;
    this.lastCrashed = -1;
    this.gone = new Set();
    this.failedStarts = 0;
    this.respawnTimer = null;
    this.crashReports = new Map();
    this.ports = new Map();
    this.starting = null;
    this.destroyed = false;
    this.claims = new FdClaims();
    this.refusing = false;
    this.pool = new Piscina({
      filename: WORKER_ENTRY.href,
      name: 'handleTask',
      minThreads: opts.workers,
      maxThreads: opts.workers,
      idleTimeout: Infinity,
      // Tasks are connections that live for minutes; Atomics.wait-based waiting would only block the worker's loop.
      atomics: 'disabled',
      concurrentTasksPerWorker: 1 << 30,
      workerData: { ...opts.settings, fdClaims: this.claims.buffer } satisfies WorkerData,
      // A smaller young generation than V8's default (16 MiB semi-spaces). Opening connections quickly makes V8 grow
      // each isolate's semi-spaces to their maximum, and that memory stays committed: with 10 000 idle connections it
      // was ~5 of the 12.5 KiB RSS per connection (bench/RESULTS.md, 2026-11-28 perf entry). Per-chunk objects on the
      // data path are small (payload lives outside the heap), so more frequent scavenges cost little. Started from the
      // CLI, the relay also keeps every isolate's new space at its initial 1 MiB (src/cli/tune-v8.ts); this cap is what
      // an embedding process gets.
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GEN_MB },
      // Runs once per handed-off connection: one pass over the workers, no allocation.
      loadBalancer: (task, workers) => {
        const q = (task as unknown as Record<symbol, QueueOpts | null>)[Piscina.queueOptionsSymbol] ?? null;
        if (q !== null && q.spawn === true) return null;
        const owner = q !== null && q.workerId !== undefined ? q.workerId : -1;
        let best: (typeof workers)[number] | null = null;
        for (const w of workers) {
          if (w.terminating || w.destroyed) continue;
          if (w.id === owner) return w;
          if (best === null || w.currentUsage < best.currentUsage) best = w;
        }
        // No owner found: a connection's owner vanished between lookup and dispatch, and the least busy worker answers
        // "no such endpoint" cleanly. A control task waits (null) until the very worker its port was made for is
        // ready (routes record that worker's id, so the channel must not land on another one), unless that worker is
        // dead: then any worker ends it (piscina stops placing tasks at the first one it cannot place).
        if (q !== null && q.control === true && !this.gone.has(owner)) return null;
        return best;
      },
    });
    this.pool.on('workerCreate', (w: { id: number; terminating: boolean; destroyed: boolean }) => {
      // piscina can announce a worker that already died: its error and its "ready" arrived in one loop turn and the
      // error was handled first.
      if (!w.destroyed && !w.terminating) this.attachControl(w.id);
      else this.gone.delete(w.id); // no control task was made for it
    });
    this.pool.on('workerDestroy', (w: { id: number }) => this.onWorkerDestroy(w.id));
    this.pool.on('error', (err: Error) => {
      // A worker error with no task to fail (e.g. crash while idle). It comes right after the worker's removal, whose
      // report (onWorkerDestroy) then names it; any other pool error is reported on its own.
      if (this.crashReports.size > 0) this.noteCrashReason(err);
      else process.emitWarning(`burrow worker error: ${err.message}`, { code: 'BURROW_ERR_WORKER_CRASHED' });
    });
  }

  /**
   * Resolves once every first worker is running (its control channel is up) or has failed while starting, with at
   * least one running; the rest are started again in the background (scheduleRespawnCheck). Rejects with
   * BURROW_ERR_WORKER_CRASHED, naming the reason, when none of them came up: a relay that printed its banner then would
   * accept agents and connections that no thread ever serves.
   */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.settleStart(), START_DEADLINE_MS);
      this.starting = {
        first: new Set(),
        failures: 0,
        reason: '',
        settle: (err) => {
          clearTimeout(timer);
          this.starting = null;
          if (err === null) resolve();
          else reject(err);
        },
      };
    });
  }

  /**
   * During start-up: settle once every first worker has either come up or failed (see start()). A replacement that
   * comes up counts as up; one that fails does not count, since a first worker may still be starting.
   */
  private checkStarted(): void {
    const s = this.starting;
    if (s !== null && this.ready.size + s.failures >= this.opts.workers) this.settleStart();
  }

  /** Ends start(): resolved when a worker runs, else rejected with the first failure's reason (or the deadline). */
  private settleStart(): void {
    const s = this.starting;
    if (s === null) return;
    if (this.ready.size > 0) return s.settle(null);
    const why = s.reason !== '' ? s.reason : `none came up within ${START_DEADLINE_MS / 1000} s`;
    s.settle(
      new BurrowError(
        'BURROW_ERR_WORKER_CRASHED',
        `none of the ${this.opts.workers} worker threads could start (${why}); ` +
          'fix the cause, or run single-threaded with BURROW_DISABLE_NATIVE=1',
      ),
    );
  }

  get expectedWorkers(): number {
    return this.opts.workers;
  }

  workerIds(): number[] {
    return [...this.ports.keys()];
  }

  readyWorkers(): number {
    return this.ready.size;
  }

  collectStats(timeoutMs: number, detail: StatsDetail): Promise<WorkerReport[]> {
    return Promise.all(
      [...this.ports].map(([workerId, port]) => {
        const reqId = this.nextStatsId++;
        return new Promise<WorkerReport>((resolve) => {
          const timer = setTimeout(() => done(null), timeoutMs);
          const done = (stats: WorkerStats | null): void => {
            clearTimeout(timer);
            this.pendingStats.delete(reqId);
            resolve({ workerId, stats });
          };
          this.pendingStats.set(reqId, { workerId, resolve: done });
          port.postMessage({ op: 'stats', reqId, detail } satisfies AcceptorToWorker);
        });
      }),
    );
  }

  postControl(workerId: number, msg: AcceptorToWorker): boolean {
    const p = this.ports.get(workerId);
    if (p === undefined) return false;
    p.postMessage(msg);
    return true;
  }

  dispatchAgent(socket: net.Socket, head: Buffer, meta: DispatchMeta): boolean {
    const fd = this.takeFd(socket);
    if (fd < 0) return false;
    const task: AgentTask = { kind: 'agent', fd, claimSlot: -1, claimTicket: -1, head, ...meta };
    this.run(task, {});
    return true;
  }

  dispatchPublic(socket: net.Socket, head: Buffer, rest: PublicTaskMeta, workerId: number): boolean {
    const fd = this.takeFd(socket);
    if (fd < 0) return false;
    this.dispatchPublicFd(fd, head, rest, workerId);
    return true;
  }

  dispatchPublicFd(fd: number, head: Buffer, rest: PublicTaskMeta, workerId: number): void {
    const task: PublicTask = { kind: 'public', fd, claimSlot: -1, claimTicket: -1, head, ...rest };
    this.run(task, { workerId });
  }

  drain(): void {
    for (const p of this.ports.values()) p.postMessage({ op: 'drain' } satisfies AcceptorToWorker);
  }

  crashWorkerForTest(workerId?: number): number {
    requireTestHooks();
    if (workerId !== undefined) {
      const port = this.ports.get(workerId);
      if (port === undefined) throw new BurrowError('BURROW_ERR_RELAY_TEST_HOOK', `no live worker ${workerId} to crash`);
      port.postMessage({ op: 'test-crash' } satisfies AcceptorToWorker);
      return workerId;
    }
    if (this.ports.size === 0) throw new BurrowError('BURROW_ERR_RELAY_TEST_HOOK', 'no live worker to crash');
    // Round-robin by thread id: the next live id after the last one crashed, wrapping to the lowest.
    let id = -1;
    let lowest = -1;
    for (const w of this.ports.keys()) {
      if (lowest < 0 || w < lowest) lowest = w;
      if (w > this.lastCrashed && (id < 0 || w < id)) id = w;
    }
    if (id < 0) id = lowest;
    this.lastCrashed = id;
    this.ports.get(id)!.postMessage({ op: 'test-crash' } satisfies AcceptorToWorker);
    return id;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.respawnTimer !== null) clearTimeout(this.respawnTimer);
    for (const p of this.ports.values()) p.close();
    this.ports.clear();
    await this.pool.destroy();
  }

  /** dup the socket's fd for the worker and close the acceptor's handle. Returns -1 (socket destroyed) on failure. */
  private takeFd(socket: net.Socket): number {
    const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
    const fd = handle?.fd ?? -1;
    let dupFd = -1;
    try {
      if (fd < 0) throw new BurrowError('BURROW_ERR_RELAY_HANDOFF', 'accepted socket has no file descriptor');
      dupFd = nativeAddon.dup(fd);
    } catch (err) {
      process.emitWarning(`burrow handoff failed: ${(err as Error).message}`, { code: 'BURROW_ERR_RELAY_HANDOFF' });
      socket.destroy();
      return -1;
    }
    // Same tick as the last read: nothing more was read into this socket, the rest waits in the kernel for the worker.
    socket.destroy();
    return dupFd;
  }

  private run(task: RelayTask, q: QueueOpts, transferList?: MessagePort[]): void {
    const withOpts = task as RelayTask & Record<symbol, QueueOpts>;
    withOpts[Piscina.queueOptionsSymbol] = q;
    const fd = 'fd' in task ? task.fd : -1;
    const ip = 'remoteAddress' in task ? task.remoteAddress : '';
    const connId = task.kind === 'public' ? task.connId : 0;
    const control = task.kind === 'control';
    if (this.destroyed) {
      // piscina's destroy() does not refuse later runs: it would start a fresh worker for this task and keep a
      // shut-down relay alive. The connection is closed instead.
      this.closeUnposted(fd, ip, connId, control);
      return;
    }
    const t = task as AgentTask | PublicTask;
    if (fd >= 0) {
      const claim = this.claims.post();
      if (claim === null) {
        // The workers have not read the last MAX_PROBES handoffs (fd-claims.ts): turn this one away rather than
        // queue it untracked. One warning per stall, not one per connection.
        if (!this.refusing) {
          this.refusing = true;
          process.emitWarning(
            'burrow handoff refused: 1024 connections in a row are still waiting for a worker to take them, so new ones ' +
              'are closed until the workers catch up. Check /readyz and burrow_worker_up; a worker that stays stuck ' +
              'needs the relay restarted',
            { code: 'BURROW_ERR_RELAY_HANDOFF' },
          );
        }
        this.closeUnposted(fd, ip, connId, control);
        return;
      }
      this.refusing = false;
      t.claimSlot = claim.slot;
      t.claimTicket = claim.ticket;
    }
    this.pool.run(withOpts, transferList ? { transferList: transferList as never } : {}).then(
      (result: TaskResult) => {
        if (!control) this.opts.onTaskDone?.(ip, connId, result?.reports);
        else this.gone.delete(q.workerId!);
      },
      (err: Error) => {
        if (control) this.gone.delete(q.workerId!);
        if (this.crashReports.size > 0) this.noteCrashReason(err);
        // The task failed: its worker crashed, the pool was destroyed, or the connection failed in the worker. If no
        // worker took the descriptor over (still queued, or posted to a worker that died before reading it), it is ours
        // to close. Once a worker took it, that worker closes it (its socket, or its own close when wrapping failed);
        // closing the number here too could close whatever descriptor reused it (fd-claims.ts).
        if (fd >= 0 && this.claims.claim(t.claimSlot, t.claimTicket)) closeFdQuietly(fd);
        if (!control) this.opts.onTaskDone?.(ip, connId, undefined);
      },
    );
  }

  /** A connection that was never posted: close it, and report its end as for any task. */
  private closeUnposted(fd: number, ip: string, connId: number, control: boolean): void {
    if (fd >= 0) closeFdQuietly(fd);
    if (!control) queueMicrotask(() => this.opts.onTaskDone?.(ip, connId, undefined));
  }

  private attachControl(workerId: number): void {
    if (this.destroyed) return;
    // The pool's first workers: start() waits for each of them, not for replacements started meanwhile.
    const s = this.starting;
    if (s !== null && s.first.size < this.opts.workers) s.first.add(workerId);
    const { port1, port2 } = new MessageChannel();
    this.ports.set(workerId, port1);
    port1.on('message', (msg: WorkerToAcceptor) => this.onPortMessage(workerId, port1, msg));
    port1.unref();
    this.run({ kind: 'control', port: port2, workerId }, { workerId, control: true }, [port2]);
  }

  private onPortMessage(workerId: number, port: MessagePort, msg: WorkerToAcceptor): void {
    if (msg.op === 'stats-reply') {
      this.pendingStats.get(msg.reqId)?.resolve(msg.stats);
      return;
    }
    if (msg.op === 'control-ready') {
      this.ready.add(workerId);
      this.failedStarts = 0;
      this.checkStarted();
      return;
    }
    this.opts.onControl(workerId, msg, (m) => port.postMessage(m));
  }

  private onWorkerDestroy(workerId: number): void {
    const p = this.ports.get(workerId);
    if (p !== undefined) {
      // What the worker posted before it died is handled before the port goes: close() drops undelivered messages,
      // and a reroute carries a duplicated descriptor that only this side can close or hand on. (First, so that a
      // late 'control-ready' cannot mark the dead worker ready again.)
      for (let m = receiveMessageOnPort(p); m !== undefined; m = receiveMessageOnPort(p)) {
        this.onPortMessage(workerId, p, m.message as WorkerToAcceptor);
      }
      p.close();
      this.ports.delete(workerId);
    }
    const started = this.ready.delete(workerId);
    if (!started) this.failedStarts++;
    if (p !== undefined) this.gone.add(workerId); // it had a control task, which may still wait in the queue
    for (const q of [...this.pendingStats.values()]) if (q.workerId === workerId) q.resolve(null);
    if (!this.destroyed) {
      this.restarts++;
      this.opts.onWorkerGone(workerId);
      this.scheduleRespawnCheck();
      this.reportCrash(workerId, started);
    }
  }

  /**
   * One warning per dead worker. piscina removes the worker first and only then fails its tasks with the error (or
   * emits 'error' when it had none), so the report waits for the end of this turn to name the reason.
   */
  private reportCrash(workerId: number, started: boolean): void {
    this.crashReports.set(workerId, '');
    setImmediate(() => {
      const reason = this.crashReports.get(workerId) || 'it exited';
      this.crashReports.delete(workerId);
      if (this.destroyed) return;
      const s = this.starting;
      // A first worker, or one that failed before the pool announced it (it never got a control channel).
      if (!started && s !== null && (s.first.has(workerId) || s.first.size < this.opts.workers)) {
        s.failures++;
        if (s.reason === '') s.reason = reason;
      }
      process.emitWarning(
        started
          ? `burrow worker ${workerId} died (${reason}); its agent sessions were dropped (their agents reconnect) and a new worker takes its place`
          : `burrow worker ${workerId} failed while starting (${reason})` +
              (s === null ? '; another is started after a pause that grows while starts keep failing' : ''), // else start() decides
        { code: 'BURROW_ERR_WORKER_CRASHED' },
      );
      this.checkStarted();
    });
  }

  private noteCrashReason(err: Error): void {
    for (const [id, reason] of this.crashReports) if (reason === '') this.crashReports.set(id, err.message);
  }

  /**
   * piscina replaces a worker that dies after it started, but after any worker fails while starting it replaces none
   * again (its `workerFailsDuringBootstrap`), so one failed start (EMFILE, ENOMEM) would leave the relay a worker short
   * for good. After every death, check once the pool has had its chance; start what is missing, backing off while
   * starts keep failing.
   */
  private scheduleRespawnCheck(): void {
    if (this.respawnTimer !== null) return;
    const delay = Math.min(RESPAWN_MAX_MS, RESPAWN_FIRST_MS * 2 ** Math.max(0, this.failedStarts - 1));
    this.respawnTimer = setTimeout(() => {
      this.respawnTimer = null;
      this.ensureWorkers();
    }, delay);
    this.respawnTimer.unref();
  }

  private ensureWorkers(): void {
    if (this.destroyed) return;
    const missing = this.opts.workers - this.pool.threads.length;
    if (missing <= 0) return;
    process.emitWarning(
      `burrow worker pool: ${missing} of ${this.opts.workers} workers missing after ${this.failedStarts} failed ` +
        `start(s) in a row; starting ${missing === 1 ? 'another' : missing}`,
      { code: 'BURROW_ERR_WORKER_CRASHED' },
    );
    // piscina has no call that starts a worker; it starts one when a task finds no worker to take it and the pool is
    // below maxThreads. A SpawnTask is such a task (the balancer never places it), aborted at once so it never
    // waits in the queue ahead of connections.
    // One per missing worker: each starts one while the pool (starting workers included) is below maxThreads.
    for (let i = 0; i < missing; i++) {
      const abort = new AbortController();
      const task: SpawnTask & Record<symbol, QueueOpts> = { kind: 'spawn', [Piscina.queueOptionsSymbol]: { spawn: true } };
      this.pool.run(task, { signal: abort.signal }).catch(() => {});
      abort.abort();
    }
    // A start that fails again is a death too (onWorkerDestroy schedules the next check, with a longer wait).
  }
}

/** Single-threaded fallback (no native addon): the worker runtime runs on the main thread, sockets passed as is. */
class InThreadDispatcher implements ConnectionDispatcher {
  readonly threaded = false;
  readonly expectedWorkers = 1;
  readonly restarts = 0;
  private readonly runtime: WorkerRuntime;
  private readonly opts: DispatcherOptions;

  constructor(opts: DispatcherOptions) {
    this.opts = opts;
    this.runtime = new WorkerRuntime(opts.settings, 0);
    this.runtime.attachControlSink({
      post: (msg: WorkerToAcceptor) => opts.onControl(0, msg, (m) => this.runtime.onControlMessage(m)),
    });
  }

  workerIds(): number[] {
    return [0];
  }

  readyWorkers(): number {
    return 1;
  }

  async collectStats(_timeoutMs: number, detail: StatsDetail): Promise<WorkerReport[]> {
    return [{ workerId: 0, stats: this.runtime.stats(detail) }];
  }

  postControl(workerId: number, msg: AcceptorToWorker): boolean {
    if (workerId !== 0) return false;
    this.runtime.onControlMessage(msg);
    return true;
  }

  dispatchAgent(socket: net.Socket, head: Buffer, meta: DispatchMeta): boolean {
    this.track(this.runtime.adoptAgent(socket, head, meta), meta.remoteAddress, 0);
    return true;
  }

  dispatchPublic(socket: net.Socket, head: Buffer, rest: PublicTaskMeta, _workerId: number): boolean {
    this.track(this.runtime.adoptPublic(socket, head, rest), rest.remoteAddress, rest.connId);
    return true;
  }

  dispatchPublicFd(fd: number, head: Buffer, rest: PublicTaskMeta, workerId: number): void {
    // Not reached in practice (one runtime: every pool member is local, so workers retry in place); kept complete.
    this.dispatchPublic(new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true }), head, rest, workerId);
  }

  drain(): void {
    this.runtime.drain();
  }

  crashWorkerForTest(_workerId?: number): number {
    requireTestHooks();
    // Throwing on the main thread would take the whole relay down, which is not what the hook simulates.
    throw new BurrowError('BURROW_ERR_RELAY_TEST_HOOK', 'the single-threaded relay has no worker to crash');
  }

  async destroy(): Promise<void> {
    await this.runtime.destroy();
  }

  private track(p: Promise<TaskResult>, ip: string, connId: number): void {
    p.then(
      (r) => this.opts.onTaskDone?.(ip, connId, r.reports),
      () => this.opts.onTaskDone?.(ip, connId, undefined),
    );
  }
}
