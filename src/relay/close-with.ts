// How the relay turns a connection away when it has nothing to route it to: an HTTP answer, or a TLS
// unrecognized_name alert, then close (with a deadline, so a peer that never reads cannot hold the socket).
// Used by the acceptor (no route) and by the workers (endpoint gone between routing and handoff).
import type net from 'node:net';
import type { PublicEntry } from './relay-messages.js';

/** TLS alert record: fatal (2) unrecognized_name (112), RFC 8446 §6.2. */
const TLS_ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);
const LINGER_MS = 2000;

/** Write `buf` (a complete HTTP response), end, drop whatever the client still sends, destroy after LINGER_MS. */
export function endWith(socket: net.Socket, buf: Buffer): void {
  socket.on('error', () => {});
  socket.end(buf);
  socket.resume(); // read and drop the rest so the close completes
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

/**
 * Turn a public connection away in the way its entry allows: HTTP gets `page`, TLS (terminated or passthrough, no
 * handshake answered yet) an unrecognized_name alert, TCP a close. The one place that decides this. `page` is built
 * only for an entry that gets one (refusals come in bursts during an outage).
 */
export function turnAway(socket: net.Socket, entry: PublicEntry, page: () => Buffer): void {
  if (entry === 'http') endWith(socket, page());
  else if (entry === 'https' || entry === 'tls') alertAndClose(socket);
  else socket.destroy();
}

/** No such server name: a fatal unrecognized_name alert, then close. */
export function alertAndClose(socket: net.Socket): void {
  socket.on('error', () => {});
  socket.end(TLS_ALERT_UNRECOGNIZED_NAME);
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
