// Worker-thread side of the DESIGN.md §1 handoff, for tests: adopts a dup'ed fd plus the bytes the acceptor already
// read, optionally terminates TLS on it, and echoes everything behind a marker line. Test-only; not on a hot path.
import net from 'node:net';
import tls from 'node:tls';
import { isMainThread, parentPort, threadId, workerData, type MessagePort } from 'node:worker_threads';
import { nativeAddon } from '../../src/native/native-addon.js';

export interface HandoffWorkerData {
  /** PEM key and certificate for TLS handoffs; TLS handoffs fail (reported) without them. */
  keyPem?: string;
  certPem?: string;
}

/** Parent → worker. `fd` is owned by the worker from the moment this is posted. */
export type HandoffRequest =
  | { kind: 'conn'; id: number; fd: number; head: Uint8Array; tls: boolean }
  | { kind: 'stats'; id: number };

/** Worker → parent. `id` echoes the request's id. */
export type HandoffReport =
  | { kind: 'adopted'; id: number; threadId: number; headLength: number; remotePort: number | undefined }
  | {
      kind: 'secure';
      id: number;
      threadId: number;
      servername: string | false | null;
      sniCallbackName: string | null;
      alpnProtocol: string | false | null;
    }
  | { kind: 'closed'; id: number; bytesRead: number; bytesWritten: number }
  | { kind: 'error'; id: number; code: string | undefined; message: string }
  | { kind: 'stats'; id: number; threadId: number; adopted: number; open: number };

/** The first line the worker writes on every connection, so a client can tell who is answering. */
export function handoffMarker(workerThreadId: number): string {
  return `burrow-worker ${workerThreadId}\n`;
}

/** Serves handoff requests arriving on `port` until the thread is terminated. */
export function handoffWorker(port: MessagePort, data: HandoffWorkerData): void {
  const open = new Set<net.Socket>();
  let adopted = 0;
  const secureContext =
    data.keyPem !== undefined && data.certPem !== undefined
      ? tls.createSecureContext({ key: data.keyPem, cert: data.certPem })
      : null;
  const report = (msg: HandoffReport): void => port.postMessage(msg);
  const fail = (id: number, err: unknown): void => {
    const e = err as Error & { code?: string };
    report({ kind: 'error', id, code: e.code, message: e.message });
  };

  const serve = (sock: net.Socket): void => {
    sock.write(handoffMarker(threadId));
    // pipe() honours backpressure and ends our side when the client half-closes.
    sock.pipe(sock);
  };

  const adopt = (req: Extract<HandoffRequest, { kind: 'conn' }>): void => {
    let raw: net.Socket;
    try {
      raw = new net.Socket({ fd: req.fd, readable: true, writable: true });
    } catch (err) {
      // The descriptor is still ours and nobody else will close it.
      nativeAddon.close(req.fd);
      fail(req.id, err);
      return;
    }
    adopted++;
    // The constructor already started reading (read(0)), but no I/O callback can run before this synchronous
    // unshift, so the acceptor's bytes stay in front of anything the kernel still holds.
    if (req.head.byteLength > 0) raw.unshift(Buffer.from(req.head.buffer, req.head.byteOffset, req.head.byteLength));
    report({ kind: 'adopted', id: req.id, threadId, headLength: req.head.byteLength, remotePort: raw.remotePort });

    let sock: net.Socket = raw;
    if (req.tls) {
      if (secureContext === null) {
        raw.destroy();
        fail(req.id, new Error('TLS handoff but the worker has no keyPem/certPem'));
        return;
      }
      let sniCallbackName: string | null = null;
      // TLSSocket drains the wrapped socket's readable buffer (our unshifted ClientHello bytes) into OpenSSL before
      // it starts reading the handle itself (node lib/_tls_wrap.js initRead), so nothing is lost by wrapping late.
      const t = new tls.TLSSocket(raw, {
        isServer: true,
        secureContext,
        ALPNProtocols: ['h2', 'http/1.1'],
        SNICallback: (servername, cb) => {
          sniCallbackName = servername;
          cb(null, secureContext);
        },
      });
      t.once('secure', () => {
        report({
          kind: 'secure',
          id: req.id,
          threadId,
          servername: t.servername,
          sniCallbackName,
          alpnProtocol: t.alpnProtocol,
        });
        serve(t);
      });
      sock = t;
    } else {
      serve(raw);
    }
    open.add(sock);
    sock.on('error', (err) => fail(req.id, err));
    sock.once('close', () => {
      open.delete(sock);
      report({ kind: 'closed', id: req.id, bytesRead: sock.bytesRead, bytesWritten: sock.bytesWritten });
    });
  };

  port.on('message', (req: HandoffRequest) => {
    switch (req.kind) {
      case 'conn':
        adopt(req);
        break;
      case 'stats':
        report({ kind: 'stats', id: req.id, threadId, adopted, open: open.size });
        break;
    }
  });
}

if (!isMainThread && parentPort !== null) handoffWorker(parentPort, (workerData ?? {}) as HandoffWorkerData);
