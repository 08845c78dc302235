// Starts `burrow relay` (bin/burrow.js, the compiled CLI) as a child process for a macro bench and reads the
// start-up banner src/cli/relay-command.ts prints: listener ports, agent port, CA path, dev token. Everything binds
// to 127.0.0.1 port 0. Not on the hot path.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { ChildGroup } from '../lib/child-group.js';

export interface RelayBanner {
  httpPort: number;
  httpsPort: number;
  agentPort: number;
  caPath: string;
  token: string;
  /** The banner's workers line, e.g. "2 threads" or "single-threaded (native addon unavailable: ...)". */
  workers: string;
}

export interface RelayProcess {
  child: ChildProcess;
  banner: RelayBanner;
  /** The last few KiB the relay wrote (stdout and stderr interleaved), for error messages. */
  output(): string;
}

export interface RelayProcessOptions {
  repoRoot: string;
  dataDir: string;
  workers: number;
  /** Extra node flags, before the script (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof). */
  nodeOptions: readonly string[];
  /** The relay's --metrics (recording on or off; the admin server stays off either way). */
  metrics: 'on' | 'off';
  group: ChildGroup;
  /** Give up waiting for the banner after this long. */
  timeoutMs: number;
  /** Environment variables added for the relay (e.g. BURROW_TEST_HOOKS=1 for load-tests/chaos). */
  extraEnv?: Record<string, string>;
  /** Name in the child group's messages (default `relay`). */
  name?: string;
  /** The relay's --tcp-ports (default: its own default); two relays alive at once need ranges that do not overlap. */
  tcpPorts?: string;
}

const OUTPUT_TAIL = 16 * 1024;

/**
 * The banner lines this reads (src/cli/relay-command.ts), for example:
 *   `  http     http://127.0.0.1:43721`
 *   `  https    https://127.0.0.1:45941  (TLS endpoints ...)`
 *   `  agents   127.0.0.1:45483`
 *   `  workers  2 threads`
 *   `  CA       /tmp/x/ca.pem`
 *   `  token    UWsq8Pum...   (dev token, saved in ...)`
 * and `Then: curl ...` as the last line.
 */
export function parseRelayBanner(text: string): RelayBanner | null {
  if (!/^Then: curl /m.test(text)) return null;
  const field = (re: RegExp): string | null => re.exec(text)?.[1] ?? null;
  const httpPort = field(/^ {2}http +http:\/\/\S+:(\d+)\s*$/m);
  const httpsPort = field(/^ {2}https +https:\/\/\S+:(\d+)/m);
  const agentPort = field(/^ {2}agents +\S+:(\d+)\s*$/m);
  const caPath = field(/^ {2}CA +(.+?)\s*$/m);
  const token = field(/^ {2}token +(\S+)/m);
  const workers = field(/^ {2}workers +(.+?)\s*$/m);
  if (httpPort === null || httpsPort === null || agentPort === null || caPath === null || token === null) {
    throw new Error(`relay banner not understood (http, https, agents, CA and token lines expected):\n${text}`);
  }
  return {
    httpPort: Number(httpPort),
    httpsPort: Number(httpsPort),
    agentPort: Number(agentPort),
    caPath,
    token,
    workers: workers ?? 'unknown',
  };
}

export function startRelayProcess(opts: RelayProcessOptions): Promise<RelayProcess> {
  const args = [
    ...opts.nodeOptions,
    join(opts.repoRoot, 'bin', 'burrow.js'),
    'relay',
    '--data-dir', opts.dataDir,
    '--http-addr', '127.0.0.1:0',
    '--https-addr', '127.0.0.1:0',
    '--agent-addr', '127.0.0.1:0',
    '--admin-addr', 'off',
    '--metrics', opts.metrics,
    '--workers', String(opts.workers),
    '--grace', '1000',
    // Every load generator here is one client IP and one agent token, by construction: lift the per-IP and per-token
    // limits (docs/security.md §Limits) so they do not cap what is being measured (idle-conns opens 10 000
    // connections from 127.0.0.1, many-agents 500 sessions with one token).
    '--max-conns-per-ip', '10000000',
    '--max-sessions-per-token', '100000',
    '--max-conns-per-endpoint', '10000000',
    ...(opts.tcpPorts === undefined ? [] : ['--tcp-ports', opts.tcpPorts]),
  ];
  // The relay also reads BURROW_RELAY_* variables: leave the caller's out, so the command line above is the config.
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BURROW_'))),
    ...opts.extraEnv,
  };
  const child = opts.group.add(
    opts.name ?? 'relay',
    spawn(process.execPath, args, { cwd: opts.repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] }),
    'SIGTERM',
  );
  let tail = '';
  let stdout = '';
  const output = (): string => tail;
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  child.stderr!.on('data', keep);
  return new Promise<RelayProcess>((resolve, reject) => {
    const fail = (why: string): void => {
      cleanup();
      reject(new Error(`relay: ${why}\n--- relay output ---\n${tail}`));
    };
    const timer = setTimeout(() => fail(`no start-up banner within ${opts.timeoutMs} ms`), opts.timeoutMs);
    const onExit = (code: number | null, signal: string | null): void =>
      fail(`exited before printing its banner (code ${code}, signal ${signal})`);
    const onError = (err: Error): void => fail(`could not start: ${err.message}`);
    const onData = (chunk: Buffer): void => {
      keep(chunk);
      if (stdout.length < OUTPUT_TAIL) stdout += chunk.toString('utf8');
      let banner: RelayBanner | null;
      try {
        banner = parseRelayBanner(stdout);
      } catch (err) {
        fail((err as Error).message);
        return;
      }
      if (banner === null) return;
      cleanup();
      child.stdout!.on('data', keep); // keep draining the pipe, or a chatty relay would block on a full one
      resolve({ child, banner, output });
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      child.stdout!.off('data', onData);
    };
    child.once('exit', onExit);
    child.once('error', onError);
    child.stdout!.on('data', onData);
  });
}
