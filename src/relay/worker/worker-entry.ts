// Worker-thread entry for the piscina pool: turns a handed-off fd back into a socket (DESIGN.md §1) and gives it to
// this thread's WorkerRuntime. One task = one connection (or the control channel); it resolves when that ends.
import net from 'node:net';
import { threadId, workerData } from 'node:worker_threads';
import type { AcceptorToWorker, RelayTask, TaskResult, WorkerToAcceptor } from '../relay-messages.js';
import { nativeAddon } from '../../native/native-addon.js';
import { WorkerRuntime, type WorkerSettings } from './worker-runtime.js';

const runtime = new WorkerRuntime(workerData as WorkerSettings, threadId);
// Worker threads exist only with the native addon (DESIGN.md §1), so connections can be handed back by dup.
runtime.canReroute = nativeAddon.available;

function socketFromFd(fd: number): net.Socket {
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
}

export async function handleTask(task: RelayTask): Promise<TaskResult | null> {
  switch (task.kind) {
    case 'control': {
      const port = task.port;
      runtime.attachControlSink({ post: (m) => port.postMessage(m) });
      port.on('message', (m: AcceptorToWorker) => runtime.onControlMessage(m));
      port.postMessage({ op: 'control-ready' } satisfies WorkerToAcceptor);
      await runtime.untilClosed();
      port.close();
      return null;
    }
    case 'agent':
      return runtime.adoptAgent(socketFromFd(task.fd), Buffer.from(task.head), task);
    case 'public': {
      const head = Buffer.from(task.head.buffer, task.head.byteOffset, task.head.byteLength);
      return runtime.adoptPublic(socketFromFd(task.fd), head, task);
    }
  }
}
