// BatchedPipe (src/mux/batched-pipe.ts) and the write high-water mark of the sockets mux streams are piped into: the
// pieces of one transport read (four 16 KiB TLS records) reach the socket in one writev, and every socket the agent
// and the relay pipe a stream into is created with that mark.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';
import { BatchedPipe, PIPE_WRITE_HIGH_WATER_MARK, type WritableHighWaterMarkOption } from '../../../src/mux/batched-pipe.js';
import { ReadBufferPool, releaseReadBuffer } from '../../../src/mux/read-buffers.js';
import { UpstreamDialer } from '../../../src/agent/upstream-dialer.js';
import { nativeAddon } from '../../../src/native/native-addon.js';
import { sharedReadSocketFromFd, socketFromFd } from '../../../src/relay/worker/shared-read.js';

const PIECE = 16 * 1024;

/** A listening server that reads and drops everything; closed by the returned function. */
async function sinkServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const conns = new Set<net.Socket>();
  const server = net.createServer((s) => {
    conns.add(s);
    s.resume();
    s.on('close', () => conns.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of conns) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Calls of the socket's _write / _writev and the pieces each carried. */
function spyWrites(socket: net.Socket): number[] {
  const calls: number[] = [];
  const s = socket as unknown as {
    _write: (chunk: Buffer, enc: string, cb: () => void) => void;
    _writev: (chunks: Array<{ chunk: Buffer }>, cb: () => void) => void;
  };
  const write = s._write.bind(socket);
  const writev = s._writev.bind(socket);
  s._write = (chunk, enc, cb) => {
    calls.push(1);
    write(chunk, enc, cb);
  };
  s._writev = (chunks, cb) => {
    calls.push(chunks.length);
    writev(chunks, cb);
  };
  return calls;
}

/** Four 16 KiB pieces queued in one turn, as a mux stream queues the records of one transport read. */
function fourPieces(): Readable {
  const src = new Readable({ read() {} });
  for (let i = 0; i < 4; i++) src.push(Buffer.alloc(PIECE, i));
  src.push(null);
  return src;
}

async function pipedWrites(options: net.NetConnectOpts): Promise<number[]> {
  const sink = await sinkServer();
  try {
    const socket = net.connect({ ...options, port: sink.port, host: '127.0.0.1' });
    await once(socket, 'connect');
    const calls = spyWrites(socket);
    new BatchedPipe(fourPieces(), socket);
    await once(socket, 'finish');
    socket.destroy();
    return calls;
  } finally {
    await sink.close();
  }
}

test('at the pipe write high-water mark, the four pieces of one transport read go out in one writev', async () => {
  const withMark: net.NetConnectOpts & WritableHighWaterMarkOption = { port: 0, writableHighWaterMark: PIPE_WRITE_HIGH_WATER_MARK };
  assert.deepEqual(await pipedWrites(withMark), [4]);
  // Node's default (16 KiB) pauses the pipe at the second piece: what the agent's upstream writes looked like before.
  assert.ok((await pipedWrites({ port: 0 })).length > 1);
});

test('the agent dials upstreams with the pipe write high-water mark', async (t) => {
  const sink = await sinkServer();
  const dialer = new UpstreamDialer({ host: '127.0.0.1', port: sink.port });
  t.after(async () => {
    dialer.close();
    await sink.close();
  });
  const socket = await dialer.dial();
  assert.equal(socket.writableHighWaterMark, PIPE_WRITE_HIGH_WATER_MARK);
  socket.destroy();
});

test('relay worker sockets on handed-off descriptors have the pipe write high-water mark (both read modes)', async (t) => {
  if (!nativeAddon.available) {
    t.skip('native addon unavailable: no descriptor handoff');
    return;
  }
  const sink = await sinkServer();
  t.after(() => sink.close());
  for (const make of [socketFromFd, sharedReadSocketFromFd]) {
    const client = net.connect(sink.port, '127.0.0.1');
    await once(client, 'connect');
    const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
    const socket = make(nativeAddon.dup(fd));
    client.destroy();
    assert.equal(socket.writableHighWaterMark, PIPE_WRITE_HIGH_WATER_MARK, make.name);
    socket.write(Buffer.alloc(100));
    socket.end();
    await once(socket, 'close');
  }
});

test('with releaseReads, each chunk is released at its own write callback, in order, also past the queue compaction', async () => {
  const pool = new ReadBufferPool(16, 4096);
  const N = 2500; // more than two compactions of the in-flight queue (every 1024 finished entries)
  const src = new Readable({ read() {} });
  const bufs = Array.from({ length: N }, () => pool.acquire()); // count 1 each: the pipe's release gives it back
  for (const b of bufs) src.push(b);
  src.push(null);
  // A destination that completes writes only when told; one write at a time (no _writev).
  const callbacks: Array<() => void> = [];
  const dst = new Writable({
    highWaterMark: 1 << 30, // never pauses the source: every chunk is queued at once
    write(_chunk: Buffer, _enc, cb) {
      callbacks.push(() => cb());
    },
  });
  new BatchedPipe(src, dst, true, true);
  await new Promise((r) => setImmediate(r)); // the pipe's uncork: the first write reaches the destination
  for (let k = 0; k < N; k++) {
    assert.equal(pool.stats().free, k, `before write ${k} completed`);
    assert.equal(callbacks.length, 1);
    callbacks.shift()!(); // the next buffered write starts at once
    assert.equal(pool.stats().free, k + 1, `after write ${k} completed`);
    // The free list is last-in first-out: the buffer just given back must be this write's own.
    const back = pool.acquire();
    assert.equal(back, bufs[k], `write ${k} released another chunk's buffer`);
    releaseReadBuffer(back.buffer);
  }
});
