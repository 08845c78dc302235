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
  /** Suite-specific details kept in the JSON (e.g. CPU by process role), not printed. */
  extra?: Record<string, unknown>;
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

/** One table of throughput results: all rows measured in the same run, ratios against `baseline`. */
export interface ResultTable {
  kind: 'throughput';
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
  tables: Array<ResultTable | HttpResultTable | ScenarioTable>;
  /** Lines printed under the tables (e.g. notes about the mode). */
  notes: string[];
  /**
   * Correctness failures seen while measuring (socket errors, timeouts, non-2xx answers, ...). run.ts prints them and
   * exits non-zero; speed never fails a benchmark.
   */
  failures?: string[];
}

// ---- HTTP load results (macro suites: requests per second and latency percentiles) ----

/** Latency percentiles of one run (or medians over runs), in milliseconds. */
export interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** One measured run of an HTTP load scenario. */
export interface HttpRunSample {
  seconds: number;
  /** Responses received (any status). */
  requests: number;
  /** requests / seconds. */
  rps: number;
  /** Over every response of the run, exact (not bucketed), from the load generator's per-response timings. */
  latencyMs: LatencyMs;
  /** Socket errors, timeouts included (autocannon counts a timeout as an error too). */
  errors: number;
  /** The timeouts among `errors`. */
  timeouts: number;
  non2xx: number;
  /** CPU time (user + system) per process role during the run, in ms: `load`, `origin`, `relay`, `agent`. */
  cpuMs: Record<string, number>;
  /** Busiest threads of the processes that have several (e.g. the relay), as a share of one core, highest first. */
  hotThreads: Record<string, number[]>;
  /** CPU the rest of the machine used during the run, in ms (see RunSample.otherCpuMs). Null where unknown. */
  otherCpuMs: number | null;
  /**
   * ACKs the kernel sent from its delayed-ACK timer during the run (TcpExt DelayedACKs, whole network namespace).
   * About one per request means each exchange waited for that timer (40 ms minimum on Linux). Null where unknown.
   */
  delayedAcks: number | null;
  /** Whatever else the load generator reported (kept in the JSON, not printed). */
  extra: Record<string, unknown>;
}

/** A scenario's runs and the figures derived from them (medians over runs). */
export interface HttpScenarioResult {
  name: string;
  description: string;
  connections: number;
  /** Row the ratios are taken against (null for a baseline row). */
  baseline: string | null;
  /** RPS ratio to the baseline the issue asks for; recorded, not asserted. */
  target: number | null;
  /** A second row to compare with (the relay suite: the SDK agent's row for a burrow-agent row), or null. */
  sdkRow: string | null;
  /** RPS ratio to `sdkRow` the issue asks for (recorded, not asserted), or null. */
  sdkTarget: number | null;
  runs: HttpRunSample[];
  medianRps: number;
  /** medianRps / the baseline's medianRps (1 for a baseline row). */
  rpsRatio: number;
  /** Median over runs of each percentile. */
  latencyMs: LatencyMs;
  /** Median p50 and p99 / the baseline's. */
  p50Ratio: number;
  p99Ratio: number;
  /** medianRps and median p50 / those of `sdkRow` (NaN without one). */
  sdkRpsRatio: number;
  sdkP50Ratio: number;
  /** Sums over runs. */
  errors: number;
  timeouts: number;
  non2xx: number;
  /** CPU µs per request by process role, median over runs. */
  cpuUsPerRequest: Record<string, number>;
  /** Delayed ACKs per request, median over runs (NaN where unknown). */
  delayedAcksPerRequest: number;
}

/** One table of HTTP load results, all rows measured in the same interleaved run. */
export interface HttpResultTable {
  kind: 'http';
  title: string;
  settings: Record<string, unknown>;
  rows: HttpScenarioResult[];
  notes: string[];
}

/** Fill in medians and ratios of HTTP scenarios (each row against its own `baseline`). */
export function summariseHttp(
  rows: ReadonlyArray<
    Pick<HttpScenarioResult, 'name' | 'description' | 'connections' | 'baseline' | 'target' | 'runs'> &
      Partial<Pick<HttpScenarioResult, 'sdkRow' | 'sdkTarget'>>
  >,
): HttpScenarioResult[] {
  const med = (r: (typeof rows)[number], f: (x: HttpRunSample) => number): number => median(r.runs.map(f));
  const withMedians = rows.map((r) => {
    const roles = [...new Set(r.runs.flatMap((x) => Object.keys(x.cpuMs)))];
    const cpuUsPerRequest: Record<string, number> = {};
    for (const role of roles) {
      cpuUsPerRequest[role] = med(r, (x) => ((x.cpuMs[role] ?? 0) * 1000) / Math.max(1, x.requests));
    }
    const sum = (f: (x: HttpRunSample) => number): number => r.runs.reduce((a, x) => a + f(x), 0);
    return {
      ...r,
      sdkRow: r.sdkRow ?? null,
      sdkTarget: r.sdkTarget ?? null,
      medianRps: med(r, (x) => x.rps),
      latencyMs: {
        p50: med(r, (x) => x.latencyMs.p50),
        p90: med(r, (x) => x.latencyMs.p90),
        p99: med(r, (x) => x.latencyMs.p99),
        p999: med(r, (x) => x.latencyMs.p999),
        max: med(r, (x) => x.latencyMs.max),
        mean: med(r, (x) => x.latencyMs.mean),
      },
      errors: sum((x) => x.errors),
      timeouts: sum((x) => x.timeouts),
      non2xx: sum((x) => x.non2xx),
      cpuUsPerRequest,
      delayedAcksPerRequest: med(r, (x) => (x.delayedAcks === null ? NaN : x.delayedAcks / Math.max(1, x.requests))),
    };
  });
  return withMedians.map((r) => {
    const b = r.baseline === null ? r : withMedians.find((x) => x.name === r.baseline);
    const sdk = r.sdkRow === null ? undefined : withMedians.find((x) => x.name === r.sdkRow);
    return {
      ...r,
      sdkRpsRatio: sdk === undefined ? NaN : r.medianRps / sdk.medianRps,
      sdkP50Ratio: sdk === undefined ? NaN : r.latencyMs.p50 / sdk.latencyMs.p50,
      rpsRatio: b === undefined ? NaN : r.medianRps / b.medianRps,
      p50Ratio: b === undefined ? NaN : r.latencyMs.p50 / b.latencyMs.p50,
      p99Ratio: b === undefined ? NaN : r.latencyMs.p99 / b.latencyMs.p99,
    };
  });
}

/**
 * Percentile by nearest rank over ascending `sorted` values: the smallest value with at least p of all values at or
 * below it. NaN for no values.
 */
export function percentileSorted(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/** Exact latency percentiles (nearest rank), max and mean of ascending response times in ms; NaN for none. */
export function latencyOf(sorted: Float64Array): LatencyMs {
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  return {
    p50: percentileSorted(sorted, 0.5),
    p90: percentileSorted(sorted, 0.9),
    p99: percentileSorted(sorted, 0.99),
    p999: percentileSorted(sorted, 0.999),
    max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]!,
    mean: sorted.length === 0 ? NaN : sum / sorted.length,
  };
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

/** A suite's integer option in min..max, or `dflt` when not given; a BenchUsageError naming the option otherwise. */
export function intOption(o: SuiteContext['options'], name: string, dflt: number, min: number, max: number): number {
  const raw = o[name];
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new BenchUsageError(`--${name} must be an integer in ${min}..${max}, got '${String(raw)}'`);
  }
  return n;
}

/** A suite's byte-size option (parseSize: 256M, 1G, ...), at least 1, or `dflt` when not given. */
export function sizeOption(o: SuiteContext['options'], name: string, dflt: number): number {
  const raw = o[name];
  if (raw === undefined) return dflt;
  const n = parseSize(String(raw));
  if (!Number.isSafeInteger(n) || n < 1) throw new BenchUsageError(`--${name} must be a size such as 256M, got '${String(raw)}'`);
  return n;
}

/** A bad command-line value found by a suite; run.ts prints the message and the usage, without a stack trace. */
export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

// ---- the default run (`npm run bench`): one row per scenario, tunnel vs direct ----

/** One side of a scenario row (direct or tunnel), medians over runs. */
export interface ScenarioSide {
  /** What this side is: 'direct', 'tunnel', '1 agent', '3 agents', ... */
  label: string;
  /** Operations per second (requests, echoed messages; for idle-conns the connections held), median over runs. */
  opsPerSecond: number;
  /** Payload throughput in MB/s (10^6 bytes), median over runs. */
  mbps: number;
  /** Latency percentiles in ms, median over runs; null where the scenario has none. */
  latencyMs: LatencyMs | null;
  /** Failed operations, summed over runs (socket errors, timeouts, non-2xx, short answers). */
  errors: number;
  /** Each measured run. */
  runs: Array<{
    seconds: number;
    ops: number;
    opsPerSecond: number;
    mbps: number;
    p99Ms: number | null;
    errors: number;
    /** CPU other processes (not the bench's) used during the run, in cores (0.3 = 30 % of one); null where unknown. */
    otherCpuShare?: number | null;
  }>;
}

/** One scenario of the default run. `direct`, `tunnel`, `ratio` and `p99` are the fields the JSON promises. */
export interface ScenarioRow {
  name: string;
  description: string;
  /** Unit of opsPerSecond in the table: 'req/s', 'msg/s', 'conns'. */
  unit: string;
  direct: ScenarioSide | null;
  tunnel: ScenarioSide | null;
  /** tunnel / direct of the scenario's main figure (`ratioOf`); null when there is nothing to compare. */
  ratio: number | null;
  ratioOf: 'opsPerSecond' | 'mbps' | null;
  /** p99 latency in ms of both sides and tunnel / direct. */
  p99: { direct: number | null; tunnel: number | null; ratio: number | null };
  /** Ratio the issue asks for (recorded, not asserted), or null. */
  target: number | null;
  /** Shown in the table's last column: why a row is empty, RSS per connection, ... */
  note: string;
  /** Scenario-specific figures kept in the JSON (e.g. RSS per connection). */
  extra: Record<string, unknown>;
}

export interface ScenarioTable {
  kind: 'scenarios';
  title: string;
  settings: Record<string, unknown>;
  rows: ScenarioRow[];
  notes: string[];
}
