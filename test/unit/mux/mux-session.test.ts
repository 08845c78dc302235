// MuxSession over in-memory, TCP and TLS transports: concurrency with hash-checked data, half-close, RST, GOAWAY,
// flow-control stall and resume, close/destroy semantics.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { MuxSession } from '../../../src/mux/mux-session.js';
import type { MuxStream } from '../../../src/mux/mux-stream.js';
import { MUX_INTERNAL_ERROR, MUX_PROTOCOL_ERROR, MUX_STREAM_REFUSED } from '../../../src/protocol/error-codes.js';
import { DEFAULT_WINDOW_SIZE } from '../../../src/protocol/frame.js';
import { TRANSPORT_KINDS, transportPair, type TransportPair } from '../../helpers/transport-pair.js';
import { isBurrowError } from '../../../src/core/errors.js';

interface Pair {
  t: TransportPair;
  client: MuxSession;
  server: MuxSession;
  close(): Promise<void>;
}

async function sessions(kind: (typeof TRANSPORT_KINDS)[number], opts: { windowSize?: number } = {}): Promise<Pair> {
  const t = await transportPair(kind);
  const client = new MuxSession(t.client, { role: 'client', ...opts });
  const server = new MuxSession(t.server, { role: 'server', ...opts });
  return {
    t,
    client,
    server,
    async close() {
      client.destroy();
      server.destroy();
      await t.close();
    },
  };
}

function readAll(s: MuxStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

/** Resolves once `s` has emitted 'close' (at once if it already has). */
async function waitClosed(s: MuxStream): Promise<void> {
  if (!s.closed) await once(s, 'close');
}

/** Waits (one macrotask at a time, at most 10 s) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Echo every incoming stream back to its opener, ending when the opener ends. */
function echoServer(server: MuxSession): void {
  server.on('stream', (s: MuxStream) => {
    s.on('error', () => {});
    s.pipe(s);
  });
}

for (const kind of TRANSPORT_KINDS) {
  describe(`mux over ${kind}`, () => {
    test('200 concurrent streams move random data both ways, checked by hash', async () => {
      const p = await sessions(kind);
      try {
        echoServer(p.server);
        const jobs: Promise<void>[] = [];
        for (let i = 0; i < 200; i++) {
          const size = (i * 7919) % (600 * 1024); // 0 .. 600 KiB, crosses the 256 KiB window for many
          const data = randomBytes(size);
          const s = p.client.openStream();
          jobs.push(
            (async () => {
              const got = readAll(s);
              // Write in uneven pieces so frames split at odd places.
              let off = 0;
              let step = 1 + (i % 13) * 997;
              while (off < data.length) {
                const end = Math.min(data.length, off + step);
                if (!s.write(data.subarray(off, end))) await once(s, 'drain');
                off = end;
                step = (step * 3 + 1) % 70_000 + 1;
              }
              s.end();
              const back = await got;
              assert.equal(back.length, data.length, `stream ${s.id} length`);
              assert.equal(sha(back), sha(data), `stream ${s.id} content`);
            })(),
          );
        }
        await Promise.all(jobs);
        assert.equal(p.client.streamCount, 0);
        assert.equal(p.server.streamCount, 0);
      } finally {
        await p.close();
      }
    });

    test('a consumer that throws while a frame is handled ends only that session (GOAWAY InternalError), no uncaught throw', async () => {
      const p = await sessions(kind);
      try {
        p.server.on('stream', () => {
          throw new Error('consumer bug');
        });
        const closed = once(p.server, 'close');
        const clientClosed = once(p.client, 'close');
        const s = p.client.openStream();
        s.on('error', () => {}); // the session it belongs to is ended by the peer
        s.write('x');
        const [err] = (await closed) as [Error];
        assert.match(err.message, /internal error while handling the peer's frames: consumer bug/);
        await clientClosed;
        assert.equal(p.client.remoteGoAway?.code, MUX_INTERNAL_ERROR);
      } finally {
        await p.close();
      }
    });

    test('stream ids: client odd, server even; both sides can open', async () => {
      const p = await sessions(kind);
      try {
        echoServer(p.server);
        echoServer(p.client);
        const a = p.client.openStream();
        const b = p.server.openStream();
        assert.equal(a.id % 2, 1);
        assert.equal(b.id % 2, 0);
        const ra = readAll(a);
        const rb = readAll(b);
        a.end('from client');
        b.end('from server');
        assert.equal((await ra).toString(), 'from client');
        assert.equal((await rb).toString(), 'from server');
      } finally {
        await p.close();
      }
    });

    test('half-close each way: data still flows in the open direction', async () => {
      const p = await sessions(kind);
      try {
        const accepted = p.server.accept();
        const c = p.client.openStream();
        c.end('request'); // client half-closes first
        const s = await accepted;
        assert.equal((await readAll(s)).toString(), 'request');
        // Server still writes after the client's FIN.
        const got = readAll(c);
        s.write('part1 ');
        s.end('part2');
        assert.equal((await got).toString(), 'part1 part2');
        await finished(s);
        await finished(c);
        assert.equal(p.client.streamCount, 0);
        assert.equal(p.server.streamCount, 0);

        // Other direction: server ends its side first, client keeps writing.
        const acc2 = p.server.accept();
        const c2 = p.client.openStream();
        c2.write('x');
        const s2 = await acc2;
        const fromServer = readAll(c2);
        s2.end('bye');
        assert.equal((await fromServer).toString(), 'bye');
        const fromClient = readAll(s2);
        c2.end('more after server FIN');
        assert.equal((await fromClient).toString(), 'xmore after server FIN');
      } finally {
        await p.close();
      }
    });

    test('RST: reset by one side errors the other with the wire code', async () => {
      const p = await sessions(kind);
      try {
        const accepted = p.server.accept();
        const c = p.client.openStream();
        c.write('hello');
        const s = await accepted;
        const err = once(c, 'error');
        s.reset(MUX_STREAM_REFUSED);
        const [e] = (await err) as [Error];
        assert.ok(isBurrowError(e, 'BURROW_ERR_MUX_STREAM_REFUSED'), String(e));
        assert.match(e.message, /StreamRefused/);
        await waitClosed(c);
        // Session unaffected.
        echoServer(p.server);
        const c2 = p.client.openStream();
        const r = readAll(c2);
        c2.end('still works');
        assert.equal((await r).toString(), 'still works');
      } finally {
        await p.close();
      }
    });

    test('GOAWAY: peer refuses new streams, open ones finish, close() drains', async () => {
      const p = await sessions(kind);
      try {
        const accepted = p.server.accept();
        const c = p.client.openStream();
        c.write('in flight');
        const s = await accepted;
        const goaway = once(p.client, 'goaway');
        const closed = p.server.close(); // GOAWAY + drain
        const [info] = (await goaway) as [{ code: number; lastStreamId: number }];
        assert.equal(info.code, 0);
        assert.equal(info.lastStreamId, c.id);
        assert.throws(() => p.client.openStream(), (e: unknown) => isBurrowError(e, 'BURROW_ERR_MUX_GOAWAY'));
        // The open stream completes both ways.
        const back = readAll(c);
        const fwd = readAll(s);
        s.end('answer');
        c.end(' done');
        assert.equal((await back).toString(), 'answer');
        assert.equal((await fwd).toString(), 'in flight done');
        await closed;
        assert.equal(p.server.isClosed, true);
        if (!p.client.isClosed) await once(p.client, 'close');
      } finally {
        await p.close();
      }
    });

    test('an error GOAWAY from the peer ends the session: open streams fail, the transport closes', async () => {
      const p = await sessions(kind);
      try {
        const accepted = p.server.accept();
        const c = p.client.openStream();
        c.on('error', () => {}); // the server's end of the transport fails it too
        c.write('in flight');
        const s = await accepted;
        const failed = once(s, 'error') as Promise<[Error]>;
        const ended = once(p.server, 'close') as Promise<[Error | undefined]>;
        p.client.goAway(MUX_PROTOCOL_ERROR, 'invalid frame');
        const [err] = await failed;
        assert.ok(isBurrowError(err, 'BURROW_ERR_MUX_GOAWAY'), String(err));
        assert.match(err.message, /ProtocolError: invalid frame/);
        const [closeErr] = await ended;
        assert.ok(isBurrowError(closeErr, 'BURROW_ERR_MUX_GOAWAY'), String(closeErr));
        assert.equal(p.server.isClosed, true);
      } finally {
        await p.close();
      }
    });

    test('close() finishes when the peer GOAWAY fails the last streams it never saw', async () => {
      const p = await sessions(kind);
      try {
        const c = p.client.openStream(); // never written: its SYN has not gone out, the server does not know it
        c.on('error', () => {});
        const closed = p.client.close();
        p.server.goAway(); // lastStreamId 0: the client's stream was not processed
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('close() still pending 2 s after GOAWAY')), 2000);
        });
        await Promise.race([closed, late]).finally(() => clearTimeout(timer));
        assert.equal(p.client.isClosed, true);
        assert.equal(c.destroyed, true);
      } finally {
        await p.close();
      }
    });

    test('a reader that stops stalls the writer at the window; resuming completes the transfer', async () => {
      const p = await sessions(kind);
      try {
        const accepted = p.server.accept();
        const c = p.client.openStream();
        const total = 4 * 1024 * 1024;
        const data = randomBytes(total);
        let written = 0;
        let writerDone = false;
        const writer = (async () => {
          while (written < total) {
            const n = Math.min(16 * 1024, total - written);
            const ok = c.write(data.subarray(written, written + n));
            written += n;
            if (!ok) await once(c, 'drain');
          }
          c.end();
          writerDone = true;
        })();
        const s = await accepted;
        s.pause(); // the consumer takes nothing
        // Wait until a whole window has arrived at the paused receiver.
        while (s.readableLength < DEFAULT_WINDOW_SIZE) await new Promise((r) => setImmediate(r));
        assert.equal(c.sendWindowAvailable, 0);
        await new Promise((r) => setTimeout(r, 100)); // give a misbehaving sender time to overrun
        assert.equal(writerDone, false);
        assert.equal(s.readableLength, DEFAULT_WINDOW_SIZE, 'the receiver holds exactly one window, nothing more');
        // Sender side holds at most its own stream buffer plus one write beyond the window.
        assert.ok(c.writableLength <= 64 * 1024, `sender buffers ${c.writableLength}`);
        const got = readAll(s);
        s.resume();
        await writer;
        assert.equal(sha(await got), sha(data));
        c.resume();
        s.end();
        await Promise.all([waitClosed(s), waitClosed(c)]);
      } finally {
        await p.close();
      }
    });

    test('a larger receive window is granted once the consumer drains, not at open, and is used', async () => {
      const p = await sessions(kind, { windowSize: 1024 * 1024 });
      try {
        const accepted = p.server.accept();
        const c = p.client.openStream();
        c.write('x');
        const s = await accepted;
        s.pause();
        const big = randomBytes(900 * 1024);
        c.write(big);
        // Nobody has read: the peer gets only the protocol's initial window.
        await until(() => s.readableLength === DEFAULT_WINDOW_SIZE, 'initial window filled');
        assert.equal(c.sendWindowAvailable, 0);
        // The consumer takes 200 KiB: that credit and the 768 KiB extra go back in one WNDINC, so the rest of the
        // upload (more than 256 KiB) fits in flight.
        const first = s.read(200 * 1024) as Buffer;
        assert.equal(first.length, 200 * 1024);
        await until(() => s.readableLength === 1 + big.length - 200 * 1024, 'the rest arrived');
        assert.ok(s.readableLength > DEFAULT_WINDOW_SIZE);
        const got = readAll(s);
        s.resume();
        c.end();
        assert.equal(sha(Buffer.concat([first, await got])), sha(Buffer.concat([Buffer.from('x'), big])));
        c.resume();
        s.end();
        await Promise.all([waitClosed(s), waitClosed(c)]);
      } finally {
        await p.close();
      }
    });

    test('destroy(err) fails open streams on both sides; close() is idempotent', async () => {
      const p = await sessions(kind);
      try {
        const accepted = p.server.accept();
        const c = p.client.openStream();
        c.write('x');
        const s = await accepted;
        const ce = once(c, 'error');
        const se = once(s, 'error');
        const serverClosed = once(p.server, 'close');
        p.client.destroy(new Error('test abort'));
        assert.match(String((await ce)[0]), /test abort/);
        await se; // the server sees the transport go away
        await serverClosed;
        await p.client.close();
        await p.client.close();
        await assert.rejects(p.server.accept(), (e: unknown) => isBurrowError(e, 'BURROW_ERR_MUX_SESSION_CLOSED'));
      } finally {
        await p.close();
      }
    });
  });
}

test('extraWindowBudget: streams past it stay at the initial window until an ended stream returns its extra', async () => {
  const extra = 1024 * 1024 - DEFAULT_WINDOW_SIZE;
  const t = await transportPair('memory');
  const client = new MuxSession(t.client, { role: 'client' });
  const server = new MuxSession(t.server, { role: 'server', windowSize: 1024 * 1024, extraWindowBudget: extra });
  try {
    const c1 = client.openStream();
    c1.write('x');
    const s1 = await server.accept();
    const c2 = client.openStream();
    c2.write('x');
    const s2 = await server.accept();
    s1.pause();
    s2.pause();
    const d1 = randomBytes(600 * 1024);
    const d2 = randomBytes(600 * 1024);
    c1.write(d1);
    c2.write(d2);
    await until(() => s1.readableLength === DEFAULT_WINDOW_SIZE && s2.readableLength === DEFAULT_WINDOW_SIZE, 'both at the initial window');
    assert.equal(server.extraWindowAvailable, extra, 'no extra granted before anything was read');

    const a1 = s1.read(200 * 1024) as Buffer; // s1 takes the whole budget
    assert.equal(server.extraWindowAvailable, 0);
    const a2 = s2.read(200 * 1024) as Buffer; // s2 gets its credit back, no extra
    await until(() => s1.readableLength === 1 + d1.length - 200 * 1024, 's1 got the rest');
    await until(() => s2.readableLength === DEFAULT_WINDOW_SIZE && c2.sendWindowAvailable === 0, 's2 at the initial window again');

    // Both FINs while s1 still holds its unread bytes: the stream leaves the table, but its extra stays taken (its buffer
    // still holds what the extra let in) until it is read to the end.
    s1.end();
    c1.end();
    c1.resume();
    await until(() => server.streamCount === 1, 's1 out of the table after both FINs');
    assert.equal(server.extraWindowAvailable, 0, 'not returned while the bytes are unread');
    const rest1 = readAll(s1);
    s1.resume();
    assert.equal(sha(Buffer.concat([a1, await rest1])), sha(Buffer.concat([Buffer.from('x'), d1])));
    await Promise.all([waitClosed(s1), waitClosed(c1)]);
    assert.equal(server.extraWindowAvailable, extra);
    const b2 = s2.read(150 * 1024) as Buffer;
    assert.equal(server.extraWindowAvailable, 0);
    await until(() => s2.readableLength === 1 + d2.length - 350 * 1024, 's2 got the rest');
    const rest2 = readAll(s2);
    s2.resume();
    c2.end();
    c2.resume();
    s2.end();
    assert.equal(sha(Buffer.concat([a2, b2, await rest2])), sha(Buffer.concat([Buffer.from('x'), d2])));
    await Promise.all([waitClosed(s2), waitClosed(c2)]);
    assert.equal(server.extraWindowAvailable, extra);
  } finally {
    client.destroy();
    server.destroy();
    await t.close();
  }
});

test('writeBatches counts one transport batch per turn that writes; batchPending lasts until that batch is written', async () => {
  const t = await transportPair('memory');
  const client = new MuxSession(t.client, { role: 'client' });
  const server = new MuxSession(t.server, { role: 'server' });
  try {
    assert.equal(client.writeBatches, 0);
    assert.equal(client.batchPending, false);
    const c = client.openStream();
    c.write('a');
    c.write('b');
    assert.equal(client.writeBatches, 1, 'two writes in one turn are one batch');
    assert.equal(client.batchPending, true);
    assert.equal(client.transportBlocked, false);
    await new Promise((r) => setImmediate(r));
    assert.equal(client.batchPending, false, 'the batch went to the transport at setImmediate');
    c.write('c');
    assert.equal(client.writeBatches, 2);
    const s = await server.accept();
    assert.equal((await readN(s, 3)).toString(), 'abc');
    c.on('error', () => {}); // the sessions are destroyed below with the streams open
    s.on('error', () => {});
  } finally {
    client.destroy();
    server.destroy();
    await t.close();
  }
});

test('a turn of small frames goes out early once 2 KiB wait (the peer starts on them); bulk frames wait for the turn’s end', async () => {
  const t = await transportPair('memory');
  const client = new MuxSession(t.client, { role: 'client' });
  const server = new MuxSession(t.server, { role: 'server' });
  // Count what reaches the transport's own write functions (cork holds everything back from them until uncork).
  const duplex = t.client as unknown as { _write: (...a: unknown[]) => void; _writev: ((...a: unknown[]) => void) | null };
  let reached = 0;
  const origWrite = duplex._write.bind(duplex);
  duplex._write = (...a: unknown[]) => (reached++, origWrite(...a));
  if (typeof duplex._writev === 'function') {
    const origWritev = duplex._writev.bind(duplex);
    duplex._writev = (...a: unknown[]) => (reached++, origWritev(...a));
  }
  const streams: MuxStream[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const c = client.openStream();
      c.on('error', () => {});
      streams.push(c);
      c.write(Buffer.alloc(200, 0x61)); // 20 × (200 + 8) bytes: past 2 KiB within this turn
    }
    assert.ok(reached >= 1, 'nothing reached the transport before the turn ended');
    await new Promise((r) => setImmediate(r));
    const bulk = client.openStream();
    bulk.on('error', () => {});
    streams.push(bulk);
    reached = 0;
    bulk.write(Buffer.alloc(64 * 1024, 0x62));
    bulk.write(Buffer.alloc(64 * 1024, 0x63));
    assert.equal(reached, 0, 'bulk frames went out before the turn ended');
    await new Promise((r) => setImmediate(r));
    assert.ok(reached >= 1, 'the bulk batch did not go out at setImmediate');
    server.on('stream', (s: MuxStream) => s.on('error', () => {}));
  } finally {
    client.destroy();
    server.destroy();
    await t.close();
  }
});

function readN(s: MuxStream, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (d: Buffer): void => {
      chunks.push(d);
      got += d.length;
      if (got >= n) {
        s.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    s.on('data', onData);
  });
}
