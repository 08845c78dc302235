// Recycled transport read buffers (src/mux/read-buffers.ts): the lease rules, the release points of written chunks,
// and end to end over TLS with direct reads, a stream piped to a slow socket (pieces released after their write) next
// to a stream whose consumer keeps every piece (pinned), with the transport paused now and then (queued records):
// everything arrives intact while buffers are being reused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { BatchedPipe } from '../../../src/mux/batched-pipe.js';
import { MuxSession } from '../../../src/mux/mux-session.js';
import type { MuxStream } from '../../../src/mux/mux-stream.js';
import {
  ReadBufferPool,
  pinReadBuffer,
  recordBuffers,
  releaseReadBuffer,
  retainReadBuffer,
} from '../../../src/mux/read-buffers.js';
import { slowHash, transportPair } from '../../helpers/transport-pair.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('a buffer comes back once the reader and every retained piece let go, and not before', () => {
  const pool = new ReadBufferPool(1024, 4);
  const buf = pool.acquire();
  const piece = buf.subarray(100, 200);
  retainReadBuffer(piece);
  retainReadBuffer(buf.subarray(300, 400));
  releaseReadBuffer(buf.buffer); // the reader's hold
  assert.notEqual(pool.acquire(), buf, 'two pieces are still retained');
  releaseReadBuffer(piece.buffer);
  assert.equal(pool.stats().free, 0, 'one piece is still retained');
  releaseReadBuffer(piece.buffer);
  assert.equal(pool.stats().free, 1);
  assert.equal(pool.acquire(), buf, 'reused once all holders released it');
  assert.deepEqual(pool.stats(), { allocated: 2, reused: 1, free: 0 });
});

test('a pinned buffer is never reused, whatever is released afterwards', () => {
  const pool = new ReadBufferPool(1024, 4);
  const buf = pool.acquire();
  retainReadBuffer(buf.subarray(0, 10));
  pinReadBuffer(buf.subarray(10, 20)); // a consumer that keeps its piece
  releaseReadBuffer(buf.buffer);
  releaseReadBuffer(buf.buffer);
  assert.equal(pool.stats().free, 0);
  assert.notEqual(pool.acquire(), buf);
});

test('a pool keeps at most maxFree buffers; the rest are left to the GC', () => {
  const pool = new ReadBufferPool(1024, 2);
  const bufs = [pool.acquire(), pool.acquire(), pool.acquire()];
  for (const b of bufs) releaseReadBuffer(b.buffer);
  assert.equal(pool.stats().free, 2);
});

test('buffers no pool handed out are ignored', () => {
  const pool = new ReadBufferPool(1024, 4);
  releaseReadBuffer(pool.acquire().buffer);
  const other = Buffer.allocUnsafeSlow(16 * 1024);
  retainReadBuffer(other);
  pinReadBuffer(other);
  releaseReadBuffer(other.buffer);
  releaseReadBuffer(Buffer.from('pooled').buffer);
  assert.deepEqual(pool.stats(), { allocated: 1, reused: 0, free: 1 });
});

/** A transport that takes writes and completes each only when told: the writes in flight stay held. */
function holdingTransport(): { transport: Duplex; writes: Buffer[]; pending: () => number; completeOne: () => void } {
  const writes: Buffer[] = [];
  const callbacks: Array<() => void> = [];
  const transport = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk);
      callbacks.push(() => cb());
    },
  });
  // A completion makes the Writable hand over its next buffered write at once (it lands in `callbacks`).
  return { transport, writes, pending: () => callbacks.length, completeOne: () => callbacks.shift()!() };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
/** Larger than a copied frame (256 bytes), and 100 bytes over a multiple of 1000. */
const CHUNK = 6100;

// The split case ends in a 100-byte tail: a piece the session copies into its own frame (<= 256 bytes), whose release
// must still wait for the earlier pieces, which went out as views of the chunk's buffer.
for (const [what, maxWriteFrame] of [['whole', 1 << 20], ['split into 1000-byte frames, short tail', 1000]] as const) {
  test(`a chunk written to a releasesWrites stream (${what}) is released when its last write completes, not before`, async () => {
    const pool = new ReadBufferPool(8192, 4);
    const { transport, writes, pending, completeOne } = holdingTransport();
    const mux = new MuxSession(transport, { role: 'client', maxWriteFrame });
    try {
      const s = mux.openStream();
      s.on('error', () => {});
      s.releasesWrites();
      const buf = pool.acquire();
      buf.fill(7);
      const chunk = buf.subarray(0, CHUNK);
      retainReadBuffer(chunk); // as a headroom read hands it out
      releaseReadBuffer(buf.buffer); // the reader's hold
      s.write(chunk);
      await turn(); // the session's batch goes out at setImmediate
      // One write at a time: header and payload of each frame (different buffers, never merged).
      let completed = 0;
      while (pending() > 0) {
        assert.equal(pool.stats().free, 0, `released with ${pending()} write(s) still in flight, after ${completed} completed`);
        completeOne();
        completed++;
      }
      assert.equal(pool.stats().free, 1, 'released once every frame of the chunk was written');
      const frames = Math.ceil(CHUNK / Math.min(maxWriteFrame, CHUNK));
      // Each frame is a header write and a payload write, except the copied tail: header and payload in one buffer.
      assert.equal(completed, maxWriteFrame < CHUNK ? 2 * frames - 1 : 2);
      assert.equal(Buffer.concat(writes).length, CHUNK + 8 * frames);
    } finally {
      mux.destroy();
    }
  });
}

test('released chunks come back in write order, one per transport write, also past the release queue compaction', async () => {
  // 1100 small chunks, each from its own buffer: each is copied into a frame that cannot merge with the next (its
  // release token differs), so each is one transport write with one token: more than the 1024 finished entries after
  // which the session's release queue is compacted.
  const N = 1100;
  const pool = new ReadBufferPool(256, 2048);
  const { transport, pending, completeOne } = holdingTransport();
  const mux = new MuxSession(transport, { role: 'client' });
  try {
    const s = mux.openStream();
    s.on('error', () => {});
    s.releasesWrites();
    const bufs = Array.from({ length: N }, () => pool.acquire()); // count 1 each: the chunk's own lease
    for (const b of bufs) s.write(b.subarray(0, 200));
    let released = 0;
    // The transport is over its high-water mark after ~80 frames; the stream waits for 'drain', then writes on in a
    // later turn: complete what is there, else let a turn pass (bounded).
    for (let idle = 0; released < N && idle < 100; ) {
      if (pending() === 0) {
        idle++;
        await turn();
        continue;
      }
      idle = 0;
      completeOne();
      const free = pool.stats().free;
      if (free === released) continue; // a write without a token
      assert.equal(free, released + 1, 'one chunk per write');
      // The free list is last-in first-out: the buffer just given back must be the next chunk's in write order.
      const back = pool.acquire();
      assert.equal(back, bufs[released], `write of chunk ${released} released another chunk's buffer`);
      releaseReadBuffer(back.buffer);
      released++;
    }
    assert.equal(released, N);
  } finally {
    mux.destroy();
  }
});

/** A server that hashes what it reads, pausing for a few turns every fourth chunk so that its writer backs up. */
async function slowHashingSink(): Promise<{ port: number; digest: Promise<string>; close: () => void }> {
  let digest!: Promise<string>;
  const conns: net.Socket[] = [];
  const server = net.createServer((s) => {
    conns.push(s);
    digest = slowHash(s, 4, 20);
    s.on('end', () => s.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    get digest() {
      return digest;
    },
    close: () => {
      for (const c of conns) c.destroy();
      server.close();
    },
  };
}

test('tls-direct: a released stream and a keeping stream share recycled read buffers and both arrive intact', async () => {
  const t = await transportPair('tls-direct'); // client side = the agent's reads, with recycling
  const relay = new MuxSession(t.server, { role: 'server' });
  const agent = new MuxSession(t.client, { role: 'client' });
  const sink = await slowHashingSink();
  try {
    const accepted: MuxStream[] = [];
    const both = new Promise<void>((resolve) => {
      agent.on('stream', (s: MuxStream) => {
        s.on('error', () => {}); // the sessions are destroyed at the end, maybe before every callback ran
        accepted.push(s);
        if (accepted.length === 2) resolve();
      });
    });
    const bulk = randomBytes(8 * 1024 * 1024);
    const side = randomBytes(2 * 1024 * 1024);
    const a = relay.openStream();
    const b = relay.openStream();
    for (const s of [a, b]) s.on('error', () => {});
    a.write(bulk.subarray(0, 1)); // SYNs, so that both are accepted before the bulk flows
    b.write(side.subarray(0, 1));
    await both;
    const [sa, sb] = accepted[0]!.id === a.id ? [accepted[0]!, accepted[1]!] : [accepted[1]!, accepted[0]!];
    // Stream a: into a slow socket, each piece released after its write (as the agent's upstream pipe does).
    const upstream = net.connect({ port: sink.port, host: '127.0.0.1' });
    await once(upstream, 'connect');
    new BatchedPipe(sa, upstream, true, true);
    sa.releasesReads();
    // Stream b: every piece kept as it came (pinned), checked only at the end.
    const kept: Buffer[] = [];
    sb.on('data', (c: Buffer) => kept.push(c));
    const bEnded = once(sb, 'end');
    const before = recordBuffers.stats();
    // The agent's transport is paused now and then from a 'data' listener (it keeps nothing): the rest of that TLS
    // read's records then queue in the socket's Readable buffer (direct-reads.ts pins those) and are parsed a turn
    // later, after the reader moved on to other buffers.
    let pauses = 0;
    let chunks = 0;
    t.client.on('data', () => {
      if (++chunks % 5 !== 0) return;
      pauses++;
      t.client.pause();
      setImmediate(() => t.client.resume());
    });
    // Interleave the two so that records carry pieces of both streams.
    const STEP = 64 * 1024;
    for (let off = 1; off < bulk.length; off += STEP) {
      const okA = a.write(bulk.subarray(off, Math.min(off + STEP, bulk.length)));
      const sOff = 1 + Math.floor((off - 1) / 4);
      if (sOff < side.length) b.write(side.subarray(sOff, Math.min(sOff + STEP / 4, side.length)));
      if (!okA) await once(a, 'drain');
    }
    a.end();
    b.end();
    await bEnded;
    assert.equal(await sink.digest, sha(bulk), 'the released stream arrived intact');
    assert.equal(sha(Buffer.concat(kept)), sha(side), 'the keeping stream arrived intact');
    assert.ok(pauses > 0);
    const after = recordBuffers.stats();
    // 10 MiB in 16 KiB records is ~640 reads: most of them must have been served from the free list.
    assert.ok(after.reused - before.reused > 200, `reused ${after.reused - before.reused}, allocated ${after.allocated - before.allocated}`);
  } finally {
    sink.close();
    agent.destroy();
    relay.destroy();
    await t.close();
  }
});
