// `npm run bench -- [suite ...] [options]` (also `burrow bench`, which imports runBench): entry point of the benchmark
// suites. Parses argv, runs the named suites (the default `scenarios` when none is named), prints one table per result
// set and writes a JSON record to bench/results/. The only bench file that touches process.exitCode and stdout (as
// cli/ is for src/). Not on the hot path.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { machineInfo } from './lib/machine.js';
import {
  BenchUsageError,
  GiB,
  MiB,
  formatSize,
  median,
  parseSize,
  renderTable,
  type BenchSuite,
  type HttpResultTable,
  type ResultTable,
  type ScenarioTable,
  type SuiteOption,
  type SuiteReport,
} from './lib/suite.js';
import { muxThroughputSuite } from './micro/mux/mux-throughput.js';
import { relayHttpSuite } from './macro/relay-http.js';
import { scenariosSuite } from './macro/scenarios.js';

/** Every suite `npm run bench` knows, by name. Add new groups (http, tls, ...) here. */
const SUITES: readonly BenchSuite[] = [scenariosSuite, muxThroughputSuite, relayHttpSuite];
/** What runs when no suite is named: the issue #7 scenarios (mux and relay are for digging into one layer). */
const DEFAULT_SUITES: readonly string[] = [scenariosSuite.name];

const DEFAULT_BYTES = 1 * GiB;
const QUICK_BYTES = 256 * MiB;

const GLOBAL_OPTIONS: Readonly<Record<string, SuiteOption>> = {
  bytes: {
    type: 'string',
    valueName: 'SIZE',
    description: 'bytes per scenario and run, e.g. 256M, 1G (default 1G; K/M/G are powers of 1024); mux only',
  },
  quick: {
    type: 'boolean',
    description:
      'scenarios: the whole run in about a minute (1 run of 2 s per side, fewer idle connections); ' +
      `mux: --bytes ${formatSize(QUICK_BYTES).replace(' ', '')} (an explicit --bytes wins); relay: 3 s runs, 1 s warm-ups`,
  },
  runs: {
    type: 'string',
    valueName: 'N',
    description: 'measured runs per scenario, interleaved; the median is reported (default 3)',
  },
  json: {
    type: 'string',
    valueName: 'FILE',
    description: 'write the results here instead of bench/results/<timestamp>.json',
  },
  help: { type: 'boolean', description: 'show this help and the available suites' },
};

/** Repository root: this file runs as dist/bench/run.js. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function usage(): string {
  const optLines = (opts: Readonly<Record<string, SuiteOption>>): string[] =>
    Object.entries(opts).map(([name, o]) => {
      const flag = `--${name}${o.type === 'string' ? ` ${o.valueName ?? 'VALUE'}` : ''}`;
      return `  ${flag.padEnd(22)} ${o.description}`;
    });
  const lines = [
    'usage: npm run bench -- [suite ...] [options]      (or: burrow bench [suite ...] [options])',
    `       (no suite: ${DEFAULT_SUITES.join(', ')})`,
    '',
    'suites:',
    ...SUITES.map((s) => `  ${s.name.padEnd(22)} ${s.description}`),
    '',
    'options:',
    ...optLines(GLOBAL_OPTIONS),
  ];
  for (const s of SUITES) {
    if (Object.keys(s.options).length > 0) lines.push('', `${s.name} options:`, ...optLines(s.options));
  }
  lines.push('', 'See bench/README.md for how to read the results.');
  return lines.join('\n');
}

function fail(message: string): void {
  process.stderr.write(`bench: ${message}\n\n${usage()}\n`);
  process.exitCode = 2;
}

function targetVerdict(ratio: number, target: number, baseline = 'raw'): string {
  if (Number.isNaN(ratio)) return `(no ${baseline} row)`;
  return ratio >= target ? 'met' : 'BELOW';
}

function printTable(t: ResultTable | HttpResultTable | ScenarioTable): void {
  if (t.kind === 'http') return printHttpTable(t);
  if (t.kind === 'scenarios') return printScenarioTable(t);
  const header = [
    'scenario',
    'what',
    'MB/s (median)',
    ...t.baselines.map((b) => `x ${b}`),
    'target',
    'runs (MB/s)',
    'CPU ms/GiB',
  ];
  const rows = t.rows.map((r) => [
    r.name,
    r.description,
    r.medianMBps.toFixed(0),
    ...t.baselines.map((b) => r.ratios[b]!.toFixed(2)),
    r.target === null ? '' : `>= ${r.target.toFixed(2)} ${targetVerdict(r.ratio, r.target, t.baselines[0])}`,
    r.runs.map((x) => x.mbps.toFixed(0)).join(' / '),
    r.cpuMsPerGiB.toFixed(0),
  ]);
  const left = header.map((_, i) => i < 2 || i === header.length - 3);
  process.stdout.write(`\n${t.title}\n${renderTable(header, rows, left)}\n`);
  for (const n of t.notes) process.stdout.write(`${n}\n`);
}

/** Latency in ms with about three significant digits (0.123, 12.3, 123). */
function fmtMs(ms: number): string {
  if (Number.isNaN(ms)) return '-';
  return ms < 1 ? ms.toFixed(3) : ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
}

function fmtCount(x: number): string {
  return Number.isFinite(x) ? x.toFixed(0) : '-';
}

function fmtRatio(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

function printHttpTable(t: HttpResultTable): void {
  const sdkCol = t.rows.some((r) => r.sdkRow !== null);
  const roles = [...new Set(t.rows.flatMap((r) => Object.keys(r.cpuUsPerRequest)))];
  const header = [
    'scenario',
    'what',
    'conns',
    'RPS (median)',
    'x base',
    'target',
    ...(sdkCol ? ['x sdk'] : []),
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'p99.9 ms',
    'p50 x',
    'p99 x',
    'errors',
    'non-2xx',
    'runs (RPS)',
    'delACK/req',
    `CPU us/req ${roles.join('/')}`,
    'hottest thread %',
  ];
  const rows = t.rows.map((r) => {
    const hot = (role: string): string => {
      const shares = r.runs.map((x) => x.hotThreads[role]?.[0] ?? NaN).filter((x) => !Number.isNaN(x));
      return shares.length === 0 ? '' : `${role} ${(100 * median(shares)).toFixed(0)}`;
    };
    const base = r.baseline ?? r.name;
    return [
      r.name,
      r.description,
      String(r.connections),
      r.medianRps.toFixed(0),
      r.baseline === null ? '1.000' : fmtRatio(r.rpsRatio, 3),
      r.target === null ? '' : `>= ${r.target.toFixed(2)} ${targetVerdict(r.rpsRatio, r.target, base)} (${base})`,
      ...(sdkCol
        ? [
            r.sdkRow === null
              ? ''
              : `${fmtRatio(r.sdkRpsRatio, 3)}` +
                (r.sdkTarget === null ? '' : ` >= ${r.sdkTarget.toFixed(2)} ${targetVerdict(r.sdkRpsRatio, r.sdkTarget, r.sdkRow)}`),
          ]
        : []),
      fmtMs(r.latencyMs.p50),
      fmtMs(r.latencyMs.p90),
      fmtMs(r.latencyMs.p99),
      fmtMs(r.latencyMs.p999),
      r.baseline === null ? '' : fmtRatio(r.p50Ratio),
      r.baseline === null ? '' : fmtRatio(r.p99Ratio),
      String(r.errors), // autocannon counts timeouts among errors
      String(r.non2xx),
      r.runs.map((x) => x.rps.toFixed(0)).join(' / '),
      Number.isNaN(r.delayedAcksPerRequest) ? '-' : r.delayedAcksPerRequest.toFixed(2),
      roles.map((role) => fmtCount(r.cpuUsPerRequest[role] ?? NaN)).join('/'),
      [hot('relay'), hot('agent'), hot('bagent')].filter((x) => x !== '').join(', '),
    ];
  });
  const left = header.map((h, i) => i < 2 || h === 'target' || h === 'x sdk' || i >= header.length - 1);
  process.stdout.write(`\n${t.title}\n${renderTable(header, rows, left)}\n`);
  for (const n of t.notes) process.stdout.write(`${n}\n`);
}

function printScenarioTable(t: ScenarioTable): void {
  const header = ['scenario', 'side', 'ops/s', 'unit', 'MB/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'errors', 'x direct', 'p99 x', 'target', 'note'];
  const rows: string[][] = [];
  for (const r of t.rows) {
    const sides = [r.direct, r.tunnel].filter((x) => x !== null);
    sides.forEach((x, i) => {
      const last = i === sides.length - 1;
      const lat = x.latencyMs;
      const hasRuns = x.runs.length > 0;
      rows.push([
        i === 0 ? r.name : '',
        x.label,
        hasRuns && r.unit !== '' ? fmtCount(x.opsPerSecond) : '-',
        r.unit,
        hasRuns && x.mbps > 0 ? (x.mbps < 10 ? x.mbps.toFixed(2) : x.mbps.toFixed(0)) : '-',
        fmtMs(lat?.p50 ?? NaN),
        fmtMs(lat?.p90 ?? NaN),
        fmtMs(lat?.p99 ?? NaN),
        fmtMs(lat?.p999 ?? NaN),
        hasRuns ? String(x.errors) : '-',
        last && r.ratio !== null ? `${fmtRatio(r.ratio)}${r.ratioOf === 'mbps' ? ' MB/s' : ''}` : '',
        last && r.p99.ratio !== null ? fmtRatio(r.p99.ratio) : '',
        last && r.target !== null ? `>= ${r.target.toFixed(2)} ${r.ratio === null ? '' : targetVerdict(r.ratio, r.target, 'direct')}` : '',
        last ? r.note : '',
      ]);
    });
  }
  const left = header.map((h) => ['scenario', 'side', 'unit', 'target', 'note'].includes(h));
  process.stdout.write(`\n${t.title}\n${renderTable(header, rows, left)}\n`);
  for (const n of t.notes) process.stdout.write(`${n}\n`);
}

/** Run `npm run bench` with these arguments (what follows `--`); sets process.exitCode. */
export async function runBench(argv: readonly string[]): Promise<void> {
  try {
    await main(argv);
  } catch (err: unknown) {
    process.stderr.write(`bench: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const allOptions: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const opts of [GLOBAL_OPTIONS, ...SUITES.map((s) => s.options)]) {
    for (const [name, o] of Object.entries(opts)) allOptions[name] = { type: o.type };
  }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof allOptions; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: allOptions, allowPositionals: true, strict: true });
  } catch (err) {
    return fail((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values['help'] === true) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const unknown = positionals.filter((p) => !SUITES.some((s) => s.name === p));
  if (unknown.length > 0) {
    const names = SUITES.map((s) => s.name).join(', ');
    return fail(`unknown suite ${unknown.map((u) => `'${u}'`).join(', ')}; available: ${names}`);
  }
  const wanted = positionals.length === 0 ? DEFAULT_SUITES : positionals;
  const suites = SUITES.filter((s) => wanted.includes(s.name));
  for (const name of Object.keys(values)) {
    if (name in GLOBAL_OPTIONS || suites.some((s) => name in s.options)) continue;
    const owners = SUITES.filter((s) => name in s.options).map((s) => s.name);
    return fail(`--${name} belongs to a suite that is not being run (${owners.join(', ')})`);
  }

  const quick = values['quick'] === true;
  const bytes = typeof values['bytes'] === 'string' ? parseSize(values['bytes']) : quick ? QUICK_BYTES : DEFAULT_BYTES;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    return fail(`--bytes: expected a size such as 256M or 1G, got '${String(values['bytes'])}'`);
  }
  const runs = typeof values['runs'] === 'string' ? Number(values['runs']) : 3;
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) {
    return fail(`--runs: expected an integer in 1..100, got '${String(values['runs'])}'`);
  }

  const startedAt = new Date();
  const machine = machineInfo(REPO_ROOT);
  const git = machine.git;
  const commit = git === null ? 'unknown' : `${git.commit.slice(0, 12)}${git.dirty ? ' (dirty)' : ''}`;
  process.stderr.write(`bench: ${machine.cpuModel} x${machine.cpuCount}, node ${machine.node}, commit ${commit}\n`);
  const reports: SuiteReport[] = [];
  for (const suite of suites) {
    const suiteOptions: Record<string, string | boolean | undefined> = {};
    for (const name of Object.keys(suite.options)) suiteOptions[name] = values[name];
    let report: SuiteReport;
    try {
      report = await suite.run({
        bytes,
        runs,
        quick,
        options: suiteOptions,
        log: (line) => process.stderr.write(`${line}\n`),
      });
    } catch (err) {
      if (err instanceof BenchUsageError) return fail(err.message);
      throw err;
    }
    reports.push(report);
    for (const t of report.tables) printTable(t);
    for (const n of report.notes) process.stdout.write(`${n}\n`);
  }

  const file =
    typeof values['json'] === 'string'
      ? resolve(values['json'])
      : join(REPO_ROOT, 'bench', 'results', `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(file), { recursive: true });
  const record = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    argv,
    machine,
    settings: { bytes, runs, quick },
    suites: reports,
  };
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  process.stdout.write(`\nresults written to ${file}\n`);
  // Speed never fails a benchmark; wrong answers do (errors, timeouts, non-2xx, truncated responses).
  const failures = reports.flatMap((r) => (r.failures ?? []).map((f) => `${r.suite}: ${f}`));
  if (failures.length > 0) {
    const list = failures.map((f) => `  ${f}`).join('\n');
    process.stderr.write(`\nbench: FAILED: ${failures.length} problem(s):\n${list}\n`);
    process.exitCode = 1;
  }
}

// Run only as the entry script (node dist/bench/run.js); `burrow bench` imports this module and calls runBench.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void runBench(process.argv.slice(2));
}
