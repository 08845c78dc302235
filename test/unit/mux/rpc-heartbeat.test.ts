// Typed-stream RPC (callRpc / respondRpc / readJsonMessage), readStreamType, and the heartbeat pair (Heartbeater
// against serveHeartbeat) between two real MuxSessions over in-memory, TCP and TLS transports (PROTOCOL.md §6–§8).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { MuxSession } from '../../../src/mux/mux-session.js';
import type { MuxStream } from '../../../src/mux/mux-stream.js';
import { callRpc, readJsonMessage, respondRpc } from '../../../src/mux/rpc.js';
import { openTypedStream, readStreamType } from '../../../src/mux/typed-stream.js';
import { Heartbeater, serveHeartbeat } from '../../../src/mux/heartbeat.js';
import {
  STREAM_TYPE_AUTH,
  STREAM_TYPE_BIND,
  STREAM_TYPE_BIND_LABELED,
  STREAM_TYPE_HEARTBEAT,
  STREAM_TYPE_UNBIND,
} from '../../../src/protocol/messages.js';
import { isBurrowError, type ErrorCode } from '../../../src/core/errors.js';
import { DEFAULT_WINDOW_SIZE } from '../../../src/protocol/frame.js';
import { TRANSPORT_KINDS, transportPair, type TransportKind, type TransportPair } from '../../helpers/transport-pair.js';

const T = { timeout: 8000 };
const noop = (): void => {};

interface Pair {
  t: TransportPair;
  client: MuxSession;
  server: MuxSession;
  close(): Promise<void>;
}

async function sessions(kind: TransportKind): Promise<Pair> {
  const t = await transportPair(kind);
  const client = new MuxSession(t.client, { role: 'client' });
  const server = new MuxSession(t.server, { role: 'server' });
  // The heartbeat timers are unref'd (as they should be) and an in-memory pair holds no handle: keep the loop alive
  // while a test waits for one of those timers.
  const keepAlive = kind === 'memory' ? setInterval(noop, 60_000) : null;
  return {
    t,
    client,
    server,
    async close() {
      if (keepAlive !== null) clearInterval(keepAlive);
      client.destroy();
      server.destroy();
      await t.close();
    },
  };
}

/** Bound a wait for an event so a missing event fails with a name and the test's cleanup still runs. */
function within<R>(p: Promise<R>, what: string, ms = 3000): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** Poll session-internal state that no event announces, one event-loop turn at a time. */
async function waitFor(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 50_000) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

function readAll(s: MuxStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

function codeOf(code: ErrorCode): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isBurrowError(e, code), `expected ${code}, got ${String(e)}`);
    return true;
  };
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};

/** Server side of an RPC: read the type and one JSON request, answer with `answer(type, request)`. */
function rpcServer(
  server: MuxSession,
  answer: (type: number, req: Record<string, unknown>) => object,
): Array<{ type: number; req: Record<string, unknown> }> {
  const seen: Array<{ type: number; req: Record<string, unknown> }> = [];
  server.on('stream', (s: MuxStream) => {
    s.on('error', noop);
    void (async () => {
      const type = await readStreamType(s);
      const req = await readJsonMessage(s);
      seen.push({ type, req });
      respondRpc(s, answer(type, req));
      s.resume(); // read the caller's FIN so the stream finishes
    })().catch(noop);
  });
  return seen;
}

for (const kind of TRANSPORT_KINDS) {
  describe(`RPC over ${kind}`, () => {
    test('callRpc / respondRpc round trip; concurrent calls keep their own answers', T, async () => {
      const p = await sessions(kind);
      try {
        const seen = rpcServer(p.server, (type, req) => ({ Type: type, Echo: req, Extra: { Token: `t${type}` } }));
        const reqs = [
          { type: STREAM_TYPE_AUTH, req: { Version: ['3', '2'], ClientId: '', Extra: { AuthToken: 'secret "}{' } } },
          { type: STREAM_TYPE_BIND, req: { Id: '', Proto: 'https', Opts: { Hostname: 'a.example' } } },
          { type: STREAM_TYPE_UNBIND, req: { Id: 'tun_1' } },
          { type: STREAM_TYPE_BIND_LABELED, req: { Labels: { edge: 'edghts_x' }, ForwardsTo: 'localhost:80' } },
        ];
        const answers = await within(
          Promise.all(reqs.map((r) => callRpc<{ Type: number; Echo: unknown; Extra: { Token: string } }>(p.client, r.type, r.req))),
          'RPC answers',
        );
        answers.forEach((a, i) => {
          assert.equal(a.Type, reqs[i]!.type);
          assert.deepEqual(a.Echo, reqs[i]!.req);
          assert.equal(a.Extra.Token, `t${reqs[i]!.type}`);
        });
        assert.deepEqual(
          seen.map((x) => x.type).sort(),
          reqs.map((r) => r.type).sort(),
        );
        await waitFor('both sides to forget the RPC streams', () => p.client.streamCount === 0 && p.server.streamCount === 0);
      } finally {
        await p.close();
      }
    });

    test('a 200 KiB request crosses the window and still arrives whole', T, async () => {
      const p = await sessions(kind);
      try {
        rpcServer(p.server, (_type, req) => ({ Len: (req['Blob'] as string).length }));
        const blob = 'b'.repeat(200 * 1024);
        const a = await within(callRpc<{ Len: number }>(p.client, STREAM_TYPE_BIND, { Blob: blob }), 'RPC answer');
        assert.equal(a.Len, blob.length);
      } finally {
        await p.close();
      }
    });

    test('bytes after the message are dropped, not queued: the writer is never stalled by the window', T, async () => {
      const p = await sessions(kind);
      try {
        const accepted = p.server.accept();
        const c = openTypedStream(p.client, STREAM_TYPE_BIND);
        c.on('error', noop);
        c.write('{"Id":"x"}');
        const s = await within(accepted, 'stream');
        await readStreamType(s);
        const req = await within(readJsonMessage(s), 'message'); // the callee has not answered yet
        assert.equal(req['Id'], 'x');
        const junk = Buffer.alloc(3 * DEFAULT_WINDOW_SIZE, 0x20);
        // Paused, the callee would hold a window of it and the write would wait for credit that never comes.
        await within(new Promise<void>((resolve, reject) => c.write(junk, (err) => (err ? reject(err) : resolve()))), 'write of 3 windows');
        await waitFor('the callee to read it all', () => s.readableLength === 0 && c.sendWindowAvailable > 0);
        respondRpc(s, {});
      } finally {
        await p.close();
      }
    });

    test('an answer with a non-empty Error rejects with BURROW_ERR_RPC_REMOTE; "Error":"" is success', T, async () => {
      const p = await sessions(kind);
      try {
        rpcServer(p.server, (type) =>
          type === STREAM_TYPE_BIND ? { Error: 'hostname taken\nBURROW_ERR_BIND_TAKEN' } : { Error: '', Id: 'tun_9' },
        );
        await assert.rejects(within(callRpc(p.client, STREAM_TYPE_BIND, { Id: '' }), 'RPC answer'), (e: unknown) => {
          codeOf('BURROW_ERR_RPC_REMOTE')(e);
          assert.match((e as Error).message, /hostname taken/);
          return true;
        });
        const ok = await within(callRpc<{ Id: string }>(p.client, STREAM_TYPE_UNBIND, { Id: 'tun_9' }), 'RPC answer');
        assert.equal(ok.Id, 'tun_9');
        assert.equal(p.client.isClosed, false);
        await waitFor('streams done', () => p.client.streamCount === 0 && p.server.streamCount === 0);
      } finally {
        await p.close();
      }
    });

    test('an answer that is not JSON rejects callRpc with BURROW_ERR_RPC_BAD_JSON', T, async () => {
      const p = await sessions(kind);
      try {
        p.server.on('stream', (s: MuxStream) => {
          s.on('error', noop);
          void readStreamType(s).then(() => s.end('<html>502</html>'), noop);
        });
        await assert.rejects(within(callRpc(p.client, STREAM_TYPE_AUTH, {}), 'RPC answer'), codeOf('BURROW_ERR_RPC_BAD_JSON'));
      } finally {
        await p.close();
      }
    });
  });

  describe(`readStreamType over ${kind}`, () => {
    /** Open a stream from the client with `writes`, then FIN; return what the server's readStreamType and rest saw. */
    async function typed(p: Pair, writes: Buffer[]): Promise<{ type: number; rest: string }> {
      const accepted = p.server.accept();
      const c = p.client.openStream();
      c.on('error', noop);
      for (const w of writes) c.write(w);
      c.end();
      c.resume();
      const s = await within(accepted, 'accept');
      s.on('error', noop);
      const type = await within(readStreamType(s), 'stream type');
      const rest = (await within(readAll(s), 'end of stream')).toString();
      s.end();
      return { type, rest };
    }

    test('reads the 4-byte type and leaves the following bytes in the stream', T, async () => {
      const p = await sessions(kind);
      try {
        // Type and payload in separate frames (openTypedStream, then writes).
        const accepted = p.server.accept();
        const c = openTypedStream(p.client, STREAM_TYPE_BIND_LABELED);
        c.on('error', noop);
        c.write('hello ');
        c.end('world');
        c.resume();
        const s = await within(accepted, 'accept');
        s.on('error', noop);
        assert.equal(await within(readStreamType(s), 'stream type'), STREAM_TYPE_BIND_LABELED);
        assert.equal((await within(readAll(s), 'end of stream')).toString(), 'hello world');
        s.end();
        // Type and payload in the same frame.
        assert.deepEqual(await typed(p, [Buffer.concat([u32(0xdeadbeef), Buffer.from('abc')])]), {
          type: 0xdeadbeef,
          rest: 'abc',
        });
        // Type split across frames, the rest of the bytes with its second half.
        assert.deepEqual(await typed(p, [Buffer.from([0xff, 0xff]), Buffer.from([0xff, 0xff, 0x21])]), {
          type: STREAM_TYPE_HEARTBEAT,
          rest: '!',
        });
        // Nothing after the type.
        assert.deepEqual(await typed(p, [u32(5)]), { type: 5, rest: '' });
      } finally {
        await p.close();
      }
    });

    test('a stream that ends before 4 type bytes rejects with BURROW_ERR_TYPED_STREAM', T, async () => {
      const p = await sessions(kind);
      try {
        for (const partial of [Buffer.alloc(0), Buffer.from([0, 0]), Buffer.from([0, 0, 1])]) {
          const accepted = p.server.accept();
          const c = p.client.openStream();
          c.on('error', noop);
          c.end(partial);
          c.resume();
          const s = await within(accepted, 'accept');
          s.on('error', noop);
          await assert.rejects(within(readStreamType(s), 'stream type'), codeOf('BURROW_ERR_TYPED_STREAM'), `${partial.length} bytes`);
          s.end();
        }
      } finally {
        await p.close();
      }
    });
  });

  describe(`heartbeat over ${kind}`, () => {
    test('Heartbeater against serveHeartbeat (intervalMs 50) reports at least 3 RTTs > 0', T, async () => {
      const p = await sessions(kind);
      try {
        p.server.on('stream', (s: MuxStream) => {
          s.on('error', noop);
          void readStreamType(s).then((type) => {
            assert.equal(type, STREAM_TYPE_HEARTBEAT);
            serveHeartbeat(p.server, s);
          }, noop);
        });
        const rtts: number[] = [];
        let enough!: () => void;
        const gotThree = new Promise<void>((r) => (enough = r));
        const hb = new Heartbeater(p.client, {
          intervalMs: 50,
          toleranceMs: 2000,
          onRtt: (ms) => {
            rtts.push(ms);
            if (rtts.length === 3) enough();
          },
        });
        assert.ok(Number.isNaN(hb.lastRttMs));
        hb.start();
        await within(gotThree, '3 heartbeat RTTs');
        hb.stop();
        assert.ok(rtts.every((ms) => Number.isFinite(ms) && ms > 0), `RTTs ${rtts.join(', ')}`);
        assert.equal(hb.lastRttMs, rtts.at(-1));
        assert.equal(p.client.isClosed, false);
        assert.equal(p.server.isClosed, false);
      } finally {
        await p.close();
      }
    });

    for (const [what, serve] of [
      ['never echoes', (s: MuxStream) => s.resume()],
      ['echoes the wrong id', (s: MuxStream) => s.on('data', (c: Buffer) => s.write(Buffer.from(c.map((b) => b ^ 0xff))))],
    ] as const) {
      test(`Heartbeater against a server that ${what} (toleranceMs 150) → client destroyed with BURROW_ERR_MUX_HEARTBEAT_TIMEOUT`, T, async () => {
        const p = await sessions(kind);
        try {
          p.server.on('stream', (s: MuxStream) => {
            s.on('error', noop);
            serve(s);
          });
          const closed = once(p.client, 'close');
          const started = performance.now();
          new Heartbeater(p.client, { intervalMs: 10_000, toleranceMs: 150 }).start();
          const [err] = (await within(closed, 'client session close')) as [unknown];
          const after = performance.now() - started;
          codeOf('BURROW_ERR_MUX_HEARTBEAT_TIMEOUT')(err);
          assert.ok(after >= 140, `declared dead after only ${after.toFixed(0)} ms`);
          assert.equal(p.client.isClosed, true);
        } finally {
          await p.close();
        }
      });
    }

    for (const how of ['resets', 'ends'] as const) {
      test(`a peer that ${how} the heartbeat stream while the session is open: the agent's session ends (BURROW_ERR_MUX_PROTOCOL)`, T, async () => {
        // Before: the heartbeater just stopped, so a peer that then went silent was never detected.
        const p = await sessions(kind);
        try {
          p.server.on('stream', (s: MuxStream) => {
            s.on('error', noop);
            s.resume();
            setImmediate(() => (how === 'resets' ? s.reset() : s.end()));
          });
          const closed = once(p.client, 'close');
          new Heartbeater(p.client, { intervalMs: 10_000, toleranceMs: 60_000 }).start();
          const [err] = (await within(closed, 'client session close')) as [unknown];
          codeOf('BURROW_ERR_MUX_PROTOCOL')(err);
        } finally {
          await p.close();
        }
      });
    }

    test('a peer that sent GOAWAY may end the heartbeat stream: the session is left to close itself', T, async () => {
      const p = await sessions(kind);
      try {
        const ended = new Promise<void>((resolve) => {
          p.server.on('stream', (s: MuxStream) => {
            s.on('error', noop);
            s.resume();
            p.server.goAway(0, 'draining');
            setImmediate(() => {
              s.reset();
              resolve();
            });
          });
        });
        new Heartbeater(p.client, { intervalMs: 10_000, toleranceMs: 60_000 }).start();
        await within(ended, 'the peer to reset the heartbeat stream');
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(p.client.isClosed, false);
      } finally {
        await p.close();
      }
    });

    test('a graceful close does not wait on the heartbeat stream of a peer that stopped answering', T, async () => {
      // Before: the heartbeater's FIN was never answered by a stalled relay, so an idle agent's shutdown took its whole
      // grace period.
      const p = await sessions(kind);
      try {
        p.server.on('stream', (s: MuxStream) => {
          s.on('error', noop);
          s.resume(); // reads, never echoes, never ends its side
        });
        const hb = new Heartbeater(p.client, { intervalMs: 10_000, toleranceMs: 60_000 });
        hb.start();
        await waitFor('the heartbeat stream to be open at the server', () => p.server.streamCount === 1);
        hb.stop();
        await within(p.client.close(), 'the graceful close', 2_000);
      } finally {
        await p.close();
      }
    });

    test('a late answer while other bytes keep arriving (a saturated link) does not end the session; silence does', T, async () => {
      const p = await sessions(kind);
      try {
        // The server never echoes, but sends a byte every 20 ms on another stream for 1.2 s: the relay's data and
        // WNDINCs on a busy link, with the echo stuck behind them.
        p.server.on('stream', (s: MuxStream) => {
          s.on('error', noop);
          s.resume();
        });
        p.client.on('stream', (s: MuxStream) => {
          s.on('error', noop);
          s.resume();
        });
        const busy = p.server.openStream();
        busy.on('error', noop);
        const closed = once(p.client, 'close');
        new Heartbeater(p.client, { intervalMs: 10_000, toleranceMs: 300 }).start();
        for (let i = 0; i < 60; i++) {
          busy.write(Buffer.from([i]));
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(p.client.isClosed, false, 'declared dead while bytes were still arriving');
        const [err] = (await within(closed, 'client session close once the bytes stop')) as [unknown];
        codeOf('BURROW_ERR_MUX_HEARTBEAT_TIMEOUT')(err);
      } finally {
        await p.close();
      }
    });
  });
}
