// JsonValueScanner finds where the first JSON value ends in a byte stream fed in any chunk split (RPC framing,
// PROTOCOL.md §8.1: the caller does not half-close, so the end of the value is the end of the message).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { JSON_INVALID, JSON_NEED_MORE } from '../../../src/protocol/json-scanner.js';
import { scanChunks } from '../../helpers/scan-json-chunks.js';


function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = cuts.map((c) => c % (buf.length + 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('end of a JSON object', () => {
  const tricky = [
    '{}',
    '{"a":1}',
    '{"a":"}"}',
    '{"a":"{{{"}',
    '{"a":"\\"}"}',
    '{"a":"\\\\"}',
    '{"a":"\\\\\\"}{"}',
    '{"}":{"{":["]","[",{}]}}',
    '{"k":"\\u007d\\u0022"}',
    '{"Version":["3","2"],"ClientId":"","Extra":{"OS":"linux","Metadata":"{\\"x\\":\\"}\\"}"}}',
    '{"emoji":"😀 }","é":"ü\\""}',
    '{ "spaced" : [ 1 , 2 , { "x" : null } ] }',
  ];
  for (const json of tricky) {
    test(`${json} with garbage after it, split into two chunks at every position`, () => {
      assert.doesNotThrow(() => JSON.parse(json), 'test input is valid JSON');
      const want = Buffer.byteLength(json);
      const wire = utf8(json + '}}"garbage{"\\');
      assert.equal(scanChunks([wire]), want);
      for (let i = 0; i <= wire.length; i++) {
        assert.equal(scanChunks([wire.subarray(0, i), wire.subarray(i)]), want, `split at ${i}`);
      }
      // And one byte at a time.
      const bytes: Buffer[] = [];
      for (let i = 0; i < wire.length; i++) bytes.push(wire.subarray(i, i + 1));
      assert.equal(scanChunks(bytes), want);
    });
  }

  test('leading whitespace is skipped and counted in the offset', () => {
    assert.equal(scanChunks([utf8(' \t\r\n{"a":1}xyz')]), 11);
    assert.equal(scanChunks([utf8('  '), utf8('\n'), utf8('{}')]), 5);
  });

  test('an incomplete object needs more, at every prefix', () => {
    const json = '{"a":{"b":"}}}"},"c":[1,2]}';
    const b = utf8(json);
    for (let i = 0; i < b.length; i++) assert.equal(scanChunks([b.subarray(0, i)]), JSON_NEED_MORE, `prefix of ${i}`);
    assert.equal(scanChunks([b]), b.length);
  });

  test('property: JSON.stringify of any object, plus trailing bytes, split anywhere → ends exactly after the object', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue()),
        fc.boolean(),
        fc.uint8Array({ maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (obj, pretty, trailing, cuts) => {
          const text = pretty ? JSON.stringify(obj, null, 2) : JSON.stringify(obj);
          const json = utf8(text);
          const wire = Buffer.concat([json, trailing]);
          assert.equal(scanChunks(splitAt(wire, cuts)), json.length);
        },
      ),
      { numRuns: 400 },
    );
  });

  test('property: strings full of braces, brackets, quotes and backslashes', () => {
    const nasty = fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', '\\', ':', ',', 'a', ' ', 'é') });
    fc.assert(
      fc.property(fc.array(fc.tuple(nasty, nasty), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (pairs, cuts) => {
        const json = utf8(JSON.stringify(Object.fromEntries(pairs)));
        const wire = Buffer.concat([json, utf8('"}]\\')]);
        assert.equal(scanChunks(splitAt(wire, cuts)), json.length);
      }),
      { numRuns: 400 },
    );
  });
});

describe('other top-level values', () => {
  test('an array ends at its closing bracket', () => {
    assert.equal(scanChunks([utf8('[{"a":"]"}, [] ]  ,')]), 16);
  });

  test('a string ends at its closing quote', () => {
    assert.equal(scanChunks([utf8('"a\\"b"{')]), 6);
  });

  test('a number or literal ends at the first delimiter (exclusive); at end of input more is needed', () => {
    assert.equal(scanChunks([utf8('123 ')]), 3);
    assert.equal(scanChunks([utf8('true,')]), 4);
    assert.equal(scanChunks([utf8('-1.5e3}')]), 6);
    assert.equal(scanChunks([utf8('null')]), JSON_NEED_MORE);
    assert.equal(scanChunks([utf8('nu'), utf8('ll'), utf8('\n')]), 4);
  });
});

describe('a byte that cannot start a JSON value → JSON_INVALID', () => {
  for (const bad of ['x', '<html>', '}', ']', ',', ':', '\u0000', 'N', "'a'", '\u00ff']) {
    test(JSON.stringify(bad), () => {
      assert.equal(scanChunks([utf8(bad)]), JSON_INVALID);
      assert.equal(scanChunks([utf8('  \n'), utf8(bad)]), JSON_INVALID, 'after whitespace in an earlier chunk');
    });
  }

  test('"not json" is not rejected by the scanner (n starts null); it ends at the space and JSON.parse rejects it', () => {
    // The scanner only frames; readJsonMessage validates the slice with JSON.parse.
    assert.equal(scanChunks([utf8('not json')]), 3);
  });
});
