// The shipped Grafana dashboard against live data (issue #6): a real Prometheus (Debian package, installed by
// .ci/run) on 127.0.0.1 with a temp config and a 1 s scrape interval scrapes a relay under light traffic (our agent,
// curl over http and https, one rejected request), and EVERY `expr` in grafana/**/*.json, template variables
// substituted as Grafana would, must return a non-empty result from /api/v1/query. Also checks the dashboard's
// shape: template variables datasource/job/instance, a unit on every panel, $__rate_interval in every rate().
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect, type Agent } from '../../src/index.js';
import {
  curl,
  resolveArgs,
  startHttpUpstream,
  startRelayFixture,
  waitFor,
  withTimeout,
  type RelayFixture,
} from '../helpers/relay-fixture.js';

const GRAFANA = fileURLToPath(new URL('../../../grafana/', import.meta.url));
const APP = 'dash.burrow.localhost';
/** What Grafana makes of $__rate_interval with a 1 s scrape interval: max(4 × scrape, interval + scrape). */
const RATE_INTERVAL = '4s';

let fx: RelayFixture;
let agent: Agent;
let prom: ChildProcess | null = null;
let promUrl = '';
let target = '';
let traffic: NodeJS.Timeout | null = null;
let dir = '';

function jsonFiles(d: string): string[] {
  return readdirSync(d).flatMap((n) => {
    const p = join(d, n);
    return statSync(p).isDirectory() ? jsonFiles(p) : n.endsWith('.json') ? [p] : [];
  });
}

/** Every `expr` string anywhere in a dashboard JSON value. */
function exprs(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) exprs(x, out);
  else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === 'expr' && typeof x === 'string') out.push(x);
      else exprs(x, out);
    }
  }
  return out;
}

/** The port a process listens on, from its socket inodes in /proc (Prometheus binds :0 and does not print it). */
function listeningPort(pid: number): number | undefined {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) inodes.add(m[1]!);
    } catch {
      // fd closed while we looked
    }
  }
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // local_address is hex ip:port; st 0A = LISTEN; inode is field 9.
    if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!)) return parseInt(f[1]!.split(':')[1]!, 16);
  }
  return undefined;
}

async function query(expr: string): Promise<unknown[]> {
  const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await r.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  assert.equal(body.status, 'success', `${expr}: ${body.error ?? r.status}`);
  return body.data!.result;
}

/** A request the worker rejects (Content-Length with Transfer-Encoding): burrow_errors_total gets a series. */
function smuggle(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.end(`POST / HTTP/1.1\r\nHost: ${APP}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
    });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.resume();
  });
}

before(async () => {
  fx = await startRelayFixture({ workers: 2, adminAddr: { host: '127.0.0.1', port: 0 }, agentRttIntervalMs: 250 });
  target = `127.0.0.1:${fx.relay.adminAddress()!.port}`;
  const up = await startHttpUpstream(fx.cleanup);
  agent = await withTimeout('our agent to connect', connect({ server: `localhost:${fx.agent.port}`, authtoken: fx.token, ca: fx.caPem }));
  fx.cleanup.defer('close the agent', () => agent.close(1000));
  await withTimeout('Bind', agent.forward(`http://127.0.0.1:${up.port}`, { url: `http://${APP}` }));

  dir = mkdtempSync(join(tmpdir(), 'burrow-prom-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(config, [
    'global:', '  scrape_interval: 1s', '  evaluation_interval: 1s',
    'scrape_configs:', '  - job_name: burrow', '    static_configs:', `      - targets: ['${target}']`, '',
  ].join('\n'));
  prom = spawn('prometheus', [
    `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, '--web.listen-address=127.0.0.1:0',
    '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  prom.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const exited = new Promise<never>((_, reject) => prom!.once('exit', (c) => reject(new Error(`prometheus exited (${c}): ${log}`))));
  exited.catch(() => {});
  const port = await Promise.race([waitFor('prometheus to listen', () => listeningPort(prom!.pid!)), exited]);
  promUrl = `http://127.0.0.1:${port}`;
  await waitFor('prometheus to be ready', async () => ((await fetch(`${promUrl}/-/ready`).catch(() => null))?.ok ? true : undefined));

  // Light traffic for the rest of the file: http and https requests, one rejected request per round.
  const round = async (): Promise<void> => {
    await curl([...resolveArgs(APP, fx.http.port), `http://${APP}:${fx.http.port}/t`]);
    await curl([...resolveArgs(APP, fx.https.port), '--cacert', fx.caPath, `https://${APP}:${fx.https.port}/t`]);
    await smuggle(fx.http.port);
  };
  await round();
  const tick = (): void => {
    round().finally(() => {
      if (traffic !== null) traffic = setTimeout(tick, 150);
    });
  };
  traffic = setTimeout(tick, 150);
});

after(async () => {
  const t = traffic;
  traffic = null;
  if (t !== null) clearTimeout(t);
  if (prom !== null && prom.exitCode === null) {
    const gone = new Promise((r) => prom!.once('exit', r));
    prom.kill('SIGTERM');
    await withTimeout('prometheus to exit', gone);
  }
  await fx?.close();
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

test('the dashboard has datasource/job/instance variables, a unit on every panel, $__rate_interval in every rate', () => {
  const dash = JSON.parse(readFileSync(join(GRAFANA, 'dashboards/burrow.json'), 'utf8')) as {
    templating: { list: Array<{ name: string }> };
    panels: Array<{ type: string; title: string; fieldConfig?: { defaults?: { unit?: string } }; targets?: Array<{ expr: string }> }>;
  };
  assert.deepEqual(dash.templating.list.map((v) => v.name), ['datasource', 'job', 'instance']);
  const panels = dash.panels.filter((p) => p.type !== 'row');
  assert.ok(panels.length >= 12, `${panels.length} panels`);
  for (const p of panels) {
    assert.ok((p.fieldConfig?.defaults?.unit ?? '') !== '', `panel "${p.title}" has no unit`);
    for (const t of p.targets ?? []) {
      assert.match(t.expr, /job="\$job",instance=~"\$instance"/, `"${p.title}": ${t.expr}`);
      for (const m of t.expr.matchAll(/(rate|increase)\([^[]*\[([^\]]+)\]/g)) assert.equal(m[2], '$__rate_interval', `"${p.title}": ${t.expr}`);
    }
  }
});

test('every expr in grafana/**/*.json returns data from a real Prometheus scraping the relay', { timeout: 40_000 }, async () => {
  const all = jsonFiles(GRAFANA).flatMap((f) => exprs(JSON.parse(readFileSync(f, 'utf8'))));
  assert.ok(all.length >= 20, `only ${all.length} exprs found`);
  // Wait until a few scrapes under traffic are stored: the target is up and rate() has two points in its window.
  await waitFor('a few scrapes of the relay', async () => {
    const r = (await query(`count_over_time(burrow_info{job="burrow"}[${RATE_INTERVAL}])`)) as Array<{ value: [number, string] }>;
    return r.length > 0 && Number(r[0]!.value[1]) >= 3 ? true : undefined;
  });
  const empty: string[] = [];
  for (const raw of all) {
    const expr = raw.replaceAll('$__rate_interval', RATE_INTERVAL).replaceAll('$job', 'burrow').replaceAll('$instance', target);
    assert.ok(!expr.includes('$'), `unsubstituted variable in ${raw}`);
    // Counters that appear with the traffic (errors by code) need one more scrape to have two points; allow that.
    const result = await waitFor(`data for ${expr}`, async () => ((await query(expr)).length > 0 ? true : undefined), 10_000).catch(() => null);
    if (result === null) empty.push(expr);
  }
  assert.deepEqual(empty, [], `exprs with no data:\n${empty.join('\n')}`);
  // And the latency panels carry real numbers for HTTP, not only series of NaN.
  const p99 = (await query(
    `histogram_quantile(0.99, sum by (le) (rate(burrow_request_duration_seconds_bucket{job="burrow",endpoint_type="http"}[${RATE_INTERVAL}])))`,
  )) as Array<{ value: [number, string] }>;
  assert.ok(Number.isFinite(Number(p99[0]!.value[1])) && Number(p99[0]!.value[1]) > 0, `p99 = ${p99[0]!.value[1]}`);
});
