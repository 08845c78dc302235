// The bench's child group (bench/lib/child-group.ts): a child that does not exit after its stop signal is killed
// after the grace period, and the log line says what it was holding and what it last wrote, for the next look at
// why. Real child processes; the one that lingers ignores SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { ChildGroup } from '../../bench/lib/child-group.js';

test('a child that ignores SIGTERM is SIGKILLed after the grace period, with its state and last lines logged', async (t) => {
  if (process.platform !== 'linux') {
    t.skip('the process picture is read from /proc');
    return;
  }
  const lines: string[] = [];
  const group = new ChildGroup(300, (l) => lines.push(l));
  const child = spawn(
    process.execPath,
    ['-e', "process.on('SIGTERM', () => {}); process.stderr.write('held open by a test timer\\n'); setInterval(() => {}, 1000);"],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let tail = '';
  child.stderr!.on('data', (c: Buffer) => (tail += c.toString('utf8')));
  group.add('lingerer', child, 'SIGTERM', () => tail);
  await once(child.stderr!, 'data'); // its handler is installed and its line written
  const exited = once(child, 'exit');
  await group.close();
  const [, signal] = (await exited) as [number | null, string | null];
  assert.equal(signal, 'SIGKILL');
  const line = lines.find((l) => l.includes('lingerer'));
  assert.ok(line !== undefined, lines.join('\n'));
  assert.match(line, /did not exit within 300 ms: SIGKILL \(state [A-Z]( \([a-z_0-9]+\))?, \d+ threads, fds: \d+ sockets, \d+ pipes, \d+ other\)/);
  assert.match(line, /its last lines:\n {4}held open by a test timer/);
});
