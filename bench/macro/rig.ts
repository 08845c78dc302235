// Starting the child processes of a macro bench (origin, sink, SDK agent, burrow's agent) and waiting until each is
// ready: shared by the relay suite (relay-http.ts), the default scenarios (scenarios.ts) and load-tests/. Everything
// binds to 127.0.0.1. Not on the hot path (start-up only).
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildGroup } from '../lib/child-group.js';
import type { RelayProcess } from './relay-process.js';

/** Child start-up bound. */
export const START_TIMEOUT_MS = 30_000;
/** Child shutdown bound. */
export const STOP_GRACE_MS = 5_000;
/** A run during which other processes used more than this share of a core is flagged (relay suite: repeated). */
export const NOISY_SHARE = 0.25;
/** Pause between runs, so the previous run's connections are torn down (relay streams, agent upstream sockets). */
export const SETTLE_MS = 300;
const TAIL = 8 * 1024;

/** A forked or spawned child with the tail of what it wrote, for error messages. */
export interface BenchChild {
  child: ChildProcess;
  output: () => string;
}

/**
 * Resolves with the first IPC message of `child` that `pick` maps to a value; rejects when `pick` maps one to an Error,
 * when the child exits first, or after `timeoutMs`.
 */
export function childMessage<T>(
  child: ChildProcess,
  name: string,
  pick: (m: unknown) => T | Error | undefined,
  output: () => string,
  timeoutMs = START_TIMEOUT_MS,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${name}: not ready within ${timeoutMs} ms${output()}`)), timeoutMs);
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

/** IPC picker for the `{type:'listening', port}` message the origin, sink and echo children send. */
export function listeningPort(m: unknown): number | undefined {
  const msg = m as { type?: string; port?: number };
  return msg.type === 'listening' ? msg.port : undefined;
}

/** Fork a compiled entry of dist/bench/macro/ (e.g. 'origin-process.js'); its stderr is kept for error messages. */
export function forkSibling(group: ChildGroup, name: string, file: string, args: string[]): BenchChild {
  const entry = fileURLToPath(new URL(`./${file}`, import.meta.url));
  // execArgv: [] so that `node --cpu-prof dist/bench/run.js` profiles the bench process only; the relay has its own
  // switch (BENCH_RELAY_NODE_OPTIONS).
  const child = fork(entry, args, { execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  group.add(name, child, 'disconnect');
  let tail = '';
  child.stderr!.on('data', (c: Buffer) => (tail = (tail + c.toString('utf8')).slice(-TAIL)));
  return { child, output: () => (tail === '' ? '' : `\n--- ${name} stderr ---\n${tail}`) };
}

/** Fork a child that announces `{type:'listening', port}` and wait for it. */
export async function forkListening(
  group: ChildGroup,
  name: string,
  file: string,
  args: string[],
): Promise<BenchChild & { port: number }> {
  const c = forkSibling(group, name, file, args);
  const port = await childMessage(c.child, name, listeningPort, c.output);
  return { ...c, port };
}

export function portOf(url: string): number {
  const port = Number(new URL(url).port);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in tcp URL ${url}`);
  return port;
}

/**
 * Node flags for a child process from an environment variable (BENCH_RELAY_NODE_OPTIONS, BENCH_AGENT_NODE_OPTIONS:
 * profiling, GC tracing; bench/README.md), split on whitespace.
 */
export function nodeFlags(variable: string): string[] {
  return (process.env[variable] ?? '').split(/\s+/).filter((w) => w !== '');
}

/** The environment for children that must take their configuration from the command line only. */
export function envWithoutBurrow(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BURROW_')));
}

/** The official SDK agent (agent-process.js): one http endpoint for `domain`, and a tcp one per `tcpUpstreams`. */
export async function startSdkAgent(
  group: ChildGroup,
  name: string,
  relay: RelayProcess,
  domain: string,
  upstream: string,
  tcpUpstreams: readonly string[],
): Promise<BenchChild & { url: string; tcpUrls: string[] }> {
  const b = relay.banner;
  const agent = forkSibling(group, name, 'agent-process.js', [
    String(b.agentPort),
    b.caPath,
    b.token,
    domain,
    upstream,
    ...tcpUpstreams,
  ]);
  const both = (): string => `${agent.output()}\n--- relay output ---\n${relay.output()}`;
  const ready = await childMessage(
    agent.child,
    name,
    (m) => {
      const msg = m as { type?: string; url?: string; tcpUrls?: string[]; error?: string };
      if (msg.type === 'failed') return new Error(`${name}: ${msg.error}${both()}`);
      return msg.type === 'ready' ? msg : undefined;
    },
    both,
  );
  return { ...agent, url: ready.url!, tcpUrls: ready.tcpUrls ?? [] };
}

export interface BurrowAgentEndpoint {
  name: string;
  /** Public URL asked for, e.g. http://bench.burrow.localhost or tcp:// */
  url: string;
  upstream: string;
  pool?: boolean;
}

export interface BurrowAgentOptions {
  group: ChildGroup;
  /** Name in logs and errors, and of its config file in dataDir (<name>.yml). */
  name: string;
  repoRoot: string;
  dataDir: string;
  relay: RelayProcess;
  endpoints: readonly BurrowAgentEndpoint[];
  /** Extra node flags (BENCH_AGENT_NODE_OPTIONS). */
  nodeOptions?: readonly string[];
  timeoutMs?: number;
}

/**
 * burrow's agent: `bin/burrow.js start --config <dataDir>/<name>.yml`, all endpoints in one session. Resolves with the
 * URL of each endpoint (by endpoint name) once its JSON log (stdout is a pipe, so the status view writes pino lines)
 * says every endpoint is online; rejects when it exits first (e.g. a Bind refused) or is not ready in time.
 */
export async function startBurrowAgentProcess(o: BurrowAgentOptions): Promise<BenchChild & { urls: Map<string, string> }> {
  const b = o.relay.banner;
  const q = (v: string): string => JSON.stringify(v); // a JSON string is a YAML double-quoted scalar
  const lines = o.endpoints.map(
    (e) => `  - { name: ${q(e.name)}, url: ${q(e.url)}, upstream: ${q(e.upstream)}, pool: ${e.pool === true} }`,
  );
  const config = join(o.dataDir, `${o.name}.yml`);
  writeFileSync(
    config,
    `agent: { server_addr: ${q(`localhost:${b.agentPort}`)}, authtoken: ${q(b.token)}, ca: ${q(b.caPath)}, grace_ms: 500 }\n` +
      `endpoints:\n${lines.join('\n')}\n`,
  );
  const child = o.group.add(
    o.name,
    spawn(process.execPath, [...(o.nodeOptions ?? []), join(o.repoRoot, 'bin', 'burrow.js'), 'start', '--config', config], {
      cwd: o.repoRoot,
      env: envWithoutBurrow(),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    'SIGTERM',
    () => tail, // the CLI says on stderr what still holds it open when it lingers after closing
  );
  let tail = '';
  const keep = (c: Buffer): void => {
    tail = (tail + c.toString('utf8')).slice(-TAIL);
  };
  const output = (): string => (tail === '' ? '' : `\n--- ${o.name} output ---\n${tail}`);
  child.stderr!.on('data', keep);
  const urls = new Map<string, string>();
  let pending = '';
  const timeoutMs = o.timeoutMs ?? START_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string): void => {
      cleanup();
      reject(new Error(`${o.name}: ${why}${output()}`));
    };
    const timer = setTimeout(() => fail(`endpoints not online within ${timeoutMs} ms`), timeoutMs);
    const onExit = (code: number | null, signal: string | null): void =>
      fail(`exited during start-up (code ${code}, signal ${signal})`);
    const onData = (chunk: Buffer): void => {
      keep(chunk);
      pending += chunk.toString('utf8');
      const all = pending.split('\n');
      pending = all.pop()!;
      for (const line of all) {
        let rec: { msg?: string; endpoint?: string; url?: string };
        try {
          rec = JSON.parse(line) as typeof rec;
        } catch {
          continue;
        }
        if (rec.msg === 'endpoint online' && rec.endpoint !== undefined && rec.url !== undefined) {
          urls.set(rec.endpoint, rec.url);
        }
      }
      if (urls.size >= o.endpoints.length) {
        cleanup();
        resolve();
      }
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.stdout!.off('data', onData);
      child.stdout!.on('data', keep); // keep draining the pipe
    };
    child.once('exit', onExit);
    child.stdout!.on('data', onData);
  });
  return { child, output, urls };
}

/**
 * Many sessions of burrow's agent in one child (agents-process.ts), `cfg.count` of them, one endpoint each; resolves
 * with the child and the endpoints' URLs once all are bound.
 */
export async function startAgentsProcess(
  group: ChildGroup,
  name: string,
  cfg: import('./agents-process.js').AgentsConfig,
  timeoutMs = 120_000,
): Promise<BenchChild & { urls: string[] }> {
  const c = forkSibling(group, name, 'agents-process.js', [JSON.stringify(cfg)]);
  const urls = await childMessage(
    c.child,
    name,
    (m) => {
      const msg = m as { type?: string; urls?: string[]; error?: string };
      if (msg.type === 'failed') return new Error(`${name}: ${msg.error}${c.output()}`);
      return msg.type === 'ready' ? (msg.urls ?? []) : undefined;
    },
    c.output,
    timeoutMs,
  );
  return { ...c, urls };
}
