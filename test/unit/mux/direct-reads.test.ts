// Direct reads on TLS sockets (src/mux/direct-reads.ts): chunks are owned (kept chunks are never overwritten by
// later reads), small and large records both arrive intact, pause() stops delivery, 'end' follows the data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { directReadsSupported, enableDirectReads } from '../../../src/mux/direct-reads.js';
import { waitForWriterStall, withSocketPair } from '../../helpers/transport-pair.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('a socket without a handle is not switched', () => {
  const s = new net.Socket();
  try {
    assert.equal(directReadsSupported(s), false);
    assert.equal(enableDirectReads(s), false);
  } finally {
    s.destroy();
  }
});

for (const shared of [false, true]) test(`${shared ? 'shared' : 'per-socket'} buffer: kept chunks stay intact: 4 MiB in writes of 1 B to 40 KiB, small and large records, hash-checked`, () =>
  withSocketPair('tls', async (server, t) => {
    // This Node has the socket fields direct reads rely on (a Node upgrade that drops them fails here).
    assert.equal(directReadsSupported(server), true);
    assert.equal(enableDirectReads(server, { shared }), true);
    assert.equal(enableDirectReads(server, { shared }), false, 'a second call changes nothing');
    const kept: Buffer[] = [];
    let small = 0;
    let large = 0;
    const ended = new Promise<void>((resolve, reject) => {
      server.on('data', (c: Buffer) => {
        kept.push(c); // kept, not copied: a borrowed chunk would be overwritten by the next read
        if (c.length <= 4096) small++;
        else large++;
      });
      server.on('end', resolve);
      server.on('error', reject);
    });
    const total = 4 * 1024 * 1024;
    const data = randomBytes(total);
    let off = 0;
    let i = 0;
    while (off < total) {
      // Mostly tiny writes (each its own record) with a large one every few, so both paths of the reader run.
      const n = Math.min(total - off, i % 7 === 0 ? 40 * 1024 : 1 + ((i * 131) % 3000));
      if (!t.client.write(data.subarray(off, off + n))) await new Promise((r) => t.client.once('drain', r));
      off += n;
      i++;
    }
    t.client.end();
    await ended;
    assert.equal(sha(Buffer.concat(kept)), sha(data));
    assert.ok(small > 100, `small records seen: ${small}`);
    assert.ok(large > 10, `large records seen: ${large}`);
  }));

test('pause() stops delivery until resume(); everything arrives afterwards', () =>
  withSocketPair('tls', async (server, t) => {
    assert.equal(enableDirectReads(server), true);
    let received = 0;
    let whilePaused = 0;
    let paused = false;
    const all = 8 * 1024 * 1024;
    const done = new Promise<void>((resolve) => {
      server.on('data', (c: Buffer) => {
        received += c.length;
        if (paused) whilePaused += c.length;
        if (received === all) resolve();
      });
    });
    server.pause();
    paused = true;
    t.client.write(randomBytes(all));
    // Let the client flush into the kernel until it stalls on the paused reader's full receive buffer. Bounded: if
    // pause() did not hold, the writer drains to 0 and never "stalls"; the assertions below then fail.
    await waitForWriterStall(t.client);
    assert.equal(whilePaused, 0, 'no data is delivered while paused');
    assert.ok(t.client.writableLength > 0, 'the writer is held back by the paused reader');
    paused = false;
    server.resume();
    await done;
    assert.equal(received, all);
  }));

for (const shared of [false, true]) test(`${shared ? 'shared' : 'per-socket'} buffer: pause() in a 'data' handler holds the rest of the same read; resume() delivers it in order`, () =>
  withSocketPair('tls', async (server, t) => {
    // One 48 KiB write is three TLS records that arrive in one socket read; TLSWrap hands them over in one loop, so
    // records after the pause() must be queued, not emitted (HttpPump holds a client's bytes this way until an
    // Upgrade's 101).
    assert.equal(enableDirectReads(server, { shared }), true);
    const data = randomBytes(48 * 1024);
    const got: Buffer[] = [];
    let beforeResume = -1;
    const all = new Promise<void>((resolve) => {
      let n = 0;
      server.on('data', (c: Buffer) => {
        got.push(c);
        n += c.length;
        if (got.length === 1) {
          server.pause();
          setImmediate(() => {
            beforeResume = got.length;
            server.resume();
          });
        }
        if (n === data.length) resolve();
      });
    });
    t.client.write(data);
    await all;
    assert.equal(beforeResume, 1, 'nothing is delivered between pause() and resume()');
    assert.ok(got.length > 1, `the write arrived as ${got.length} record(s)`);
    assert.equal(sha(Buffer.concat(got)), sha(data));
  }));

for (const shared of [false, true]) test(`${shared ? 'shared' : 'per-socket'} buffer: a consumer that set an encoding gets strings, and the socket reports it was read`, () =>
  withSocketPair('tls', async (server, t) => {
    assert.equal(enableDirectReads(server, { shared }), true);
    server.setEncoding('latin1');
    const text = 'x'.repeat(100) + 'y'.repeat(20_000); // a small record, then large ones
    let got = '';
    const types = new Set<string>();
    const all = new Promise<void>((resolve) => {
      server.on('data', (c: string | Buffer) => {
        types.add(typeof c);
        got += c.toString('latin1');
        if (got.length === text.length) resolve();
      });
    });
    t.client.write(text.slice(0, 100));
    t.client.write(text.slice(100));
    await all;
    assert.deepEqual([...types], ['string']);
    assert.equal(got, text);
    assert.equal(server.readableDidRead, true);
  }));

test('a destroyed socket is left alone', () =>
  withSocketPair('tls', async (server) => {
    server.destroy();
    assert.equal(enableDirectReads(server), false);
  }));
