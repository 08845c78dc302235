// Child-process entry for benches and load tests that need many agent sessions (idle-conns spreads its connections
// over sessions because the relay takes at most 480 proxy streams per session; many-agents; reconnect-storm): opens
// `count` sessions of burrow's agent through the library API (dist/src/index.js `connect`) in this one process, each
// with one endpoint forwarded to `upstream`, in batches so the TLS handshakes do not pile up.
//   parent → child  argv[2] = JSON AgentsConfig
//   child → parent  {type:'ready', urls: string[]} | {type:'failed', error}
// Exits when the parent disconnects (sessions destroyed at once). Not on the data path (the agents' own code is).
import { readFileSync } from 'node:fs';
import { connect, type Agent } from '../../src/index.js';

export interface AgentsConfig {
  /** host:port of the relay's agent listener (or of a proxy in front of it). */
  server: string;
  caPath: string;
  token: string;
  count: number;
  /** tcp: `tcp://` endpoints; http: `http://<hostPrefix><i>.<domain>`. */
  kind: 'tcp' | 'http';
  hostPrefix?: string;
  domain?: string;
  upstream: string;
  /** Sessions opened at once. */
  batch?: number;
  /** Reconnect backoff (ms); defaults are the agent's. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
}

const send = process.send?.bind(process);
const raw = process.argv[2];
if (send === undefined || raw === undefined) {
  process.stderr.write('agents-process.js is started by the benches and load tests, not by hand\n');
  process.exitCode = 2;
} else {
  const cfg = JSON.parse(raw) as AgentsConfig;
  const agents: Agent[] = [];
  process.once('disconnect', () => {
    for (const a of agents) a.destroy();
    process.exit(0);
  });
  try {
    const ca = readFileSync(cfg.caPath);
    const urls: string[] = new Array<string>(cfg.count);
    const batch = Math.max(1, cfg.batch ?? 25);
    for (let i = 0; i < cfg.count; i += batch) {
      await Promise.all(
        Array.from({ length: Math.min(batch, cfg.count - i) }, async (_, j) => {
          const k = i + j;
          const agent = await connect({
            server: cfg.server,
            authtoken: cfg.token,
            ca,
            graceMs: 0,
            backoff: {
              ...(cfg.backoffBaseMs === undefined ? {} : { baseMs: cfg.backoffBaseMs }),
              ...(cfg.backoffCapMs === undefined ? {} : { capMs: cfg.backoffCapMs }),
            },
          });
          agents.push(agent);
          const url = cfg.kind === 'tcp' ? 'tcp://' : `http://${cfg.hostPrefix ?? 'agent-'}${k}.${cfg.domain ?? 'burrow.localhost'}`;
          const ep = await agent.forward(cfg.upstream, { url });
          urls[k] = ep.url;
        }),
      );
    }
    send({ type: 'ready', urls });
  } catch (err) {
    send({ type: 'failed', error: err instanceof Error ? err.message : String(err) });
    for (const a of agents) a.destroy();
    process.exitCode = 1;
    process.disconnect();
  }
}
