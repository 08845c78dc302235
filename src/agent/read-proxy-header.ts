// Agent side of a proxy stream's start (PROTOCOL.md §10): after the 4-byte type, read the i64 little-endian length and
// the ProxyHeader JSON; the connection bytes after it stay in the stream for the forwarder. Once per proxied connection.
import { BurrowError } from '../core/errors.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { readPrefix } from '../mux/read-prefix.js';
import type { ProxyHeader } from '../protocol/messages.js';
import { DEFAULT_MAX_PROXY_HEADER, decodeProxyHeader } from '../protocol/proxy-header.js';

/**
 * Resolves with the ProxyHeader; bytes read past it are pushed back (unshift) so the stream yields exactly the
 * connection payload. Rejects with BURROW_ERR_PROXY_HEADER (malformed, too large, ended early, or not complete
 * within `timeoutMs`). The relay sends the header whole in the SYN frame, so the deadline only catches broken peers.
 */
export async function readProxyHeader(stream: MuxStream, timeoutMs = 10_000): Promise<ProxyHeader> {
  const h = await readPrefix(
    stream,
    (b) => {
      const d = decodeProxyHeader(b, DEFAULT_MAX_PROXY_HEADER);
      return d === null ? null : { value: d.header, consumed: d.consumed };
    },
    { code: 'BURROW_ERR_PROXY_HEADER', what: 'ProxyHeader', maxBytes: DEFAULT_MAX_PROXY_HEADER + 8, timeoutMs },
  );
  if (typeof h.Id !== 'string') throw new BurrowError('BURROW_ERR_PROXY_HEADER', `stream ${stream.id}: ProxyHeader has no string Id`);
  return h;
}
