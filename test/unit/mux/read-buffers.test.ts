// Recycled transport read buffers (src/mux/read-buffers.ts): the lease rules, and end to end over TLS with direct
// reads, a stream piped to a slow socket (pieces released after their write) next to a stream whose consumer keeps
// every piece (pinned): both arrive intact while buffers are being reused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { BatchedPipe } from '../../../src/mux/batched-pipe.js';
import { MuxSession } from '../../../src/mux/mux-session.js';
import type { MuxStream } from '../../../src/mux/mux-stream.js';
import {
  acquireReadBuffer,
  pinReadBuffer,
  readBufferStats,
  releaseReadBuffer,
  retainReadBuffer,
} from '../../../src/mux/read-buffers.js';
import { transportPair } from '../../helpers/transport-pair.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Acquire until the free list is empty, so the next acquisition is a fresh buffer (stats are per thread). */
function drainFree(): Buffer[] {
  const held: Buffer[] = [];
  while (readBufferStats().free > 0) held.push(acquireReadBuffer());
  return held;
}

test('a buffer comes back once the reader and every retained piece let go, and not before', () => {
  drainFree();
  const buf = acquireReadBuffer();
  const piece = buf.subarray(100, 200);
  retainReadBuffer(piece);
  retainReadBuffer(buf.subarray(300, 400));
  releaseReadBuffer(buf.buffer); // the reader's hold
  assert.notEqual(acquireReadBuffer(), buf, 'two pieces are still retained');
  releaseReadBuffer(piece.buffer);
  assert.equal(readBufferStats().free, 0, 'one piece is still retained');
  releaseReadBuffer(piece.buffer);
  assert.equal(readBufferStats().free, 1);
  assert.equal(acquireReadBuffer(), buf, 'reused once all holders released it');
});

test('a pinned buffer is never reused, whatever is released afterwards', () => {
  drainFree();
  const buf = acquireReadBuffer();
  retainReadBuffer(buf.subarray(0, 10));
  pinReadBuffer(buf.subarray(10, 20)); // a consumer that keeps its piece
  releaseReadBuffer(buf.buffer);
  releaseReadBuffer(buf.buffer);
  assert.equal(readBufferStats().free, 0);
  assert.notEqual(acquireReadBuffer(), buf);
});

test('buffers this module did not hand out are ignored', () => {
  drainFree();
  const other = Buffer.allocUnsafeSlow(16 * 1024);
  retainReadBuffer(other);
  pinReadBuffer(other);
  releaseReadBuffer(other.buffer);
  releaseReadBuffer(Buffer.from('pooled').buffer);
  assert.equal(readBufferStats().free, 0);
});

/** A server that hashes what it reads, pausing for a few turns every fourth chunk so that its writer backs up. */
async function slowHashingSink(): Promise<{ port: number; digest: Promise<string>; close: () => void }> {
  let resolveDigest!: (d: string) => void;
  const digest = new Promise<string>((r) => (resolveDigest = r));
  const conns: net.Socket[] = [];
  const server = net.createServer((s) => {
    conns.push(s);
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (c: Buffer) => {
      h.update(c);
      if (++n % 4 === 0) {
        s.pause();
        let turns = 20;
        const later = (): void => {
          if (--turns > 0) setImmediate(later);
          else s.resume();
        };
        setImmediate(later);
      }
    });
    s.on('end', () => {
      resolveDigest(h.digest('hex'));
      s.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    digest,
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
    const before = readBufferStats();
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
    const after = readBufferStats();
    // 10 MiB in 16 KiB records is ~640 reads: most of them must have been served from the free list.
    assert.ok(after.reused - before.reused > 200, `reused ${after.reused - before.reused}, allocated ${after.allocated - before.allocated}`);
  } finally {
    sink.close();
    agent.destroy();
    relay.destroy();
    await t.close();
  }
});
