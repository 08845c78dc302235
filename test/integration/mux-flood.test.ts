// Mux floods against the real relay's agent listener (DESIGN.md §6 Mux; issue #8 item 6): a raw TLS peer speaking
// muxado as a hostile agent. A heartbeat flood → GOAWAY EnhanceYourCalm and the session ends; a SYN flood past the
// session's stream limit (4 before Auth) → RST StreamRefused for the excess, session alive; a WNDINC overflowing a stream window →
// RST FlowControlError on that stream. The relay serves other clients throughout. (hostile-peer.test.ts covers the
// same rules on a bare MuxSession over memory and TCP; this proves the relay's sessions are configured with them.)
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import tls from 'node:tls';
import { FrameDecoder, type FrameHandler } from '../../src/protocol/frame-decoder.js';
import { FLAG_SYN, MAX_FRAME_LENGTH, TYPE_DATA, encodeFrame, encodeWndInc } from '../../src/protocol/frame.js';
import { MUX_ENHANCE_YOUR_CALM, MUX_FLOW_CONTROL_ERROR, MUX_STREAM_REFUSED } from '../../src/protocol/error-codes.js';
import { STREAM_TYPE_AUTH, STREAM_TYPE_BIND, STREAM_TYPE_HEARTBEAT } from '../../src/protocol/messages.js';
import { curl, resolveArgs, startRelayFixture, withTimeout, type RelayFixture } from '../helpers/relay-fixture.js';

const HEARTBEAT_TYPE = Buffer.alloc(4);
HEARTBEAT_TYPE.writeUInt32BE(STREAM_TYPE_HEARTBEAT);
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** A hostile agent: TLS to the relay, raw frames out, decoded frames in; `until` re-checks on every frame and on close. */
class RawAgent implements FrameHandler {
  readonly rsts: Array<{ streamId: number; code: number }> = [];
  goAway: { code: number; debug: string } | null = null;
  closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly sock: tls.TLSSocket;

  constructor(fx: RelayFixture) {
    this.sock = tls.connect({ host: '127.0.0.1', port: fx.agent.port, servername: 'localhost', ca: fx.caPem });
    const decoder = new FrameDecoder(this, MAX_FRAME_LENGTH);
    this.sock.on('data', (c: Buffer) => decoder.push(c));
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.closed = true;
      this.poke();
    });
  }

  async ready(): Promise<void> {
    await withTimeout('TLS to the relay agent listener', once(this.sock, 'secureConnect'));
  }

  send(buf: Buffer): void {
    this.sock.write(buf);
  }

  until(what: string, cond: () => boolean): Promise<void> {
    return withTimeout(
      what,
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (cond()) {
            this.waiters.delete(check);
            resolve();
          }
        };
        this.waiters.add(check);
        check();
      }),
    );
  }

  destroy(): void {
    this.sock.destroy();
  }

  /** Payload bytes received per stream id. */
  readonly data = new Map<number, Buffer>();
  onData(streamId: number, _flags: number, payload: Buffer): void {
    this.data.set(streamId, Buffer.concat([this.data.get(streamId) ?? Buffer.alloc(0), payload]));
    this.poke();
  }
  onRst(streamId: number, code: number): void {
    this.rsts.push({ streamId, code });
    this.poke();
  }
  onWndInc(): void {}
  onGoAway(_last: number, code: number, debug: Buffer): void {
    this.goAway = { code, debug: debug.toString('utf8') };
    this.poke();
  }
  onProtocolError(): void {}

  private poke(): void {
    for (const w of [...this.waiters]) w();
  }
}

async function stillServing(fx: RelayFixture): Promise<void> {
  const r = await curl([...resolveArgs('nobody.burrow.localhost', fx.http.port), `http://nobody.burrow.localhost:${fx.http.port}/`]);
  assert.equal(r.status, 404, 'the relay still answers other clients');
}

test('relay agent sessions under floods: heartbeat → GOAWAY EnhanceYourCalm; SYN → RST StreamRefused; WNDINC overflow → RST FlowControlError', { timeout: 60_000 }, async (t) => {
  const fx = await startRelayFixture();
  t.after(() => fx.close());

  await t.test('heartbeat flood: 10 000 beats at once → GOAWAY EnhanceYourCalm, session closed', async () => {
    const a = new RawAgent(fx);
    try {
      await a.ready();
      a.send(encodeFrame(TYPE_DATA, FLAG_SYN, 1, HEARTBEAT_TYPE));
      a.send(encodeFrame(TYPE_DATA, 0, 1, Buffer.concat(Array.from({ length: 10_000 }, (_, i) => u32(i)))));
      await a.until('GOAWAY and close', () => a.goAway !== null && a.closed);
      assert.equal(a.goAway!.code, MUX_ENHANCE_YOUR_CALM);
      assert.match(a.goAway!.debug, /heartbeat flood/);
    } finally {
      a.destroy();
    }
    await stillServing(fx);
  });

  await t.test('SYN flood before Auth: 4 200 streams opened at once → all but 4 get RST StreamRefused', async () => {
    const a = new RawAgent(fx);
    try {
      await a.ready();
      const N = 4_200;
      const frames: Buffer[] = [];
      for (let i = 0; i < N; i++) frames.push(encodeFrame(TYPE_DATA, FLAG_SYN, 2 * i + 1));
      a.send(Buffer.concat(frames));
      // Before Auth a session may open 4 streams (heartbeat, Auth, slack; each waits for its type within a deadline).
      await a.until('RSTs for the excess SYNs', () => a.rsts.filter((r) => r.code === MUX_STREAM_REFUSED).length >= N - 4);
      assert.deepEqual(
        a.rsts.slice(0, 3).map((r) => r.streamId),
        [9, 11, 13],
        'streams 1, 3, 5 and 7 were taken',
      );
      assert.equal(a.goAway, null, 'refusing streams does not end the session');
      assert.equal(a.closed, false);
    } finally {
      a.destroy();
    }
    await stillServing(fx);
  });

  await t.test('before Auth: a Bind is refused unread (answer, RST StreamRefused); an Auth over 16 KiB is reset', async () => {
    const a = new RawAgent(fx);
    try {
      await a.ready();
      // An unfinished 200 KiB Bind: read, it would sit in the relay until the Auth deadline (--rpc-max is 256 KiB).
      a.send(encodeFrame(TYPE_DATA, FLAG_SYN, 1, Buffer.concat([u32(STREAM_TYPE_BIND), Buffer.from('{"Id":"' + 'a'.repeat(200_000))])));
      await a.until('the Bind refused', () => a.rsts.some((r) => r.streamId === 1));
      assert.equal(a.rsts.find((r) => r.streamId === 1)!.code, MUX_STREAM_REFUSED);
      assert.match(a.data.get(1)?.toString('utf8') ?? '', /^\{"Error":"stream type 1 before Auth: authenticate first"\}$/);
      // An Auth is read up to 16 KiB whatever --rpc-max allows; past that the stream is reset.
      a.send(encodeFrame(TYPE_DATA, FLAG_SYN, 3, Buffer.concat([u32(STREAM_TYPE_AUTH), Buffer.from('{"Extra":{"Metadata":"' + 'm'.repeat(20_000))])));
      await a.until('the oversized Auth reset', () => a.rsts.some((r) => r.streamId === 3));
      assert.equal(a.data.get(3)?.length ?? 0, 0, 'the oversized Auth was answered');
      assert.equal(a.goAway, null, 'refusing streams does not end the session');
    } finally {
      a.destroy();
    }
    await stillServing(fx);
  });

  await t.test('WNDINC overflow: a window pushed past 2^31-1 → RST FlowControlError on that stream', async () => {
    const a = new RawAgent(fx);
    try {
      await a.ready();
      a.send(encodeFrame(TYPE_DATA, FLAG_SYN, 1, HEARTBEAT_TYPE));
      a.send(encodeWndInc(1, 0x7fffffff));
      await a.until('RST on stream 1', () => a.rsts.some((r) => r.streamId === 1));
      assert.equal(a.rsts.find((r) => r.streamId === 1)!.code, MUX_FLOW_CONTROL_ERROR);
    } finally {
      a.destroy();
    }
    await stillServing(fx);
  });
});
