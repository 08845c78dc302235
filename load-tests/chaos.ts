// Load test `chaos`: steady HTTP load on eight endpoints — one served by burrow's agent as a child process (A), seven
// by sessions of burrow's agent in another child — then (1) SIGKILL agent A and start it again, (2) crash one relay
// worker thread (BURROW_TEST_HOOKS=1 + SIGUSR2, docs/testing.md). Passes when the kill leaves every other endpoint
// without a failed request, the crash leaves at least one endpoint (those on the surviving worker) without one, every
// endpoint recovers within 30 s, a final steady phase has 0 errors everywhere, and the relay process stays up.
// --short: 2 s phases (full: 10 s). Usage: node dist/load-tests/chaos.js [--short]
import http from 'node:http';
import { startAgentsProcess } from '../bench/macro/rig.js';
import { answered, exited, probe, runLoadTest, startHttpAgent, startRelayAndOrigin, waitReachable, type Criterion } from './lib/harness.js';

const RECOVER_MS = 30_000;
const A_HOST = 'chaos-a.burrow.localhost';

/** Back-to-back GETs on one host over two keep-alive connections; failures are kept with their time. */
class HostLoad {
  ok = 0;
  readonly failures: Array<{ t: number; msg: string }> = [];
  private running = true;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  private readonly loops: Array<Promise<void>>;

  constructor(
    readonly host: string,
    port: number,
  ) {
    const loop = async (): Promise<void> => {
      while (this.running) {
        const r = await probe(port, host, 3_000, this.agent);
        if (answered(r)) this.ok++;
        else {
          this.failures.push({ t: Date.now(), msg: 'error' in r ? r.error : `HTTP ${r.status}` });
          await new Promise((res) => setTimeout(res, 20)); // no hot loop against a down endpoint
        }
      }
    };
    this.loops = [loop(), loop()];
  }

  failedBetween(t0: number, t1: number): number {
    return this.failures.filter((f) => f.t >= t0 && f.t < t1).length;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

await runLoadTest(
  'chaos',
  (short) => (short ? 150_000 : 300_000),
  async (ctx) => {
    const phaseMs = ctx.short ? 2_000 : 10_000;
    const rig = await startRelayAndOrigin(ctx, { extraEnv: { BURROW_TEST_HOOKS: '1' }, workers: 2 });
    const { relay, origin } = rig;
    const b = relay.banner;
    const upstream = `http://127.0.0.1:${origin.port}`;
    const startA = (name: string) => startHttpAgent(ctx, rig, A_HOST, name);
    let agentA = await startA('agent-a');
    const others = await startAgentsProcess(ctx.group, 'agents-b', {
      server: `localhost:${b.agentPort}`,
      caPath: b.caPath,
      token: b.token,
      count: 7, // with A, 8 sessions: the relay spreads them over both workers, so a crash cannot hit them all
      kind: 'http',
      hostPrefix: 'chaos-b',
      upstream,
      backoffBaseMs: 500,
      backoffCapMs: 3_000,
    });
    const bHosts = others.urls.map((u) => new URL(u).hostname);
    const hosts = [A_HOST, ...bHosts];
    let relayCrashed: string | null = null;
    relay.child.once('exit', (code, signal) => (relayCrashed = `relay exited (code ${code}, signal ${signal})`));
    const loads = hosts.map((h) => new HostLoad(h, b.httpPort));
    const loadOf = (h: string): HostLoad => loads.find((l) => l.host === h)!;
    const criteria: Criterion[] = [];
    try {
      await sleep(phaseMs);
      const steadyErrors = loads.reduce((n, l) => n + l.failures.length, 0);

      // (1) kill agent A; the others must not notice. Then start it again: its URL must come back.
      const tKill = Date.now();
      agentA.child.kill('SIGKILL');
      await exited(agentA.child, 5_000);
      const gone = await (async () => {
        for (const t = Date.now(); Date.now() - t < 10_000; await sleep(100)) {
          if (!answered(await probe(b.httpPort, A_HOST, 2_000))) return true;
        }
        return false;
      })();
      await sleep(phaseMs);
      agentA = await startA('agent-a-restarted');
      const backA = await waitReachable(b.httpPort, [A_HOST], RECOVER_MS);
      const tARecovered = Date.now();
      const bDuringKill = bHosts.reduce((n, h) => n + loadOf(h).failedBetween(tKill, tARecovered), 0);
      const aDuringKill = loadOf(A_HOST).failedBetween(tKill, tARecovered);
      criteria.push(
        { what: 'steady phase before chaos: 0 errors', ok: steadyErrors === 0, detail: `${steadyErrors} errors` },
        { what: 'killing agent A stops its endpoint', ok: gone, detail: gone ? `${aDuringKill} requests to A failed meanwhile` : 'A still answered 10 s later' },
        { what: 'endpoints of the other agents unaffected by the kill', ok: bDuringKill === 0, detail: `${bDuringKill} failed requests` },
        {
          what: `A's URL answers again within ${RECOVER_MS / 1000} s of its restart`,
          ok: backA.missing.length === 0,
          detail: backA.missing.length === 0 ? `after ${((backA.reached.get(A_HOST) ?? 0) / 1000).toFixed(1)} s` : `still down: ${backA.lastErrors.get(A_HOST)}`,
        },
      );
      await sleep(phaseMs);

      // (2) crash one relay worker: the sessions it owned drop and reconnect; the other worker's keep answering.
      const crashLine = new Promise<string>((resolve) => {
        const onData = (c: Buffer): void => {
          const m = /test hook: (worker \d+ told to crash|.*)/.exec(c.toString('utf8'));
          if (m !== null) {
            relay.child.stderr!.off('data', onData);
            resolve(m[1]!);
          }
        };
        relay.child.stderr!.on('data', onData);
      });
      const tCrash = Date.now();
      relay.child.kill('SIGUSR2');
      const said = await Promise.race([crashLine, sleep(5_000).then(() => 'no answer from the relay within 5 s')]);
      ctx.log(`worker crash: ${said}`);
      await sleep(phaseMs);
      const back = await waitReachable(b.httpPort, hosts, RECOVER_MS);
      const tRecovered = Date.now();
      const hit = loads.filter((l) => l.failedBetween(tCrash, tRecovered) > 0);
      const failedInCrash = hit.reduce((n, l) => n + l.failedBetween(tCrash, tRecovered), 0);
      // Recovery time of an endpoint hit by the crash = its last failure after the crash.
      const lastFailure = (l: HostLoad): number => Math.max(0, ...l.failures.filter((f) => f.t >= tCrash && f.t < tRecovered).map((f) => f.t - tCrash));
      const slowest = Math.max(0, ...hit.map(lastFailure));
      criteria.push(
        { what: 'the relay crashed a worker on SIGUSR2', ok: /worker \d+ told to crash/.test(said), detail: said },
        {
          what: 'endpoints on the surviving worker unaffected',
          ok: hit.length < hosts.length,
          detail: `${hosts.length - hit.length} of ${hosts.length} endpoints without a failure; ${failedInCrash} failed requests on ${hit.map((l) => l.host.split('.')[0]).join(', ') || 'none'}`,
        },
        {
          what: `every endpoint answers again within ${RECOVER_MS / 1000} s of the crash`,
          ok: back.missing.length === 0,
          detail: back.missing.length === 0 ? `last failure ${(slowest / 1000).toFixed(1)} s after the crash` : `still down: ${back.missing.join(', ')}`,
        },
      );
      await sleep(phaseMs);
      const tFinal = Date.now();
      await sleep(phaseMs);
      const finalErrors = loads.reduce((n, l) => n + l.failedBetween(tFinal, Date.now()), 0);
      const served = loads.reduce((n, l) => n + l.ok, 0);
      criteria.push(
        { what: 'final steady phase: 0 errors on every endpoint', ok: finalErrors === 0, detail: `${finalErrors} errors` },
        { what: 'relay process up throughout', ok: relayCrashed === null, detail: relayCrashed ?? 'yes' },
      );
      return {
        criteria,
        facts:
          `${served} requests served; agent kill cost ${aDuringKill} requests on A only, worker crash ${failedInCrash} ` +
          `requests on ${hit.length} of ${hosts.length} endpoints; all recovered (last failure ${(slowest / 1000).toFixed(1)} s after the crash)`,
      };
    } finally {
      await Promise.all(loads.map((l) => l.stop()));
    }
  },
);
