// STYLE.md dependency rules, checked on the source: lower layers never import upper ones; the pure layers use no
// sockets and no timers; nothing imports cli/; the data plane never imports prom-client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

function files(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (n.endsWith('.ts')) out.push(p);
  }
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]!)
    .concat([...text.matchAll(/import\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]!));
}

const layer = (file: string): string => relative(SRC, file).split('/')[0]!;
const all = files(SRC);

test('the source tree is where the test expects it', () => {
  assert.ok(all.length > 10, `found only ${all.length} files under ${SRC}`);
});

test('pure layers (core, protocol, sniff, balancer) import no sockets, no timers, nothing from upper layers', () => {
  const pure = new Set(['core', 'protocol', 'sniff', 'balancer']);
  const allowedFrom: Record<string, string[]> = { core: [], protocol: ['core', 'protocol'], sniff: ['core', 'sniff'], balancer: ['core', 'balancer'] };
  for (const f of all.filter((x) => pure.has(layer(x)))) {
    const text = readFileSync(f, 'utf8');
    assert.doesNotMatch(text, /\b(setTimeout|setInterval|setImmediate)\s*\(/, `${relative(SRC, f)} uses a timer`);
    for (const i of imports(f)) {
      assert.ok(!/^node:(net|tls|dgram|http|https|http2|child_process|worker_threads)$/.test(i), `${relative(SRC, f)} imports ${i}`);
      if (i.startsWith('.')) {
        const target = relative(SRC, join(f, '..', i)).split('/')[0]!;
        assert.ok(allowedFrom[layer(f)]!.includes(target), `${relative(SRC, f)} (${layer(f)}) imports ${i} (${target})`);
      }
    }
  }
});

test('mux imports only protocol and core below it', () => {
  for (const f of all.filter((x) => layer(x) === 'mux')) {
    for (const i of imports(f).filter((x) => x.startsWith('.'))) {
      const target = relative(SRC, join(f, '..', i)).split('/')[0]!;
      assert.ok(['mux', 'protocol', 'core'].includes(target), `${relative(SRC, f)} imports ${i}`);
    }
  }
});

const EXPORTER_ONLY = /^(prom-client|@trufflesuite\/uws-js-unofficial|uWebSockets\.js)$/;
const DATA_PLANE = ['relay/worker/', 'relay/acceptor/', 'mux/', 'protocol/', 'sniff/', 'agent/'];

test('nothing imports cli/, and the data plane does not import prom-client or uWS', () => {
  for (const f of all) {
    const rel = relative(SRC, f);
    for (const i of imports(f)) {
      if (layer(f) !== 'cli') assert.ok(!/(^|\/)cli\//.test(i), `${rel} imports ${i}`);
      if (DATA_PLANE.some((d) => rel.startsWith(d))) assert.doesNotMatch(i, EXPORTER_ONLY, `${rel} imports ${i}`);
    }
  }
});

test('the worker thread entry does not load prom-client or uWS, even indirectly', () => {
  const seen = new Set<string>();
  const walk = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const i of imports(file)) {
      assert.doesNotMatch(i, EXPORTER_ONLY, `${relative(SRC, file)} (loaded by the worker entry) imports ${i}`);
      if (i.startsWith('.')) walk(join(file, '..', i).replace(/\.js$/, '.ts'));
    }
  };
  walk(join(SRC, 'relay/worker/worker-entry.ts'));
  assert.ok(seen.size > 5, `followed only ${seen.size} files`);
});
