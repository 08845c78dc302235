// A fixed set of HDR latency histograms (hdr-histogram-js) in integer microseconds, plus the encode / merge / classic
// bucket steps used at scrape time. record() is on the HOT PATH (one call per request or connection): it writes into
// preallocated typed arrays and allocates nothing. Everything else runs at scrape time.
import { JsHistogram, build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';

/** One histogram of a set: the metric it belongs to and its (bounded) label values. */
export interface HistogramSlot {
  readonly metric: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Largest value kept, µs (60 s); larger values are recorded as this (they land in the +Inf bucket either way). */
export const MAX_TRACKED_US = 60_000_000;

/**
 * Classic bucket upper bounds (`le`), in seconds: 100 µs .. 30 s, roughly 1-2.5-5 per decade. Fixed and documented
 * (README §Monitoring) so dashboards and alerts can rely on them.
 */
export const BUCKET_EDGES_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
const BUCKET_EDGES_US: readonly number[] = BUCKET_EDGES_SECONDS.map((s) => Math.round(s * 1e6));

/** One empty histogram of the layout every slot uses (exported for the tests' reference histograms). */
export function newHistogram(): Histogram {
  // 3 significant digits: values are kept within 0.1 %; no resizing (memory fixed up front). 64-bit counts (exact to
  // 2^53): one bucket of a busy relay passes 2^32 within weeks, and 32-bit counts then wrapped, or failed the merge.
  return build({
    bitBucketSize: 64,
    autoResize: false,
    lowestDiscernibleValue: 1,
    highestTrackableValue: MAX_TRACKED_US,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

/** What a histogram set sends to the scraper: per slot the compressed HDR data ('' when empty) and the exact sum. */
export interface EncodedHistograms {
  hdr: string[];
  /** Sum of recorded values per slot, µs (HDR keeps no exact sum). */
  sumUs: number[];
  count: number[];
}

/**
 * Whether `h` has the layout recordIndexed() computes: a JS histogram with unit 1 (lowestDiscernibleValue 1) and 1024
 * half sub-buckets (3 significant digits), long enough for MAX_TRACKED_US.
 */
function indexable(h: Histogram): h is JsHistogram {
  return (
    h instanceof JsHistogram &&
    h.unitMagnitude === 0 &&
    h.subBucketHalfCountMagnitude === 10 &&
    countsIndex(MAX_TRACKED_US) < (h as unknown as { countsArrayLength: number }).countsArrayLength
  );
}

/**
 * HDR's counts index of `v` (1 ≤ v < 2^31) for unit 1 and 1024 half sub-buckets: bucket = floor(log2 v) − 10 (at
 * least 0), sub-bucket = v >> bucket, index = (bucket + 1) · 1024 + sub-bucket − 1024. The library computes the same
 * with Math.log2 and Math.pow per value, which perf showed at ~1 % of a relay worker's time on keep-alive requests.
 */
function countsIndex(v: number): number {
  let bucket = 21 - Math.clz32(v); // (31 - clz32) = floor(log2 v), then - 10
  if (bucket < 0) bucket = 0;
  return ((bucket + 1) << 10) + (v >>> bucket) - 1024;
}

export class LatencyHistograms {
  private readonly hist: Histogram[];
  private readonly sums: Float64Array;
  /** Every histogram has the layout countsIndex() computes (else record() uses the library's recordValue). */
  private readonly indexed: boolean;

  constructor(slots: readonly HistogramSlot[]) {
    this.hist = slots.map(() => newHistogram());
    this.sums = new Float64Array(slots.length);
    this.indexed = this.hist.every(indexable);
  }

  /** Record one value in microseconds into slot `slot`. HOT PATH: no allocation. */
  record(slot: number, us: number): void {
    const v = us < 1 ? 1 : us > MAX_TRACKED_US ? MAX_TRACKED_US : Math.round(us);
    const h = this.hist[slot]!;
    if (this.indexed) {
      // What recordValue does, with the index computed by countsIndex() (tested against recordValue).
      const j = h as JsHistogram;
      j.incrementCountAtIndex(countsIndex(v));
      j.updateMinAndMax(v);
      j.incrementTotalCount();
    } else {
      h.recordValue(v);
    }
    this.sums[slot]! += us < 0 ? 0 : us; // the value itself: _sum stays exact above the 60 s HDR cap
  }

  count(slot: number): number {
    return this.hist[slot]!.totalCount;
  }

  /** Value at `percentile` (0..100) in µs; NaN while the slot is empty. */
  percentile(slot: number, percentile: number): number {
    const h = this.hist[slot]!;
    return h.totalCount === 0 ? Number.NaN : h.getValueAtPercentile(percentile);
  }

  encode(): EncodedHistograms {
    const out: EncodedHistograms = { hdr: [], sumUs: [], count: [] };
    for (let i = 0; i < this.hist.length; i++) {
      const h = this.hist[i]!;
      out.hdr.push(h.totalCount === 0 ? '' : encodeIntoCompressedBase64(h));
      out.sumUs.push(this.sums[i]!);
      out.count.push(h.totalCount);
    }
    return out;
  }
}

/**
 * Add encoded histogram sets into one (slot by slot; the sets must come from the same slots). Used to keep the numbers
 * of workers that are gone in a single set, so a long-running relay holds one set however many workers it replaced.
 */
export function addEncodedHistograms(a: EncodedHistograms, b: EncodedHistograms): EncodedHistograms {
  const out: EncodedHistograms = { hdr: [], sumUs: [], count: [] };
  const n = Math.max(a.hdr.length, b.hdr.length);
  for (let i = 0; i < n; i++) {
    const ea = a.hdr[i] ?? '';
    const eb = b.hdr[i] ?? '';
    let enc = ea === '' ? eb : ea;
    if (ea !== '' && eb !== '') {
      const sum = addDecoded(addDecoded(null, ea), eb);
      enc = encodeIntoCompressedBase64(sum);
      sum.destroy();
    }
    out.hdr.push(enc);
    out.sumUs.push((a.sumUs[i] ?? 0) + (b.sumUs[i] ?? 0));
    out.count.push((a.count[i] ?? 0) + (b.count[i] ?? 0));
  }
  return out;
}

/** Decode `enc` and add it into `into` (the decoded histogram itself when `into` is null); the caller destroys it. */
function addDecoded(into: Histogram | null, enc: string): Histogram {
  const h = decodeFromCompressedBase64(enc, 64, false);
  if (into === null) return h;
  into.add(h);
  h.destroy();
  return into;
}

/** One slot after merging every source: cumulative classic buckets (aligned with BUCKET_EDGES_SECONDS), sum, count. */
export interface MergedHistogram {
  slot: HistogramSlot;
  /** cumulative[i] = values ≤ BUCKET_EDGES_SECONDS[i]; the +Inf bucket is `count`. */
  cumulative: number[];
  sumSeconds: number;
  count: number;
}

/**
 * Merge the encoded histograms of several sources (workers) slot by slot: decode, add, then fold into the classic
 * buckets. Counts are exact; a value sits in the bucket of its HDR equivalence range (within 0.1 % of the value).
 */
export function mergeHistograms(slots: readonly HistogramSlot[], sources: readonly EncodedHistograms[]): MergedHistogram[] {
  return slots.map((slot, i) => {
    let merged: Histogram | null = null;
    let sumUs = 0;
    for (const src of sources) {
      sumUs += src.sumUs[i] ?? 0;
      const enc = src.hdr[i] ?? '';
      if (enc !== '') merged = addDecoded(merged, enc);
    }
    const cumulative = merged === null ? BUCKET_EDGES_US.map(() => 0) : cumulativeBuckets(merged);
    const count = merged === null ? 0 : merged.totalCount;
    merged?.destroy();
    return { slot, cumulative, sumSeconds: sumUs / 1e6, count };
  });
}

interface IterValue {
  valueIteratedTo: number;
  countAtValueIteratedTo: number;
}
interface ValueIterator {
  reset(): void;
  hasNext(): boolean;
  next(): IterValue;
}

/** Cumulative counts at each edge, from the recorded values (the JS histogram's recorded-values iterator). */
export function cumulativeBuckets(h: Histogram): number[] {
  const out = BUCKET_EDGES_US.map(() => 0);
  const it = (h as unknown as { recordedValuesIterator: ValueIterator }).recordedValuesIterator;
  it.reset();
  while (it.hasNext()) {
    const v = it.next();
    // First edge at or above the value; later edges include it too (cumulative).
    for (let e = 0; e < BUCKET_EDGES_US.length; e++) {
      if (v.valueIteratedTo <= BUCKET_EDGES_US[e]!) {
        for (let k = e; k < out.length; k++) out[k]! += v.countAtValueIteratedTo;
        break;
      }
    }
  }
  return out;
}
