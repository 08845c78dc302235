// Differential fuzzing of the relay's HTTP request filter against Node's llhttp (node:http on 127.0.0.1:0), on
// generated requests (http-gen.ts) fed to the filter in random chunk splits: every request the filter passes on is one
// llhttp parsed at the same place in the stream, so whatever llhttp rejects, the filter does not pass on (DESIGN.md §6 HTTP head; the filter may be stricter, see docs/security.md §HTTP). Runs fuzzRuns() inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HttpRequestFilter, type HttpFilterSink } from '../../src/sniff/http-request-filter.js';
import { startLlhttpOracle } from '../helpers/llhttp-oracle.js';
import { cutsArb, fuzzRuns, splitAt } from './fuzz-support.js';
import { ALLOWED_HOST, requestArb } from './http-gen.js';

interface FilterRun {
  /** Error status, 0 when none. */
  status: number;
  /** `METHOD target` of every request head the filter forwarded. */
  requests: string[];
}

/** Runs `input` through a fresh filter in the given chunks. */
function runFilter(chunks: Buffer[]): FilterRun {
  const run: FilterRun = { status: 0, requests: [] };
  const sink: HttpFilterSink = {
    forward() {},
    onRequest(method, target) {
      run.requests.push(`${method} ${target}`);
    },
    onUpgrade() {},
    onError(s) {
      run.status = s;
    },
  };
  const f = new HttpRequestFilter(sink, { isAllowedHost: (h) => h === ALLOWED_HOST, proto: 'http', clientIp: '192.0.2.1' });
  for (const c of chunks) f.push(c);
  return run;
}

test('generated requests: every one llhttp rejects, the filter rejects too (any chunk split)', { timeout: 120_000 }, async () => {
  const seedEnv = Number(process.env['BURROW_FUZZ_SEED']);
  const seed = Number.isInteger(seedEnv) ? seedEnv : Date.now() % 2 ** 31;
  const cases = fc.sample(fc.tuple(requestArb, cutsArb), { numRuns: fuzzRuns(), seed });
  const oracle = await startLlhttpOracle();
  try {
    let rejectedByLlhttp = 0;
    let stricter = 0;
    const looser: string[] = [];
    // A few connections at a time: bounded sockets, still quick.
    for (let k = 0; k < cases.length; k += 16) {
      const batch = cases.slice(k, k + 16);
      const verdicts = await Promise.all(batch.map(([req]) => oracle.verdict(Buffer.from(req.text, 'latin1'))));
      batch.forEach(([req, cuts], j) => {
        const input = Buffer.from(req.text, 'latin1');
        const ours = runFilter(splitAt(input, cuts));
        assert.deepEqual(ours, runFilter([input]), `chunk split changed the filter's verdict for ${JSON.stringify(req.text)}`);
        const theirs = verdicts[j]!;
        // Every request we pass on must be one llhttp parsed too, in the same place of the stream (no desync):
        // ours is a prefix of llhttp's list. Requests llhttp refused are never among ours.
        const prefix = ours.requests.length <= theirs.requests.length && ours.requests.every((r, n) => r === theirs.requests[n]);
        if (!prefix) {
          looser.push(`${JSON.stringify(req.text)} [${req.shape}] ours ${JSON.stringify(ours.requests)} llhttp ${JSON.stringify(theirs.requests)} (${theirs.detail})`);
        }
        if (theirs.rejected) rejectedByLlhttp++;
        else if (ours.status !== 0 || ours.requests.length < theirs.requests.length) stricter++;
      });
    }
    assert.deepEqual(looser, [], `the filter accepted what llhttp rejects (seed ${seed}; replay with BURROW_FUZZ_SEED=${seed})`);
    // The generator must produce both kinds, else the comparison says nothing.
    assert.ok(rejectedByLlhttp > cases.length / 10, `llhttp rejected only ${rejectedByLlhttp}/${cases.length}: generator too tame`);
    assert.ok(rejectedByLlhttp < cases.length, 'llhttp rejected everything: the oracle is broken');
    process.stdout.write(`# llhttp rejected ${rejectedByLlhttp}/${cases.length}; filter stricter on ${stricter} (seed ${seed})\n`);
  } finally {
    await oracle.close();
  }
});
