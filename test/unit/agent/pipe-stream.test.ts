// pipeStream (src/agent/pipe-stream.ts) over a real TLS mux pair: both directions arrive intact while the agent reuses
// its buffers (transport records once written upstream, upstream read slabs once written to the relay), also when
// the relay side reads slowly so that windows run out in the middle of chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { pipeStream } from '../../../src/agent/pipe-stream.js';
import { headroomSlabStats } from '../../../src/mux/headroom-reads.js';
import { MuxSession } from '../../../src/mux/mux-session.js';
import type { MuxStream } from '../../../src/mux/mux-stream.js';
import { recordBuffers } from '../../../src/mux/read-buffers.js';
import { slowHash, transportPair } from '../../helpers/transport-pair.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('tls-direct: 16 MiB down and 8 MiB up through pipeStream arrive intact while slabs and records are reused', async () => {
  const down = randomBytes(16 * 1024 * 1024);
  const up = randomBytes(8 * 1024 * 1024);
  // The upstream: sends `down`, hashes what it gets, ends its side after both are done.
  let upstreamDigest!: Promise<string>;
  const upstream = net.createServer((sock) => {
    const h = createHash('sha256');
    sock.on('data', (c: Buffer) => h.update(c));
    upstreamDigest = once(sock, 'end').then(() => h.digest('hex'));
    sock.end(down);
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const port = (upstream.address() as net.AddressInfo).port;
  const t = await transportPair('tls-direct'); // client side = the agent's reads
  const relay = new MuxSession(t.server, { role: 'server' });
  const agent = new MuxSession(t.client, { role: 'client', windowSize: 2 * 1024 * 1024 });
  const slabsBefore = headroomSlabStats();
  const recordsBefore = recordBuffers.stats();
  let stall: NodeJS.Timeout | undefined;
  try {
    agent.on('stream', (s: MuxStream) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => pipeStream(s, sock));
    });
    // The relay also stops reading its transport now and then, so the agent's TLS writes back up and windows stall
    // in the middle of chunks. (This is an end-to-end integrity check; on loopback node:tls consumes a write's bytes
    // before a slab could be reused, so the release points themselves are pinned down in read-buffers.test.ts.)
    const transport = t.server;
    let stalls = 0;
    stall = setInterval(() => {
      transport.pause();
      stalls++;
      setTimeout(() => transport.resume(), 2);
    }, 5);
    const s = relay.openStream();
    s.on('error', () => {});
    const got = slowHash(s, 3, 10);
    for (let off = 0; off < up.length; off += 64 * 1024) {
      if (!s.write(up.subarray(off, off + 64 * 1024))) await once(s, 'drain');
    }
    s.end();
    assert.equal(await got, sha(down), 'download intact');
    assert.equal(await upstreamDigest, sha(up), 'upload intact');
    clearInterval(stall);
    assert.ok(stalls > 0);
    const slabs = headroomSlabStats();
    const records = recordBuffers.stats();
    // 16 MiB in 64 KiB reads is 64 slabs' worth; 8 MiB is 512 records.
    assert.ok(slabs.reused - slabsBefore.reused > 20, `slabs reused ${slabs.reused - slabsBefore.reused}, allocated ${slabs.allocated - slabsBefore.allocated}`);
    assert.ok(records.reused - recordsBefore.reused > 100, `records reused ${records.reused - recordsBefore.reused}`);
  } finally {
    clearInterval(stall);
    agent.destroy();
    relay.destroy();
    await t.close();
    upstream.close();
  }
});
