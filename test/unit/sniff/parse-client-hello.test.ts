// parseClientHello on real ClientHellos (node:tls, openssl s_client, curl captured on a plain TCP server) and on the
// hostile ClientHello inputs of DESIGN.md §6: truncated, wrong lengths, non-TLS, SSLv2, byte-at-a-time, split across
// records, > 16 KiB, no SNI, bad SNI, empty or oversized ALPN, duplicate extensions; plus fast-check properties.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fc from 'fast-check';
import {
  CLIENT_HELLO_OUTCOMES,
  MAX_ALPN_PROTOCOLS,
  NOT_TLS_SSLV2,
  parseClientHello,
  sniffOutcome,
  type ClientHelloResult,
} from '../../../src/sniff/parse-client-hello.js';

const KINDS = new Set(['need-more', 'not-tls', 'too-large', 'invalid', 'hello']);
const HAVE_OPENSSL = spawnSync('openssl', ['version']).status === 0;
const HAVE_CURL = spawnSync('curl', ['--version']).status === 0;

// ---------------------------------------------------------------------------------------------------------------
// Capturing real ClientHellos: a plain TCP server takes the bytes a TLS client sends first, then hangs up.
// ---------------------------------------------------------------------------------------------------------------

/**
 * Length of the records holding the first handshake message in `b`, once they are all there; else -1. Written
 * independently of the parser under test (trusts the lengths: only used on bytes from real clients).
 */
function capturedLength(b: Buffer): number {
  let off = 0;
  const hs: number[] = [];
  while (off + 5 <= b.length) {
    const len = b.readUInt16BE(off + 3);
    if (off + 5 + len > b.length) return -1;
    for (let k = 0; k < len; k++) hs.push(b[off + 5 + k]!);
    off += 5 + len;
    if (hs.length >= 4 && hs.length >= 4 + ((hs[1]! << 16) | (hs[2]! << 8) | hs[3]!)) return off;
  }
  return -1;
}

/**
 * Start a TCP server on 127.0.0.1:0, run `client(port)` against it, return the ClientHello records it sent.
 * `client` returns a stop function; the server, its socket and the client are all gone when this resolves.
 */
async function captureHello(client: (port: number) => () => Promise<void> | void): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  let stop: (() => Promise<void> | void) | undefined;
  try {
    const got = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ClientHello within 5 s')), 5000);
      server.on('connection', (sock) => {
        let buf = Buffer.alloc(0);
        sock.on('error', () => {});
        sock.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          const len = capturedLength(buf);
          if (len > 0) {
            clearTimeout(timer);
            sock.destroy();
            resolve(buf.subarray(0, len));
          }
        });
      });
    });
    stop = client(port);
    return await got;
  } finally {
    await stop?.();
    server.close();
    await once(server, 'close');
  }
}

function nodeClient(opts: tls.ConnectionOptions): (port: number) => () => void {
  return (port) => {
    const c = tls.connect({ host: '127.0.0.1', port, ...opts });
    c.on('error', () => {});
    return () => void c.destroy();
  };
}

function processClient(cmd: string, args: (port: number) => string[]): (port: number) => () => Promise<void> {
  return (port) => {
    // stdin stays open (a pipe) so openssl s_client does not quit before the handshake.
    const child: ChildProcess = spawn(cmd, args(port), { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = once(child, 'exit');
    child.on('error', () => {});
    return async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    };
  };
}

const openssl = (servername: string): ((port: number) => () => Promise<void>) =>
  processClient('openssl', (port) => [
    's_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-alpn', 'h2,http/1.1',
  ]);

const real: Record<string, Buffer> = {};

before(async () => {
  const jobs: Array<Promise<void>> = [
    captureHello(nodeClient({ servername: 'App.Burrow.localhost', ALPNProtocols: ['h2', 'http/1.1'] })).then((b) => {
      real.node = b;
    }),
    captureHello(nodeClient({})).then((b) => {
      real.nodeNoSni = b; // Node sends no SNI when connecting to an IP without servername
    }),
  ];
  if (HAVE_OPENSSL) {
    jobs.push(
      captureHello(openssl('openssl.burrow.localhost')).then((b) => {
        real.openssl = b;
      }),
      captureHello(openssl('10.1.2.3')).then((b) => {
        real.opensslIp = b;
      }),
      captureHello(openssl('app.burrow.localhost.')).then((b) => {
        real.opensslDot = b;
      }),
    );
  }
  if (HAVE_CURL) {
    jobs.push(
      captureHello(
        processClient('curl', (port) => [
          '-sk', `https://app.burrow.localhost:${port}/`,
          '--resolve', `app.burrow.localhost:${port}:127.0.0.1`, '--max-time', '2',
        ]),
      ).then((b) => {
        real.curl = b;
      }),
    );
  }
  await Promise.all(jobs);
});

// ---------------------------------------------------------------------------------------------------------------
// Hand-built ClientHellos
// ---------------------------------------------------------------------------------------------------------------

const u8 = (n: number): Buffer => Buffer.from([n]);
const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);

function ext(type: number, data: Buffer): Buffer {
  return cat(u16(type), u16(data.length), data);
}
function sniExt(name: string | Buffer): Buffer {
  const n = typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
  return ext(0, cat(u16(n.length + 3), u8(0), u16(n.length), n));
}
function alpnExt(names: string[]): Buffer {
  const list = cat(...names.map((s) => cat(u8(s.length), Buffer.from(s, 'latin1'))));
  return ext(16, cat(u16(list.length), list));
}
const paddingExt = (n: number): Buffer => ext(21, Buffer.alloc(n)); // RFC 7685

interface HelloSpec {
  legacyVersion?: number;
  sessionId?: Buffer;
  cipherSuites?: Buffer;
  compression?: Buffer;
  extensions?: Buffer[] | null; // null: no extensions block at all
}

/** A ClientHello handshake message (header included). */
function helloMessage(spec: HelloSpec = {}): Buffer {
  const sid = spec.sessionId ?? Buffer.alloc(32, 7);
  const cs = spec.cipherSuites ?? Buffer.from([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]);
  const cm = spec.compression ?? Buffer.from([0]);
  const exts = spec.extensions === undefined ? [sniExt('app.burrow.localhost'), alpnExt(['h2', 'http/1.1'])] : spec.extensions;
  const body = cat(
    u16(spec.legacyVersion ?? 0x0303),
    Buffer.alloc(32, 0xab),
    u8(sid.length), sid,
    u16(cs.length), cs,
    u8(cm.length), cm,
    exts === null ? Buffer.alloc(0) : cat(u16(exts.reduce((a, e) => a + e.length, 0)), ...exts),
  );
  return cat(u8(1), u24(body.length), body);
}

/** Wrap handshake bytes in handshake records of the given fragment sizes (the last size repeats). */
function records(hs: Buffer, sizes: number[] = [16384], version = 0x0301): Buffer {
  const out: Buffer[] = [];
  let off = 0;
  for (let k = 0; off < hs.length; k++) {
    const size = Math.min(sizes[Math.min(k, sizes.length - 1)]!, hs.length - off);
    out.push(cat(u8(0x16), u16(version), u16(size), hs.subarray(off, off + size)));
    off += size;
  }
  return cat(...out);
}

/** The handshake message carried by the records in `b` (records trusted). */
function unframe(b: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let off = 0; off + 5 <= b.length; ) {
    const len = b.readUInt16BE(off + 3);
    parts.push(b.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return cat(...parts);
}

const hello = (spec?: HelloSpec): Buffer => records(helloMessage(spec));

function expectKind<K extends ClientHelloResult['kind']>(r: ClientHelloResult, kind: K): Extract<ClientHelloResult, { kind: K }> {
  assert.equal(r.kind, kind, `expected ${kind}, got ${JSON.stringify(r)}`);
  return r as Extract<ClientHelloResult, { kind: K }>;
}

/** Every strict prefix is need-more with a consistent atLeast; the whole is `want`. */
function assertPrefixesNeedMore(b: Buffer, want: ClientHelloResult): void {
  for (let k = 0; k < b.length; k++) {
    const r = parseClientHello(b.subarray(0, k));
    const nm = expectKind(r, 'need-more');
    assert.ok(nm.atLeast > k && nm.atLeast <= b.length, `prefix ${k}: atLeast ${nm.atLeast} not in (${k}, ${b.length}]`);
  }
  assert.deepEqual(parseClientHello(b), want);
}

// ---------------------------------------------------------------------------------------------------------------

describe('real ClientHellos', () => {
  test('node tls.connect: SNI lowercased, ALPN in order, recordBytes = captured length', () => {
    const r = expectKind(parseClientHello(real.node!), 'hello');
    assert.equal(r.sni, 'app.burrow.localhost');
    assert.deepEqual(r.alpn, ['h2', 'http/1.1']);
    assert.equal(r.recordBytes, real.node!.length);
    assert.equal(r.legacyVersion, 0x0303);
    assert.equal(r.sniProblem, undefined);
    assert.equal(sniffOutcome(r), 'hello');
  });

  test('node tls.connect to an IP without servername: hello with sni null, outcome hello-no-sni', () => {
    const r = expectKind(parseClientHello(real.nodeNoSni!), 'hello');
    assert.equal(r.sni, null);
    assert.equal(r.sniProblem, undefined);
    assert.deepEqual(r.alpn, []);
    assert.equal(sniffOutcome(r), 'hello-no-sni');
  });

  test('openssl s_client -servername -alpn h2,http/1.1', { skip: !HAVE_OPENSSL && 'no openssl' }, () => {
    const r = expectKind(parseClientHello(real.openssl!), 'hello');
    assert.equal(r.sni, 'openssl.burrow.localhost');
    assert.deepEqual(r.alpn, ['h2', 'http/1.1']);
    assert.equal(r.recordBytes, real.openssl!.length);
  });

  test('openssl s_client -servername 10.1.2.3: sni-ip-literal', { skip: !HAVE_OPENSSL && 'no openssl' }, () => {
    const r = expectKind(parseClientHello(real.opensslIp!), 'hello');
    assert.equal(r.sni, null);
    assert.equal(r.sniProblem, 'ip-literal');
    assert.equal(sniffOutcome(r), 'sni-ip-literal');
  });

  test('openssl s_client -servername with a trailing dot: sni-trailing-dot', { skip: !HAVE_OPENSSL && 'no openssl' }, () => {
    const r = expectKind(parseClientHello(real.opensslDot!), 'hello');
    assert.equal(r.sni, null);
    assert.equal(r.sniProblem, 'trailing-dot');
    assert.equal(sniffOutcome(r), 'sni-trailing-dot');
  });

  test('curl https://app.burrow.localhost --resolve', { skip: !HAVE_CURL && 'no curl' }, () => {
    const r = expectKind(parseClientHello(real.curl!), 'hello');
    assert.equal(r.sni, 'app.burrow.localhost');
    assert.ok(r.alpn.includes('http/1.1'), `curl ALPN ${r.alpn.join(',')}`);
    assert.equal(r.recordBytes, real.curl!.length);
  });

  test('byte-at-a-time: every prefix is need-more (atLeast ahead of it), hello exactly at the full length', () => {
    for (const [name, b] of Object.entries(real)) {
      const want = parseClientHello(b);
      assert.equal(want.kind, 'hello', name);
      assertPrefixesNeedMore(b, want);
    }
  });

  test('bytes after the ClientHello (a ChangeCipherSpec record, early data) are not looked at', () => {
    const b = real.node!;
    const want = parseClientHello(b);
    const ccs = Buffer.from([0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
    assert.deepEqual(parseClientHello(cat(b, ccs, Buffer.from('junk'))), want);
  });

  test('re-framed into 2..5 records (and 1-byte records): same result, recordBytes grows by 5 per record', () => {
    for (const [name, b] of Object.entries(real)) {
      const hs = unframe(b);
      const want = parseClientHello(b) as Extract<ClientHelloResult, { kind: 'hello' }>;
      for (const parts of [2, 3, 4, 5]) {
        const size = Math.ceil(hs.length / parts);
        const framed = records(hs, [size]);
        const got = expectKind(parseClientHello(framed), 'hello');
        assert.deepEqual({ ...got, recordBytes: 0 }, { ...want, recordBytes: 0 }, `${name} in ${parts} records`);
        assert.equal(got.recordBytes, framed.length);
      }
      // handshake header itself split: records of 1, 2 and 3 bytes first
      for (const sizes of [[1, 2000], [2, 2000], [3, 2000], [1]]) {
        const framed = records(hs, sizes);
        const got = expectKind(parseClientHello(framed), 'hello');
        assert.equal(got.sni, want.sni, `${name} sizes ${sizes.join(',')}`);
        assert.deepEqual(got.alpn, want.alpn);
        assert.equal(got.recordBytes, framed.length);
      }
    }
  });

  test('re-framed records, byte-at-a-time: need-more at every prefix', () => {
    const hs = unframe(real.node!);
    const framed = records(hs, [7, 100, 33]);
    assertPrefixesNeedMore(framed, parseClientHello(framed));
  });
});

describe('not TLS', () => {
  test('HTTP request: not-tls from the first byte', () => {
    const b = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    for (let k = 1; k <= b.length; k++) expectKind(parseClientHello(b.subarray(0, k)), 'not-tls');
    assert.equal(sniffOutcome(parseClientHello(b)), 'not-tls');
  });

  test('empty input: need-more', () => {
    assert.deepEqual(parseClientHello(new Uint8Array(0)), { kind: 'need-more', atLeast: 5 });
  });

  test('SSLv2-compatible CLIENT-HELLO: not-tls "sslv2 hello" at the first byte', () => {
    // 2-byte header with the high bit set, msg type 1, version 3.1, cipher-specs/session-id/challenge lengths
    const v2 = Buffer.from('802e0103010015000000100000040000050000ff0a0b0c0d0e0f101112131415161718191a', 'hex');
    for (let k = 1; k <= v2.length; k++) {
      const r = expectKind(parseClientHello(v2.subarray(0, k)), 'not-tls');
      assert.equal(r.reason, NOT_TLS_SSLV2);
    }
    assert.equal(sniffOutcome(parseClientHello(v2)), 'not-tls-sslv2');
  });

  test('other first bytes: SSH banner, alert record, binary zero, 0x16 then a non-0x03 major', () => {
    expectKind(parseClientHello(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')), 'not-tls');
    expectKind(parseClientHello(Buffer.from([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28])), 'not-tls');
    expectKind(parseClientHello(Buffer.from([0x00])), 'not-tls');
    expectKind(parseClientHello(Buffer.from([0x16])), 'need-more');
    expectKind(parseClientHello(Buffer.from([0x16, 0x00])), 'not-tls');
    expectKind(parseClientHello(Buffer.from([0x16, 0x02, 0x00])), 'not-tls');
  });
});

describe('record layer', () => {
  test('record versions 0x0300..0x0304 are accepted; 0x0305 and up are invalid-record', () => {
    const hs = helloMessage();
    for (const v of [0x0300, 0x0301, 0x0302, 0x0303, 0x0304]) {
      expectKind(parseClientHello(records(hs, [16384], v)), 'hello');
    }
    for (const v of [0x0305, 0x03ff]) {
      const r = parseClientHello(records(hs, [16384], v));
      assert.equal(sniffOutcome(r), 'invalid-record', `0x${v.toString(16)}`);
      // decided at the third byte
      assert.equal(parseClientHello(records(hs, [16384], v).subarray(0, 3)).kind, 'invalid');
    }
  });

  test('zero-length record and record length > 16384 (record_overflow): invalid-record from the header alone', () => {
    assert.equal(sniffOutcome(parseClientHello(Buffer.from([0x16, 3, 1, 0, 0]))), 'invalid-record');
    assert.equal(sniffOutcome(parseClientHello(Buffer.from([0x16, 3, 1, 0x40, 0x01]))), 'invalid-record');
    assert.equal(sniffOutcome(parseClientHello(Buffer.from([0x16, 3, 1, 0xff, 0xff]))), 'invalid-record');
  });

  test('a non-handshake record before the ClientHello is complete: invalid-record', () => {
    const hs = helloMessage();
    const first = records(hs.subarray(0, 50));
    const alert = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    assert.equal(sniffOutcome(parseClientHello(cat(first, alert))), 'invalid-record');
    const badMajor = cat(first, Buffer.from([0x16, 0x04, 0x03, 0x00, 0x10]));
    assert.equal(sniffOutcome(parseClientHello(badMajor)), 'invalid-record');
  });

  test('handshake bytes after the ClientHello in its last record: invalid-record', () => {
    const hs = cat(helloMessage(), Buffer.from([0x0b, 0, 0, 0])); // a stray Certificate header
    assert.equal(sniffOutcome(parseClientHello(records(hs))), 'invalid-record');
  });

  test('handshake message that is not a ClientHello: invalid-not-client-hello at the first handshake byte', () => {
    const hs = helloMessage();
    hs[0] = 2; // ServerHello
    const b = records(hs);
    assert.equal(sniffOutcome(parseClientHello(b.subarray(0, 6))), 'invalid-not-client-hello');
    assert.equal(sniffOutcome(parseClientHello(b)), 'invalid-not-client-hello');
  });
});

describe('too large', () => {
  const big = helloMessage({ extensions: [sniExt('big.burrow.localhost'), paddingExt(20000)] });

  test('> 16 KiB in full-size records: too-large after the first record header (5 bytes)', () => {
    const b = records(big);
    assert.ok(b.length > 16384);
    expectKind(parseClientHello(b.subarray(0, 4)), 'need-more');
    expectKind(parseClientHello(b.subarray(0, 5)), 'too-large');
    expectKind(parseClientHello(b), 'too-large');
  });

  test('> 16 KiB in 1000-byte records: too-large once the handshake length is read (9 bytes)', () => {
    const b = records(big, [1000]);
    expectKind(parseClientHello(b.subarray(0, 8)), 'need-more');
    expectKind(parseClientHello(b.subarray(0, 9)), 'too-large');
    expectKind(parseClientHello(b), 'too-large');
  });

  test('records adding up to exactly maxSize fit; one byte more is too-large', () => {
    const base = helloMessage({ extensions: [sniExt('edge.burrow.localhost'), paddingExt(0)] });
    const pad = 16384 - 5 - base.length;
    const exact = records(helloMessage({ extensions: [sniExt('edge.burrow.localhost'), paddingExt(pad)] }));
    assert.equal(exact.length, 16384);
    assert.equal(expectKind(parseClientHello(exact), 'hello').sni, 'edge.burrow.localhost');
    const over = records(helloMessage({ extensions: [sniExt('edge.burrow.localhost'), paddingExt(pad + 1)] }));
    expectKind(parseClientHello(over), 'too-large');
    // the same bytes in smaller records need more header bytes: no longer fits
    expectKind(parseClientHello(records(unframe(exact), [8000])), 'too-large');
    // a custom limit
    expectKind(parseClientHello(real.node!, real.node!.length - 1), 'too-large');
    expectKind(parseClientHello(real.node!, real.node!.length), 'hello');
  });

  test('a small hello in 1-byte records whose headers push it past maxSize: too-large, never hello', () => {
    const hs = helloMessage({ extensions: [sniExt('tiny.burrow.localhost'), paddingExt(3000)] });
    const b = records(hs, [1]);
    assert.ok(b.length > 16384);
    expectKind(parseClientHello(b), 'too-large');
    // and within a larger limit it is a hello
    expectKind(parseClientHello(b, b.length), 'hello');
  });
});

describe('ClientHello body', () => {
  test('legacy_version major other than 3: invalid-version; 0x0301 and 0x0300 reported as sent', () => {
    assert.equal(sniffOutcome(parseClientHello(hello({ legacyVersion: 0x0200 }))), 'invalid-version');
    assert.equal(expectKind(parseClientHello(hello({ legacyVersion: 0x0301 })), 'hello').legacyVersion, 0x0301);
    assert.equal(expectKind(parseClientHello(hello({ legacyVersion: 0x0300 })), 'hello').legacyVersion, 0x0300);
  });

  test('session_id of 33 bytes, odd or empty cipher_suites, empty compression: invalid-length', () => {
    assert.equal(sniffOutcome(parseClientHello(hello({ sessionId: Buffer.alloc(33) }))), 'invalid-length');
    assert.equal(sniffOutcome(parseClientHello(hello({ cipherSuites: Buffer.from([0x13, 0x01, 0x13]) }))), 'invalid-length');
    assert.equal(sniffOutcome(parseClientHello(hello({ cipherSuites: Buffer.alloc(0) }))), 'invalid-length');
    assert.equal(sniffOutcome(parseClientHello(hello({ compression: Buffer.alloc(0) }))), 'invalid-length');
  });

  test('no extensions block at all (RFC 5246 §7.4.1.2): hello with no SNI and no ALPN', () => {
    const r = expectKind(parseClientHello(hello({ extensions: null })), 'hello');
    assert.equal(r.sni, null);
    assert.deepEqual(r.alpn, []);
  });

  test('empty extensions block: hello-no-sni', () => {
    assert.equal(sniffOutcome(parseClientHello(hello({ extensions: [] }))), 'hello-no-sni');
  });

  test('duplicate extension (server_name twice, an unknown type twice): invalid-duplicate-extension', () => {
    const twiceSni = hello({ extensions: [sniExt('a.example'), sniExt('b.example')] });
    assert.equal(sniffOutcome(parseClientHello(twiceSni)), 'invalid-duplicate-extension');
    const twiceOther = hello({ extensions: [ext(0xfe00, Buffer.alloc(2)), sniExt('a.example'), ext(0xfe00, Buffer.alloc(0))] });
    assert.equal(sniffOutcome(parseClientHello(twiceOther)), 'invalid-duplicate-extension');
  });
});

describe('SNI', () => {
  const sni = (name: string | Buffer): ClientHelloResult => parseClientHello(hello({ extensions: [sniExt(name)] }));

  test('usable names: lowercased; 63-char labels and 253 characters in all are fine', () => {
    assert.equal(expectKind(sni('APP.Burrow.LocalHost'), 'hello').sni, 'app.burrow.localhost');
    assert.equal(expectKind(sni('xn--bcher-kva.example'), 'hello').sni, 'xn--bcher-kva.example');
    assert.equal(expectKind(sni('a-b.1x.example'), 'hello').sni, 'a-b.1x.example');
    assert.equal(expectKind(sni('1.2.3.4.nip.io'), 'hello').sni, '1.2.3.4.nip.io');
    const label63 = `${'a'.repeat(63)}.example`;
    assert.equal(expectKind(sni(label63), 'hello').sni, label63);
    const name253 = [...Array(4)].map(() => 'b'.repeat(62)).join('.') + '.c'; // 62*4 + 3 dots + 2 = 253
    assert.equal(name253.length, 253);
    assert.equal(expectKind(sni(name253), 'hello').sni, name253);
  });

  const problems: Array<[string, string | Buffer, string]> = [
    ['underscore', 'a_b.example', 'sni-bad-chars'],
    ['space', 'exa mple.com', 'sni-bad-chars'],
    ['UTF-8 (not an A-label)', Buffer.from('bücher.example', 'utf8'), 'sni-bad-chars'],
    ['NUL', Buffer.from('evil.example\0.good', 'latin1'), 'sni-bad-chars'],
    ['leading hyphen', '-a.example', 'sni-bad-chars'],
    ['trailing hyphen', 'a-.example', 'sni-bad-chars'],
    ['empty label', 'a..example', 'sni-bad-chars'],
    ['leading dot', '.example', 'sni-bad-chars'],
    ['host:port', 'app.example:443', 'sni-bad-chars'],
    ['IPv4', '127.0.0.1', 'sni-ip-literal'],
    ['short IPv4 (inet_aton form)', '10.1', 'sni-ip-literal'],
    ['IPv6', '::1', 'sni-ip-literal'],
    ['bracketed IPv6', '[2001:db8::1]', 'sni-ip-literal'],
    ['trailing dot', 'app.burrow.localhost.', 'sni-trailing-dot'],
    ['300 characters', `${'a'.repeat(60)}.`.repeat(5).slice(0, 299) + 'x', 'sni-too-long'],
    ['64-character label', `${'a'.repeat(64)}.example`, 'sni-too-long'],
    ['empty', '', 'sni-empty'],
  ];
  for (const [what, name, label] of problems) {
    test(`${what}: hello with sni null, outcome ${label}`, () => {
      const r = expectKind(sni(name), 'hello');
      assert.equal(r.sni, null);
      assert.equal(sniffOutcome(r), label);
    });
  }

  test('server_name framing errors: invalid-server-name', () => {
    const name = Buffer.from('a.example');
    const cases: Array<[string, Buffer]> = [
      ['empty extension', ext(0, Buffer.alloc(0))],
      ['list length too long', ext(0, cat(u16(name.length + 4), u8(0), u16(name.length), name))],
      ['list length too short', ext(0, cat(u16(name.length + 2), u8(0), u16(name.length), name))],
      ['empty list', ext(0, u16(0))],
      ['name type 1', ext(0, cat(u16(name.length + 3), u8(1), u16(name.length), name))],
      ['name length too long', ext(0, cat(u16(name.length + 3), u8(0), u16(name.length + 1), name))],
      ['two names', ext(0, cat(u16(2 * (name.length + 3)), u8(0), u16(name.length), name, u8(0), u16(name.length), name))],
      ['entry cut after the type', ext(0, cat(u16(2), u8(0), u8(0)))],
    ];
    for (const [what, e] of cases) {
      assert.equal(sniffOutcome(parseClientHello(hello({ extensions: [e] }))), 'invalid-server-name', what);
    }
  });
});

describe('ALPN', () => {
  const alpn = (e: Buffer): ClientHelloResult => parseClientHello(hello({ extensions: [sniExt('a.example'), e] }));

  test(`up to ${MAX_ALPN_PROTOCOLS} names are returned in order, as latin1`, () => {
    const names = [...Array(MAX_ALPN_PROTOCOLS)].map((_, k) => `p${k}`);
    assert.deepEqual(expectKind(alpn(alpnExt(names)), 'hello').alpn, names);
    assert.deepEqual(expectKind(alpn(alpnExt(['\xff\x00x'])), 'hello').alpn, ['\xff\x00x']);
    assert.deepEqual(expectKind(alpn(alpnExt(['a'.repeat(255)])), 'hello').alpn, ['a'.repeat(255)]);
  });

  test('empty list, empty name, oversized list, bad lengths: invalid-alpn', () => {
    const cases: Array<[string, Buffer]> = [
      ['empty list', ext(16, u16(0))],
      ['empty extension', ext(16, Buffer.alloc(0))],
      ['empty name', alpnExt(['h2', ''])],
      [`${MAX_ALPN_PROTOCOLS + 1} names`, alpnExt([...Array(MAX_ALPN_PROTOCOLS + 1)].map((_, k) => `p${k}`))],
      ['list length too long', ext(16, cat(u16(4), u8(2), Buffer.from('h2')))],
      ['list length too short', ext(16, cat(u16(2), u8(2), Buffer.from('h2')))],
      ['name runs past the list', ext(16, cat(u16(3), u8(3), Buffer.from('h2')))],
    ];
    for (const [what, e] of cases) assert.equal(sniffOutcome(alpn(e)), 'invalid-alpn', what);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Length fields of a real hello, mutated one at a time
// ---------------------------------------------------------------------------------------------------------------

/** Offsets and widths of the length fields in a single-record hello (records trusted). */
function lengthFields(b: Buffer): Array<[string, number, 1 | 2 | 3]> {
  const f: Array<[string, number, 1 | 2 | 3]> = [['record length', 3, 2], ['handshake length', 6, 3]];
  let p = 5 + 4 + 34;
  f.push(['session_id length', p, 1]);
  p += 1 + b[p]!;
  f.push(['cipher_suites length', p, 2]);
  p += 2 + b.readUInt16BE(p);
  f.push(['compression_methods length', p, 1]);
  p += 1 + b[p]!;
  f.push(['extensions length', p, 2]);
  p += 2;
  while (p < b.length) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    if (type === 0) {
      f.push(['server_name extension length', p + 2, 2], ['server_name list length', p + 4, 2]);
      f.push(['host_name length', p + 7, 2]);
    } else if (type === 16) {
      f.push(['ALPN extension length', p + 2, 2], ['ALPN list length', p + 4, 2], ['first ALPN name length', p + 6, 1]);
    } else {
      f.push([`extension ${type} length`, p + 2, 2]);
    }
    p += 4 + len;
  }
  return f;
}

function writeField(b: Buffer, off: number, width: 1 | 2 | 3, v: number): void {
  if (width === 1) b[off] = v & 0xff;
  else if (width === 2) b.writeUInt16BE(v & 0xffff, off);
  else b.writeUIntBE(v & 0xffffff, off, 3);
}

describe('wrong lengths', () => {
  test('every length field of real hellos, set to ±1, ±7, 0 and its maximum: invalid, need-more or too-large', () => {
    let count = 0;
    for (const [name, b] of Object.entries(real)) {
      for (const [field, off, width] of lengthFields(b)) {
        const orig = width === 1 ? b[off]! : width === 2 ? b.readUInt16BE(off) : b.readUIntBE(off, 3);
        const max = 2 ** (8 * width) - 1;
        for (const v of [orig + 1, orig - 1, orig + 7, orig - 7, 0, max]) {
          if (v < 0 || v > max || v === orig) continue;
          const m = Buffer.from(b);
          writeField(m, off, width, v);
          let r: ClientHelloResult | undefined;
          assert.doesNotThrow(() => (r = parseClientHello(m)), `${name} ${field}=${v}`);
          assert.ok(
            r!.kind === 'invalid' || r!.kind === 'need-more' || r!.kind === 'too-large',
            `${name}: ${field} ${orig} → ${v} gave ${JSON.stringify(r)}`,
          );
          count++;
        }
      }
    }
    assert.ok(count > 50, `only ${count} mutations`);
  });

  test('specific lies: record shorter than the message → need-more; handshake shorter → invalid; longer → need-more', () => {
    const b = Buffer.from(real.node!);
    const rec = b.readUInt16BE(3);
    const shortRec = Buffer.from(b);
    shortRec.writeUInt16BE(rec - 1, 3); // the last byte now looks like the next record's header
    assert.ok(['need-more', 'invalid'].includes(parseClientHello(shortRec).kind));
    expectKind(parseClientHello(shortRec.subarray(0, b.length - 1)), 'need-more');
    const shortHs = Buffer.from(b);
    shortHs.writeUIntBE(b.readUIntBE(6, 3) - 1, 6, 3);
    assert.equal(sniffOutcome(parseClientHello(shortHs)), 'invalid-record');
    const longHs = Buffer.from(b);
    longHs.writeUIntBE(b.readUIntBE(6, 3) + 1, 6, 3);
    assert.equal(sniffOutcome(parseClientHello(longHs)), 'invalid-length'); // extensions no longer fill the message
  });
});

describe('outcome labels', () => {
  test('every label sniffOutcome gives is in CLIENT_HELLO_OUTCOMES, and they are distinct', () => {
    assert.equal(new Set(CLIENT_HELLO_OUTCOMES).size, CLIENT_HELLO_OUTCOMES.length);
    const samples: ClientHelloResult[] = [
      { kind: 'need-more', atLeast: 5 },
      { kind: 'not-tls', reason: 'x' },
      { kind: 'not-tls', reason: NOT_TLS_SSLV2 },
      { kind: 'too-large' },
      ...(['record', 'not-client-hello', 'version', 'length', 'duplicate-extension', 'server-name', 'alpn'] as const).map(
        (problem): ClientHelloResult => ({ kind: 'invalid', problem, reason: '' }),
      ),
      { kind: 'hello', sni: 'a', alpn: [], recordBytes: 1, legacyVersion: 0x0303 },
      { kind: 'hello', sni: null, alpn: [], recordBytes: 1, legacyVersion: 0x0303 },
      ...(['ip-literal', 'bad-chars', 'trailing-dot', 'too-long', 'empty'] as const).map(
        (sniProblem): ClientHelloResult => ({ kind: 'hello', sni: null, sniProblem, alpn: [], recordBytes: 1, legacyVersion: 0x0303 }),
      ),
    ];
    const seen = new Set(samples.map(sniffOutcome));
    assert.deepEqual([...seen].sort(), [...CLIENT_HELLO_OUTCOMES].sort());
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------------

/** Kinds are known, and the answer on a prefix is need-more or the same answer (decisions are final). */
function checkInvariants(b: Uint8Array, cuts: number[], maxSize = 16384): void {
  const full = parseClientHello(b, maxSize);
  assert.ok(KINDS.has(full.kind), `unknown kind ${full.kind}`);
  assert.ok((CLIENT_HELLO_OUTCOMES as readonly string[]).includes(sniffOutcome(full)));
  if (full.kind === 'hello') assert.ok(full.recordBytes <= b.length);
  // need-more only below the limit: the acceptor never has to buffer past maxSize to get an answer
  if (full.kind === 'need-more') assert.ok(full.atLeast > b.length && b.length < maxSize);
  for (const c of cuts) {
    const k = c % (b.length + 1);
    const r = parseClientHello(b.subarray(0, k), maxSize);
    if (r.kind !== 'need-more') assert.deepEqual(r, full, `prefix ${k} of ${b.length} decided differently`);
    else if (full.kind === 'hello') assert.ok(r.atLeast <= full.recordBytes, 'atLeast overshoots the hello');
  }
}

/** A hello-shaped input: a random body behind a plausible record + handshake header, in random record sizes. */
const framedJunk = fc
  .tuple(fc.uint8Array({ maxLength: 600 }), fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }))
  .map(([body, sizes]) => records(cat(u8(1), u24(body.length), Buffer.from(body)), sizes));

type Mutation = { at: number; op: 'set' | 'insert' | 'delete'; byte: number };
const mutation = fc.record({ at: fc.nat(), op: fc.constantFrom('set' as const, 'insert' as const, 'delete' as const), byte: fc.integer({ min: 0, max: 255 }) });

function mutate(b: Buffer, muts: Mutation[]): Buffer {
  let out: Buffer = Buffer.from(b);
  for (const m of muts) {
    const at = m.at % (out.length + 1);
    if (m.op === 'set' && at < out.length) out[at] = m.byte;
    else if (m.op === 'insert') out = cat(out.subarray(0, at), u8(m.byte), out.subarray(at));
    else if (m.op === 'delete' && at < out.length) out = cat(out.subarray(0, at), out.subarray(at + 1));
  }
  return out;
}

describe('properties (fast-check)', () => {
  const cuts = fc.array(fc.nat(), { minLength: 1, maxLength: 4 });

  test('10 000 random inputs (raw bytes, framed junk, mutated real hellos): never throw, decisions final, bounded time', () => {
    const reals = Object.values(real);
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 1200 }),
      framedJunk,
      fc.tuple(fc.constantFrom(...reals), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([b, m]) => mutate(b, m)),
    );
    const t0 = performance.now();
    fc.assert(
      fc.property(input, cuts, fc.constantFrom(16384, 16384, 300), (b, c, max) => {
        checkInvariants(b, c, max);
      }),
      { numRuns: 10_000, seed: 0x5eed },
    );
    const ms = performance.now() - t0;
    // Generous: a linear parser does this in well under a second; a pathological loop would not.
    assert.ok(ms < 8000, `10 000 runs took ${ms.toFixed(0)} ms`);
  });

  test('any framing of a real hello into records (sizes 1..16384) parses to the same SNI and ALPN', () => {
    const reals = Object.values(real);
    fc.assert(
      fc.property(
        fc.constantFrom(...reals),
        fc.array(fc.integer({ min: 1, max: 16384 }), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(0x0301, 0x0303),
        (b, sizes, version) => {
          const want = parseClientHello(b) as Extract<ClientHelloResult, { kind: 'hello' }>;
          const framed = records(unframe(b), sizes, version);
          const got = parseClientHello(framed);
          if (framed.length > 16384) return assert.equal(got.kind, 'too-large');
          assert.deepEqual({ ...got, recordBytes: 0 }, { ...want, recordBytes: 0 });
          checkInvariants(framed, [framed.length - 1, Math.floor(framed.length / 2)]);
        },
      ),
      { numRuns: 500, seed: 42 },
    );
  });

  test('worst-case shapes at 16 KiB (1-byte records, thousands of tiny extensions, 64-name ALPN) stay fast', () => {
    const manyExts = helloMessage({ extensions: [...Array(3000)].map((_, k) => ext(0x1000 + k, Buffer.alloc(0))) });
    const inputs = [
      records(helloMessage({ extensions: [sniExt('a.example'), paddingExt(2600)] }), [1]).subarray(0, 16384),
      records(manyExts),
      records(helloMessage({ extensions: [alpnExt([...Array(64)].map(() => 'x'.repeat(200)))] })),
      Buffer.alloc(16384, 0x16),
    ];
    const t0 = performance.now();
    for (let k = 0; k < 50; k++) for (const b of inputs) assert.ok(KINDS.has(parseClientHello(b).kind));
    const ms = performance.now() - t0;
    assert.ok(ms < 5000, `200 worst-case parses took ${ms.toFixed(0)} ms`);
  });
});
