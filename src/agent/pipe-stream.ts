// Joins a proxy stream and an upstream socket: bytes both ways with backpressure (pipe: write() === false pauses the
// source until 'drain'; MuxStream returns window credit only as the socket takes bytes), half-close forwarded each way,
// and an abort on either side aborts the other (RST towards the relay, TCP RST towards the upstream).
// Set up once per proxied connection; the per-chunk work is Node's pipe.
import type net from 'node:net';
import { BatchedPipe } from '../mux/batched-pipe.js';
import { enableHeadroomReads } from '../mux/headroom-reads.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { MUX_STREAM_CANCELLED } from '../protocol/error-codes.js';

/** Upstream socket bytes, for the agent's totals. */
export interface PipeResult {
  /** Bytes the upstream sent (towards the public client). */
  bytesFromUpstream: number;
  /** Bytes written to the upstream (from the public client). */
  bytesToUpstream: number;
}

/** Pipe `stream` ⇄ `socket`; `onDone` runs once when both have closed. */
export function pipeStream(stream: MuxStream, socket: net.Socket, onDone?: (r: PipeResult) => void): void {
  // pipe() ends the destination when the source ends: a FIN from the public side becomes a FIN to the upstream and
  // the other way round, while the opposite direction keeps flowing (the socket is allowHalfOpen).
  // Relay → upstream: pieces of one turn in one writev; each piece's transport read buffer is released once written,
  // for the next TLS record (mux/read-buffers.ts). The pipe is the stream's only 'data' consumer from here on.
  new BatchedPipe(stream, socket, true, true);
  stream.releasesReads();
  // Upstream → relay: the mux batches frames per turn itself; bulk reads carry room for their frame header, so a turn's
  // frames of this stream reach TLS as one buffer (mux/headroom-reads.ts), and their slab is reused once TLS has
  // written them (the pipe keeps no chunk: mux/read-buffers.ts).
  enableHeadroomReads(socket, { recycle: true });
  stream.releasesWrites();
  socket.pipe(stream);
  socket.on('error', () => {
    if (!stream.destroyed) stream.reset(MUX_STREAM_CANCELLED);
  });
  stream.on('error', () => {
    // The relay reset the stream (the public client went away) or the session died: the upstream must see an abort,
    // not a clean end it could mistake for a complete request.
    if (!socket.destroyed) socket.resetAndDestroy();
  });
  socket.once('close', () => {
    // Closed without having finished its half towards the relay (destroyed after an error): tell the relay.
    if (!stream.destroyed && !stream.writableEnded) stream.reset(MUX_STREAM_CANCELLED);
  });
  stream.once('close', () => {
    if (!socket.destroyed && !(stream.readableEnded && stream.writableFinished)) socket.resetAndDestroy();
  });
  if (onDone !== undefined) {
    let open = 2;
    const one = (): void => {
      if (--open === 0) onDone({ bytesFromUpstream: socket.bytesRead, bytesToUpstream: socket.bytesWritten });
    };
    socket.once('close', one);
    stream.once('close', one);
  }
}
