// Fuzzers for the HTTP head parsers: the acceptor's first-head sniffer (src/sniff/sniff-http-head.ts, re-run on a
// growing buffer like client-hello) and the worker's streaming request filter (src/sniff/http-request-filter.ts).
// Inputs: generated requests (http-gen.ts), their mutations, random bytes; random chunk splits. Properties: no throw;
// the sniffer's first decision is final; the filter's output, requests and verdict do not depend on the split; its
// buffered head never exceeds maxHeadSize; its output is the input plus only our X-Forwarded-* lines. DESIGN.md §6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { headOutcome, sniffHttpHead } from '../../src/sniff/sniff-http-head.js';
import { HttpRequestFilter, type HttpFilterSink } from '../../src/sniff/http-request-filter.js';
import { bytesArb, cutsArb, firstDecision, fuzzParams, mutationArb, splitAt } from './fuzz-support.js';
import { ALLOWED_HOST, requestArb } from './http-gen.js';

const SNIFF_MAX = 16384;
const HEAD_MAX = 2048; // small, so the size limit is reached by generated inputs

/** Generated requests, mutated generated requests, and random bytes. */
const inputArb: fc.Arbitrary<Buffer> = fc.oneof(
  requestArb.map((r) => Buffer.from(r.text, 'latin1')),
  requestArb.chain((r) => mutationArb(Buffer.from(r.text, 'latin1'))),
  fc.array(requestArb, { minLength: 2, maxLength: 4 }).map((rs) => Buffer.from(rs.map((r) => r.text).join(''), 'latin1')),
  bytesArb(600),
  fc.integer({ min: HEAD_MAX - 64, max: HEAD_MAX + 64 }).map((n) => Buffer.from(`GET / HTTP/1.1\r\nHost: ${ALLOWED_HOST}\r\nX-Pad: ${'p'.repeat(n)}\r\n\r\n`)),
);

test('sniffHttpHead on growing reads: no throw, first decision is final, never reads past maxSize', () => {
  fc.assert(
    fc.property(inputArb, cutsArb, (buf, cuts) => {
      const { first } = firstDecision(
        splitAt(buf, cuts),
        (total) => {
          const r = sniffHttpHead(total, SNIFF_MAX);
          if (r.kind === 'head') assert.ok(r.headLength <= Math.min(total.length, SNIFF_MAX));
          return r;
        },
        (r) => r.kind !== 'need-more',
      );
      const whole = sniffHttpHead(buf, SNIFF_MAX);
      if (first === null) assert.equal(whole.kind, 'need-more');
      else assert.equal(headOutcome(whole), headOutcome(first), 'a longer buffer changed the decision');
    }),
    fuzzParams(),
  );
});

interface Run {
  out: string;
  requests: string[];
  error: number;
  upgraded: boolean;
  maxPending: number;
}

function runFilter(chunks: Buffer[]): Run {
  const pieces: Buffer[] = [];
  const run: Run = { out: '', requests: [], error: 0, upgraded: false, maxPending: 0 };
  const sink: HttpFilterSink = {
    forward: (b) => {
      assert.equal(run.error, 0, 'forward after onError');
      pieces.push(Buffer.from(b)); // the filter may hand views; copy so a later chunk cannot alias them
    },
    onRequest: (m, t) => run.requests.push(`${m} ${t}`),
    onUpgrade: () => {
      run.upgraded = true;
    },
    onError: (s) => {
      assert.equal(run.error, 0, 'onError twice');
      run.error = s;
    },
  };
  const f = new HttpRequestFilter(sink, { isAllowedHost: (h) => h === ALLOWED_HOST, proto: 'https', clientIp: '198.51.100.9', maxHeadSize: HEAD_MAX });
  const internals = f as unknown as { pending: Buffer };
  for (const c of chunks) {
    f.push(c);
    run.maxPending = Math.max(run.maxPending, internals.pending.length);
  }
  run.out = Buffer.concat(pieces).toString('latin1');
  return run;
}

const OUR_LINES = /X-Forwarded-For: 198\.51\.100\.9\r\nX-Forwarded-Proto: https\r\n(X-Forwarded-Host: [^\r\n]*\r\n)?/g;

test('HttpRequestFilter in random chunk splits: no throw, same result as one chunk, bounded buffer, only our lines added', () => {
  fc.assert(
    fc.property(inputArb, cutsArb, (buf, cuts) => {
      const split = runFilter(splitAt(buf, cuts));
      const whole = runFilter([buf]);
      assert.deepEqual({ ...split, maxPending: 0 }, { ...whole, maxPending: 0 });
      assert.ok(split.maxPending <= HEAD_MAX, `buffered ${split.maxPending} bytes of head (limit ${HEAD_MAX})`);
      // Output = input minus dropped client forwarding lines and leading empty lines, plus our lines per request.
      const ours = split.out.match(OUR_LINES) ?? [];
      assert.equal(ours.length, split.requests.length, 'one set of X-Forwarded-* per forwarded request');
      const added = ours.reduce((n, s) => n + s.length, 0);
      assert.ok(split.out.length - added <= buf.length, 'the filter forwarded bytes the client never sent');
    }),
    fuzzParams(),
  );
});
