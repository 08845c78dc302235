// Load test `reconnect-storm`: 200 agent sessions (burrow's agent, library API, one child process) reach the relay
// through a TCP forwarder in this process; the forwarder cuts every session at once. Passes when every endpoint
// answers again within 30 s (the agents reconnect and rebind their URLs) while a control endpoint on a session that
// was not cut keeps answering without a single error (the relay keeps serving).
// --short: 100 sessions. Usage: node dist/load-tests/reconnect-storm.js [--short]
import http from 'node:http';
import net from 'node:net';
import { startAgentsProcess } from '../bench/macro/rig.js';
import { answered, probe, relayStillRunning, runLoadTest, startHttpAgent, startRelayAndOrigin, waitReachable } from './lib/harness.js';

const REBIND_DEADLINE_MS = 30_000;

/** A loopback TCP forwarder to `port` that can cut every connection it carries at once. */
function forwarder(port: number): Promise<{ port: number; cutAll(): number; close(): void }> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address() as net.AddressInfo;
      resolve({
        port: addr.port,
        cutAll() {
          const n = pairs.size;
          // resetAndDestroy: both ends see an abrupt loss (RST), as on a network failure.
          for (const [a, b] of [...pairs]) {
            a.resetAndDestroy();
            b.resetAndDestroy();
          }
          return n;
        },
        close() {
          server.close();
          for (const [a, b] of pairs) {
            a.destroy();
            b.destroy();
          }
        },
      });
    });
  });
}

await runLoadTest(
  'reconnect-storm',
  (short) => (short ? 120_000 : 240_000),
  async (ctx) => {
    const n = ctx.short ? 100 : 200;
    const rig = await startRelayAndOrigin(ctx);
    const { relay, origin } = rig;
    const b = relay.banner;
    const fwd = await forwarder(b.agentPort);
    ctx.group.addCleanup(() => fwd.close());
    const control = await startHttpAgent(ctx, rig, 'control.burrow.localhost', 'control-agent');
    const agents = await startAgentsProcess(ctx.group, 'storm-agents', {
      server: `localhost:${fwd.port}`,
      caPath: b.caPath,
      token: b.token,
      count: n,
      kind: 'http',
      hostPrefix: 'storm-',
      upstream: `http://127.0.0.1:${origin.port}`,
      // Reconnect quickly and spread out: first retry within 0.5 s, never more than 5 s apart.
      backoffBaseMs: 500,
      backoffCapMs: 5_000,
    });
    const hosts = agents.urls.map((u) => new URL(u).hostname);
    const before = await waitReachable(b.httpPort, hosts, 15_000);
    if (before.missing.length > 0) throw new Error(`${before.missing.length} endpoints unreachable before the storm`);
    ctx.log(`${n} sessions through the forwarder, all reachable; control agent pid ${control.child.pid}`);

    // The control endpoint is probed back to back during the whole storm.
    let controlOk = 0;
    const controlErrors: string[] = [];
    let storming = true;
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const controlLoop = (async () => {
      while (storming) {
        const r = await probe(b.httpPort, 'control.burrow.localhost', 5_000, keepAlive);
        if (answered(r)) controlOk++;
        else controlErrors.push('error' in r ? r.error : `HTTP ${r.status}`);
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    const cut = fwd.cutAll();
    ctx.log(`cut ${cut} connections at once; waiting for every endpoint to answer again`);
    const after = await waitReachable(b.httpPort, hosts, REBIND_DEADLINE_MS);
    storming = false;
    await controlLoop;
    keepAlive.destroy();
    const slowest = Math.max(0, ...after.reached.values());
    const sample = after.missing.slice(0, 3).map((h) => `${h}: ${after.lastErrors.get(h)}`).join('; ');
    return {
      criteria: [
        { what: `all ${n} sessions cut`, ok: cut >= n, detail: `${cut} connections cut` },
        {
          what: `every endpoint answers again within ${REBIND_DEADLINE_MS / 1000} s`,
          ok: after.missing.length === 0,
          detail: after.missing.length === 0 ? `slowest after ${(slowest / 1000).toFixed(1)} s` : `${after.missing.length} still down (${sample})`,
        },
        {
          what: 'relay kept serving the control endpoint',
          ok: controlErrors.length === 0 && controlOk > 0,
          detail: `${controlOk} answers, ${controlErrors.length} errors${controlErrors.length > 0 ? ` (${[...new Set(controlErrors)].slice(0, 3).join('; ')})` : ''}`,
        },
        relayStillRunning(relay),
      ],
      facts: `${n} sessions dropped at once, all rebound within ${(slowest / 1000).toFixed(1)} s; control endpoint ${controlOk} answers, 0 errors`,
    };
  },
);
