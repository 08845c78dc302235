// The child processes a macro bench starts (origin, relay, agent, ...): stops them in reverse order of start when
// the bench ends, fails or is interrupted (SIGINT/SIGTERM), and SIGKILLs any survivor when this process exits, so
// no run leaves a process behind. Not on the hot path.
import type { ChildProcess } from 'node:child_process';
import { busyThreads, describeProcess, threadCpuMs } from './proc-stat.js';

/** How a member is asked to stop before SIGKILL: close its IPC channel (it exits on 'disconnect') or a signal. */
export type StopBy = 'disconnect' | 'SIGTERM' | 'SIGINT';

interface Member {
  name: string;
  child: ChildProcess;
  stopBy: StopBy;
  /** The tail of what it wrote, if the caller keeps one: its last lines go into the log when it has to be killed. */
  output: (() => string) | undefined;
}

/** True once `child` has exited (by code or signal). */
export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves when `child` has exited, or with false after `ms`. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

export class ChildGroup {
  private readonly members: Member[] = [];
  private readonly cleanups: Array<() => void> = [];
  private closing: Promise<void> | null = null;
  private interrupted = false;
  private readonly killNow = (): void => {
    for (const m of this.members) if (!exited(m.child)) m.child.kill('SIGKILL');
    this.runCleanups();
  };
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.interrupted) {
      this.killNow(); // second signal: do not wait any longer
      process.exit(130);
    }
    this.interrupted = true;
    this.log(`${signal}: stopping child processes`);
    void this.close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };

  /**
   * @param graceMs how long each member may take to exit after being asked before it is SIGKILLed
   * @param log progress lines (stderr)
   */
  constructor(
    private readonly graceMs: number,
    private readonly log: (line: string) => void,
  ) {
    // 'exit' handlers run synchronously: kill() is the one thing that still works there.
    process.on('exit', this.killNow);
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  /** Process ids of the members still running. */
  pids(): number[] {
    return this.members.filter((m) => !exited(m.child) && m.child.pid !== undefined).map((m) => m.child.pid!);
  }

  /** Track `child` from now on; returns it. */
  add(name: string, child: ChildProcess, stopBy: StopBy, output?: () => string): ChildProcess {
    this.members.push({ name, child, stopBy, output });
    return child;
  }

  /**
   * Run `fn` (synchronous, e.g. removing a temporary directory) once the members have stopped — also when the bench
   * is interrupted or exits without closing the group. Each cleanup runs once; its errors are ignored.
   */
  addCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Stop every member, newest first, each within graceMs (then SIGKILL), and drop the process-wide handlers. */
  close(): Promise<void> {
    this.closing ??= this.stopAll().finally(() => {
      this.runCleanups();
      process.off('exit', this.killNow);
      process.off('SIGINT', this.onSignal);
      process.off('SIGTERM', this.onSignal);
    });
    return this.closing;
  }

  private runCleanups(): void {
    for (const fn of this.cleanups.splice(0)) {
      try {
        fn();
      } catch {
        // best effort: a leftover temporary file must not hide the bench's own result or error
      }
    }
  }

  private async stopAll(): Promise<void> {
    for (const m of [...this.members].reverse()) {
      if (exited(m.child)) continue;
      const pid = m.child.pid;
      // Per-thread CPU from here to a SIGKILL shows whether a lingering member spins (and which thread) or waits.
      const cpuBefore = pid === undefined ? null : threadCpuMs(pid);
      const askedAt = performance.now();
      if (m.stopBy === 'disconnect' && m.child.connected) m.child.disconnect();
      else m.child.kill(m.stopBy === 'disconnect' ? 'SIGTERM' : m.stopBy);
      if (!(await waitExit(m.child, this.graceMs))) {
        // What it was doing, for the next look at why (it should exit well within the grace period).
        const what = pid === undefined ? null : describeProcess(pid);
        const busy = pid === undefined ? null : busyThreads(pid, cpuBefore, (performance.now() - askedAt) / 1000, 3);
        const said = m.output?.().trimEnd().split('\n').slice(-3).join('\n    ') ?? '';
        this.log(
          `  ${m.name} (pid ${pid}) did not exit within ${this.graceMs} ms: SIGKILL${what === null ? '' : ` (${what})`}` +
            (busy === null ? '' : `; CPU while waiting: ${busy}`) +
            (said === '' ? '' : `; its last lines:\n    ${said}`),
        );
        m.child.kill('SIGKILL');
        await waitExit(m.child, this.graceMs);
      }
    }
  }
}
