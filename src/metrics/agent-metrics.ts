// The agent's optional metrics server (`--metrics-addr`): its own latency histograms (relay heartbeat RTT, upstream
// dial, time to first upstream byte) and connection counters at /metrics, plus /healthz. Single process, so no merge
// across threads: the histograms are encoded and folded into classic buckets like the relay's. Scrape time only.
import type { AgentStats } from '../agent/agent-stats.js';
import { AGENT_HISTOGRAM_SLOTS } from '../agent/agent-stats.js';
import { AdminServer, text } from './admin-server.js';
import { mergeHistograms } from './latency-histograms.js';
import { CONTENT_TYPE, renderMetrics, type Family } from './prom-families.js';

const HELP = {
  burrow_agent_relay_rtt_seconds: 'Round-trip time of the agent\'s heartbeats to the relay.',
  burrow_agent_upstream_dial_seconds: 'Proxy stream accepted until the local upstream is connected.',
  burrow_agent_ttfb_seconds: 'Proxy stream accepted until the first byte from the local upstream.',
};

export interface AgentMetricsSource {
  readonly stats: AgentStats;
  /** Endpoints bound right now. */
  readonly endpoints: readonly unknown[];
}

/** Prometheus text for one agent. */
export async function renderAgentMetrics(agent: AgentMetricsSource, version: string): Promise<string> {
  const s = agent.stats;
  const c = s.connections;
  const one = (value: number): Family['samples'] => [{ labels: {}, value }];
  const families: Family[] = [
    { name: 'burrow_agent_info', help: 'Constant 1; the version label names the running agent.', type: 'gauge', samples: [{ labels: { version }, value: 1 }] },
    { name: 'burrow_agent_connections_total', help: 'Proxied connections since start.', type: 'counter', samples: one(c.total) },
    { name: 'burrow_agent_open_connections', help: 'Proxied connections open now.', type: 'gauge', samples: one(c.open) },
    { name: 'burrow_agent_upstream_errors_total', help: 'Connections answered without an upstream (dial failed, breaker open).', type: 'counter', samples: one(c.upstreamErrors) },
    { name: 'burrow_agent_upstream_sent_bytes_total', help: 'Bytes written to local upstreams (from public clients), counted when a connection ends.', type: 'counter', samples: one(c.bytesToUpstream) },
    { name: 'burrow_agent_upstream_received_bytes_total', help: 'Bytes read from local upstreams (to public clients), counted when a connection ends.', type: 'counter', samples: one(c.bytesFromUpstream) },
    { name: 'burrow_agent_sessions_total', help: 'Sessions established with the relay (the first one included).', type: 'counter', samples: one(s.sessions) },
    { name: 'burrow_agent_reconnect_attempts_total', help: 'Reconnect attempts made after a session was lost.', type: 'counter', samples: one(s.reconnectAttempts) },
    { name: 'burrow_agent_endpoints', help: 'Endpoints bound now.', type: 'gauge', samples: one(agent.endpoints.length) },
  ];
  return renderMetrics(families, mergeHistograms(AGENT_HISTOGRAM_SLOTS, [s.latency.encode()]), HELP);
}

/** Start the agent's metrics server on `addr`; `token` is required off loopback. */
export function startAgentMetricsServer(
  agent: AgentMetricsSource,
  addr: { host: string; port: number },
  token: string | null,
  version: string,
): Promise<AdminServer> {
  return AdminServer.start(
    {
      host: addr.host,
      port: addr.port,
      token,
      routes: {
        '/metrics': async () => ({ status: 200, contentType: CONTENT_TYPE, body: await renderAgentMetrics(agent, version) }),
        '/healthz': async () => text(200, 'ok\n'),
      },
      listenCode: 'BURROW_ERR_AGENT_METRICS_LISTEN',
    },
    '--metrics-addr',
    '--metrics-token (or BURROW_METRICS_TOKEN)',
  );
}
