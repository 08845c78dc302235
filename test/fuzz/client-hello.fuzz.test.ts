// Fuzzer for the ClientHello parser (src/sniff/parse-client-hello.ts) as the acceptor drives it: the buffer grows
// chunk by chunk and is re-parsed after each read. Inputs: random bytes, and mutations of real ClientHellos that
// node:tls (OpenSSL) sent to a capture server on 127.0.0.1:0. Properties: no throw; the first decision along the
// reads is final (a longer buffer never changes it); need-more always asks for more than it has; decisions need no
// more than maxSize bytes. DESIGN.md §6 ClientHello.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { parseClientHello, sniffOutcome, type ClientHelloResult } from '../../src/sniff/parse-client-hello.js';
import { bytesArb, bytewise, cutsArb, fuzzParams, mutationArb, splitAt } from './fuzz-support.js';

const MAX = 16384;

/** Captures the first ClientHello node:tls sends with `opts` (the TLS handshake itself never completes). */
async function captureHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const got = new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (s: net.Socket) => {
        let buf = Buffer.alloc(0);
        s.on('data', (c: Buffer) => {
          buf = Buffer.concat([buf, c]);
          const r = parseClientHello(buf, MAX);
          if (r.kind === 'hello') {
            resolve(buf.subarray(0, r.recordBytes));
            s.destroy();
          } else if (r.kind !== 'need-more') {
            reject(new Error(`capture: ${sniffOutcome(r)}`));
            s.destroy();
          }
        });
      });
    });
    const c = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
    c.on('error', () => {});
    const hello = await got;
    c.destroy();
    return hello;
  } finally {
    server.close();
  }
}

let seeds: Buffer[] = [];

before(async () => {
  seeds = await Promise.all([
    captureHello({ servername: 'app.burrow.localhost', ALPNProtocols: ['h2', 'http/1.1'] }),
    captureHello({ servername: 'x.burrow.localhost', maxVersion: 'TLSv1.2' }),
    captureHello({}), // no SNI (IP host)
    captureHello({ servername: 'a'.repeat(60) + '.burrow.localhost', ALPNProtocols: Array.from({ length: 40 }, (_, i) => `proto-${i}`) }),
  ]);
  for (const s of seeds) assert.equal(parseClientHello(s, MAX).kind, 'hello');
});

/** Feeds `chunks` as growing prefixes; returns every result and the first decided one. */
function drive(chunks: Buffer[]): { results: ClientHelloResult[]; first: ClientHelloResult | null; total: Buffer } {
  const results: ClientHelloResult[] = [];
  let total = Buffer.alloc(0);
  let first: ClientHelloResult | null = null;
  for (const c of chunks) {
    total = Buffer.concat([total, c]);
    const r = parseClientHello(total, MAX);
    results.push(r);
    if (r.kind === 'need-more') {
      assert.ok(r.atLeast > total.length, `need-more asks for ${r.atLeast} with ${total.length} bytes`);
    } else if (first === null) {
      first = r;
      assert.ok(total.length <= MAX + 5 || r.kind !== 'hello', 'a hello was decided beyond maxSize');
    }
  }
  return { results, first, total };
}

function checkStable(chunks: Buffer[]): void {
  const { first, total } = drive(chunks);
  const whole = parseClientHello(total, MAX);
  if (first === null) assert.equal(whole.kind, 'need-more');
  else assert.equal(sniffOutcome(whole), sniffOutcome(first), 'a longer buffer changed the decision');
}

test('random bytes in random reads: no throw, first decision is final', () => {
  fc.assert(
    fc.property(bytesArb(1200), cutsArb, (bytes, cuts) => checkStable(splitAt(bytes, cuts))),
    fuzzParams(),
  );
});

test('random bytes behind a TLS handshake record header: no throw, first decision is final', () => {
  const header = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(header, bytesArb(800), cutsArb, ([minor, len], body, cuts) => {
      const buf = Buffer.concat([Buffer.from([0x16, 0x03, minor, len >> 8, len & 0xff, 0x01]), body]);
      checkStable(splitAt(buf, cuts));
    }),
    fuzzParams(),
  );
});

test('mutated real ClientHellos (OpenSSL via node:tls) in random reads: no throw, first decision is final', () => {
  fc.assert(
    fc.property(
      fc.nat().chain((k) => mutationArb(seeds[k % seeds.length]!)),
      cutsArb,
      (buf, cuts) => checkStable(splitAt(buf, cuts)),
    ),
    fuzzParams(),
  );
});

test('real ClientHellos byte at a time and re-split across TLS records: parsed the same as whole', () => {
  fc.assert(
    fc.property(fc.nat(), fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 6 }), (k, sizes) => {
      const seed = seeds[k % seeds.length]!;
      const want = parseClientHello(seed, MAX);
      // Re-frame the handshake bytes into several records of the given sizes (RFC 8446 §5.1 allows any split).
      const hs = seed.subarray(5);
      const records: Buffer[] = [];
      let off = 0;
      for (let n = 0; off < hs.length; n++) {
        const size = Math.min(sizes[n % sizes.length]!, hs.length - off);
        records.push(Buffer.from([0x16, 0x03, 0x01, size >> 8, size & 0xff]), hs.subarray(off, off + size));
        off += size;
      }
      const reframed = Buffer.concat(records);
      const { first } = drive(bytewise(reframed));
      assert.ok(first !== null && first.kind === 'hello' && want.kind === 'hello');
      assert.equal(first.sni, want.sni);
      assert.deepEqual(first.alpn, want.alpn);
      assert.equal(first.recordBytes, reframed.length);
    }),
    fuzzParams(0.2),
  );
});
