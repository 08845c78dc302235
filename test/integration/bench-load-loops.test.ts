// The bench's own load loops (bench/macro/new-conn-load.ts, ws-load.ts, tcp-bulk.ts pullBytes) against small local
// servers: they count what they should and report wrong answers as errors, so `npm run bench` cannot pass on a
// broken path. Real sockets on 127.0.0.1:0; each run lasts 1 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { runNewConnLoad } from '../../bench/macro/new-conn-load.js';
import { runWsLoad } from '../../bench/macro/ws-load.js';
import { Progress } from '../../bench/lib/progress.js';
import { listen } from '../helpers/relay-fixture.js';

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

test('new-conn load: one connection per request, each counted with its latency; non-2xx and short bodies reported', async (t) => {
  let connections = 0;
  let status = 200;
  let length = 1024;
  const server = http.createServer((_req, res) => {
    res.writeHead(status, { 'content-length': String(length) });
    res.end(Buffer.alloc(length, 0x61));
  });
  server.on('connection', () => connections++);
  const port = await listen(server);
  t.after(() => close(server));

  const ok = await runNewConnLoad({ port, host: 'x.test', path: '/' }, { connections: 2, durationSeconds: 1, minResponseBytes: 1024 });
  assert.ok(ok.requests > 10, `only ${ok.requests} requests`);
  assert.equal(connections, ok.requests, 'one connection per request');
  assert.equal(ok.errors + ok.non2xx + ok.short, 0, JSON.stringify(ok.errorSamples));
  assert.equal(ok.latenciesMs.length, ok.requests);
  assert.ok(ok.latenciesMs[0]! > 0 && ok.latenciesMs[0]! <= ok.latenciesMs[ok.latenciesMs.length - 1]!, 'sorted, positive');

  status = 503;
  const bad = await runNewConnLoad({ port, host: 'x.test', path: '/' }, { connections: 1, durationSeconds: 1, minResponseBytes: 1024 });
  assert.equal(bad.non2xx, bad.requests);
  assert.ok(bad.requests > 0);

  status = 200;
  length = 10;
  const short = await runNewConnLoad({ port, host: 'x.test', path: '/' }, { connections: 1, durationSeconds: 1, minResponseBytes: 1024 });
  assert.equal(short.short, short.requests);
});

test('ws load: round trips echoed and timed; a server that answers wrong lengths or refuses the upgrade is an error', async (t) => {
  let mangle = false;
  const server = http.createServer((_req, res) => {
    res.writeHead(404);
    res.end();
  });
  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (ws) => ws.on('message', (d: Buffer) => ws.send(mangle ? d.subarray(1) : d)));
  const port = await listen(server);
  t.after(async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    await close(server);
  });

  const ok = await runWsLoad({ url: `ws://127.0.0.1:${port}/ws`, connections: 3, durationSeconds: 1, messageBytes: 1024 });
  assert.ok(ok.messages > 100, `only ${ok.messages} echoes`);
  assert.equal(ok.errors, 0, ok.errorSamples.join('; '));
  assert.equal(ok.bytes, ok.messages * 1024);
  assert.ok(ok.latencyMs.p50 > 0 && ok.latencyMs.p50 <= ok.latencyMs.p99 && ok.latencyMs.p99 <= ok.latencyMs.max);

  mangle = true;
  const wrong = await runWsLoad({ url: `ws://127.0.0.1:${port}/ws`, connections: 1, durationSeconds: 1, messageBytes: 64 });
  assert.equal(wrong.errors, wrong.messages);
  assert.match(wrong.errorSamples[0] ?? '', /echo of 63 bytes, 64 sent/);

  const refused = await runWsLoad({ url: `ws://127.0.0.1:${port}/nope`, connections: 1, durationSeconds: 1, messageBytes: 64 });
  assert.equal(refused.messages, 0);
  assert.ok(refused.errors > 0);
  assert.match(refused.errorSamples.join(' '), /HTTP 400 instead of 101/);
});

test('progress without a terminal: one plain line per step, no escape sequences', () => {
  const out: string[] = [];
  const p = new Progress(2, (s) => out.push(s), false);
  p.step('first', 1);
  p.log('a log line');
  p.stepDone();
  p.step('second', 0);
  p.stepDone();
  p.finish();
  assert.deepEqual(out, ['[1/2] first\n', 'a log line\n', '[2/2] second\n']);
});
