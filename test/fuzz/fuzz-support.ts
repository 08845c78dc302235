// Shared pieces of the fast-check fuzzers: the iteration budget (bounded in `npm test`, larger under `npm run fuzz`)
// and random chunk splits of an input, so every parser is fed the way sockets deliver bytes. Test-only.
import fc from 'fast-check';

// fast-check's default size ('small') caps every array at ~10 elements whatever maxLength says: inputs this short
// would never reach the size limits the fuzzers are about. 'medium' allows ~100 elements; byte arrays use bytesArb.
fc.configureGlobal({ ...fc.readConfigureGlobal(), baseSize: 'medium' });

/** Random bytes of any length up to maxLength (size 'max': the whole range, not fast-check's small default). */
export function bytesArb(maxLength: number): fc.Arbitrary<Buffer> {
  return fc.uint8Array({ maxLength, size: 'max' }).map((u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength));
}

/** Default runs per property in `npm test` (CI): each fuzzer finishes in a few seconds. */
const CI_RUNS = 300;

/**
 * Runs per property: env BURROW_FUZZ_RUNS (set by `npm run fuzz`), else CI_RUNS. `weight` scales it for properties
 * whose single run is expensive (sockets).
 */
export function fuzzRuns(weight = 1): number {
  const env = Number(process.env['BURROW_FUZZ_RUNS']);
  const base = Number.isInteger(env) && env > 0 ? env : CI_RUNS;
  return Math.max(1, Math.round(base * weight));
}

/** fast-check parameters for one property: the budget, plus a seed from BURROW_FUZZ_SEED to replay a failure. */
export function fuzzParams(weight = 1): fc.Parameters<unknown> {
  const seed = Number(process.env['BURROW_FUZZ_SEED']);
  return { numRuns: fuzzRuns(weight), ...(Number.isInteger(seed) ? { seed } : {}) };
}

/** Cut points (sorted, in 0..1 of the length) for splitting an input into chunks; empty = one chunk. */
export const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });

/** Split `buf` at the relative positions `cuts` (empty chunks dropped); bytes are copied so no chunk aliases another. */
export function splitAt(buf: Uint8Array, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * buf.length)))].filter((p) => p > 0 && p < buf.length).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of [...points, buf.length]) {
    if (p > from) out.push(Buffer.from(buf.subarray(from, p)));
    from = p;
  }
  return out;
}

/** One byte at a time: the harshest split (used on short inputs). */
export function bytewise(buf: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(Buffer.from([buf[i]!]));
  return out;
}

/** Mutate `base`: flip, overwrite, insert or delete a few bytes, or truncate (structure-aware fuzzing of valid seeds). */
export function mutationArb(base: Uint8Array): fc.Arbitrary<Buffer> {
  const edit = fc.oneof(
    fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ op: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ op: fc.constant('delete' as const), at: fc.nat(), byte: fc.constant(0) }),
    fc.record({ op: fc.constant('truncate' as const), at: fc.nat(), byte: fc.constant(0) }),
  );
  return fc.array(edit, { maxLength: 4 }).map((edits) => {
    let b = Buffer.from(base);
    for (const e of edits) {
      if (b.length === 0) break;
      const at = e.at % b.length;
      if (e.op === 'set') b[at] = e.byte;
      else if (e.op === 'flip') b[at] = b[at]! ^ e.byte;
      else if (e.op === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from([e.byte]), b.subarray(at)]);
      else if (e.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
      else b = b.subarray(0, at);
    }
    return b;
  });
}

/**
 * Re-decodes a growing buffer after each chunk, as the acceptor and readPrefix do. Returns the first decided result
 * (`decided` says which are) or null, and the whole input.
 */
export function firstDecision<R>(chunks: Buffer[], decode: (buf: Buffer) => R, decided: (r: R) => boolean): { first: R | null; total: Buffer } {
  let total = Buffer.alloc(0);
  let first: R | null = null;
  for (const c of chunks) {
    total = Buffer.concat([total, c]);
    const r = decode(total);
    if (first === null && decided(r)) first = r;
  }
  return { first, total };
}
