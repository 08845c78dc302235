// `burrow relay` as a child process on 127.0.0.1 ephemeral ports with a temp data dir, for tests that measure the
// relay process itself (RSS via /proc) or signal it. Resolves once the banner is printed. Test-only.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { processRssKiB } from '../../bench/lib/proc-stat.js';
import { parseRelayBanner, type RelayBanner } from '../../bench/macro/relay-process.js';
import { envWithoutBurrow } from '../../bench/macro/rig.js';
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
    // The caller's BURROW_* variables would configure the relay too: only `flags` and `env` do.
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...envWithoutBurrow(), ...env } },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  let out = '';
  const banner = await withTimeout(
    'the relay banner',
    new Promise<RelayBanner>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        try {
          const b = parseRelayBanner(out); // the banner parser the bench uses
          if (b !== null) resolve(b);
        } catch (e) {
          reject(e as Error);
        }
      });
      child.once('exit', (code) => reject(new Error(`burrow relay exited (${code}) before its banner: ${err}`)));
    }),
  );
  return {
    child,
    httpPort: banner.httpPort,
    agentAddr: `127.0.0.1:${banner.agentPort}`,
    token: banner.token,
    caPath: banner.caPath,
    stderr: () => err,
  };
}

/** Resident set size of process `pid` in bytes (Linux /proc). */
export function rss(pid: number): number {
  const kib = processRssKiB(pid);
  assert.ok(kib !== null, `VmRSS of process ${pid} not found`);
  return kib * 1024;
}
