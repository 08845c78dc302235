// Child-process entry for the relay HTTP bench (bench/macro/relay-http.ts forks the compiled
// dist/bench/macro/origin-process.js): the upstream both the direct and the tunnelled runs hit. A minimal node:http
// server on 127.0.0.1:0 answering every request with 200 and one fixed, preallocated body, keep-alive.
//   child → parent  {type:'listening', port}
// Exits when the parent disconnects. Usage (by the bench only): origin-process.js <body bytes>
// On the bench's measured path: the handler allocates nothing per request beyond what node:http does.
import http from 'node:http';

const send = process.send?.bind(process);
const bodySize = Number(process.argv[2] ?? 1024);
if (send === undefined || !Number.isSafeInteger(bodySize) || bodySize < 0) {
  process.stderr.write('origin-process.js is started by the relay bench (npm run bench -- relay), not by hand\n');
  process.exitCode = 2;
} else {
  const body = Buffer.alloc(bodySize, 0x61);
  const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bodySize) };
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume(); // requests carry no body; resume() so one that does cannot stall the connection
    res.writeHead(200, headers);
    res.end(body);
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('origin: no TCP address');
    send({ type: 'listening', port: addr.port });
  });
  process.once('disconnect', () => {
    server.close();
    server.closeAllConnections();
  });
}
