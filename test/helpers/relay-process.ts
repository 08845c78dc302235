// `burrow relay` as a child process on 127.0.0.1 ephemeral ports with a temp data dir, for tests that measure the
// relay process itself (RSS via /proc) or signal it. Resolves once the banner is printed. Test-only.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { withTimeout } from './relay-fixture.js';

const BIN = fileURLToPath(new URL('../../../bin/burrow.js', import.meta.url));

export interface RelayProcess {
  child: ChildProcessWithoutNullStreams;
  httpPort: number;
  /** host:port of the agent listener. */
  agentAddr: string;
  token: string;
  caPath: string;
  /** stderr so far. */
  stderr(): string;
}

/** Start `burrow relay` with `flags` (on top of ephemeral listeners, admin off); killed when the test ends. */
export async function startRelayProcess(t: TestContext, flags: string[], env: NodeJS.ProcessEnv = {}): Promise<RelayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-relay-proc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const child = spawn(
    process.execPath,
    [BIN, 'relay', '--data-dir', dir, '--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0', '--agent-addr', '127.0.0.1:0', '--admin-addr', 'off', ...flags],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const banner: Record<string, string> = {};
  await withTimeout(
    'the relay banner',
    new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (l) => {
        const m = /^ {2}(http|agents|token|CA) +(\S+)/.exec(l);
        if (m !== null) banner[m[1]!] = m[2]!;
        if (banner['http'] && banner['agents'] && banner['token'] && banner['CA']) resolve();
      });
      child.once('exit', (code) => reject(new Error(`burrow relay exited (${code}) before its banner: ${err}`)));
    }),
  );
  return {
    child,
    httpPort: Number(new URL(banner['http']!).port),
    agentAddr: banner['agents']!,
    token: banner['token']!,
    caPath: banner['CA']!,
    stderr: () => err,
  };
}

/** Resident set size of process `pid` in bytes (Linux /proc). */
export function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m !== null, 'VmRSS not found');
  return Number(m[1]) * 1024;
}
