// Proves the DESIGN.md §1 handoff on real sockets: a main-thread acceptor reads the first bytes, dup()s the fd with the
// native addon, destroys its own socket and posts {fd, head} to a worker thread, which serves raw TCP or terminates TLS.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { devNull } from 'node:os';
import { after, before, test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { Worker, threadId as mainThreadId } from 'node:worker_threads';
import { isBurrowError } from '../../src/core/errors.js';
import { nativeAddon } from '../../src/native/native-addon.js';
import { NO_THREADS_SKIP } from '../helpers/native-skip.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import {
  handoffMarker,
  type HandoffReport,
  type HandoffRequest,
  type HandoffWorkerData,
} from '../helpers/handoff-worker.js';

const WORKER_URL = new URL('../helpers/handoff-worker.js', import.meta.url);
const SNI = 'app.burrow.localhost';
const TEST_TIMEOUT = 20_000; // a hang fails the test instead of stalling CI; no test waits on this
const TLS_RECORD_HANDSHAKE = 0x16; // RFC 8446 §5.1 ContentType.handshake
const TLS_CLIENT_HELLO = 0x01; // RFC 8446 §4 HandshakeType.client_hello

let pki: TestPki;
before(() => {
  pki = makeTestPki();
});
after(() => {
  pki.cleanup();
});

// ---------------------------------------------------------------------------------------------------------------
// Acceptor: the main-thread half of the handoff.

interface Handoff {
  id: number;
  /** Bytes the acceptor read before handing off; the worker must put them back in front. */
  head: Buffer;
  tls: boolean;
  /** The acceptor's own socket, destroyed by the time this record is visible. */
  acceptorSocket: net.Socket;
}

interface Acceptor {
  port: number;
  /** The handoff of the connection whose client side is bound to `clientPort`. */
  handoffFor(clientPort: number): Promise<Handoff>;
  close(): Promise<void>;
}

function socketFd(socket: net.Socket): number {
  // Node 20 has no public fd accessor for a connected socket; _handle.fd is the libuv descriptor (DESIGN.md §1).
  const handle = (socket as unknown as { _handle: { fd?: number } | null })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('acceptor socket has no file descriptor');
  return fd;
}

async function startAcceptor(worker: Worker): Promise<Acceptor> {
  const done = new Map<number, Handoff>();
  const waiting = new Map<number, (h: Handoff) => void>();
  const pending = new Set<net.Socket>();
  let nextId = 1;

  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const clientPort = socket.remotePort ?? -1;
    pending.add(socket);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => pending.delete(socket));
    socket.once('data', (first: Buffer) => {
      // pause() alone does not stop a plain net.Socket's handle from reading (only sockets with `onread` do):
      // more bytes could land in this thread's readable buffer. So take whatever is buffered now and destroy the
      // socket in this same tick, before libuv can run another read callback for it.
      socket.pause();
      const parts = [first];
      for (let more: Buffer | null = socket.read(); more !== null; more = socket.read()) parts.push(more);
      const head = Buffer.concat(parts);
      const fd = nativeAddon.dup(socketFd(socket));
      // Closes only our descriptor: the connection lives on through `fd` (no FIN, no RST; libuv also removes the
      // old fd from this thread's epoll set before closing it).
      socket.destroy();
      const id = nextId++;
      // A TLS record header: handshake content type, then legacy version major 3 (RFC 8446 §5.1).
      const isTls = head[0] === TLS_RECORD_HANDSHAKE && (head.length < 2 || head[1] === 0x03);
      const copy = new Uint8Array(head); // own ArrayBuffer, so it can be transferred, not the read buffer's slab
      const req: HandoffRequest = { kind: 'conn', id, fd, head: copy, tls: isTls };
      try {
        worker.postMessage(req, [copy.buffer]);
      } catch (err) {
        nativeAddon.close(fd);
        throw err;
      }
      const h: Handoff = { id, head, tls: isTls, acceptorSocket: socket };
      const w = waiting.get(clientPort);
      if (w !== undefined) {
        waiting.delete(clientPort);
        w(h);
      } else {
        done.set(clientPort, h);
      }
    });
    socket.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    handoffFor(clientPort: number): Promise<Handoff> {
      const h = done.get(clientPort);
      if (h !== undefined) {
        done.delete(clientPort);
        return Promise.resolve(h);
      }
      return new Promise((resolve) => waiting.set(clientPort, resolve));
    },
    async close(): Promise<void> {
      for (const s of pending) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Worker reports, awaited by (kind, id).

type ReportOf<K extends HandoffReport['kind']> = Extract<HandoffReport, { kind: K }>;

class WorkerReports {
  readonly errors: ReportOf<'error'>[] = [];
  private readonly seen = new Map<string, HandoffReport>();
  private readonly waiters = new Map<string, { resolve: (r: HandoffReport) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;
  private nextStatsId = 1;

  constructor(private readonly worker: Worker) {
    worker.on('message', (r: HandoffReport) => {
      if (r.kind === 'error') {
        this.errors.push(r);
        // Whatever the test is waiting for on this connection will not come: fail it now with the reason.
        for (const [key, w] of this.waiters) {
          if (key.endsWith(`:${r.id}`) && !key.startsWith('stats:')) {
            this.waiters.delete(key);
            w.reject(new Error(`worker reported an error on connection ${r.id}: ${r.code ?? ''} ${r.message}`));
          }
        }
        return;
      }
      const key = `${r.kind}:${r.id}`;
      const w = this.waiters.get(key);
      if (w !== undefined) {
        this.waiters.delete(key);
        w.resolve(r);
      } else {
        this.seen.set(key, r);
      }
    });
    const die = (err: Error): void => {
      this.failure = err;
      for (const w of this.waiters.values()) w.reject(err);
      this.waiters.clear();
    };
    worker.on('error', die);
    worker.on('exit', (code) => die(new Error(`handoff worker exited (code ${code})`)));
  }

  wait<K extends HandoffReport['kind']>(kind: K, id: number): Promise<ReportOf<K>> {
    const key = `${kind}:${id}`;
    const r = this.seen.get(key);
    if (r !== undefined) {
      this.seen.delete(key);
      return Promise.resolve(r as ReportOf<K>);
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiters.set(key, { resolve: resolve as (r: HandoffReport) => void, reject });
    });
  }

  stats(): Promise<ReportOf<'stats'>> {
    const id = this.nextStatsId++;
    const p = this.wait('stats', id);
    this.worker.postMessage({ kind: 'stats', id } satisfies HandoffRequest);
    return p;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Harness and client side.

interface Harness {
  worker: Worker;
  reports: WorkerReports;
  acceptor: Acceptor;
  track(client: net.Socket): void;
}

async function setup(t: TestContext): Promise<Harness> {
  const workerData: HandoffWorkerData = { keyPem: pki.keyPem, certPem: pki.certPem };
  const worker = new Worker(WORKER_URL, { workerData });
  const reports = new WorkerReports(worker);
  const clients = new Set<net.Socket>();
  let acceptor: Acceptor | null = null;
  t.after(async () => {
    for (const c of clients) c.destroy();
    if (acceptor !== null) await acceptor.close();
    await worker.terminate();
  });
  await once(worker, 'online');
  acceptor = await startAcceptor(worker);
  return { worker, reports, acceptor, track: (c) => clients.add(c) };
}

/** Collects everything a client receives; `until(n)` resolves once n bytes arrived, rejects if the socket closes first. */
function collect(socket: net.Socket): { until(n: number): Promise<Buffer>; ended(): boolean } {
  const chunks: Buffer[] = [];
  let total = 0;
  let ended = false;
  let want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  const check = (): void => {
    if (want !== null && total >= want.n) {
      const w = want;
      want = null;
      w.resolve(Buffer.concat(chunks));
    }
  };
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    total += c.length;
    check();
  });
  socket.on('end', () => {
    ended = true;
  });
  socket.on('close', () => {
    if (want !== null) {
      const w = want;
      want = null;
      w.reject(new Error(`client closed after ${total} of ${w.n} expected bytes`));
    }
  });
  return {
    until(n: number): Promise<Buffer> {
      return new Promise((resolve, reject) => {
        want = { n, resolve, reject };
        check();
        if (want !== null && (socket.destroyed || ended)) {
          want = null;
          reject(new Error(`client already closed after ${total} of ${n} expected bytes`));
        }
      });
    },
    ended: () => ended,
  };
}

/** Random bytes behind an ASCII prefix: random data may start like a TLS record, and the acceptor sniffs that. */
function makePayload(n: number): Buffer {
  const b = randomBytes(n);
  b.write('plain:', 0, 'latin1');
  return b;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

interface ExchangeOptions {
  tls: boolean;
  payload: Buffer;
  /** TCP: size of the first write, the one the acceptor reads before the handoff. */
  firstWrite?: number;
  /** Size of every later write. */
  chunk?: number;
  /** Runs after the worker adopted the fd and before the rest of the payload is written. */
  afterAdopt?(h: Handoff, client: net.Socket): Promise<void>;
}

interface ExchangeResult {
  handoff: Handoff;
  adopted: ReportOf<'adopted'>;
  secure: ReportOf<'secure'> | null;
  client: net.Socket;
  closed: ReportOf<'closed'>;
}

/** One client connection through acceptor → worker: sends `payload`, expects marker + payload back, then closes. */
async function exchange(h: Harness, opts: ExchangeOptions): Promise<ExchangeResult> {
  const { payload } = opts;
  const chunk = opts.chunk ?? 8 * 1024;
  const firstWrite = opts.firstWrite ?? 100;
  const client: net.Socket = opts.tls
    ? tls.connect({ host: '127.0.0.1', port: h.acceptor.port, servername: SNI, ALPNProtocols: ['h2'], ca: pki.caPem })
    : net.connect(h.acceptor.port, '127.0.0.1');
  h.track(client);
  const rx = collect(client);
  const secureConnect = opts.tls ? once(client, 'secureConnect') : null;
  await once(client, 'connect');
  const clientPort = client.localPort;
  assert.ok(clientPort !== undefined);

  let rest = payload;
  if (!opts.tls) {
    client.write(payload.subarray(0, firstWrite));
    rest = payload.subarray(firstWrite);
  }
  // Wait until the acceptor has consumed bytes and let go of the socket before sending anything else.
  const handoff = await h.acceptor.handoffFor(clientPort);
  assert.ok(handoff.head.length > 0, 'the acceptor must have read bytes before the handoff');
  assert.ok(handoff.acceptorSocket.destroyed, 'the acceptor destroys its socket when it hands off');
  if (opts.tls) {
    assert.equal(handoff.tls, true);
    assert.equal(handoff.head[0], TLS_RECORD_HANDSHAKE, 'head starts with a TLS handshake record');
    if (handoff.head.length > 5) assert.equal(handoff.head[5], TLS_CLIENT_HELLO, 'the record holds a ClientHello');
  } else {
    assert.equal(handoff.tls, false);
    assert.ok(handoff.head.length <= firstWrite, 'only the first write can have arrived before the handoff');
    assert.deepEqual(handoff.head, payload.subarray(0, handoff.head.length));
  }

  const adopted = await h.reports.wait('adopted', handoff.id);
  assert.notEqual(adopted.threadId, mainThreadId, 'a worker thread serves the connection');
  assert.equal(adopted.headLength, handoff.head.length);
  assert.equal(adopted.remotePort, clientPort, 'the worker owns the very connection the client opened');
  if (opts.afterAdopt !== undefined) await opts.afterAdopt(handoff, client);

  let secure: ReportOf<'secure'> | null = null;
  if (secureConnect !== null) {
    await secureConnect;
    secure = await h.reports.wait('secure', handoff.id);
  }
  for (let off = 0; off < rest.length; off += chunk) client.write(rest.subarray(off, off + chunk));

  const marker = Buffer.from(handoffMarker(adopted.threadId));
  const got = await rx.until(marker.length + payload.length);
  assert.equal(got.subarray(0, marker.length).toString(), marker.toString(), 'the echo comes from the adopting worker');
  const echoed = got.subarray(marker.length);
  assert.equal(echoed.length, payload.length, 'no byte lost, none duplicated');
  assert.equal(sha256(echoed), sha256(payload), 'echo is byte-identical, acceptor-read head included');
  // Only our end() may end the connection: neither the acceptor's destroy nor the worker closed it early.
  assert.equal(rx.ended(), false, 'the server side did not end the connection before the client did');

  const closedReport = h.reports.wait('closed', handoff.id);
  client.end();
  await once(client, 'close');
  const closed = await closedReport;
  return { handoff, adopted, secure, client, closed };
}

// ---------------------------------------------------------------------------------------------------------------
// Tests.

test('native addon is built and loaded', { skip: NO_THREADS_SKIP }, () => {
  assert.ok(nativeAddon.available, `native addon unavailable: ${nativeAddon.reason}`);
  assert.ok(nativeAddon.path !== null && nativeAddon.path.endsWith('burrow_native.node'));
});

test('dup of a bad fd throws BurrowError BURROW_ERR_NATIVE_DUP; closed and never-open fds name EBADF', { skip: NO_THREADS_SKIP }, () => {
  assert.ok(nativeAddon.available, `native addon unavailable: ${nativeAddon.reason}`);
  // -1 is refused before the syscall (ERR_OUT_OF_RANGE in the addon), still wrapped as BURROW_ERR_NATIVE_DUP.
  assert.throws(
    () => nativeAddon.dup(-1),
    (err: unknown) => isBurrowError(err, 'BURROW_ERR_NATIVE_DUP') && /dup\(-1\)/.test(err.message),
  );
  // Far above any RLIMIT_NOFILE, so it can never be open.
  const neverOpen = 0x3fff_fff0;
  assert.throws(
    () => nativeAddon.dup(neverOpen),
    (err: unknown) => isBurrowError(err, 'BURROW_ERR_NATIVE_DUP') && /EBADF/.test(err.message),
  );
  // A descriptor that was open and is closed again: dup must not resurrect it.
  const fd = openSync(devNull, 'r');
  const copy = nativeAddon.dup(fd);
  assert.notEqual(copy, fd);
  closeSync(fd);
  nativeAddon.close(copy);
  assert.throws(
    () => nativeAddon.dup(copy),
    (err: unknown) => isBurrowError(err, 'BURROW_ERR_NATIVE_DUP') && /EBADF/.test(err.message),
  );
});

test('peerGone: a paused socket reads as gone after its peer\'s RST, not after a FIN or with unread data', { skip: NO_THREADS_SKIP, timeout: TEST_TIMEOUT }, async (t) => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const pair = async (): Promise<{ ours: net.Socket; peer: net.Socket; fd: number }> => {
    const accepted = once(server, 'connection');
    const peer = net.connect(port, '127.0.0.1');
    peer.on('error', () => {});
    const [ours] = (await accepted) as [net.Socket];
    ours.on('error', () => {});
    // Not read at all, as the relay's public socket under backpressure (pause() alone keeps reading into the buffer).
    ours.pause();
    (ours as unknown as { _handle: { readStop(): number } })._handle.readStop();
    await once(peer, 'connect');
    t.after(() => (ours.destroy(), peer.destroy()));
    return { ours, peer, fd: (ours as unknown as { _handle: { fd: number } })._handle.fd };
  };
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));
  const reset = await pair();
  reset.peer.write('unread bytes');
  await settle();
  assert.equal(nativeAddon.peerGone(reset.fd), false, 'alive with unread data');
  reset.peer.resetAndDestroy();
  await settle();
  assert.equal(nativeAddon.peerGone(reset.fd), true, 'reset by the peer');
  const fin = await pair();
  fin.peer.end('last bytes'); // a half-close: the peer may still read the answer
  await settle();
  assert.equal(nativeAddon.peerGone(fin.fd), false, 'a FIN alone is not gone');
  assert.equal(nativeAddon.peerGone(0x3fff_fff0), false, 'a descriptor that cannot be polled');
});

test('a TCP connection handed to a worker keeps the bytes the acceptor read', { skip: NO_THREADS_SKIP, timeout: TEST_TIMEOUT }, async (t) => {
  const h = await setup(t);
  const payload = makePayload(192 * 1024);
  const r = await exchange(h, { tls: false, payload, firstWrite: 100, chunk: 8 * 1024 });
  // The worker's handle read everything except the head, which came by message: the kernel delivered each byte once.
  assert.equal(r.closed.bytesRead, payload.length - r.handoff.head.length);
  assert.deepEqual(h.reports.errors, []);
});

test('the dup\'ed fd outlives the acceptor socket: destroying it does not close the connection', {
  skip: NO_THREADS_SKIP,
  timeout: TEST_TIMEOUT,
}, async (t) => {
  const h = await setup(t);
  const payload = makePayload(64 * 1024);
  await exchange(h, {
    tls: false,
    payload,
    afterAdopt: async (handoff, client) => {
      // Let the main thread's close finish completely (its handle close callback has run) before going on.
      if (!handoff.acceptorSocket.closed) await once(handoff.acceptorSocket, 'close');
      assert.equal((handoff.acceptorSocket as unknown as { _handle: unknown })._handle, null);
      assert.equal(client.readyState, 'open', 'client still connected after the acceptor closed its fd');
      // exchange() then sends the rest and checks the full echo arrives before any end from the server side.
    },
  });
  assert.deepEqual(h.reports.errors, []);
});

test('a TLS connection handed to a worker keeps its ClientHello: SNI and ALPN h2 reach the worker', {
  skip: NO_THREADS_SKIP,
  timeout: TEST_TIMEOUT,
}, async (t) => {
  const h = await setup(t);
  const payload = makePayload(128 * 1024);
  const r = await exchange(h, { tls: true, payload, chunk: 8 * 1024 });
  assert.ok(r.secure !== null);
  assert.equal(r.secure.threadId, r.adopted.threadId);
  assert.equal(r.secure.sniCallbackName, SNI);
  assert.equal(r.secure.servername, SNI);
  assert.equal(r.secure.alpnProtocol, 'h2');
  const client = r.client as tls.TLSSocket;
  assert.equal(client.alpnProtocol, 'h2');
  assert.equal(client.authorized, true, 'the test CA chain verifies for the SNI name');
  assert.deepEqual(h.reports.errors, []);
});

test('20 connections in a row, TCP and TLS alternating, are all served by the same worker', {
  skip: NO_THREADS_SKIP,
  timeout: TEST_TIMEOUT,
}, async (t) => {
  const h = await setup(t);
  const threads = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const isTls = i % 2 === 1;
    const payload = makePayload(4096 + i * 97);
    const r = await exchange(h, { tls: isTls, payload, firstWrite: 1 + i, chunk: 1000 });
    threads.add(r.adopted.threadId);
    if (isTls) assert.equal(r.secure?.servername, SNI);
  }
  assert.equal(threads.size, 1);
  assert.ok(!threads.has(mainThreadId));
  const stats = await h.reports.stats();
  assert.equal(stats.adopted, 20);
  assert.equal(stats.open, 0, 'every adopted socket was closed by the worker');
  assert.deepEqual(h.reports.errors, []);
});

test('10 concurrent connections are handed off without mixing up their bytes', { skip: NO_THREADS_SKIP, timeout: TEST_TIMEOUT }, async (t) => {
  const h = await setup(t);
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) => exchange(h, { tls: i % 3 === 0, payload: makePayload(32 * 1024 + i) })),
  );
  assert.equal(new Set(results.map((r) => r.handoff.id)).size, 10);
  assert.deepEqual(h.reports.errors, []);
});

test('setQuickAck re-arms TCP_QUICKACK on a TCP socket and reports false (no throw) for a bad fd', { skip: NO_THREADS_SKIP }, async (t) => {
  const server = net.createServer((s) => s.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(c, 'connect');
  t.after(() => c.destroy());
  const fd = (c as unknown as { _handle: { fd: number } })._handle.fd;
  assert.equal(nativeAddon.setQuickAck(fd), true);
  assert.equal(nativeAddon.setQuickAck(-1), false);
  const nul = openSync(devNull, 'r');
  try {
    assert.equal(nativeAddon.setQuickAck(nul), false, 'not a socket');
  } finally {
    closeSync(nul);
  }
});
