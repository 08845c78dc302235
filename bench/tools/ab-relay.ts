// Same-sitting A/B of two relay builds on the HTTP keep-alive path: `node dist/bench/tools/ab-relay.js --a DIR --b DIR`.
// An experiment helper, not a suite (bench/README.md, *Experiments*). Not on the hot path.
//
// Why: this VM's speed drifts by tens of percent within an hour, and the relay suite's ratio to `direct` drifts with
// it, so two suite runs minutes apart cannot show a 2 % change. Here both builds run at once, each with its own
// agent, against one origin, and the load runs alternate A, B / B, A, so drift hits both alike:
//
//   direct   autocannon (this process) ──────────────────────────────────────► origin
//   A        autocannon ──► relay from DIR A ══ mux/TLS ══► agent A ──┐        (child: node:http)
//   B        autocannon ──► relay from DIR B ══ mux/TLS ══► agent B ──┴──────► same origin
//
// DIR is a checkout with dist/ and native/build/ in place (e.g. `git worktree add /tmp/before <rev>`, copy
// node_modules and native/build, `npx tsc -p tsconfig.json`). The agents are the @ngrok/ngrok SDK (default) or
// burrow's own agent of each checkout (`--agent burrow`). Prints every run and the medians: RPS, B / A, and each
// relay's CPU per request (all its threads, from /proc).
import os from 'node:os';
import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ChildGroup } from '../lib/child-group.js';
import { processCpuMs } from '../lib/proc-stat.js';
import { BenchUsageError, intOption, median } from '../lib/suite.js';
import { loadProblem, runLoad, type LoadTarget } from '../macro/http-load.js';
import { START_TIMEOUT_MS, STOP_GRACE_MS, forkListening, startBurrowAgentProcess, startSdkAgent } from '../macro/rig.js';
import { startRelayProcess, type RelayProcess } from '../macro/relay-process.js';

const USAGE = `usage: node dist/bench/tools/ab-relay.js --a DIR --b DIR [--agent sdk|burrow] [--runs N] [--duration S]
       [--connections N] [--no-direct]
  DIR: a checkout with dist/ and native/build/ built (bin/burrow.js is started from it)`;

const BODY = 1024;

interface Side {
  name: 'A' | 'B';
  relay: RelayProcess;
  target: LoadTarget;
  rps: number[];
  cpuUs: number[];
}

function checkout(value: string | undefined, name: string): string {
  if (value === undefined) throw new BenchUsageError(`--${name} is required`);
  const dir = resolve(value);
  if (!existsSync(join(dir, 'bin', 'burrow.js')) || !existsSync(join(dir, 'dist', 'src'))) {
    throw new BenchUsageError(`--${name} ${dir}: no bin/burrow.js or dist/src there (build it first: npx tsc -p tsconfig.json)`);
  }
  return dir;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      a: { type: 'string' },
      b: { type: 'string' },
      agent: { type: 'string' },
      runs: { type: 'string' },
      duration: { type: 'string' },
      connections: { type: 'string' },
      'no-direct': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const dirs = { A: checkout(values.a, 'a'), B: checkout(values.b, 'b') };
  const agent = values.agent ?? 'sdk';
  if (agent !== 'sdk' && agent !== 'burrow') throw new BenchUsageError(`--agent ${JSON.stringify(agent)}: want sdk or burrow`);
  const runs = intOption(values, 'runs', 5, 1, 100);
  const seconds = intOption(values, 'duration', 5, 1, 600);
  const connections = intOption(values, 'connections', 50, 1, 10_000);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);

  const group = new ChildGroup(STOP_GRACE_MS, log);
  try {
    const origin = await forkListening(group, 'origin', 'origin-process.js', [String(BODY)]);
    const sides: Side[] = [];
    // Two relays at once: their --tcp-ports ranges must not overlap (neither binds a TCP endpoint here).
    for (const [name, tcpPorts] of [['A', '22000-22099'], ['B', '23000-23099']] as const) {
      const dataDir = mkdtempSync(join(os.tmpdir(), 'burrow-ab-'));
      group.addCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
      const relay = await startRelayProcess({
        repoRoot: dirs[name],
        dataDir,
        workers: os.availableParallelism(),
        nodeOptions: [],
        metrics: 'on',
        group,
        timeoutMs: START_TIMEOUT_MS,
        name: `relay-${name}`,
        tcpPorts,
      });
      const host = `ab${name.toLowerCase()}.burrow.localhost`;
      const upstream = `http://127.0.0.1:${origin.port}`;
      if (agent === 'sdk') {
        await startSdkAgent(group, `agent-${name}`, relay, host, upstream, []);
      } else {
        await startBurrowAgentProcess({
          group,
          name: `agent-${name}`,
          repoRoot: dirs[name],
          dataDir,
          relay,
          endpoints: [{ name: 'web', url: `http://${host}`, upstream }],
        });
      }
      log(`ab-relay: ${name} = ${dirs[name]} (relay pid ${relay.child.pid}, ${agent} agent)`);
      sides.push({ name, relay, target: { url: `http://127.0.0.1:${relay.banner.httpPort}/`, host }, rps: [], cpuUs: [] });
    }
    const load = async (target: LoadTarget, s: number): Promise<{ rps: number; requests: number }> => {
      const r = await runLoad(target, { connections, durationSeconds: s, minResponseBytes: BODY });
      const problem = loadProblem(r);
      if (problem !== null) throw new Error(`${target.url} (${target.host ?? 'direct'}): ${problem}`);
      return { rps: r.requests / r.seconds, requests: r.requests };
    };
    for (const side of sides) await load(side.target, 2); // warm-up: JIT, connections, agent upstreams
    const direct: number[] = [];
    for (let i = 0; i < runs; i++) {
      if (values['no-direct'] !== true) direct.push((await load({ url: `http://127.0.0.1:${origin.port}/` }, seconds)).rps);
      for (const side of i % 2 === 0 ? sides : [...sides].reverse()) {
        const pid = side.relay.child.pid!;
        const cpu0 = processCpuMs(pid);
        const r = await load(side.target, seconds);
        const cpu1 = processCpuMs(pid);
        side.rps.push(r.rps);
        side.cpuUs.push(cpu0 === null || cpu1 === null ? NaN : ((cpu1 - cpu0) * 1000) / r.requests);
      }
      const [a, b] = sides as [Side, Side];
      log(
        `run ${i + 1}/${runs}: ${direct.length > 0 ? `direct ${Math.round(direct.at(-1)!)}  ` : ''}` +
          `A ${Math.round(a.rps.at(-1)!)} (${a.cpuUs.at(-1)!.toFixed(1)} us/req)  ` +
          `B ${Math.round(b.rps.at(-1)!)} (${b.cpuUs.at(-1)!.toFixed(1)} us/req)  B/A ${(b.rps.at(-1)! / a.rps.at(-1)!).toFixed(3)}`,
      );
    }
    const [a, b] = sides as [Side, Side];
    const ratios = a.rps.map((x, i) => b.rps[i]! / x);
    const d = direct.length > 0 ? median(direct) : null;
    const row = (s: Side): string =>
      `${s.name}: ${Math.round(median(s.rps))} req/s${d === null ? '' : ` (x direct ${(median(s.rps) / d).toFixed(3)})`}, ` +
      `relay ${median(s.cpuUs).toFixed(1)} us/req`;
    process.stdout.write(
      `medians over ${runs} run(s) of ${seconds} s, ${connections} connections, ${agent} agent, body ${BODY} B\n` +
        (d === null ? '' : `direct: ${Math.round(d)} req/s\n`) +
        `${row(a)}\n${row(b)}\n` +
        `B/A: ${median(ratios).toFixed(3)} (runs ${Math.min(...ratios).toFixed(3)} – ${Math.max(...ratios).toFixed(3)})\n`,
    );
  } finally {
    await group.close();
  }
}

main().catch((err: unknown) => {
  const usage = err instanceof BenchUsageError;
  process.stderr.write(`ab-relay: ${err instanceof Error ? err.message : String(err)}\n${usage ? `${USAGE}\n` : ''}`);
  process.exitCode = usage ? 2 : 1;
});
