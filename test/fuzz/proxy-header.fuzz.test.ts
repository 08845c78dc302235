// Fuzzer for ProxyHeader framing (src/protocol/proxy-header.ts) as readPrefix drives it: the buffer grows read by
// read and is re-decoded. Inputs: encoded headers, their mutations (lengths included) and random bytes. Properties:
// only BURROW_ERR_PROXY_HEADER ever escapes; the first decision is final; a decoded header consumed exactly its
// prefix; lengths above the cap are refused before the bytes arrive. DESIGN.md §6 (ProxyHeader).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isBurrowError } from '../../src/core/errors.js';
import { DEFAULT_MAX_PROXY_HEADER, decodeProxyHeader, encodeProxyHeader } from '../../src/protocol/proxy-header.js';
import { bytesArb, cutsArb, firstDecision, fuzzParams, mutationArb, splitAt } from './fuzz-support.js';

type Decision = { kind: 'need-more' } | { kind: 'header'; json: string; consumed: number } | { kind: 'error'; code: string };

function decide(buf: Buffer, max: number): Decision {
  try {
    const r = decodeProxyHeader(buf, max);
    return r === null ? { kind: 'need-more' } : { kind: 'header', json: JSON.stringify(r.header), consumed: r.consumed };
  } catch (err) {
    assert.ok(isBurrowError(err, 'BURROW_ERR_PROXY_HEADER'), `unexpected throw: ${String(err)}`);
    return { kind: 'error', code: err.code };
  }
}

const headerArb = fc
  .record({
    Id: fc.string({ maxLength: 20 }),
    ClientAddr: fc.constantFrom('203.0.113.5:4242', '[2001:db8::1]:443', ''),
    Proto: fc.constantFrom('http', 'https', 'tcp', 'tls', ''),
    EdgeType: fc.constantFrom('0', '1', '2', '3'),
    PassthroughTLS: fc.boolean(),
  })
  .map((h) => Buffer.concat([encodeProxyHeader(h), Buffer.from('GET / HTTP/1.1\r\n')]));

const inputArb = fc.oneof(headerArb, headerArb.chain((b) => mutationArb(b)), bytesArb(200));

test('ProxyHeader on growing reads: only BURROW_ERR_PROXY_HEADER escapes, first decision final, exact consumption', () => {
  fc.assert(
    fc.property(inputArb, cutsArb, fc.constantFrom(64, DEFAULT_MAX_PROXY_HEADER), (buf, cuts, max) => {
      const { first } = firstDecision(splitAt(buf, cuts), (b) => decide(b, max), (d) => d.kind !== 'need-more');
      const whole = decide(buf, max);
      assert.deepEqual(whole, first ?? { kind: 'need-more' });
      if (whole.kind === 'header') {
        assert.equal(whole.consumed, 8 + Number(buf.readBigInt64LE(0)));
        assert.ok(whole.consumed - 8 <= max);
      }
      // A length over the cap is refused from the 8-byte prefix alone (nothing is buffered waiting for it).
      if (buf.length >= 8 && buf.readBigInt64LE(0) > BigInt(max)) assert.equal(decide(buf.subarray(0, 8), max).kind, 'error');
    }),
    fuzzParams(),
  );
});
