// One proxied public connection on the agent (PROTOCOL.md §10): counted on its endpoint and the agent, then handed
// to the program (Listener) or dialled through the upstream's breaker and piped; a failed dial is answered with a
// 502 page (http) or RST StreamRefused (tcp, tls). Once per connection; the per-chunk work is in pipeStream.
import { isIP } from 'node:net';
import { errorPage } from '../core/error-page.js';
import { isBurrowError } from '../core/errors.js';
import type { MuxStream } from '../mux/mux-stream.js';
import { MUX_STREAM_REFUSED } from '../protocol/error-codes.js';
import type { ProxyHeader } from '../protocol/messages.js';
import type { AgentStats } from './agent-stats.js';
import type { Endpoint } from './endpoint.js';
import { pipeStream } from './pipe-stream.js';

/** "ip:port" / "[v6]:port" from ProxyHeader.ClientAddr; anything else reads as ('', 0), as the SDK does. */
function parseClientAddr(text: unknown): { address: string; port: number } {
  if (typeof text !== 'string') return { address: '', port: 0 };
  const m = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]{1,5})$/.exec(text);
  const address = m === null ? '' : (m[1] ?? m[2])!;
  return isIP(address) === 0 ? { address: '', port: 0 } : { address, port: Number(m![3]) };
}

/**
 * Serve proxy stream `s` for `ep`. `stats` holds the agent-wide counters and latency histograms; `onUpstreamError`
 * hears about every connection that could not be forwarded (dial failed, breaker open).
 */
export function forwardConnection(
  s: MuxStream,
  ep: Endpoint,
  header: ProxyHeader,
  stats: AgentStats,
  onUpstreamError: (ep: Endpoint, err: Error) => void,
): void {
  const totals = stats.connections;
  const c = ep.counters;
  c.open++;
  c.total++;
  totals.open++;
  totals.total++;
  s.once('close', () => {
    c.open--;
    totals.open--;
  });
  const dialer = ep.dialer;
  if (dialer === null) {
    const from = parseClientAddr(header.ClientAddr);
    const proto = typeof header.Proto === 'string' ? header.Proto : ep.kind;
    if (!ep.deliver({ stream: s, remoteAddress: from.address, remotePort: from.port, proto, endpoint: ep })) s.reset(MUX_STREAM_REFUSED);
    return;
  }
  const started = performance.now();
  dialer.dial().then(
    (sock) => {
      if (s.destroyed) {
        sock.destroy(); // the public client left while we dialled
        return;
      }
      stats.recordDial(performance.now() - started);
      sock.once('data', () => stats.recordTtfb(performance.now() - started));
      pipeStream(s, sock, (r) => {
        c.bytesFromUpstream += r.bytesFromUpstream;
        c.bytesToUpstream += r.bytesToUpstream;
        totals.bytesFromUpstream += r.bytesFromUpstream;
        totals.bytesToUpstream += r.bytesToUpstream;
      });
    },
    (err: Error) => {
      c.upstreamErrors++;
      totals.upstreamErrors++;
      onUpstreamError(ep, err);
      if (s.destroyed) return;
      if (ep.kind === 'http') {
        // The SDK does the same for http endpoints (PROTOCOL.md §10): a page saying which upstream failed and why.
        const code = isBurrowError(err) ? err.code : 'BURROW_ERR_AGENT_UPSTREAM';
        s.end(
          errorPage(
            502,
            'Bad Gateway',
            `The burrow agent serving ${ep.url || ep.name} could not forward this request: ${err.message}.`,
            `X-Burrow-Error-Code: ${code}\r\nX-Burrow-Upstream: ${dialer.label}\r\n`,
          ),
        );
        s.resume(); // read and drop the request so both FINs complete
      } else {
        s.reset(MUX_STREAM_REFUSED); // counted by the relay as a refused stream
      }
    },
  );
}
