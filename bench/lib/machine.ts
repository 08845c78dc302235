// Machine and source description recorded with every result file, so numbers from different machines or commits
// are never compared by accident. Not on the hot path.
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface MachineInfo {
  cpuModel: string;
  cpuCount: number;
  /** os.availableParallelism(): what the process may actually use (cgroup/affinity limits included). */
  availableParallelism: number;
  totalMemMiB: number;
  os: string;
  node: string;
  v8: string;
  loadAvg: number[];
  git: { commit: string; dirty: boolean } | null;
}

export function machineInfo(cwd: string): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    availableParallelism: os.availableParallelism(),
    totalMemMiB: Math.round(os.totalmem() / (1024 * 1024)),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    loadAvg: os.loadavg().map((x) => +x.toFixed(2)),
    git: gitState(cwd),
  };
}

function gitState(cwd: string): { commit: string; dirty: boolean } | null {
  try {
    const run = (...args: string[]): string =>
      execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { commit: run('rev-parse', 'HEAD'), dirty: run('status', '--porcelain').length > 0 };
  } catch {
    return null; // not a git checkout, or git missing: the result file just says so
  }
}

/**
 * Busy CPU time of the whole machine so far, in ms (all cores: user + nice + system + irq + softirq + steal), from
 * /proc/stat; null where that file does not exist. Sampled around each run to tell how much CPU *other* processes
 * took meanwhile — on a 2-core box one concurrent test run is enough to move the numbers.
 */
export function machineBusyMs(): number | null {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'utf8');
  } catch {
    return null;
  }
  // First line: "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
  const line = text.slice(0, text.indexOf('\n')).trim().split(/\s+/);
  const f = (i: number): number => Number(line[i] ?? 0);
  const ticks = f(1) + f(2) + f(3) + f(6) + f(7) + f(8);
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** USER_HZ: the unit of /proc/stat. 100 on every mainstream Linux build. */
const CLOCK_TICKS_PER_SECOND = 100;
