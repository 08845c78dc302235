// How a MuxStream hands received data to its consumer: in order and complete whether the consumer flows, pauses in
// the middle of a transport chunk, is resumed by another stream's handler while data is queued, reads in 'readable'
// mode or decodes strings, and with window credit returned however it reads. (Guards the shortcut around
// Readable.push in onDataPiece for flowing consumers with nothing queued; bench/RESULTS.md, session 8.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { MuxSession } from '../../../src/mux/mux-session.js';
import type { MuxStream } from '../../../src/mux/mux-stream.js';
import { transportPair, type TransportKind } from '../../helpers/transport-pair.js';

/** 3000 numbered lines written one per write(): each is its own DATA frame, many share a transport chunk. */
const LINES = 3000;
const line = (i: number): string => `line ${i} ${'x'.repeat(i % 37)}\n`;
const expected = Array.from({ length: LINES }, (_, i) => line(i)).join('');

/** The LINES lines, one write() each, then FIN. */
function writeLines(out: MuxStream): void {
  for (let i = 0; i < LINES; i++) out.write(line(i));
  out.end();
}

/**
 * A client stream fed by `produce` (default: writeLines) and its server end handed to `consume`; resolves with what
 * `consume` resolves with, once `produce` is done too.
 */
async function withStream<T>(
  kind: TransportKind,
  consume: (s: MuxStream) => Promise<T>,
  produce: (out: MuxStream) => unknown = writeLines,
): Promise<T> {
  const t = await transportPair(kind);
  const client = new MuxSession(t.client, { role: 'client' });
  const server = new MuxSession(t.server, { role: 'server' });
  try {
    const accepted = once(server, 'stream') as Promise<[MuxStream]>;
    const out = client.openStream();
    out.on('error', () => {}); // the session is destroyed below, possibly before our FIN's write callback ran
    const producing = produce(out);
    const [s] = await accepted;
    const result = await consume(s);
    await producing;
    s.on('error', () => {});
    return result;
  } finally {
    client.destroy();
    server.destroy();
    await t.close();
  }
}

for (const kind of ['memory', 'tls-direct'] as const) {
  test(`${kind}: a consumer that pauses every third chunk and resumes a turn later gets every byte in order`, async () => {
    const got = await withStream(kind, (s) => new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let n = 0;
      s.on('data', (c: Buffer) => {
        parts.push(c);
        if (++n % 3 === 0) {
          s.pause();
          setImmediate(() => s.resume());
        }
      });
      s.on('end', () => resolve(Buffer.concat(parts).toString('latin1')));
      s.on('error', reject);
    }));
    assert.equal(got, expected);
  });

  test(`${kind}: 'readable'-mode and string-decoding consumers get every byte in order`, async () => {
    const viaReadable = await withStream(kind, (s) => new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      s.on('readable', () => {
        for (let c: Buffer | null = s.read(); c !== null; c = s.read()) parts.push(c);
      });
      s.on('end', () => resolve(Buffer.concat(parts).toString('latin1')));
      s.on('error', reject);
    }));
    assert.equal(viaReadable, expected);
    const viaStrings = await withStream(kind, (s) => new Promise((resolve, reject) => {
      let text = '';
      s.setEncoding('latin1');
      s.on('data', (c: string) => {
        assert.equal(typeof c, 'string');
        text += c;
      });
      s.on('end', () => resolve(text));
      s.on('error', reject);
    }));
    assert.equal(viaStrings, expected);
  });
}

for (const kind of ['tcp', 'tls-direct'] as const) test(`${kind}: a stream resumed by another stream while data is queued still gets its bytes in order`, async () => {
  // Frames arrive as A A B A A B ... in one transport chunk: A pauses itself on every piece, so its next piece is
  // queued; B's piece resumes A in the same tick (the queue is flushed a tick later). A's following piece must go
  // behind the queued one, not straight to the consumer. (Socket transports: the sender's frames of one turn arrive
  // in one read; the in-memory pair delivers one frame per turn.)
  const t = await transportPair(kind);
  const client = new MuxSession(t.client, { role: 'client' });
  const server = new MuxSession(t.server, { role: 'server' });
  try {
    const streams: MuxStream[] = [];
    const bothOpen = new Promise<void>((resolve) =>
      server.on('stream', (s: MuxStream) => {
        s.on('error', () => {});
        streams.push(s);
        if (streams.length === 2) resolve();
      }),
    );
    const a = client.openStream();
    const b = client.openStream();
    a.on('error', () => {});
    b.on('error', () => {});
    a.write('open');
    b.write('open');
    await bothOpen;
    const [sa, sb] = streams as [MuxStream, MuxStream];
    const rounds = 500;
    let sent = 'open';
    for (let i = 0; i < 2 * rounds; i++) sent += line(i);
    const partsA: Buffer[] = [];
    let gotA = 0;
    const endA = once(sa, 'end');
    sa.on('data', (c: Buffer) => {
      partsA.push(c);
      gotA += c.length;
      // Pause when nothing is queued (so the backlog never grows), and not after the last piece (nothing would
      // resume the stream for its FIN).
      if (sa.readableLength === 0 && gotA < sent.length) sa.pause();
    });
    sb.on('data', () => {
      if (sa.isPaused()) sa.resume();
    });
    for (let i = 0; i < rounds; i++) {
      a.write(line(2 * i));
      a.write(line(2 * i + 1));
      b.write('b');
    }
    a.end();
    await endA;
    assert.equal(Buffer.concat(partsA).toString('latin1'), sent);
  } finally {
    client.destroy();
    server.destroy();
    await t.close();
  }
});

for (const kind of ['memory', 'tls-direct'] as const) {
  test(`${kind}: a consumer that drains with read() (async iteration, with pauses) returns credit: 3 MiB through a 256 KiB window`, { timeout: 20_000 }, async () => {
    const total = 3 * 1024 * 1024;
    const chunk = Buffer.alloc(1500, 7);
    const got = await withStream(
      kind,
      async (s) => {
        let n = 0;
        let k = 0;
        // Every 40th chunk waits 1 ms: the buffer runs dry between reads, so credit must come from read() itself
        // (Node calls _read only once until the next push, and with the window spent nothing is pushed).
        for await (const c of s as AsyncIterable<Buffer>) {
          n += c.length;
          if (++k % 40 === 0) await new Promise((r) => setTimeout(r, 1));
        }
        return n;
      },
      async (out) => {
        for (let n = 0; n < total; n += chunk.length) if (!out.write(chunk)) await once(out, 'drain');
        out.end();
      },
    );
    assert.equal(got, Math.ceil(total / chunk.length) * chunk.length);
  });
}

test('a stream whose data went straight to a flowing consumer reports readableDidRead', async () => {
  const got = await withStream('memory', (s) => new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      assert.equal(s.readableDidRead, true);
    });
    s.on('end', () => resolve(text));
    s.on('error', reject);
  }));
  assert.equal(got, expected);
});
