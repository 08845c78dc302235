// Load test `many-agents`: 500 agent sessions (burrow's agent through the library API, all in one child process), one
// HTTP endpoint each; passes when every endpoint answers through the relay and the relay stays up.
// --short: 100 sessions. Usage: node dist/load-tests/many-agents.js [--short]
import { processRssKiB } from '../bench/lib/proc-stat.js';
import { startAgentsProcess } from '../bench/macro/rig.js';
import { mib, relayStillRunning, runLoadTest, startRelayAndOrigin, waitReachable } from './lib/harness.js';

await runLoadTest(
  'many-agents',
  (short) => (short ? 90_000 : 300_000),
  async (ctx) => {
    const n = ctx.short ? 100 : 500;
    const { relay, origin } = await startRelayAndOrigin(ctx);
    const rss0 = processRssKiB(relay.child.pid!) ?? 0;
    const t0 = Date.now();
    const agents = await startAgentsProcess(
      ctx.group,
      'agents',
      {
        server: `localhost:${relay.banner.agentPort}`,
        caPath: relay.banner.caPath,
        token: relay.banner.token,
        count: n,
        kind: 'http',
        hostPrefix: 'many-',
        upstream: `http://127.0.0.1:${origin.port}`,
      },
      ctx.short ? 60_000 : 240_000,
    );
    const upSeconds = (Date.now() - t0) / 1000;
    const rss1 = processRssKiB(relay.child.pid!) ?? 0;
    ctx.log(`${agents.urls.length} sessions bound in ${upSeconds.toFixed(1)} s; probing each endpoint`);
    const hosts = agents.urls.map((u) => new URL(u).hostname);
    const r = await waitReachable(relay.banner.httpPort, hosts, 30_000);
    const sample = r.missing.slice(0, 3).map((h) => `${h}: ${r.lastErrors.get(h)}`).join('; ');
    return {
      criteria: [
        { what: `${n} sessions bound`, ok: agents.urls.length === n, detail: `${agents.urls.length} in ${upSeconds.toFixed(1)} s` },
        { what: 'every endpoint answers 200 through the relay', ok: r.missing.length === 0, detail: r.missing.length === 0 ? `${r.reached.size} of ${n}` : `${r.missing.length} unreachable (${sample})` },
        relayStillRunning(relay),
      ],
      facts: `${n} sessions, all reachable; relay RSS +${mib(rss1 - rss0)} (${((rss1 - rss0) / n).toFixed(0)} KiB/session)`,
    };
  },
);
