// Load test `soak`: mixed load through the relay and burrow's agent for 10 minutes — keep-alive requests (1 KiB),
// a new connection per request, 1 MiB responses and WebSocket echoes, all at once. Passes with 0 errors of any kind
// and a relay RSS drift of at most 10 % after warm-up (median RSS of the last tenth vs of the first tenth after
// warm-up), and the relay still up.
// --short: 45 s with 30 s of warm-up, RSS sampled every 500 ms (full: 600 s, 60 s, every second). A shorter warm-up
// measured the relay's start-up growth (under this mix its RSS rises for ~20 s on a slow VM before it levels off),
// and with one sample per tenth a single reading decided. Usage: node dist/load-tests/soak.js [--short]
import { median } from '../bench/lib/suite.js';
import { loadProblem, runLoad } from '../bench/macro/http-load.js';
import { runNewConnLoad } from '../bench/macro/new-conn-load.js';
import { runWsLoad, wsLoadProblem } from '../bench/macro/ws-load.js';
import { mib, relayStillRunning, runLoadTest, sampleRss, startHttpAgent, startRelayAndOrigin } from './lib/harness.js';

const HOST = 'soak.burrow.localhost';
const MAX_DRIFT = 0.1;

await runLoadTest(
  'soak',
  (short) => (short ? 90_000 : 720_000),
  async (ctx) => {
    const seconds = ctx.short ? 45 : 600;
    const warmup = ctx.short ? 30 : 60;
    const rig = await startRelayAndOrigin(ctx);
    const { relay } = rig;
    const agent = await startHttpAgent(ctx, rig, HOST);
    ctx.log(`agent pid ${agent.child.pid}; mixed load for ${seconds} s (warm-up ${warmup} s)`);
    const port = relay.banner.httpPort;
    const url = (path: string): string => `http://127.0.0.1:${port}${path}`;
    const rss = sampleRss(relay.child.pid!, ctx.short ? 500 : 1000);
    const [keepAlive, newConn, large, ws] = await Promise.all([
      runLoad({ url: url('/'), host: HOST }, { connections: 8, durationSeconds: seconds, minResponseBytes: 1024 }),
      runNewConnLoad({ port, host: HOST, path: '/' }, { connections: 4, durationSeconds: seconds, minResponseBytes: 1024 }),
      runLoad({ url: url('/large'), host: HOST }, { connections: 2, durationSeconds: seconds, minResponseBytes: 1024 * 1024 }),
      runWsLoad({ url: `ws://127.0.0.1:${port}/`, host: HOST, connections: 4, durationSeconds: seconds, messageBytes: 1024 }),
    ]);
    const samples = rss.stop();
    const after = samples.filter((x) => x.t >= warmup * 1000);
    const tenth = Math.max(1, Math.floor(after.length / 10));
    const first = median(after.slice(0, tenth).map((x) => x.kib));
    const last = median(after.slice(-tenth).map((x) => x.kib));
    const drift = (last - first) / first;
    const problems = [
      ['keep-alive', loadProblem(keepAlive)],
      ['new-conn', loadProblem(newConn)],
      ['1 MiB', loadProblem(large)],
      ['ws-echo', wsLoadProblem(ws)],
    ].filter(([, p]) => p !== null);
    const total = keepAlive.requests + newConn.requests + large.requests + ws.messages;
    return {
      criteria: [
        {
          what: '0 unexpected errors',
          ok: problems.length === 0,
          detail: problems.length === 0 ? `0 in ${total} operations` : problems.map(([w, p]) => `${w}: ${p}`).join('; '),
        },
        {
          what: `relay RSS drift <= ${MAX_DRIFT * 100} % after warm-up`,
          ok: drift <= MAX_DRIFT,
          detail: `${(drift * 100).toFixed(1)} % (${mib(first)} -> ${mib(last)}, ${after.length} samples)`,
        },
        relayStillRunning(relay),
      ],
      facts:
        `${seconds} s mixed load, ${total} operations (keep-alive ${keepAlive.requests}, new-conn ${newConn.requests}, ` +
        `1 MiB ${large.requests}, ws ${ws.messages}), 0 errors; relay RSS drift ${(drift * 100).toFixed(1)} %`,
    };
  },
);
