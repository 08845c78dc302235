// Child-process entry for the idle-conns scenario and load tests (forked as dist/bench/macro/echo-process.js): a TCP
// server on 127.0.0.1:0 that echoes every byte back, so a client knows its connection reached the upstream end to end.
// Holds many idle connections cheaply (no per-connection state beyond the socket).
//   child → parent  {type:'listening', port}
// Exits when the parent disconnects. Usage (by the benches only): echo-process.js
import net from 'node:net';

const send = process.send?.bind(process);
if (send === undefined) {
  process.stderr.write('echo-process.js is started by the benches (npm run bench), not by hand\n');
  process.exitCode = 2;
} else {
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.pipe(sock);
  });
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('echo: no TCP address');
    send({ type: 'listening', port: addr.port });
  });
  process.once('disconnect', () => process.exit(0));
}
