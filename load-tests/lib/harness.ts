// Shared plumbing of the load tests (load-tests/*.ts, compiled to dist/load-tests/): argument parsing (--short), a
// relay child process with its origin, HTTP probes through the relay, RSS sampling, pass/fail criteria and the one
// summary line each script ends with (`PASS soak: ...` / `FAIL soak: ...`, exit code 0 / 1). Everything binds to
// 127.0.0.1 and every wait is bounded, so a load test always stops by itself. Not on the hot path.
import http from 'node:http';
import os from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildGroup, exited as hasExited, waitExit } from '../../bench/lib/child-group.js';
import { processRssKiB } from '../../bench/lib/proc-stat.js';
import { startRelayProcess, type RelayProcess } from '../../bench/macro/relay-process.js';
import { forkListening, startBurrowAgentProcess, type BenchChild } from '../../bench/macro/rig.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Criterion {
  what: string;
  ok: boolean;
  /** The measured value, in words ("0 errors", "drift 3.1 %"). */
  detail: string;
}

export interface LoadTestContext {
  short: boolean;
  group: ChildGroup;
  dataDir: string;
  log(line: string): void;
}

/**
 * Run one load test: parse --short, give it a ChildGroup and a temporary directory, print its criteria and the summary
 * line, set the exit code. A thrown error is a FAIL with its message. `hardLimitMs` bounds the whole test.
 */
export async function runLoadTest(
  name: string,
  hardLimitMs: (short: boolean) => number,
  body: (ctx: LoadTestContext) => Promise<{ criteria: Criterion[]; facts: string }>,
): Promise<void> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--short');
  if (unknown.length > 0) {
    process.stderr.write(`load-tests/${name}: unknown argument ${unknown.join(' ')}; usage: ${name}.js [--short]\n`);
    process.exitCode = 2;
    return;
  }
  const short = args.includes('--short');
  const log = (line: string): void => {
    process.stderr.write(`${name}: ${line}\n`);
  };
  const group = new ChildGroup(5_000, log);
  const dataDir = mkdtempSync(join(os.tmpdir(), `burrow-load-${name}-`));
  group.addCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
  const limit = hardLimitMs(short);
  const killer = setTimeout(() => {
    process.stdout.write(`FAIL ${name}: did not finish within ${limit / 1000} s\n`);
    void group.close().finally(() => process.exit(1));
  }, limit);
  killer.unref();
  let line: string;
  let ok = false;
  try {
    const { criteria, facts } = await body({ short, group, dataDir, log });
    for (const c of criteria) process.stdout.write(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.what}: ${c.detail}\n`);
    ok = criteria.length > 0 && criteria.every((c) => c.ok);
    const failed = criteria.filter((c) => !c.ok).map((c) => `${c.what} (${c.detail})`);
    line = `${ok ? 'PASS' : 'FAIL'} ${name}${short ? ' (short)' : ''}: ${ok ? facts : `${failed.join('; ')} — ${facts}`}`;
  } catch (err) {
    line = `FAIL ${name}${short ? ' (short)' : ''}: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    await group.close();
    clearTimeout(killer);
  }
  process.stdout.write(`${line}\n`);
  process.exitCode = ok ? 0 : 1;
}

export interface Rig {
  relay: RelayProcess;
  origin: BenchChild & { port: number };
}

/** A relay (bin/burrow.js relay; --workers = cores, at least 2, unless told otherwise) and an origin (origin-process.js). */
export async function startRelayAndOrigin(
  ctx: LoadTestContext,
  opts: { largeBody?: number; extraEnv?: Record<string, string>; workers?: number } = {},
): Promise<Rig> {
  const origin = await forkListening(ctx.group, 'origin', 'origin-process.js', ['1024', String(opts.largeBody ?? 1024 * 1024)]);
  const relay = await startRelayProcess({
    repoRoot: REPO_ROOT,
    dataDir: ctx.dataDir,
    workers: opts.workers ?? Math.max(2, os.availableParallelism()),
    nodeOptions: [],
    metrics: 'on',
    group: ctx.group,
    timeoutMs: 30_000,
    ...(opts.extraEnv === undefined ? {} : { extraEnv: opts.extraEnv }),
  });
  ctx.log(`relay pid ${relay.child.pid} (http :${relay.banner.httpPort}, agents :${relay.banner.agentPort}), origin :${origin.port}`);
  return { relay, origin };
}

/** burrow's agent as a child process (bin/burrow.js start) with one http endpoint `http://<host>` → the origin. */
export function startHttpAgent(ctx: LoadTestContext, rig: Rig, host: string, name = 'agent'): Promise<BenchChild> {
  return startBurrowAgentProcess({
    group: ctx.group,
    name,
    repoRoot: REPO_ROOT,
    dataDir: ctx.dataDir,
    relay: rig.relay,
    endpoints: [{ name: 'web', url: `http://${host}`, upstream: `http://127.0.0.1:${rig.origin.port}` }],
  });
}

/**
 * GET http://127.0.0.1:port/ with Host `host`; resolves with the status (and body length) or the error's message.
 * Without `agent`, a new connection per request. A keep-alive agent must serve one host only: the relay pins a
 * connection to the endpoint of its first request and answers another Host on it with 421.
 */
export function probe(
  port: number,
  host: string,
  timeoutMs = 5_000,
  agent: http.Agent | false = false,
): Promise<{ status: number; bytes: number } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host }, agent, timeout: timeoutMs }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ error: err.message }));
  });
}

/** True when `r` is a complete 200 answer with the origin's 1 KiB body. */
export function answered(r: Awaited<ReturnType<typeof probe>>): boolean {
  return 'status' in r && r.status === 200 && r.bytes === 1024;
}

/** Probe every host until each answered once (in rounds, `concurrency` at a time) or `deadlineMs` passes. */
export async function waitReachable(
  port: number,
  hosts: readonly string[],
  deadlineMs: number,
  concurrency = 50,
): Promise<{ reached: Map<string, number>; missing: string[]; lastErrors: Map<string, string> }> {
  const t0 = Date.now();
  const reached = new Map<string, number>();
  const lastErrors = new Map<string, string>();
  let pending = [...hosts];
  while (pending.length > 0 && Date.now() - t0 < deadlineMs) {
    const next: string[] = [];
    for (let i = 0; i < pending.length; i += concurrency) {
      const slice = pending.slice(i, i + concurrency);
      const rs = await Promise.all(slice.map((h) => probe(port, h, 3_000)));
      rs.forEach((r, j) => {
        const h = slice[j]!;
        if (answered(r)) reached.set(h, Date.now() - t0);
        else {
          next.push(h);
          lastErrors.set(h, 'error' in r ? r.error : `HTTP ${r.status}, ${r.bytes} bytes`);
        }
      });
    }
    pending = next;
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 250));
  }
  return { reached, missing: pending, lastErrors };
}

/** Samples a process's RSS every `everyMs` until stop(); returns the samples in KiB with their times. */
export function sampleRss(pid: number, everyMs: number): { stop(): Array<{ t: number; kib: number }> } {
  const samples: Array<{ t: number; kib: number }> = [];
  const t0 = Date.now();
  const take = (): void => {
    const kib = processRssKiB(pid);
    if (kib !== null) samples.push({ t: Date.now() - t0, kib });
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

export function mib(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}

/** Resolves once `child` has exited; rejects after `ms` (bench/lib/child-group.ts waitExit). */
export async function exited(child: import('node:child_process').ChildProcess, ms: number): Promise<void> {
  if (!(await waitExit(child, ms))) throw new Error(`pid ${child.pid} still running after ${ms} ms`);
}

/** The criterion every load test ends with: the relay process did not exit during the run. */
export function relayStillRunning(relay: RelayProcess): Criterion {
  const c = relay.child;
  const alive = !hasExited(c);
  return { what: 'relay still running', ok: alive, detail: alive ? 'yes' : `exited (${c.exitCode ?? c.signalCode})` };
}
