// Relay shutdown (DESIGN.md §2 lifecycle, README --grace): with the ngrok SDK as agent, a response in flight when
// close() begins is delivered whole, an idle keep-alive connection is closed at once, a request head read as the drain
// begins gets 503, and the relay is done as soon as that work is, not when the grace period runs out.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { startChildAgent } from '../helpers/child-sdk-agent.js';
import { RawHttp } from '../helpers/raw-http.js';
import { connect } from '../../src/index.js';
import { listen, startRelayFixture, startTcpEcho, statusOf, waitFor, withTimeout } from '../helpers/relay-fixture.js';

const APP = 'drain.burrow.localhost';
const GRACE_MS = 8_000;
const PIECES = 10;
const PIECE = Buffer.alloc(1024, 0x64);

test('drain with the SDK agent: the download in flight completes, an idle keep-alive connection closes, close() ends with the work', { timeout: 30_000 }, async (t) => {
  const fx = await startRelayFixture({ graceMs: GRACE_MS });
  t.after(() => fx.close());
  // /stream: PIECES × 1 KiB, one every 60 ms, with a Content-Length (the client can tell a cut); anything else: "ok".
  const up = http.createServer((req, res) => {
    if (req.url !== '/stream') return void res.end('ok');
    res.writeHead(200, { 'content-length': PIECES * PIECE.length });
    let sent = 0;
    const timer = setInterval(() => {
      res.write(PIECE);
      if (++sent === PIECES) {
        clearInterval(timer);
        res.end();
      }
    }, 60);
    res.on('close', () => clearInterval(timer));
  });
  const upPort = await listen(up);
  t.after(() => new Promise<void>((r) => (up.closeAllConnections(), up.close(() => r()))));
  // The SDK in a child process: the relay goes first here, and an in-process SDK session would then never close.
  await startChildAgent(fx.cleanup, fx.agent.port, fx.caPath, fx.token, APP, `http://127.0.0.1:${upPort}`);

  const idle = new RawHttp(fx.http.port);
  t.after(() => idle.destroy());
  assert.equal((await idle.request(`GET /hello HTTP/1.1\r\nHost: ${APP}\r\n\r\n`, 'the keep-alive response')).status, 200);

  const dl = net.connect({ host: '127.0.0.1', port: fx.http.port });
  t.after(() => dl.destroy());
  const got: Buffer[] = [];
  let ending = 'end';
  dl.on('data', (c: Buffer) => got.push(c));
  dl.on('error', (e: NodeJS.ErrnoException) => (ending = e.code ?? e.message));
  dl.write(`GET /stream HTTP/1.1\r\nHost: ${APP}\r\n\r\n`);
  await withTimeout('the first bytes of the download', once(dl, 'data'));

  const started = Date.now();
  const closed = fx.relay.close();
  await withTimeout('the idle keep-alive connection to be closed', idle.closed, 3_000);
  const downloadEnded = new Promise<void>((resolve) => dl.once('close', () => resolve()));
  dl.on('end', () => dl.end());
  await withTimeout('the download to end', downloadEnded);
  const text = Buffer.concat(got).toString('latin1');
  assert.equal(statusOf(text), 200);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  assert.equal(body.length, PIECES * PIECE.length, `the download was cut at ${body.length} bytes (${ending})`);
  await withTimeout('close() to finish', closed, GRACE_MS + 2_000);
  // Functional, not a speed goal: the drain ended with the work, far inside the grace period.
  assert.ok(Date.now() - started < GRACE_MS / 2, `close() took ${Date.now() - started} ms, the grace period`);
});

test('drain: a request head read as the drain begins gets 503 with Retry-After, not a 404', { timeout: 30_000 }, async (t) => {
  const fx = await startRelayFixture({ graceMs: 3_000, prereadTimeoutMs: 5_000 });
  t.after(() => fx.close());
  await startChildAgent(fx.cleanup, fx.agent.port, fx.caPath, fx.token, APP, 'http://127.0.0.1:9');
  // Connected before the drain, head sent after it began: the acceptor still reads it.
  const c = net.connect({ host: '127.0.0.1', port: fx.http.port });
  t.after(() => c.destroy());
  await once(c, 'connect');
  await new Promise((r) => setTimeout(r, 50)); // let the acceptor take the connection into its preread
  const closed = fx.relay.close();
  const got: Buffer[] = [];
  c.on('data', (d: Buffer) => got.push(d));
  c.on('error', () => {});
  c.write(`GET / HTTP/1.1\r\nHost: ${APP}\r\n\r\n`);
  await withTimeout('the answer', once(c, 'close'));
  const text = Buffer.concat(got).toString('latin1');
  assert.equal(statusOf(text), 503, text.slice(0, 200));
  assert.match(text, /\r\nRetry-After: \d+\r\n/i);
  await withTimeout('close() to finish', closed);
});

test('drain: a connection of an endpoint the agent unbound keeps its --grace (the session waits for it)', { timeout: 30_000 }, async (t) => {
  // Before: the session's drain counted connections only on endpoints still bound, so it ended at once and cut this
  // one, and close() returned as soon as the route table was empty (review finding).
  const fx = await startRelayFixture({ graceMs: GRACE_MS });
  t.after(() => fx.close());
  const echo = await startTcpEcho(fx.cleanup);
  const agent = await connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem });
  fx.cleanup.defer('close the agent', () => agent.close(200));
  const ep = await withTimeout('the TCP Bind', agent.forward(`tcp://127.0.0.1:${echo.port}`));
  const c = net.connect({ host: '127.0.0.1', port: Number(new URL(ep.url!).port) });
  t.after(() => c.destroy());
  c.on('error', () => {});
  await once(c, 'connect');
  let cut = false;
  c.on('close', () => (cut = true));
  const ping = async (what: string): Promise<void> => {
    c.write(what);
    let got = '';
    await withTimeout(`the echo of ${what}`, new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        got += d.toString();
        if (got === what) (c.off('data', onData), resolve());
      };
      c.on('data', onData);
      c.once('close', () => reject(new Error(`the connection was cut before the echo of ${what}`)));
    }));
  };
  await ping('one');
  await agent.unbind(ep);
  await waitFor('the route to go', () => (fx.relay.acceptor.routes.size === 0 ? true : undefined));
  await ping('two');

  const offline = once(agent, 'offline'); // the worker sent its GOAWAY: it has begun draining this session
  const closed = fx.relay.close();
  await withTimeout('the GOAWAY to reach the agent', offline);
  await ping('three');
  assert.equal(cut, false);
  let closeDone = false;
  void closed.then(() => (closeDone = true));
  await ping('four');
  assert.equal(closeDone, false, 'close() waits for the connection');
  c.end();
  await withTimeout('close() to finish once the connection ended', closed, GRACE_MS + 2_000);
});

test('an endpoint the agent unbinds: its idle keep-alive connections close at once, a response under way completes first', { timeout: 30_000 }, async (t) => {
  // Before: they kept carrying requests to the agent that had unbound the name, even after another agent bound it
  // (review finding: a second owner's cookies reached the first owner's service).
  const fx = await startRelayFixture({ graceMs: GRACE_MS });
  t.after(() => fx.close());
  let release: (() => void) | null = null;
  const up = http.createServer((req, res) => {
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-length': 4 });
      res.write('sl');
      release = () => res.end('ow');
      return;
    }
    res.end('ok');
  });
  const upPort = await listen(up);
  t.after(() => new Promise<void>((r) => (up.closeAllConnections(), up.close(() => r()))));
  const agent = await connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem });
  fx.cleanup.defer('close the agent', () => agent.close(200));
  const host = 'unbound.burrow.localhost';
  const ep = await withTimeout('the Bind', agent.forward(`http://127.0.0.1:${upPort}`, { url: `http://${host}` }));

  const idle = new RawHttp(fx.http.port);
  t.after(() => idle.destroy());
  assert.equal((await idle.request(`GET /a HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 'the first response')).status, 200);
  const busy = new RawHttp(fx.http.port);
  t.after(() => busy.destroy());
  const slow = busy.request(`GET /slow HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 'the slow response');
  await waitFor('the slow response to be under way', () => (release !== null ? true : undefined));

  await agent.unbind(ep);
  await withTimeout('the idle connection to close after the Unbind', idle.closed, 5_000);
  release!();
  const r = await slow;
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'slow', 'the response under way completed');
  await withTimeout('the busy connection to close after its response', busy.closed, 5_000);
});
