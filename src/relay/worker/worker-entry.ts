// Worker-thread entry for the piscina pool: turns a handed-off fd back into a socket (DESIGN.md §1) and gives it to
// this thread's WorkerRuntime. One task = one connection (or the control channel); it resolves when that ends.
import type net from 'node:net';
import { threadId, workerData, type MessagePort } from 'node:worker_threads';
import type { AcceptorToWorker, RelayTask, TaskResult, WorkerToAcceptor } from '../relay-messages.js';
import { closeFdQuietly, nativeAddon } from '../../native/native-addon.js';
import { WorkerRuntime, type WorkerData } from './worker-runtime.js';
import { sharedReadSocketFromFd, socketFromFd } from './shared-read.js';
import { FdClaims } from '../fd-claims.js';

// Test hook (BURROW_TEST_HOOKS=1 only; docs/testing.md §Worker start faults): a worker started while
// BURROW_TEST_WORKER_FAULT is set fails on purpose, `boot` while loading (piscina never hears it is ready),
// `after-ready` in the loop turn after it told piscina it is ready.
if (process.env['BURROW_TEST_HOOKS'] === '1') {
  const fault = process.env['BURROW_TEST_WORKER_FAULT'];
  if (fault === 'boot') throw new Error(`test fault: worker ${threadId} fails while starting (BURROW_TEST_WORKER_FAULT=boot)`);
  if (fault === 'after-ready') {
    setImmediate(() => {
      throw new Error(`test fault: worker ${threadId} fails after start (BURROW_TEST_WORKER_FAULT=after-ready)`);
    });
  }
}

const data = workerData as WorkerData;
const runtime = new WorkerRuntime(data, threadId);
const claims = new FdClaims(data.fdClaims);
// Worker threads exist only with the native addon (DESIGN.md §1), so connections can be handed back by dup.
runtime.canReroute = nativeAddon.available;

// Not async: an async function keeps a generator, its registers and an extra promise alive for as long as its task
// runs, i.e. per open connection (~0.4 KiB each in a worker heap snapshot with 10 000 idle connections).
export function handleTask(task: RelayTask): Promise<TaskResult | null> {
  if (task.kind === 'control') {
    // A channel made for another worker: that worker died before piscina placed the task (worker-pool.ts).
    if (task.workerId !== threadId) {
      task.port.close();
      return Promise.resolve(null);
    }
    return runControl(task.port);
  }
  if (task.kind === 'spawn') return Promise.resolve(null);
  if (runtime.crashOnNextConnection) return crashForTest();
  // The descriptor is ours only once the claim succeeds (fd-claims.ts); from then on nobody else closes it, so every
  // failure below must.
  if (!claims.claim(task.claimSlot, task.claimTicket)) return Promise.resolve(null); // the acceptor took it back
  let socket: net.Socket;
  try {
    // Plain HTTP reads into the thread's shared buffer (shared-read.ts); TLS needs an ordinary socket under it; tcp
    // and tls endpoints switch to headroom reads in their pipe (mux/headroom-reads.ts).
    socket = task.kind === 'public' && task.entry === 'http' ? sharedReadSocketFromFd(task.fd) : socketFromFd(task.fd);
  } catch (err) {
    closeFdQuietly(task.fd); // taken, so ours to close
    throw err;
  }
  try {
    if (task.kind === 'agent') return runtime.adoptAgent(socket, Buffer.from(task.head), task);
    const h = task.head;
    // The pumps keep `task` for the connection's life; the head goes to them separately, so only they decide how
    // long it is kept (an HTTP head is consumed at once; a TLS ClientHello only until a retry is impossible).
    task.head = EMPTY_HEAD;
    const head = h.byteLength === 0 ? EMPTY_HEAD : Buffer.from(h.buffer, h.byteOffset, h.byteLength);
    return runtime.adoptPublic(socket, head, task);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

const EMPTY_HEAD = Buffer.alloc(0);

/**
 * Test hook (BURROW_TEST_HOOKS=1 only, armed by a control message): this worker dies with the task's descriptor not
 * taken, like a worker that crashes with tasks still queued for it; the acceptor must close it (fd-claims.ts).
 */
function crashForTest(): Promise<null> {
  setImmediate(() => {
    throw new Error('test-crash: worker crashed on its next connection, on request (BURROW_TEST_HOOKS=1)');
  });
  return new Promise<null>(() => {});
}

async function runControl(port: MessagePort): Promise<null> {
  runtime.attachControlSink({ post: (m) => port.postMessage(m) });
  port.on('message', (m: AcceptorToWorker) => runtime.onControlMessage(m));
  port.postMessage({ op: 'control-ready' } satisfies WorkerToAcceptor);
  await runtime.untilClosed();
  port.close();
  return null;
}
