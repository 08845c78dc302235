// Headroom reads (src/mux/headroom-reads.ts) and the session's merging of contiguous buffers (MuxSession.write): kept
// chunks are owned and intact even after their headroom was written, a claim is good once, a socket gives its slab
// back, and frames of back-to-back reads reach the transport as one buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { HEADROOM_MAX_SLAB_SOCKETS, claimHeadroom, enableHeadroomReads, headroomSlabSockets } from '../../../src/mux/headroom-reads.js';
import { MuxSession } from '../../../src/mux/mux-session.js';
import { FRAME_HEADER_SIZE, TYPE_DATA } from '../../../src/protocol/frame.js';
import { transportPair, waitForWriterStall, withSocketPair, type TransportPair } from '../../helpers/transport-pair.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Write `data` from the client in 64 KiB writes (bulk: the server's reads come out large), then end. */
async function sendAll(client: Duplex, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; off += 64 * 1024) {
    if (!client.write(data.subarray(off, off + 64 * 1024))) await new Promise((r) => client.once('drain', r));
  }
  client.end();
}

/** Every chunk the server socket emits, kept (not copied), until 'end'. */
function collect(server: net.Socket, onChunk: (c: Buffer) => void = () => {}): Promise<Buffer[]> {
  const kept: Buffer[] = [];
  return new Promise((resolve, reject) => {
    server.on('data', (c: Buffer) => {
      kept.push(c);
      onChunk(c);
    });
    server.on('end', () => resolve(kept));
    server.on('error', reject);
  });
}

test('kept chunks stay intact when the headroom of every claimed one is written: 8 MiB, hash-checked', () =>
  withSocketPair('tcp', async (server, t) => {
    assert.equal(enableHeadroomReads(server), true);
    assert.equal(enableHeadroomReads(server), false, 'a second call changes nothing');
    let claimed = 0;
    const data = randomBytes(8 * 1024 * 1024);
    const got = collect(server, (c) => {
      if (!claimHeadroom(c)) return;
      claimed++;
      // What the mux does with it: a frame header in the bytes in front. They must belong to no other chunk.
      Buffer.from(c.buffer, c.byteOffset - FRAME_HEADER_SIZE, FRAME_HEADER_SIZE).fill(0xee);
    });
    await sendAll(t.client, data);
    const kept = await got;
    assert.equal(sha(Buffer.concat(kept)), sha(data));
    assert.ok(claimed > 10, `chunks read with headroom: ${claimed} of ${kept.length}`);
  }));

/** Resolves once `server` has emitted a chunk of at least 16 KiB (a slab read), pausing it right there. */
function pauseOnLargeRead(server: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const onData = (c: Buffer): void => {
      if (c.length < 16 * 1024) return;
      server.pause(); // no further read: the socket stays in slab mode
      server.off('data', onData);
      resolve(c);
    };
    server.on('data', onData);
  });
}

test('a socket in slab mode holds one place, and gives it back when it closes', () =>
  withSocketPair('tcp', async (server, t) => {
    enableHeadroomReads(server);
    const before = headroomSlabSockets();
    const large = pauseOnLargeRead(server);
    t.client.write(randomBytes(1024 * 1024));
    await large;
    assert.equal(headroomSlabSockets(), before + 1);
    server.destroy();
    await new Promise((r) => server.once('close', r));
    assert.equal(headroomSlabSockets(), before, 'a closed socket holds no slab');
  }));

test('over the cap, large reads are still handed out with headroom (copied), and the cap holds', async () => {
  const pairs: TransportPair[] = [];
  try {
    for (let i = 0; i <= HEADROOM_MAX_SLAB_SOCKETS; i++) {
      const t = await transportPair('tcp');
      pairs.push(t);
      enableHeadroomReads(t.server as net.Socket);
    }
    // Every socket but the last enters slab mode and stays there (paused after its first large read).
    for (const t of pairs.slice(0, -1)) {
      const large = pauseOnLargeRead(t.server as net.Socket);
      t.client.write(randomBytes(256 * 1024));
      await large;
    }
    assert.equal(headroomSlabSockets(), HEADROOM_MAX_SLAB_SOCKETS);
    // The last one reads past the cap: its large read is a copy with headroom of its own, and it takes no slab.
    const last = pairs[pairs.length - 1]!;
    const large = pauseOnLargeRead(last.server as net.Socket);
    last.client.write(randomBytes(256 * 1024));
    const c = await large;
    assert.equal(headroomSlabSockets(), HEADROOM_MAX_SLAB_SOCKETS, 'the socket past the cap took no slab');
    assert.equal(claimHeadroom(c), true, 'a large read past the cap still carries headroom');
  } finally {
    for (const t of pairs) await t.close();
  }
});

test('claimHeadroom is true once per chunk, and never for a slice of it or an ordinary buffer', () =>
  withSocketPair('tcp', async (server, t) => {
    enableHeadroomReads(server);
    const got = collect(server);
    await sendAll(t.client, randomBytes(1024 * 1024));
    const kept = await got;
    const large = kept.filter((c) => c.length >= 16 * 1024);
    assert.ok(large.length > 0);
    const c = large[0]!;
    assert.equal(claimHeadroom(c.subarray(0, 100)), false, 'a slice starts elsewhere');
    assert.equal(claimHeadroom(Buffer.from(c)), false, 'a copy has no headroom');
    assert.equal(claimHeadroom(c), true);
    assert.equal(claimHeadroom(c), false, 'claimed already');
  }));

test('pause() holds delivery until resume(); the data arrives whole and in order', () =>
  withSocketPair('tcp', async (server, t) => {
    enableHeadroomReads(server);
    const data = randomBytes(8 * 1024 * 1024);
    const got: Buffer[] = [];
    let whilePaused = 0;
    let paused = false;
    const done = new Promise<void>((resolve) => {
      server.on('data', (c: Buffer) => {
        got.push(c);
        if (paused) whilePaused += c.length;
        if (got.length === 1) {
          paused = true;
          server.pause();
        }
      });
      server.on('end', resolve);
    });
    const sent = sendAll(t.client, data);
    // Wait until the writer stalls on the paused reader's full receive buffer. Bounded: if pause() did not hold, the
    // writer never stalls and the assertions below fail.
    await waitForWriterStall(t.client);
    assert.equal(whilePaused, 0, 'nothing is delivered while paused');
    assert.ok(t.client.writableLength > 0, 'the writer is held back by the paused reader');
    paused = false;
    server.resume();
    await sent;
    await done;
    assert.equal(sha(Buffer.concat(got)), sha(data));
  }));

/** A transport that records each write call: how many buffers it was handed, and their bytes. */
class RecordingTransport extends Duplex {
  readonly calls: number[] = [];
  readonly bytes: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.calls.push(1);
    this.bytes.push(Buffer.from(chunk));
    cb();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: () => void): void {
    this.calls.push(chunks.length);
    for (const c of chunks) this.bytes.push(Buffer.from(c.chunk));
    cb();
  }
}

/** The frames in `wire`: [type, streamId, payload]. */
function frames(wire: Buffer): Array<[number, number, Buffer]> {
  const out: Array<[number, number, Buffer]> = [];
  for (let off = 0; off < wire.length; ) {
    const len = wire.readUIntBE(off, 3);
    out.push([wire[off + 3]! >> 4, wire.readUInt32BE(off + 4) & 0x7fffffff, wire.subarray(off + 8, off + 8 + len)]);
    off += 8 + len;
  }
  return out;
}

test('DATA frames of back-to-back headroom reads reach the transport as one buffer, headers in place', () =>
  withSocketPair('tcp', async (server, t) => {
    enableHeadroomReads(server);
    const got = collect(server);
    await sendAll(t.client, randomBytes(2 * 1024 * 1024));
    const kept = await got;
    // Two reads laid out one after the other in a slab (a gap for the second one's header between them).
    let pair: [Buffer, Buffer] | null = null;
    for (let i = 1; i < kept.length && pair === null; i++) {
      const a = kept[i - 1]!;
      const b = kept[i]!;
      const large = a.length >= 16 * 1024 && b.length >= 16 * 1024; // smaller payloads are copied next to a header instead
      if (large && a.buffer === b.buffer && a.byteOffset + a.length + FRAME_HEADER_SIZE === b.byteOffset) pair = [a, b];
    }
    assert.ok(pair !== null, 'two consecutive reads share a slab');
    const [a, b] = pair;
    const expectA = Buffer.from(a);
    const expectB = Buffer.from(b);
    const transport = new RecordingTransport();
    const mux = new MuxSession(transport, { role: 'server' });
    try {
      const s = mux.openStream();
      s.on('error', () => {}); // destroy() below fails the open stream
      s.write(a);
      s.write(b);
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(transport.calls, [1], 'one write call with one buffer');
      const f = frames(Buffer.concat(transport.bytes));
      assert.equal(f.length, 2);
      assert.deepEqual(f.map(([type, id]) => [type, id]), [[TYPE_DATA, s.id], [TYPE_DATA, s.id]]);
      assert.ok(f[0]![2].equals(expectA) && f[1]![2].equals(expectB), 'payloads intact');
    } finally {
      mux.destroy();
    }
  }));

test('small frames of one turn are merged into one buffer (carved back to back from the header slab)', async () => {
  const transport = new RecordingTransport();
  const mux = new MuxSession(transport, { role: 'server' });
  try {
    const streams = [mux.openStream(), mux.openStream(), mux.openStream()];
    for (const s of streams) {
      s.on('error', () => {}); // destroy() below fails the open streams
      s.write(Buffer.from('hello'));
    }
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(transport.calls, [1]);
    const f = frames(Buffer.concat(transport.bytes));
    assert.deepEqual(f.map(([, id, p]) => [id, p.toString()]), streams.map((s) => [s.id, 'hello']));
  } finally {
    mux.destroy();
  }
});

test('a headroom chunk split into several frames (maxWriteFrame below its size) still arrives intact', () =>
  withSocketPair('tcp', async (server, t) => {
    enableHeadroomReads(server);
    const got = collect(server);
    await sendAll(t.client, randomBytes(1024 * 1024));
    const c = (await got).find((k) => k.length >= 40 * 1024);
    assert.ok(c !== undefined, 'a large read');
    const expect = Buffer.from(c);
    const transport = new RecordingTransport();
    const mux = new MuxSession(transport, { role: 'server', maxWriteFrame: 16 * 1024 });
    try {
      const s = mux.openStream();
      s.on('error', () => {}); // destroy() below fails the open stream
      s.write(c);
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      const f = frames(Buffer.concat(transport.bytes));
      assert.equal(f.length, Math.ceil(expect.length / (16 * 1024)));
      assert.ok(Buffer.concat(f.map(([, , p]) => p)).equals(expect), 'the pieces add up to the chunk');
      assert.ok(c.equals(expect), 'the chunk itself is untouched');
    } finally {
      mux.destroy();
    }
  }));
