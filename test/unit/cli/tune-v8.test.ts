// tuneV8ForDataPlane (src/cli/tune-v8.ts): the young generation must stay at its initial size in a process that
// allocates with survivors, and grow without it (else the flag no longer does anything on this Node and the tcp-bulk
// gain in bench/RESULTS.md is gone). Each case runs in a child process: V8 flags are process-wide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const TUNE = fileURLToPath(new URL('../../../src/cli/tune-v8.js', import.meta.url));

/**
 * New-space size in bytes, in a child that runs `setup` and then an allocation pattern whose objects often survive a
 * scavenge (which makes V8 grow it). `args` follow the script on the command line.
 */
function newSpaceAfterLoad(setup: string, args: string[] = []): number {
  const script = `
    const v8 = require('node:v8');
    (async () => {
      ${setup}
      let keep = [];
      for (let i = 0; i < 3e6; i++) { keep.push({ i, b: Buffer.allocUnsafe(64) }); if (keep.length > 20000) keep = []; }
      const ns = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
      process.stdout.write(String(ns.space_size));
    })();`;
  return Number(execFileSync(process.execPath, ['-e', script, ...args], { encoding: 'utf8' }));
}

test('tuneV8ForDataPlane keeps new space at its initial size; untuned, V8 grows it', () => {
  const untuned = newSpaceAfterLoad('');
  const tuned = newSpaceAfterLoad(`(await import(${JSON.stringify(TUNE)})).tuneV8ForDataPlane();`);
  assert.ok(tuned <= 2 * 1024 * 1024, `tuned new space ${tuned} bytes, expected the initial ≤ 2 MiB`);
  assert.ok(untuned > 2 * tuned, `untuned new space ${untuned} bytes should have grown past 2 × ${tuned}`);
});

/** New space in a child whose argv names `command` and which only imports tune-v8 (as main.ts does first). */
function newSpaceForCommand(command: string): number {
  // With -e, argv[1] is the first extra argument: 'bin' stands in for bin/burrow.js, so argv[2] is the command.
  return newSpaceAfterLoad(`await import(${JSON.stringify(TUNE)});`, ['bin', command]);
}

test('importing tune-v8 sets the flag for data-plane commands only (main.ts imports it before the rest of the CLI)', () => {
  const relay = newSpaceForCommand('relay');
  const token = newSpaceForCommand('token');
  assert.ok(relay <= 2 * 1024 * 1024, `burrow relay: new space ${relay} bytes, expected the initial ≤ 2 MiB`);
  assert.ok(token > 2 * relay, `burrow token: new space ${token} bytes should have grown past 2 × ${relay}`);
});
