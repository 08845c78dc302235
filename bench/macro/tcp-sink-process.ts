// Child-process entry for the tcp-bulk rows of both bench suites (relay-http.ts and scenarios.ts fork the compiled
// dist/bench/macro/tcp-sink-process.js): a TCP server on 127.0.0.1:0 that counts the bytes of each connection.
// Every connection starts with an 8-byte big-endian payload length N, then N payload bytes. When a connection has
// delivered all N bytes the sink reports it over IPC and closes the connection; the bench times a run from its first
// write to that message (so the time includes every hop to the sink, not the return path).
// Download direction (scenarios' tcp-bulk-down): a header with the top bit set asks for N bytes instead; the sink
// writes them (64 KiB writes, honouring backpressure) and ends the connection; the client times until 'end'.
//   child → parent  {type:'listening', port} | {type:'done', bytes} | {type:'short', bytes, expected}
// Exits when the parent disconnects. Usage (by the bench only): tcp-sink-process.js
// On the measured path: the 'data' handler only adds lengths (it reads the header once).
import net from 'node:net';
import { BULK_CHUNK, writeBytesThenEnd } from './tcp-bulk.js';

/** Header bit asking for a download of the remaining 63-bit length. */
const DOWNLOAD_BIT = 1n << 63n;
const CHUNK = Buffer.alloc(BULK_CHUNK, 0x64);


const send = process.send?.bind(process);
if (send === undefined) {
  process.stderr.write('tcp-sink-process.js is started by the bench (npm run bench), not by hand\n');
  process.exitCode = 2;
} else {
  const server = net.createServer((sock) => {
    let header: Buffer | null = Buffer.alloc(0);
    let expected = -1;
    let got = 0;
    let finished = false;
    sock.on('data', (chunk: Buffer) => {
      if (header !== null) {
        header = Buffer.concat([header, chunk]);
        if (header.length < 8) return;
        const word = header.readBigUInt64BE(0);
        got = header.length - 8;
        header = null;
        if (word >= DOWNLOAD_BIT) {
          finished = true;
          void writeBytesThenEnd(sock, CHUNK, Number(word - DOWNLOAD_BIT));
          return;
        }
        expected = Number(word);
      } else {
        got += chunk.length;
      }
      if (!finished && got >= expected) {
        finished = true;
        send({ type: 'done', bytes: got });
        sock.end();
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (!finished && expected >= 0) send({ type: 'short', bytes: got, expected });
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('sink: no TCP address');
    send({ type: 'listening', port: addr.port });
  });
  process.once('disconnect', () => {
    server.close();
    process.exit(0);
  });
}
