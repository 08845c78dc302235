// Shared types and helpers for `npm run bench` suites: the suite contract run.ts drives, result tables, sizes,
// statistics and table formatting. Not on any hot path (runs between measurements, never inside one).

/** A command-line option a suite adds to the global ones (node:util parseArgs shape plus help text). */
export interface SuiteOption {
  type: 'string' | 'boolean';
  description: string;
  /** Placeholder shown in --help for string options, e.g. 'MODE'. */
  valueName?: string;
}

/** What run.ts hands every suite. */
export interface SuiteContext {
  /** Bytes to move per scenario and run (--bytes / --quick). */
  bytes: number;
  /** Measured runs per scenario (--runs); scenarios are interleaved run by run. */
  runs: number;
  quick: boolean;
  /** Values of the suite's own options (see BenchSuite.options), as parsed by node:util parseArgs. */
  options: Readonly<Record<string, string | boolean | undefined>>;
  /** Progress output (stderr), so stdout stays the result table. */
  log(line: string): void;
}

/** One measured run of one scenario. */
export interface RunSample {
  bytes: number;
  seconds: number;
  /** Throughput in MB/s, MB = 10^6 bytes. */
  mbps: number;
  /** CPU time (user + system) spent by the sending side / receiving side during the run, in ms. */
  cpuSenderMs: number;
  cpuReceiverMs: number;
  /** True when sender and receiver share one process (then cpuReceiverMs is 0 and cpuSenderMs is the total). */
  sameProcess: boolean;
  /**
   * CPU the rest of the machine used during the run, in ms (machine busy time from /proc/stat minus the bench's own;
   * 10 ms resolution, kernel work on our behalf may land on either side). Null where /proc/stat is missing.
   */
  otherCpuMs: number | null;
}

/** A scenario's samples and the figures derived from them. */
export interface ScenarioResult {
  name: string;
  description: string;
  runs: RunSample[];
  medianMBps: number;
  /** medianMBps / the primary baseline's medianMBps (1 for the baseline itself). */
  ratio: number;
  /** medianMBps / each baseline's medianMBps, by baseline name (the primary one included). */
  ratios: Record<string, number>;
  /** The ratio the issue asks for (recorded, not asserted), if any. */
  target: number | null;
  /** CPU ms per GiB moved, median over runs, sender + receiver. */
  cpuMsPerGiB: number;
}

/** One table of results: all rows measured in the same run, ratios against `baseline`. */
export interface ResultTable {
  title: string;
  /** Names of the scenarios ratios are computed against; the first is the primary one (the `ratio` field). */
  baselines: string[];
  /** Free-form settings that produced this table (mode, window sizes, ...), copied into the JSON. */
  settings: Record<string, unknown>;
  rows: ScenarioResult[];
  /** Lines printed right under this table. */
  notes: string[];
}

export interface SuiteReport {
  suite: string;
  tables: ResultTable[];
  /** Lines printed under the tables (e.g. notes about the mode). */
  notes: string[];
}

/** A named group of scenarios (`npm run bench -- <name>`). */
export interface BenchSuite {
  name: string;
  description: string;
  options: Readonly<Record<string, SuiteOption>>;
  run(ctx: SuiteContext): Promise<SuiteReport>;
}

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/**
 * Parse a byte count: a plain integer or a number with a binary suffix K, M, G, T (also KiB, MB, ... — all
 * suffixes are powers of 1024 here). Returns NaN for anything else.
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (m === null) return NaN;
  const unit = m[2]!.toLowerCase();
  const mult = unit === 'k' ? KiB : unit === 'm' ? MiB : unit === 'g' ? GiB : unit === 't' ? GiB * 1024 : 1;
  return Math.round(Number(m[1]) * mult);
}

/** 1073741824 → "1 GiB", 268435456 → "256 MiB", 1000 → "1000 B". */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (bytes >= size && bytes % (size / 16) === 0) return `${+(bytes / size).toFixed(4)} ${unit}`;
  }
  return `${bytes} B`;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >>> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Fill in medians, ratios to the baseline rows and CPU per GiB. */
export function summarise(
  rows: ReadonlyArray<Omit<ScenarioResult, 'medianMBps' | 'ratio' | 'ratios' | 'cpuMsPerGiB'>>,
  baselines: readonly string[],
): ScenarioResult[] {
  const withMedian = rows.map((r) => ({
    ...r,
    medianMBps: median(r.runs.map((x) => x.mbps)),
    cpuMsPerGiB: median(r.runs.map((x) => ((x.cpuSenderMs + x.cpuReceiverMs) * GiB) / x.bytes)),
  }));
  const baseOf = (name: string): number => withMedian.find((r) => r.name === name)?.medianMBps ?? NaN;
  return withMedian.map((r) => {
    const ratios: Record<string, number> = {};
    for (const b of baselines) ratios[b] = r.medianMBps / baseOf(b);
    return { ...r, ratio: r.medianMBps / baseOf(baselines[0]!), ratios };
  });
}

/** Render rows as a plain-text table with right-aligned numeric columns (left-aligned when `left[i]`). */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  left: readonly boolean[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (left[i] ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A bad command-line value found by a suite; run.ts prints the message and the usage, without a stack trace. */
export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}
