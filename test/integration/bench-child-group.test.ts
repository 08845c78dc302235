// The bench's child group (bench/lib/child-group.ts): a child that does not exit after its stop signal is killed
// after the grace period, and the log line says what it was holding and what it last wrote, for the next look at
// why. Real child processes; the one that lingers ignores SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { ChildGroup } from '../../bench/lib/child-group.js';

/**
 * Run `onSigterm` as a child's SIGTERM handler (after it wrote `line` to stderr), stop it through a child group with
 * `graceMs`, and return how it exited and the group's log line about it.
 */
async function stopLingering(name: string, onSigterm: string, line: string, graceMs: number): Promise<{ signal: string | null; log: string }> {
  const lines: string[] = [];
  const group = new ChildGroup(graceMs, (l) => lines.push(l));
  const child = spawn(
    process.execPath,
    ['-e', `process.on('SIGTERM', () => { ${onSigterm} }); process.stderr.write(${JSON.stringify(`${line}\n`)}); setInterval(() => {}, 1000);`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let tail = '';
  child.stderr!.on('data', (c: Buffer) => (tail += c.toString('utf8')));
  group.add(name, child, 'SIGTERM', () => tail);
  await once(child.stderr!, 'data'); // its handler is installed and its line written
  const exited = once(child, 'exit');
  await group.close();
  const [, signal] = (await exited) as [number | null, string | null];
  const log = lines.find((l) => l.includes(name));
  assert.ok(log !== undefined, lines.join('\n'));
  return { signal, log };
}

test('a child that ignores SIGTERM is SIGKILLed after the grace period, with its state and last lines logged', async (t) => {
  if (process.platform !== 'linux') {
    t.skip('the process picture is read from /proc');
    return;
  }
  const { signal, log: line } = await stopLingering('lingerer', '', 'held open by a test timer', 300);
  assert.equal(signal, 'SIGKILL');
  assert.match(line, /did not exit within 300 ms: SIGKILL \(state [A-Z]( \([a-z_0-9]+\))?, \d+ threads, fds: \d+ sockets, \d+ pipes, \d+ other\)/);
  assert.match(line, /; CPU while waiting: [^;]+;/);
  assert.match(line, /its last lines:\n {4}held open by a test timer/);
});

test('a child that spins instead of exiting shows its busy main thread in the SIGKILL line', async (t) => {
  if (process.platform !== 'linux') {
    t.skip('thread CPU is read from /proc');
    return;
  }
  const { log: line } = await stopLingering('spinner', 'for (;;);', 'ready', 600);
  // The main thread ('node') spins from the SIGTERM on and comes first; CPU is read in 10 ms ticks over the 600 ms
  // wait, and other test files share the cores, so only a loose floor is asserted.
  const m = /CPU while waiting: node (\d+)%/.exec(line);
  assert.ok(m !== null, line);
  assert.ok(Number(m[1]) >= 10, line);
});
