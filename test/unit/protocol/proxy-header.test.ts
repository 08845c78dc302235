// ProxyHeader framing on proxy streams: i64 LITTLE-endian length + JSON (PROTOCOL.md §10). Round trips, "need more"
// at every prefix, and rejection of negative / oversized lengths and non-object JSON.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DEFAULT_MAX_PROXY_HEADER,
  decodeProxyHeader,
  encodeProxyHeader,
} from '../../../src/protocol/proxy-header.js';
import type { ProxyHeader } from '../../../src/protocol/messages.js';
import { isBurrowError } from '../../../src/core/errors.js';

const sample: ProxyHeader = {
  Id: 'tun_2b7c',
  ClientAddr: '203.0.113.7:51514',
  Proto: 'https',
  EdgeType: '3',
  PassthroughTLS: false,
};

const isProxyHeaderError = (e: unknown): boolean => isBurrowError(e, 'BURROW_ERR_PROXY_HEADER');

/** Length prefix + body as raw bytes, for hand-built (possibly broken) headers. */
function framed(length: bigint, body: string | Buffer = ''): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigInt64LE(length, 0);
  return Buffer.concat([len, typeof body === 'string' ? Buffer.from(body, 'utf8') : body]);
}

describe('wire format', () => {
  test('the i64 length is little-endian and counts JSON bytes, not characters', () => {
    const h: ProxyHeader = { ...sample, Id: 'tün_é', ClientAddr: '[2001:db8::1]:443' };
    const json = JSON.stringify(h);
    const bytes = Buffer.byteLength(json);
    assert.notEqual(bytes, json.length, 'test input has multi-byte characters');
    const wire = encodeProxyHeader(h);
    assert.equal(wire.length, 8 + bytes);
    // Hand-written: low byte first, then zeros (a big-endian writer would put it in byte 7).
    assert.equal(wire.subarray(0, 8).toString('hex'), Buffer.from([bytes & 0xff, bytes >> 8, 0, 0, 0, 0, 0, 0]).toString('hex'));
    assert.equal(wire.subarray(8).toString('utf8'), json);
  });

  test('a length above 255 uses two little-endian bytes (0x0123 → 23 01 00 ...)', () => {
    // Pad the Id so the JSON is exactly 0x123 = 291 bytes.
    const base = JSON.stringify({ ...sample, Id: '' }).length;
    const h: ProxyHeader = { ...sample, Id: 'x'.repeat(0x123 - base) };
    const wire = encodeProxyHeader(h);
    assert.equal(wire.subarray(0, 8).toString('hex'), '2301000000000000');
    assert.deepEqual(decodeProxyHeader(wire), { header: h, consumed: 8 + 0x123 });
  });

  test('a big-endian length is rejected (reads as a huge LE value)', () => {
    const json = JSON.stringify(sample);
    const be = Buffer.alloc(8);
    be.writeBigInt64BE(BigInt(Buffer.byteLength(json)), 0);
    assert.throws(() => decodeProxyHeader(Buffer.concat([be, Buffer.from(json)])), isProxyHeaderError);
  });
});

describe('round trip', () => {
  test('decode(encode(h)) gives h back; bytes after the JSON are left as payload', () => {
    const payload = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const wire = Buffer.concat([encodeProxyHeader(sample), payload]);
    const d = decodeProxyHeader(wire);
    assert.ok(d !== null);
    assert.deepEqual(d.header, sample);
    assert.equal(d.consumed, wire.length - payload.length);
    assert.equal(wire.subarray(d.consumed).toString(), payload.toString());
  });

  test('property: any ProxyHeader, any trailing bytes', () => {
    const headerArb = fc.record({
      Id: fc.string({ maxLength: 40 }),
      ClientAddr: fc.string({ maxLength: 60 }),
      Proto: fc.constantFrom('http', 'https', 'tcp', 'tls'),
      EdgeType: fc.constantFrom('0', '1', '2', '3'),
      PassthroughTLS: fc.boolean(),
    });
    fc.assert(
      fc.property(headerArb, fc.uint8Array({ maxLength: 64 }), (h, trailing) => {
        const enc = encodeProxyHeader(h);
        const d = decodeProxyHeader(Buffer.concat([enc, trailing]));
        assert.ok(d !== null);
        assert.deepEqual(d.header, { ...h });
        assert.equal(d.consumed, enc.length);
      }),
      { numRuns: 300 },
    );
  });

  test('unknown extra keys are kept (tolerated), not rejected', () => {
    const d = decodeProxyHeader(framed(BigInt('{"Id":"t","Future":1}'.length), '{"Id":"t","Future":1}'));
    assert.deepEqual(d?.header, { Id: 't', Future: 1 });
  });
});

describe('need more', () => {
  test('null at every prefix length shorter than the whole header', () => {
    const wire = encodeProxyHeader(sample);
    for (let i = 0; i < wire.length; i++) {
      assert.equal(decodeProxyHeader(wire.subarray(0, i)), null, `prefix of ${i} bytes`);
    }
    assert.notEqual(decodeProxyHeader(wire), null);
  });

  test('a zero length is complete at once, and empty JSON does not parse', () => {
    assert.throws(() => decodeProxyHeader(framed(0n)), isProxyHeaderError);
  });
});

describe('rejections with BURROW_ERR_PROXY_HEADER', () => {
  test('negative length, as soon as the 8 length bytes are there', () => {
    for (const n of [-1n, -(2n ** 63n), -4096n]) {
      assert.throws(() => decodeProxyHeader(framed(n)), isProxyHeaderError, `length ${n}`);
    }
  });

  test('length above maxSize, without waiting for the body', () => {
    assert.throws(() => decodeProxyHeader(framed(BigInt(DEFAULT_MAX_PROXY_HEADER + 1))), isProxyHeaderError);
    assert.throws(() => decodeProxyHeader(framed(2n ** 62n)), isProxyHeaderError);
    assert.throws(() => decodeProxyHeader(framed(101n, 'x'), 100), isProxyHeaderError);
    // Exactly maxSize is allowed: it only needs more bytes.
    assert.equal(decodeProxyHeader(framed(100n, '{'), 100), null);
    assert.equal(decodeProxyHeader(framed(BigInt(DEFAULT_MAX_PROXY_HEADER))), null);
  });

  test('the error message names the length and the limit', () => {
    assert.throws(
      () => decodeProxyHeader(framed(5000n), 1024),
      (e: unknown) => isProxyHeaderError(e) && /5000/.test((e as Error).message) && /1024/.test((e as Error).message),
    );
  });

  for (const body of ['[]', '"str"', 'null', '1', 'true', '[{"Id":"x"}]']) {
    test(`non-object JSON ${body}`, () => {
      assert.throws(() => decodeProxyHeader(framed(BigInt(body.length), body)), isProxyHeaderError);
    });
  }

  for (const body of ['{', '{"Id":', 'not json', '{"Id":"a"} trailing']) {
    test(`JSON that does not parse: ${body}`, () => {
      assert.throws(() => decodeProxyHeader(framed(BigInt(body.length), body)), isProxyHeaderError);
    });
  }
});
