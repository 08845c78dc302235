// `npm run bench -- relay`: HTTP keep-alive requests per second and latency percentiles through the relay and the
// official @ngrok/ngrok agent, against the same origin hit directly, in one run with the scenarios interleaved run by
// run (direct, tunnel, tunnel-https, direct-1conn, latency-1conn, ..., then again), so machine noise hits them alike.
// Only same-table ratios are meant to be compared across machines.
//
// Processes (STYLE.md: macro benches run separate processes), all on 127.0.0.1:
//
//   direct rows   autocannon (this process) ──────────────────────────────────────────────────► origin
//   tunnel rows   autocannon (this process) ──► relay :http | :https ══ mux over TLS ══► agent ──► origin
//                                               (child: bin/burrow.js   (the agent dialled (child:    (child:
//                                                relay, --workers N)     :agents)          SDK)       node:http)
//
// The load generator runs here, on this process's one event loop; on a small machine it competes for the same cores
// as the origin (direct rows) or the relay, the agent and the origin (tunnel rows). The CPU each process spent is
// read from /proc around every run and shown per request, so the table says where the time went.
// Not on the hot path: everything here runs between measurements, except the per-response listener in http-load.ts.
import os from 'node:os';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ChildGroup } from '../lib/child-group.js';
import { machineBusyMs } from '../lib/machine.js';
import { hottestThreads, processCpuMs, tcpExtCounters, threadCpuMs } from '../lib/proc-stat.js';
import {
  BenchUsageError,
  KiB,
  formatSize,
  parseSize,
  percentileSorted,
  summariseHttp,
  type BenchSuite,
  type HttpResultTable,
  type HttpRunSample,
  type SuiteContext,
  type SuiteReport,
} from '../lib/suite.js';
import { runLoad, type LoadResult, type LoadTarget } from './http-load.js';
import { startRelayProcess, type RelayProcess } from './relay-process.js';

type Path = 'direct' | 'http' | 'https';

interface Scenario {
  name: string;
  description: string;
  path: Path;
  /** 0 = the --connections value. */
  connections: number;
  baseline: string | null;
  target: number | null;
}

/** The endpoint's hostname; any name under the relay's default domain works. */
const DOMAIN = 'bench.burrow.localhost';
/** Relay target from the issue (#3 item 7): relay + SDK agent >= 0.35 x direct RPS, keep-alive. Recorded only. */
const TUNNEL_TARGET = 0.35;
/** A run during which other processes used more than this share of a core is repeated, at most NOISY_RETRIES times. */
const NOISY_SHARE = 0.25;
const NOISY_RETRIES = 2;
/** Pause between runs, so the previous run's connections are torn down (relay streams, agent upstream sockets). */
const SETTLE_MS = 300;
/** Child start-up and shutdown bounds. */
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const HOT_THREADS = 3;

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'direct',
    description: 'origin directly (baseline)',
    path: 'direct',
    connections: 0,
    baseline: null,
    target: null,
  },
  {
    name: 'tunnel',
    description: 'relay http + SDK agent',
    path: 'http',
    connections: 0,
    baseline: 'direct',
    target: TUNNEL_TARGET,
  },
  {
    name: 'tunnel-https',
    description: 'relay https (TLS at relay) + SDK agent',
    path: 'https',
    connections: 0,
    baseline: 'direct',
    target: null,
  },
  {
    name: 'direct-1conn',
    description: 'origin directly, 1 connection (baseline)',
    path: 'direct',
    connections: 1,
    baseline: null,
    target: null,
  },
  {
    name: 'latency-1conn',
    description: 'relay http + SDK agent, 1 connection',
    path: 'http',
    connections: 1,
    baseline: 'direct-1conn',
    target: null,
  },
  {
    name: 'latency-1conn-https',
    description: 'relay https + SDK agent, 1 connection',
    path: 'https',
    connections: 1,
    baseline: 'direct-1conn',
    target: null,
  },
];

export const relayHttpSuite: BenchSuite = {
  name: 'relay',
  description: 'HTTP keep-alive RPS and latency: origin direct vs through the relay + @ngrok/ngrok agent',
  options: {
    connections: {
      type: 'string',
      valueName: 'N',
      description: 'keep-alive connections of the main rows (default 50)',
    },
    duration: {
      type: 'string',
      valueName: 'S',
      description: 'seconds per run (default 10; 3 with --quick)',
    },
    warmup: {
      type: 'string',
      valueName: 'S',
      description: 'untimed seconds per scenario first (default 2; 1 with --quick)',
    },
    'body-size': { type: 'string', valueName: 'SIZE', description: 'origin response body (default 1K)' },
    workers: { type: 'string', valueName: 'N', description: 'relay --workers (default: available cores)' },
    only: {
      type: 'string',
      valueName: 'LIST',
      description: `comma-separated scenarios to run (${SCENARIOS.map((s) => s.name).join(', ')})`,
    },
  },
  run: runRelayHttp,
};

interface Settings {
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  bodySize: number;
  workers: number;
  list: Scenario[];
  relayNodeOptions: string[];
}

function intOption(o: SuiteContext['options'], name: string, dflt: number, min: number, max: number): number {
  const raw = o[name];
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new BenchUsageError(`--${name} must be an integer in ${min}..${max}, got '${String(raw)}'`);
  }
  return n;
}

function parseSettings(ctx: SuiteContext): Settings {
  const o = ctx.options;
  const bodySize = o['body-size'] === undefined ? KiB : parseSize(String(o['body-size']));
  if (!Number.isSafeInteger(bodySize) || bodySize < 0 || bodySize > 64 * 1024 * KiB) {
    throw new BenchUsageError(`--body-size must be a size in 0..64M such as 1K, got '${String(o['body-size'])}'`);
  }
  let list = [...SCENARIOS];
  if (typeof o['only'] === 'string') {
    const wanted = new Set(o['only'].split(',').map((s) => s.trim()).filter((s) => s !== ''));
    const unknown = [...wanted].filter((n) => !list.some((s) => s.name === n));
    if (unknown.length > 0) {
      const names = list.map((s) => s.name).join(', ');
      throw new BenchUsageError(`--only: unknown scenario ${unknown.join(', ')}; available: ${names}`);
    }
    list = list.filter((s) => wanted.has(s.name));
  }
  const env = process.env['BENCH_RELAY_NODE_OPTIONS'];
  return {
    connections: intOption(o, 'connections', 50, 1, 10_000),
    durationSeconds: intOption(o, 'duration', ctx.quick ? 3 : 10, 1, 3600),
    warmupSeconds: intOption(o, 'warmup', ctx.quick ? 1 : 2, 0, 600),
    bodySize,
    workers: intOption(o, 'workers', os.availableParallelism(), 1, 64), // the relay's own limit
    list,
    relayNodeOptions: env === undefined ? [] : env.split(/\s+/).filter((s) => s !== ''),
  };
}

/** The running processes of one bench: origin always, relay and agent when a tunnel row is selected. */
interface Rig {
  origin: ChildProcess;
  originPort: number;
  relay: RelayProcess | null;
  agent: ChildProcess | null;
  agentOutput: () => string;
}

async function runRelayHttp(ctx: SuiteContext): Promise<SuiteReport> {
  const s = parseSettings(ctx);
  const group = new ChildGroup(STOP_GRACE_MS, ctx.log);
  try {
    const rig = await startRig(ctx, s, group);
    return await measure(ctx, s, rig);
  } finally {
    await group.close();
  }
}

/**
 * Resolves with the first IPC message of `child` that `pick` maps to a value; rejects when `pick` maps one to an Error,
 * when the child exits first, or after START_TIMEOUT_MS.
 */
function childMessage<T>(
  child: ChildProcess,
  name: string,
  pick: (m: unknown) => T | Error | undefined,
  output: () => string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`${name}: not ready within ${START_TIMEOUT_MS} ms${output()}`)),
      START_TIMEOUT_MS,
    );
    const onMessage = (m: unknown): void => {
      const v = pick(m);
      if (v instanceof Error) done(v);
      else if (v !== undefined) done(null, v);
    };
    const onExit = (code: number | null, signal: string | null): void =>
      done(new Error(`${name}: exited during start-up (code ${code}, signal ${signal})${output()}`));
    const done = (err: Error | null, v?: T): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err !== null) reject(err);
      else resolve(v as T);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Fork a compiled sibling entry (dist/bench/macro/<file>.js); its stderr is kept for error messages. */
function forkSibling(
  group: ChildGroup,
  name: string,
  file: string,
  args: string[],
): { child: ChildProcess; output: () => string } {
  const entry = fileURLToPath(new URL(`./${file}`, import.meta.url));
  // execArgv: [] so that `node --cpu-prof dist/bench/run.js` profiles the bench process only; the relay has its own
  // switch (BENCH_RELAY_NODE_OPTIONS).
  const child = fork(entry, args, { execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  group.add(name, child, 'disconnect');
  let tail = '';
  child.stderr!.on('data', (c: Buffer) => (tail = (tail + c.toString('utf8')).slice(-8 * KiB)));
  return { child, output: () => (tail === '' ? '' : `\n--- ${name} stderr ---\n${tail}`) };
}

async function startRig(ctx: SuiteContext, s: Settings, group: ChildGroup): Promise<Rig> {
  const origin = forkSibling(group, 'origin', 'origin-process.js', [String(s.bodySize)]);
  const originPort = await childMessage(
    origin.child,
    'origin',
    (m) => {
      const msg = m as { type?: string; port?: number };
      return msg.type === 'listening' ? msg.port : undefined;
    },
    origin.output,
  );
  ctx.log(`relay: origin on 127.0.0.1:${originPort} (pid ${origin.child.pid}), body ${formatSize(s.bodySize)}`);
  const rig: Rig = { origin: origin.child, originPort, relay: null, agent: null, agentOutput: () => '' };
  if (!s.list.some((sc) => sc.path !== 'direct')) return rig;

  const dataDir = mkdtempSync(join(os.tmpdir(), 'burrow-bench-'));
  group.addCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
  const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
  rig.relay = await startRelayProcess({
    repoRoot,
    dataDir,
    workers: s.workers,
    nodeOptions: s.relayNodeOptions,
    group,
    timeoutMs: START_TIMEOUT_MS,
  });
  const b = rig.relay.banner;
  ctx.log(
    `relay: relay pid ${rig.relay.child.pid}: http :${b.httpPort}, https :${b.httpsPort}, agents :${b.agentPort}, ` +
      `workers ${b.workers}${s.relayNodeOptions.length > 0 ? `, node ${s.relayNodeOptions.join(' ')}` : ''}`,
  );
  const agent = forkSibling(group, 'agent', 'agent-process.js', [
    String(b.agentPort),
    b.caPath,
    b.token,
    DOMAIN,
    `http://127.0.0.1:${originPort}`,
  ]);
  rig.agent = agent.child;
  rig.agentOutput = agent.output;
  const relayOut = rig.relay.output;
  const both = (): string => `${agent.output()}\n--- relay output ---\n${relayOut()}`;
  const url = await childMessage(
    agent.child,
    'agent',
    (m) => {
      const msg = m as { type?: string; url?: string; error?: string };
      if (msg.type === 'failed') return new Error(`agent: ${msg.error}${both()}`);
      return msg.type === 'ready' ? msg.url : undefined;
    },
    both,
  );
  ctx.log(`relay: agent pid ${agent.child.pid} bound ${url}`);
  return rig;
}

function targetOf(rig: Rig, sc: Scenario): LoadTarget {
  switch (sc.path) {
    case 'direct':
      return { url: `http://127.0.0.1:${rig.originPort}/` };
    case 'http':
      return { url: `http://127.0.0.1:${rig.relay!.banner.httpPort}/`, host: DOMAIN };
    case 'https':
      return { url: `https://127.0.0.1:${rig.relay!.banner.httpsPort}/`, host: DOMAIN, servername: DOMAIN };
  }
}

/** The processes whose CPU a run accounts, by role. `load` is this process (read with process.cpuUsage). */
function roles(rig: Rig): Array<[string, ChildProcess]> {
  const out: Array<[string, ChildProcess]> = [['origin', rig.origin]];
  if (rig.relay !== null) out.push(['relay', rig.relay.child]);
  if (rig.agent !== null) out.push(['agent', rig.agent]);
  return out;
}

interface RunOutcome {
  sample: HttpRunSample;
  load: LoadResult;
}

async function runOnce(rig: Rig, sc: Scenario, s: Settings, seconds: number): Promise<RunOutcome> {
  const procs = roles(rig);
  const threaded = procs.filter(([role]) => role === 'relay' || role === 'agent');
  const cpu0 = procs.map(([, c]) => processCpuMs(c.pid!));
  const threads0 = threaded.map(([, c]) => threadCpuMs(c.pid!));
  const delack0 = tcpExtCounters()?.get('DelayedACKs');
  const busy0 = machineBusyMs();
  const self0 = process.cpuUsage();
  const load = await runLoad(targetOf(rig, sc), {
    connections: sc.connections === 0 ? s.connections : sc.connections,
    durationSeconds: seconds,
    minResponseBytes: s.bodySize,
  });
  const self = process.cpuUsage(self0);
  const busy1 = machineBusyMs();
  const delack1 = tcpExtCounters()?.get('DelayedACKs');
  const cpuMs: Record<string, number> = { load: (self.user + self.system) / 1000 };
  procs.forEach(([role, c], i) => {
    const after = processCpuMs(c.pid!);
    const before = cpu0[i];
    if (after !== null && before !== null && before !== undefined) cpuMs[role] = after - before;
  });
  const hotThreads: Record<string, number[]> = {};
  threaded.forEach(([role, c], i) => {
    hotThreads[role] = hottestThreads(threads0[i] ?? null, threadCpuMs(c.pid!), load.seconds, HOT_THREADS);
  });
  const ownMs = Object.values(cpuMs).reduce((a, b) => a + b, 0);
  const lat = load.latenciesMs;
  let sum = 0;
  for (let i = 0; i < lat.length; i++) sum += lat[i]!;
  return {
    load,
    sample: {
      seconds: load.seconds,
      requests: load.requests,
      rps: load.requests / load.seconds,
      latencyMs: {
        p50: percentileSorted(lat, 0.5),
        p90: percentileSorted(lat, 0.9),
        p99: percentileSorted(lat, 0.99),
        p999: percentileSorted(lat, 0.999),
        max: lat.length === 0 ? NaN : lat[lat.length - 1]!,
        mean: lat.length === 0 ? NaN : sum / lat.length,
      },
      errors: load.errors,
      timeouts: load.timeouts,
      non2xx: load.non2xx + load.short,
      cpuMs,
      hotThreads,
      otherCpuMs: busy0 === null || busy1 === null ? null : Math.max(0, busy1 - busy0 - ownMs),
      delayedAcks: delack0 === undefined || delack1 === undefined ? null : delack1 - delack0,
      extra: { autocannon: load.autocannon, shortResponses: load.short, errorSamples: load.errorSamples },
    },
  };
}

/** What went wrong in a run, or null when every request got a complete 2xx answer. */
function runProblem(sc: Scenario, label: string, load: LoadResult): string | null {
  const clean = load.errors === 0 && load.non2xx === 0 && load.short === 0 && load.requests > 0;
  if (clean) return null;
  const parts = [
    load.requests === 0 ? 'no response at all' : '',
    load.errors > 0 ? `${load.errors} errors (${load.timeouts} of them timeouts)` : '',
    load.non2xx > 0 ? `${load.non2xx} non-2xx (${JSON.stringify(load.autocannon['statusCodeStats'] ?? {})})` : '',
    load.short > 0 ? `${load.short} short responses` : '',
  ].filter((p) => p !== '');
  const samples = load.errorSamples.length > 0 ? ` [${load.errorSamples.join('; ')}]` : '';
  return `${sc.name} ${label}: ${parts.join(', ')} of ${load.requests} responses${samples}`;
}

function perRequest(count: number, x: HttpRunSample): number {
  return count / Math.max(1, x.requests);
}

function otherShare(x: HttpRunSample): number | null {
  return x.otherCpuMs === null ? null : x.otherCpuMs / (x.seconds * 1000);
}

function fmtMs(ms: number): string {
  return ms < 1 ? ms.toFixed(3) : ms < 100 ? ms.toFixed(2) : ms.toFixed(0);
}

async function measure(ctx: SuiteContext, s: Settings, rig: Rig): Promise<SuiteReport> {
  const failures: string[] = [];
  const diagnostics = (): string =>
    rig.relay === null ? '' : `${rig.agentOutput()}\n--- relay output ---\n${rig.relay.output()}`;
  ctx.log(
    `relay: ${s.list.length} scenarios interleaved, ${ctx.runs} run(s) of ${s.durationSeconds} s ` +
      `(+ ${s.warmupSeconds} s warm-up each), ${s.connections} connections`,
  );
  if (s.warmupSeconds > 0) {
    for (const sc of s.list) {
      const { load } = await runOnce(rig, sc, s, s.warmupSeconds);
      const problem = runProblem(sc, 'warm-up', load);
      ctx.log(`  warm-up  ${sc.name.padEnd(20)} ${(load.requests / load.seconds).toFixed(0).padStart(7)} req/s`);
      if (problem !== null) {
        if (load.requests === 0 || load.requests === load.non2xx) throw new Error(`${problem}${diagnostics()}`);
        failures.push(problem);
      }
      await sleep(SETTLE_MS);
    }
  }

  const samples = new Map<string, HttpRunSample[]>(s.list.map((sc) => [sc.name, []]));
  let discarded = 0;
  for (let r = 0; r < ctx.runs; r++) {
    for (const sc of s.list) {
      for (let attempt = 0; ; attempt++) {
        const { sample: x, load } = await runOnce(rig, sc, s, s.durationSeconds);
        const busy = otherShare(x);
        const retry = busy !== null && busy > NOISY_SHARE && attempt < NOISY_RETRIES;
        const relay = x.hotThreads['relay']?.[0];
        ctx.log(
          `  run ${r + 1}/${ctx.runs}  ${sc.name.padEnd(20)} ${x.rps.toFixed(0).padStart(7)} req/s  ` +
            `p50 ${fmtMs(x.latencyMs.p50)} p99 ${fmtMs(x.latencyMs.p99)} ms` +
            (x.delayedAcks === null ? '' : `  delayed ACKs/req ${perRequest(x.delayedAcks, x).toFixed(2)}`) +
            (relay === undefined ? '' : `  relay hottest thread ${(relay * 100).toFixed(0)}%`) +
            (busy === null ? '' : `  (other processes ${(busy * 100).toFixed(0)}% of a core)`) +
            (retry ? '  -> noisy, run again' : ''),
        );
        const problem = runProblem(sc, `run ${r + 1}`, load);
        if (problem !== null) failures.push(problem);
        await sleep(SETTLE_MS);
        if (!retry) {
          samples.get(sc.name)!.push(x);
          break;
        }
        discarded++;
      }
    }
  }
  if (failures.length > 0 && rig.relay !== null) failures.push(`last relay/agent output:${diagnostics()}`);

  const rows = summariseHttp(
    s.list.map((sc) => ({
      name: sc.name,
      description: sc.description,
      connections: sc.connections === 0 ? s.connections : sc.connections,
      baseline: sc.baseline,
      target: sc.target,
      runs: samples.get(sc.name)!,
    })),
  );
  const notes: string[] = [];
  if (discarded > 0) notes.push(`${discarded} run(s) discarded and repeated because other processes were busy`);
  let worst = 0;
  for (const runs of samples.values()) for (const x of runs) worst = Math.max(worst, otherShare(x) ?? 0);
  if (worst > NOISY_SHARE) {
    notes.push(
      `warning: other processes used up to ${(worst * 100).toFixed(0)}% of a core during a run; ` +
        'on a small machine that moves the numbers — rerun on a quiet machine before recording',
    );
  }
  const table: HttpResultTable = {
    kind: 'http',
    title:
      `relay HTTP keep-alive: origin direct vs relay + @ngrok/ngrok agent ` +
      `(${s.durationSeconds} s per run, body ${formatSize(s.bodySize)}, relay --workers ${s.workers}` +
      `${rig.relay === null ? '' : `: ${rig.relay.banner.workers}`})`,
    settings: {
      connections: s.connections,
      durationSeconds: s.durationSeconds,
      warmupSeconds: s.warmupSeconds,
      bodySize: s.bodySize,
      workers: s.workers,
      relayWorkersBanner: rig.relay?.banner.workers ?? null,
      relayNodeOptions: s.relayNodeOptions,
      runs: ctx.runs,
      pipelining: 1,
      loadGenerator: 'autocannon (in the bench process)',
      domain: DOMAIN,
      discardedNoisyRuns: discarded,
      cores: os.availableParallelism(),
    },
    rows,
    notes,
  };
  return {
    suite: 'relay',
    tables: [table],
    notes: [
      'RPS = responses per second over the run (mean); latency percentiles are exact over every response of a run,',
      "  median over runs. x base = RPS / the baseline row's RPS (direct or direct-1conn); p50 x / p99 x = latency /",
      "  the baseline's (> 1 = slower).",
      `All processes share ${os.availableParallelism()} cores: load generator + origin on direct rows; ` +
        'load generator + relay + agent + origin on tunnel rows.',
      'CPU us/req = CPU time per response of: load generator / origin / relay / agent (all threads; 10 ms ticks,',
      '  so coarse on slow rows). delACK/req = delayed ACKs the kernel sent per response (~1 = one 40 ms timer each).',
      'hottest thread % = busiest thread of that process, share of one core (median over runs).',
    ],
    failures,
  };
}
