// The agent's JSON log view (status-view.ts) against a stdout nobody reads: the event loop keeps turning (logging
// used to write synchronously, so a full pipe stopped every tunnel and the heartbeat), lines over the buffer bound are
// dropped, and stop() returns within its flush deadline. Runs in a child process on a FIFO that is never read.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const VIEW_JS = fileURLToPath(new URL('../../../src/cli/status-view.js', import.meta.url));

const CHILD = `
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { startStatusView } from ${JSON.stringify(VIEW_JS)};
const fd = fs.openSync(process.argv[2], 'r+'); // the FIFO: opened read-write so the open does not wait for a reader
const agent = Object.assign(new EventEmitter(), { serverText: 'localhost:1' });
const view = startStatusView(agent, { tty: false, version: 'test', out: { fd } });
for (let i = 0; i < 5000; i++) agent.emit('command', { type: 'update', detail: 'x'.repeat(200) }); // ~1.3 MB of lines
await new Promise((r) => setTimeout(r, 20));
process.stderr.write('loop turned\\n');
const t0 = Date.now();
await view.stop();
process.stderr.write('stopped after ' + (Date.now() - t0) + ' ms\\n');
process.exit(0);
`;

test('a stdout nobody reads does not block the agent: the loop turns, stop() returns within its deadline', { timeout: 20_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-status-view-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'stdout.fifo');
  execFileSync('mkfifo', [fifo]);
  const script = join(dir, 'child.mjs');
  writeFileSync(script, CHILD);
  const child = spawn(process.execPath, [script, fifo], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(child, 'exit');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code] = (await exited) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, `the child did not finish (blocked on its stdout?): ${err}`);
  assert.match(err, /loop turned/);
  const ms = Number(/stopped after (\d+) ms/.exec(err)?.[1]);
  assert.ok(ms <= 5_000, `stop() took ${ms} ms`);
});
