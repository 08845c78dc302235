// Turns merged numbers into Prometheus text through prom-client: classic histograms (`_bucket` / `_sum` / `_count`)
// from merged HDR data, counters and gauges from plain values. Main thread, scrape time only; the data plane never
// imports this module (test/unit/layers.test.ts).
import { Registry } from 'prom-client';
import { BUCKET_EDGES_SECONDS, type MergedHistogram } from './latency-histograms.js';

export type Labels = Record<string, string>;

export interface Sample {
  labels: Labels;
  value: number;
}

/** One metric family as exposed: a counter name ends in `_total`, values are in base units. */
export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: Sample[];
}

interface PromValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** Help text per histogram metric (every histogram slot's metric needs one). */
export type HistogramHelp = Readonly<Record<string, string>>;

/** Render families and merged histograms in the Prometheus text format (0.0.4). */
export async function renderMetrics(families: Family[], histograms: MergedHistogram[], help: HistogramHelp): Promise<string> {
  const registry = new Registry();
  for (const f of families) {
    const values: PromValue[] = f.samples.map((s) => ({ labels: s.labels, value: s.value }));
    register(registry, f.name, f.help, f.type, values);
  }
  const byMetric = new Map<string, MergedHistogram[]>();
  for (const h of histograms) {
    const list = byMetric.get(h.slot.metric) ?? [];
    list.push(h);
    byMetric.set(h.slot.metric, list);
  }
  for (const [name, list] of byMetric) {
    const values: PromValue[] = [];
    for (const h of list) {
      const labels = h.slot.labels;
      BUCKET_EDGES_SECONDS.forEach((le, i) => {
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String(le) }, value: h.cumulative[i]! });
      });
      values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count });
      values.push({ metricName: `${name}_sum`, labels: { ...labels }, value: h.sumSeconds });
      values.push({ metricName: `${name}_count`, labels: { ...labels }, value: h.count });
    }
    register(registry, name, help[name] ?? name, 'histogram', values);
  }
  return registry.metrics();
}

function register(registry: Registry, name: string, help: string, type: string, values: PromValue[]): void {
  // prom-client renders any object with name/help/type/get(); no state is kept between scrapes.
  const metric = { name, help, type, aggregator: 'sum', get: async () => ({ name, help, type, values, aggregator: 'sum' }) };
  registry.registerMetric(metric as never);
}

export const CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
