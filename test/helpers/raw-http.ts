// A keep-alive HTTP/1.1 client on one raw socket (no client library rewriting or validating what is sent), for tests
// that write hostile or exact bytes to the relay and read each response. Test-only.
import net from 'node:net';
import { statusOf, withTimeout } from './relay-fixture.js';

/** A keep-alive HTTP/1.1 client on one raw socket: send a request, read exactly one response (Content-Length). */
export class RawHttp {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  ending = 'open';

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.waiter?.();
    });
    this.socket.on('error', (e: NodeJS.ErrnoException) => (this.ending = e.code ?? e.message));
    this.closed = new Promise((r) =>
      this.socket.on('close', () => {
        if (this.ending === 'open') this.ending = 'end';
        this.waiter?.();
        r();
      }),
    );
  }

  /** Write `req`, then resolve with the next complete response. */
  async request(req: string, what: string): Promise<{ status: number; head: string; body: Buffer }> {
    this.socket.write(req);
    return withTimeout(what, this.response());
  }

  /** Resolve with the next complete response (after requests written in one go: pipelining). */
  async next(what: string): Promise<{ status: number; head: string; body: Buffer }> {
    return withTimeout(what, this.response());
  }

  private async response(): Promise<{ status: number; head: string; body: Buffer }> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.buf.subarray(0, end).toString('latin1');
        const m = /\r\ncontent-length: *(\d+)/i.exec(head);
        const len = m === null ? 0 : Number(m[1]);
        if (this.buf.length >= end + 4 + len) {
          const body = this.buf.subarray(end + 4, end + 4 + len);
          this.buf = this.buf.subarray(end + 4 + len);
          return { status: statusOf(head), head, body };
        }
      }
      if (this.ending !== 'open') throw new Error(`connection closed (${this.ending}) before a complete response: ${JSON.stringify(this.buf.toString('latin1'))}`);
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = null;
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

