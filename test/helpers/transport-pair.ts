// Connected transport pairs for mux tests: in-memory, TCP on 127.0.0.1:0, TLS over TCP, and TLS read the way the
// relay and the agent read it (src/mux/direct-reads.ts, read-buffers.ts) (STYLE.md §Tests: every mux test runs over each).
import { createHash } from 'node:crypto';
import { Duplex, type Readable } from 'node:stream';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { makeTestPki } from './certs.js';
import { enableDirectReads } from '../../src/mux/direct-reads.js';

export type TransportKind = 'memory' | 'tcp' | 'tls' | 'tls-direct';
export const TRANSPORT_KINDS: readonly TransportKind[] = ['memory', 'tcp', 'tls', 'tls-direct'];

export interface TransportPair {
  client: Duplex;
  server: Duplex;
  close(): Promise<void>;
}

/** Two in-memory Duplex ends: what one writes the other reads (asynchronously, as a socket would deliver it). */
export function memoryPair(highWaterMark = 64 * 1024): [Duplex, Duplex] {
  let a: Duplex;
  let b: Duplex;
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      highWaterMark,
      allowHalfOpen: true,
      read() {
        // The writer's callback is held until we are read from, giving socket-like backpressure.
        const self = this as Duplex & { _waiting?: () => void };
        const w = self._waiting;
        if (w !== undefined) {
          self._waiting = undefined;
          w();
        }
      },
      write(chunk: Buffer, _enc, cb) {
        const p = peer() as Duplex & { _waiting?: () => void };
        const copy = Buffer.from(chunk); // the writer may reuse its buffer once cb runs
        if (p.push(copy)) setImmediate(cb);
        else p._waiting = () => cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
      destroy(err, cb) {
        const p = peer();
        setImmediate(() => {
          if (!p.destroyed) p.destroy();
        });
        cb(err);
      },
    });
  a = make(() => b);
  b = make(() => a);
  return [a, b];
}

export async function transportPair(kind: TransportKind): Promise<TransportPair> {
  if (kind === 'memory') {
    const [client, server] = memoryPair();
    return {
      client,
      server,
      async close() {
        client.destroy();
        server.destroy();
      },
    };
  }
  const isTls = kind === 'tls' || kind === 'tls-direct';
  const pki = isTls ? makeTestPki() : null;
  const server = isTls
    ? tls.createServer({ key: pki!.keyPem, cert: pki!.certPem })
    : net.createServer();
  const accepted = once(server, isTls ? 'secureConnection' : 'connection');
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const client = isTls
    ? tls.connect({ host: '127.0.0.1', port, ca: pki!.caPem, servername: 'localhost' })
    : net.connect({ host: '127.0.0.1', port });
  const connected = once(client, isTls ? 'secureConnect' : 'connect');
  const [[serverSock]] = (await Promise.all([accepted, connected])) as [[net.Socket], unknown];
  client.setNoDelay(true);
  serverSock.setNoDelay(true);
  // As in production: the relay (server) reads records in place; the agent (client) also reuses its read buffers
  // (read-buffers.ts), which is safe because a MuxSession is the listener in every test that uses this kind.
  if (kind === 'tls-direct' && !(enableDirectReads(client as net.Socket, { recycle: true }) && enableDirectReads(serverSock))) {
    throw new Error('enableDirectReads refused a connected TLS socket');
  }
  return {
    client,
    server: serverSock,
    async close() {
      client.destroy();
      serverSock.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      pki?.cleanup();
    },
  };
}

/**
 * Run `fn` on a connected pair of `kind` (a socket kind: tcp, tls or tls-direct), the server side as a net.Socket, and
 * close the pair afterwards.
 */
export async function withSocketPair(kind: Exclude<TransportKind, 'memory'>, fn: (server: net.Socket, t: TransportPair) => Promise<void>): Promise<void> {
  const t = await transportPair(kind);
  try {
    await fn(t.server as net.Socket, t);
  } finally {
    await t.close();
  }
}

/**
 * Wait (bounded) until `writer` stalls: its queued bytes stay the same, and above 0, for 50 event-loop turns in a
 * row, as when the peer stopped reading and the kernel buffers are full. If the peer keeps reading, the writer drains
 * and this gives up after 20 000 turns; the caller's assertions then fail.
 */
export async function waitForWriterStall(writer: Duplex): Promise<void> {
  let stalledTurns = 0;
  let lastLen = -1;
  for (let turn = 0; turn < 20_000 && stalledTurns < 50; turn++) {
    await new Promise((r) => setImmediate(r));
    const len = writer.writableLength;
    stalledTurns = len === lastLen && len > 0 ? stalledTurns + 1 : 0;
    lastLen = len;
  }
}

/**
 * A slow reader: hash everything `r` delivers, pausing it for `turns` event-loop turns after every `every`-th chunk, so
 * that its writer backs up. Resolves with the SHA-256 (hex) at 'end'.
 */
export function slowHash(r: Readable, every: number, turns: number): Promise<string> {
  const h = createHash('sha256');
  let n = 0;
  r.on('data', (c: Buffer) => {
    h.update(c);
    if (++n % every !== 0) return;
    r.pause();
    let left = turns;
    const later = (): void => {
      if (--left > 0) setImmediate(later);
      else r.resume();
    };
    setImmediate(later);
  });
  return once(r, 'end').then(() => h.digest('hex'));
}
