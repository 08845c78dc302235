// `npm run bench -- [suite ...] [options]`: entry point of the benchmark suites. Parses argv, runs the named suites
// (all of them when none is named), prints one table per result set and writes a JSON record to bench/results/.
// The only bench file that touches process.exitCode and stdout (as cli/ is for src/). Not on the hot path.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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
  type SuiteOption,
  type SuiteReport,
} from './lib/suite.js';
import { muxThroughputSuite } from './micro/mux/mux-throughput.js';
import { relayHttpSuite } from './macro/relay-http.js';

/** Every suite `npm run bench` knows, by name. Add new groups (http, tls, ...) here. */
const SUITES: readonly BenchSuite[] = [muxThroughputSuite, relayHttpSuite];

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
      `shorthand for --bytes ${formatSize(QUICK_BYTES).replace(' ', '')} (an explicit --bytes wins); ` +
      'relay: 3 s runs, 1 s warm-ups',
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
    'usage: npm run bench -- [suite ...] [options]',
    '       (no suite: run them all)',
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

function printTable(t: ResultTable | HttpResultTable): void {
  if (t.kind === 'http') return printHttpTable(t);
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

async function main(): Promise<void> {
  const allOptions: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const opts of [GLOBAL_OPTIONS, ...SUITES.map((s) => s.options)]) {
    for (const [name, o] of Object.entries(opts)) allOptions[name] = { type: o.type };
  }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof allOptions; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: process.argv.slice(2), options: allOptions, allowPositionals: true, strict: true });
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
  const suites = positionals.length === 0 ? SUITES : SUITES.filter((s) => positionals.includes(s.name));
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
    argv: process.argv.slice(2),
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

main().catch((err: unknown) => {
  process.stderr.write(`bench: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
