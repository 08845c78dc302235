// Fuzzers for RPC JSON framing: the JsonValueScanner (src/protocol/json-scanner.ts) on JSON texts, their mutations
// and random bytes in random chunk splits, and readJsonMessage (src/mux/rpc.ts) on a real MuxSession pair fed the
// same inputs in random writes. Properties: no throw; the end found does not depend on the split; a JSON object is
// found exactly where it ends; readJsonMessage resolves to the object or rejects with an RPC code, never hangs past
// its deadline, never holds more than its size limit. DESIGN.md §6 "RPC JSON garbage / 1 MiB JSON".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MuxSession } from '../../src/mux/mux-session.js';
import { readJsonMessage } from '../../src/mux/rpc.js';
import { isBurrowError } from '../../src/core/errors.js';
import { memoryPair } from '../helpers/transport-pair.js';
import { scanChunks } from '../helpers/scan-json-chunks.js';
import { bytesArb, cutsArb, fuzzParams, mutationArb, splitAt } from './fuzz-support.js';

const objectText = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }).map((o) => JSON.stringify(o));
const inputArb: fc.Arbitrary<Buffer> = fc.oneof(
  objectText.map((t) => Buffer.from(t)),
  objectText.chain((t) => mutationArb(Buffer.from(t))),
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  bytesArb(300),
  fc.constantFrom('{"a":"\\"}', '{"a":[}', '}}}', '"\\', '{"x":"\u00ff\\u12"}', '  \r\n{"Version":["3"]}garbage').map((s) => Buffer.from(s)),
);

test('JsonValueScanner in random chunk splits: no throw, same end as one chunk', () => {
  fc.assert(
    fc.property(inputArb, cutsArb, (buf, cuts) => {
      assert.equal(scanChunks(splitAt(buf, cuts)), scanChunks([buf]));
    }),
    fuzzParams(),
  );
});

test('JsonValueScanner: an object followed by anything ends exactly at its closing brace', () => {
  fc.assert(
    fc.property(objectText, bytesArb(40), cutsArb, (text, tail, cuts) => {
      const obj = Buffer.from(` \n${text}`);
      const end = scanChunks(splitAt(Buffer.concat([obj, tail]), cuts));
      assert.equal(end, obj.length);
      JSON.parse(obj.toString('utf8', 0, end));
    }),
    fuzzParams(),
  );
});

test('readJsonMessage on a real mux stream: resolves the object or rejects with an RPC code, bounded', { timeout: 120_000 }, async () => {
  const MAX = 512;
  const [a, b] = memoryPair();
  const client = new MuxSession(a, { role: 'client' });
  const server = new MuxSession(b, { role: 'server' });
  // The RPC deadline timer is unref'd and an in-memory pair holds no handle: keep the loop alive meanwhile.
  const keepAlive = setInterval(() => {}, 60_000);
  let cases = 0;
  try {
    await fc.assert(
      fc.asyncProperty(inputArb, cutsArb, fc.boolean(), async (buf, cuts, end) => {
        const out = client.openStream();
        const inbound = server.accept();
        for (const c of splitAt(buf, cuts)) out.write(c);
        if (end || buf.length === 0) out.end();
        const s = await inbound;
        cases++;
        try {
          const v = await readJsonMessage(s, { maxSize: MAX, timeoutMs: 50 });
          // Resolved: it must be the first JSON object of the input, within the limit.
          const endAt = scanChunks([buf]);
          assert.ok(endAt > 0 && endAt <= MAX);
          assert.deepEqual(v, JSON.parse(buf.toString('utf8', 0, endAt)));
        } catch (err) {
          assert.ok(
            isBurrowError(err, 'BURROW_ERR_RPC_BAD_JSON') || isBurrowError(err, 'BURROW_ERR_RPC_TOO_LARGE') || isBurrowError(err, 'BURROW_ERR_RPC_INCOMPLETE'),
            `unexpected rejection: ${String(err)}`,
          );
        } finally {
          out.destroy();
          s.destroy();
        }
      }),
      fuzzParams(0.2),
    );
    // Garbage on streams never takes the session down: one more stream still opens and carries an RPC.
    const out = client.openStream();
    const inbound = server.accept();
    out.write('{"ok":true}');
    assert.deepEqual(await readJsonMessage(await inbound, { timeoutMs: 2000 }), { ok: true });
    out.destroy();
    assert.ok(cases > 0);
  } finally {
    clearInterval(keepAlive);
    client.destroy();
    server.destroy();
  }
});
