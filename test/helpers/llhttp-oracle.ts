// Node's own HTTP parser (llhttp, through node:http on 127.0.0.1:0) as an oracle for differential tests of the
// relay's HTTP filter: send raw bytes, half-close, and learn whether llhttp rejected them. Test-only.
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';

export interface LlhttpVerdict {
  rejected: boolean;
  /** llhttp's error code (HPE_...) or the first response line. */
  detail: string;
  /** `METHOD target` of every request llhttp parsed, in order (answered 200, or 417 for an unknown Expect). */
  requests: string[];
}

export interface LlhttpOracle {
  verdict(input: Buffer): Promise<LlhttpVerdict>;
  close(): Promise<void>;
}

/**
 * A node:http server that answers every request it parses with 200 and every parse error with a 400 naming the
 * llhttp error code. `maxHeaderSize` defaults to 64 KiB (the relay's per-request head limit).
 */
export async function startLlhttpOracle(maxHeaderSize = 64 * 1024): Promise<LlhttpOracle> {
  const server = http.createServer({ maxHeaderSize }, (req, res) => {
    req.resume();
    res.setHeader('X-Req', Buffer.from(`${req.method} ${req.url}`, 'latin1').toString('base64'));
    res.end('ok');
  });
  // Node answers an unknown Expect with 417 itself, without a 'request' event: llhttp parsed it all the same.
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume();
    res.writeHead(417, { 'X-Req': Buffer.from(`${req.method} ${req.url}`, 'latin1').toString('base64') });
    res.end();
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (socket.writable) socket.end(`HTTP/1.1 400 Bad Request\r\nX-Err: ${err.code ?? 'unknown'}\r\nConnection: close\r\n\r\n`);
    else socket.destroy();
  });
  // CONNECT and Upgrade heads were parsed too; llhttp hands everything after them over as opaque bytes.
  const parsedThenOpaque = (req: http.IncomingMessage, socket: net.Socket): void => {
    socket.on('error', () => {});
    socket.end(`HTTP/1.1 200 OK\r\nX-Req: ${Buffer.from(`${req.method} ${req.url}`, 'latin1').toString('base64')}\r\nConnection: close\r\n\r\n`);
  };
  server.on('connect', parsedThenOpaque);
  server.on('upgrade', parsedThenOpaque);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    verdict: (input) =>
      new Promise((resolve) => {
        const sock = net.connect(port, '127.0.0.1');
        const got: Buffer[] = [];
        sock.on('data', (d: Buffer) => got.push(d));
        sock.on('error', () => {}); // a reset after a rejection still ends in 'close'
        sock.on('close', () => {
          const text = Buffer.concat(got).toString('latin1');
          const err = /X-Err: (\S+)/.exec(text)?.[1];
          // HPE_INVALID_EOF_STATE: the input ended mid-message (our half-close), not a rule violation.
          const rejected = err !== undefined ? err !== 'HPE_INVALID_EOF_STATE' : /^HTTP\/1\.1 4(?!17)\d\d/m.test(text);
          const requests = [...text.matchAll(/X-Req: (\S+)/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('latin1'));
          resolve({ rejected, detail: err ?? text.split('\r\n')[0] ?? '', requests });
        });
        sock.end(input);
      }),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
