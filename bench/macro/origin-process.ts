// Child-process entry for the macro benches (relay-http.ts and scenarios.ts fork the compiled
// dist/bench/macro/origin-process.js): the upstream both the direct and the tunnelled runs hit. A minimal node:http
// server on 127.0.0.1:0 answering every request with 200 and one fixed, preallocated body, keep-alive; requests for
// LARGE_PATH get the large body instead, and a WebSocket upgrade (any path) gets an echo server (the `ws` package).
//   child → parent  {type:'listening', port}
// Exits when the parent disconnects. Usage (by the benches only): origin-process.js <body bytes> [<large body bytes>]
// On the bench's measured path: the handler allocates nothing per request beyond what node:http does.
import http from 'node:http';
import { WebSocketServer } from 'ws';

/** Path that answers with the large body (http-1mib). */
const LARGE_PATH = '/large'; // the benches request it by this literal (importing a child entry would run it)

const send = process.send?.bind(process);
const bodySize = Number(process.argv[2] ?? 1024);
const largeSize = Number(process.argv[3] ?? 1024 * 1024);
if (send === undefined || !Number.isSafeInteger(bodySize) || bodySize < 0 || !Number.isSafeInteger(largeSize)) {
  process.stderr.write('origin-process.js is started by the benches (npm run bench), not by hand\n');
  process.exitCode = 2;
} else {
  const body = Buffer.alloc(bodySize, 0x61);
  const large = Buffer.alloc(largeSize, 0x61);
  const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bodySize) };
  const largeHeaders = { 'content-type': 'application/octet-stream', 'content-length': String(largeSize) };
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume(); // requests carry no body; resume() so one that does cannot stall the connection
    if (req.url === LARGE_PATH) {
      res.writeHead(200, largeHeaders);
      res.end(large);
    } else {
      res.writeHead(200, headers);
      res.end(body);
    }
  });
  // ws-echo: every message goes back as it came (binary stays binary).
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    ws.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('origin: no TCP address');
    send({ type: 'listening', port: addr.port });
  });
  process.once('disconnect', () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.close();
    server.closeAllConnections();
  });
}
