// CPU time of other processes (and of their threads) from /proc/<pid>/stat, so a macro bench can say which process
// spent the CPU of a run: the relay, the agent, the origin or the load generator. Linux only; elsewhere every reader
// returns null and the tables leave the columns out. Not on the hot path (read between runs, never inside one).
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat. 100 on every mainstream Linux build. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * utime + stime of `/proc/<pid>[/task/<tid>]/stat`, in ms, or null when the file is gone (process exited) or missing.
 * The command name (field 2) is in parentheses and may hold spaces or ')', so fields are counted from the last ')'.
 */
function statCpuMs(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  // After "pid (comm) ": state is field 3, utime field 14, stime field 15 (proc(5)).
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[14 - 3]);
  const stime = Number(rest[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** CPU time used so far by process `pid`, all its threads, in ms (10 ms resolution); null where unknown. */
export function processCpuMs(pid: number): number | null {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** CPU time used so far by each thread of `pid`, in ms, by thread id; null where /proc is missing. */
export function threadCpuMs(pid: number): Map<number, number> | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  const out = new Map<number, number>();
  for (const tid of tids) {
    const ms = statCpuMs(`/proc/${pid}/task/${tid}/stat`);
    if (ms !== null) out.set(Number(tid), ms);
  }
  return out;
}

/**
 * The busiest threads between two threadCpuMs snapshots, as a share of one core over `seconds`, highest first
 * (at most `top`). Threads that started in between count from zero.
 */
export function hottestThreads(
  before: ReadonlyMap<number, number> | null,
  after: ReadonlyMap<number, number> | null,
  seconds: number,
  top: number,
): number[] {
  return threadShares(before, after, seconds)
    .slice(0, top)
    .map(([, share]) => share);
}

/**
 * [thread id, share of one core] of every thread between two threadCpuMs snapshots `seconds` apart, highest first
 * (threads that started in between count from zero); empty when either snapshot is missing.
 */
function threadShares(
  before: ReadonlyMap<number, number> | null,
  after: ReadonlyMap<number, number> | null,
  seconds: number,
): Array<[number, number]> {
  if (before === null || after === null || seconds <= 0) return [];
  const shares: Array<[number, number]> = [];
  for (const [tid, ms] of after) shares.push([tid, (ms - (before.get(tid) ?? 0)) / (seconds * 1000)]);
  return shares.sort((a, b) => b[1] - a[1]);
}

/**
 * TCP counters of this network namespace from /proc/net/netstat (the `TcpExt:` lines: a header line of names, then
 * a line of values), e.g. `DelayedACKs` — ACKs the kernel sent from its delayed-ACK timer. Machine-wide (every
 * process in the namespace counts); null where the file is missing.
 */
export function tcpExtCounters(): Map<string, number> | null {
  let text: string;
  try {
    text = readFileSync('/proc/net/netstat', 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n').filter((l) => l.startsWith('TcpExt:'));
  if (lines.length < 2) return null;
  const names = lines[0]!.split(/\s+/).slice(1);
  const values = lines[1]!.split(/\s+/).slice(1);
  return new Map(names.map((n, i) => [n, Number(values[i])]));
}

/** Resident set size of `pid` in KiB (VmRSS in /proc/<pid>/status), or null when unknown (exited, not Linux). */
export function processRssKiB(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m === null ? null : Number(m[1]);
}

/** Number of open file descriptors of `pid` (entries of /proc/<pid>/fd), or null when unknown. */
export function openFdCount(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/** The soft limit on open files of `pid` ("Max open files" in /proc/<pid>/limits), or null when unknown. */
export function openFileLimit(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/limits`, 'utf8');
  } catch {
    return null;
  }
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  if (m === null) return null;
  return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
}

/**
 * A one-line picture of a process that is slow to exit, for the bench's log: its scheduler state and kernel wait
 * channel, threads, and open descriptors by kind (sockets, pipes, others). Null when /proc has nothing for it.
 */
export function describeProcess(pid: number): string | null {
  let stat: string;
  let status: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '?';
  let wchan = '';
  try {
    wchan = readFileSync(`/proc/${pid}/wchan`, 'utf8').trim();
  } catch {
    // not readable here
  }
  const threads = /^Threads:\s+(\d+)/m.exec(status)?.[1] ?? '?';
  const kinds = { socket: 0, pipe: 0, other: 0 };
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target = '';
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue; // closed meanwhile
      }
      if (target.startsWith('socket:')) kinds.socket++;
      else if (target.startsWith('pipe:')) kinds.pipe++;
      else kinds.other++;
    }
  } catch {
    // fd list not readable
  }
  return `state ${state}${wchan !== '' && wchan !== '0' ? ` (${wchan})` : ''}, ${threads} threads, fds: ${kinds.socket} sockets, ${kinds.pipe} pipes, ${kinds.other} other`;
}

/**
 * The threads of `pid` that used CPU since a threadCpuMs snapshot taken `seconds` ago, busiest first (at most `top`),
 * as `<thread name> <share of one core>%` (the name is /proc's comm: `node` for the main thread, `V8 DefaultWorke`
 * for V8's helpers, `libuv-worker` ...), e.g. "node 98%, V8 DefaultWorke 3%"; "none" when all were idle; null when
 * /proc has nothing. For the child group's SIGKILL line: a process that spins while asked to exit shows its thread.
 */
export function busyThreads(pid: number, before: ReadonlyMap<number, number> | null, seconds: number, top: number): string | null {
  if (before === null || seconds <= 0) return null;
  const after = threadCpuMs(pid);
  if (after === null) return null;
  const busy = threadShares(before, after, seconds).filter(([, share]) => share > 0);
  if (busy.length === 0) return 'none';
  return busy
    .slice(0, top)
    .map(([tid, share]) => `${threadName(pid, tid)} ${Math.round(share * 100)}%`)
    .join(', ');
}

/** /proc's name of a thread (`node`, `V8 DefaultWorke`, ...), or its id once it is gone. */
function threadName(pid: number, tid: number): string {
  try {
    return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
  } catch {
    return String(tid);
  }
}
