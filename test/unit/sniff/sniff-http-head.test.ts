// sniffHttpHead on real request heads (curl, node:http) and on the acceptor's share of DESIGN.md §6 HTTP-head hostile
// input (64 KiB head, bare LF, obs-fold, two Hosts, NUL in a value; slowloris is the acceptor's deadline, CL/TE the
// worker filter's), early not-http for TLS and junk, fast-check properties, and a differential check against Node's
// own parser (llhttp): whatever llhttp refuses, we never route.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fc from 'fast-check';
import {
  HTTP_HEAD_OUTCOMES,
  HTTP_METHODS,
  headOutcome,
  sniffHttpHead,
  type HttpHeadSniff,
} from '../../../src/sniff/sniff-http-head.js';

const KINDS = new Set(['need-more', 'not-http', 'too-large', 'invalid', 'head']);
const HAVE_CURL = spawnSync('curl', ['--version']).status === 0;
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

type Head = Extract<HttpHeadSniff, { kind: 'head' }>;

function expectKind<K extends HttpHeadSniff['kind']>(r: HttpHeadSniff, kind: K): Extract<HttpHeadSniff, { kind: K }> {
  assert.equal(r.kind, kind, `expected ${kind}, got ${JSON.stringify(r)}`);
  return r as Extract<HttpHeadSniff, { kind: K }>;
}

/** Every strict prefix is need-more (byte-at-a-time arrival); the whole is `want`, also with bytes after it. */
function assertPrefixesNeedMore(b: Buffer, want: HttpHeadSniff): void {
  for (let k = 0; k < b.length; k++) {
    const r = sniffHttpHead(b.subarray(0, k));
    assert.equal(r.kind, 'need-more', `prefix ${k} of ${JSON.stringify(b.toString('latin1'))}: ${JSON.stringify(r)}`);
  }
  assert.deepEqual(sniffHttpHead(b), want);
  assert.deepEqual(sniffHttpHead(Buffer.concat([b, bytes('GARBAGE\n\0 after the head')])), want);
}

// ---------------------------------------------------------------------------------------------------------------
// Real first bytes: curl and node:http request heads, a node:tls ClientHello
// ---------------------------------------------------------------------------------------------------------------

/** Run `client(port)` against a plain TCP server on 127.0.0.1:0 until `done(bytes)` says how much to keep. */
async function capture(
  client: (port: number) => () => Promise<void> | void,
  done: (b: Buffer) => number,
): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let stop: (() => Promise<void> | void) | undefined;
  try {
    const got = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('nothing captured within 5 s')), 5000);
      server.on('connection', (sock) => {
        let buf = Buffer.alloc(0);
        sock.on('error', () => {});
        sock.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          const n = done(buf);
          if (n > 0) {
            clearTimeout(timer);
            sock.destroy();
            resolve(buf.subarray(0, n));
          }
        });
      });
    });
    stop = client((server.address() as net.AddressInfo).port);
    return await got;
  } finally {
    await stop?.();
    server.close();
    await once(server, 'close');
  }
}

const headEnd = (b: Buffer): number => {
  const k = b.indexOf('\r\n\r\n');
  return k < 0 ? -1 : k + 4;
};
const firstRecord = (b: Buffer): number => (b.length >= 5 && b.length >= 5 + b.readUInt16BE(3) ? 5 + b.readUInt16BE(3) : -1);

const real: { curl?: Buffer; node?: Buffer; clientHello?: Buffer } = {};

before(async () => {
  const jobs: Array<Promise<unknown>> = [
    capture((port) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/api?x=1', method: 'POST', headers: { Host: 'App.Burrow.localhost:8080', 'content-length': 5 } });
      req.on('error', () => {});
      req.end('hello');
      return () => void req.destroy();
    }, headEnd).then((b) => (real.node = b)),
    capture((port) => {
      const c = tls.connect({ host: '127.0.0.1', port, servername: 'app.burrow.localhost', ALPNProtocols: ['http/1.1'] });
      c.on('error', () => {});
      return () => void c.destroy();
    }, firstRecord).then((b) => (real.clientHello = b)),
  ];
  if (HAVE_CURL) {
    jobs.push(
      capture((port) => {
        const child = spawn('curl', ['-s', `http://app.burrow.localhost:${port}/path`, '--resolve', `app.burrow.localhost:${port}:127.0.0.1`, '--max-time', '2'], { stdio: 'ignore' });
        const exited = once(child, 'exit');
        child.on('error', () => {});
        return async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
        };
      }, headEnd).then((b) => (real.curl = b)),
    );
  }
  await Promise.all(jobs);
});

describe('real request heads', () => {
  test('curl: routed by Host app.burrow.localhost:PORT; every prefix need-more', { skip: !HAVE_CURL && 'no curl' }, () => {
    const b = real.curl!;
    const r = expectKind(sniffHttpHead(b), 'head');
    assert.equal(r.method, 'GET');
    assert.equal(r.target, '/path');
    assert.equal(r.version, '1.1');
    assert.equal(r.hostname, 'app.burrow.localhost');
    assert.equal(r.host, `app.burrow.localhost:${r.port}`);
    assert.equal(r.headLength, b.length);
    assertPrefixesNeedMore(b, r);
  });

  test('node:http POST with a body: head ends before the body; Host lowercased into hostname', () => {
    const b = real.node!;
    const r = expectKind(sniffHttpHead(b), 'head');
    assert.equal(r.method, 'POST');
    assert.equal(r.host, 'App.Burrow.localhost:8080');
    assert.equal(r.hostname, 'app.burrow.localhost');
    assert.equal(r.port, 8080);
    assertPrefixesNeedMore(b, r);
  });

  test('a real TLS ClientHello: not-http at the first byte', () => {
    const b = real.clientHello!;
    assert.equal(b[0], 0x16);
    for (const k of [1, 2, 5, b.length]) expectKind(sniffHttpHead(b.subarray(0, k)), 'not-http');
    assert.equal(headOutcome(sniffHttpHead(b)), 'not-http');
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('valid heads', () => {
  const cases: Array<[string, string, Partial<Head>]> = [
    ['Host with port', 'GET / HTTP/1.1\r\nHost: app.test:8080\r\n\r\n', { host: 'app.test:8080', hostname: 'app.test', port: 8080 }],
    ['uppercase Host lowercased', 'GET / HTTP/1.1\r\nHost: APP.Burrow.LOCALHOST\r\n\r\n', { host: 'APP.Burrow.LOCALHOST', hostname: 'app.burrow.localhost', port: null }],
    ['IPv6 literal with port', 'GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n', { host: '[::1]:8080', hostname: '::1', port: 8080 }],
    ['IPv6 literal without port', 'GET / HTTP/1.1\r\nHost: [2001:DB8::1]\r\n\r\n', { hostname: '2001:db8::1', port: null }],
    ['IPv4 Host', 'GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n', { hostname: '127.0.0.1', port: 80 }],
    ['trailing dot removed from hostname', 'GET / HTTP/1.1\r\nHost: app.test.:81\r\n\r\n', { host: 'app.test.:81', hostname: 'app.test', port: 81 }],
    ['OWS around the Host value, lowercase field name', 'GET / HTTP/1.1\r\nhost: \t app.test \t\r\n\r\n', { host: 'app.test', hostname: 'app.test' }],
    ['underscore in Host (as http-request-filter)', 'GET / HTTP/1.1\r\nHost: my_app.test\r\n\r\n', { hostname: 'my_app.test' }],
    ['HTTP/1.0 without Host', 'GET /x HTTP/1.0\r\nAccept: */*\r\n\r\n', { version: '1.0', host: '', hostname: '', port: null }],
    ['HTTP/1.0 with Host', 'HEAD / HTTP/1.0\r\nHost: app.test\r\n\r\n', { method: 'HEAD', version: '1.0', hostname: 'app.test' }],
    ['no header besides Host, empty value elsewhere, obs-text in a value', 'PUT /a HTTP/1.1\r\nX-Empty:\r\nHost: app.test\r\nX-Latin: caf\xe9\r\n\r\n', { method: 'PUT', hostname: 'app.test' }],
    ['absolute-form agreeing with Host (case, port ignored)', 'GET http://App.Test:8080/x?y HTTP/1.1\r\nHost: app.test\r\n\r\n', { target: 'http://App.Test:8080/x?y', hostname: 'app.test' }],
    ['absolute-form https, no path', 'GET HTTPS://app.test HTTP/1.1\r\nHost: app.test:443\r\n\r\n', { hostname: 'app.test', port: 443 }],
    ['HTTP/1.0 absolute-form without Host: routed by the target', 'GET http://App.Test/x HTTP/1.0\r\n\r\n', { host: '', hostname: 'app.test', port: null }],
    ['absolute-form naming another host than Host: routed by Host (the filter answers 421)', 'GET http://evil.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n', { hostname: 'app.test' }],
    ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n', { method: 'OPTIONS', target: '*' }],
    ['CONNECT authority-form', 'CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n', { method: 'CONNECT', target: 'app.test:443' }],
    ['M-SEARCH (llhttp method with a dash)', 'M-SEARCH /ssdp HTTP/1.1\r\nHost: app.test\r\n\r\n', { method: 'M-SEARCH', target: '/ssdp' }],
    ['target with every visible ASCII byte llhttp takes', 'GET /a|b{c}"d<e>^`\\~!$&\'()*+,;=:@%20 HTTP/1.1\r\nHost: app.test\r\n\r\n', { hostname: 'app.test' }],
  ];
  for (const [what, text, want] of cases) {
    test(`${what}: head; every prefix need-more; bytes after it ignored`, () => {
      const b = bytes(text);
      const r = expectKind(sniffHttpHead(b), 'head');
      for (const [k, v] of Object.entries(want)) assert.deepEqual(r[k as keyof Head], v, k);
      assert.equal(r.headLength, b.length);
      assert.equal(headOutcome(r), r.host === '' ? 'head-no-host' : 'head');
      assertPrefixesNeedMore(b, r);
    });
  }
});

describe('hostile heads', () => {
  const H = 'Host: app.test\r\n';
  const cases: Array<[string, string, string]> = [
    // DESIGN.md §6: bare LF, obs-fold, two Hosts, NUL
    ['bare LF ending the request line', `GET / HTTP/1.1\n${H}\r\n`, 'bare-lf'],
    ['bare LF ending a field line', `GET / HTTP/1.1\r\nHost: app.test\nX: y\r\n\r\n`, 'bare-lf'],
    ['bare LF ending the head', `GET / HTTP/1.1\r\n${H}\n`, 'bare-lf'],
    ['LF-only head', 'GET / HTTP/1.1\nHost: app.test\n\n', 'bare-lf'],
    ['bare LF inside a field name', `GET / HTTP/1.1\r\n${H}X\n: y\r\n\r\n`, 'bare-lf'],
    ['bare LF in the target', `GET /\n HTTP/1.1\r\n${H}\r\n`, 'bare-lf'],
    ['bare CR in a value', `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`, 'bare-cr'],
    ['CR CR at the end', `GET / HTTP/1.1\r\n${H}\r\r\n`, 'bare-cr'],
    ['CR not followed by LF after the version', `GET / HTTP/1.1\rX${H}\r\n`, 'bare-cr'],
    ['obs-fold', `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`, 'obs-fold'],
    ['obs-fold with HTAB', `GET / HTTP/1.1\r\n${H}X: a\r\n\tb\r\n\r\n`, 'obs-fold'],
    ['whitespace before the first field line', `GET / HTTP/1.1\r\n ${H}\r\n`, 'obs-fold'],
    ['two Host fields', `GET / HTTP/1.1\r\n${H}${H}\r\n`, 'duplicate-host'],
    ['two Host fields, other case, other value', `GET / HTTP/1.1\r\n${H}hOST: evil.test\r\n\r\n`, 'duplicate-host'],
    ['two Host fields on HTTP/1.0', `GET / HTTP/1.0\r\n${H}${H}\r\n`, 'duplicate-host'],
    ['NUL in a value', `GET / HTTP/1.1\r\n${H}X: a\0b\r\n\r\n`, 'header-value'],
    ['NUL in the Host value', 'GET / HTTP/1.1\r\nHost: app.test\0.evil\r\n\r\n', 'header-value'],
    ['control byte in a value', `GET / HTTP/1.1\r\n${H}X: a\x01b\r\n\r\n`, 'header-value'],
    ['DEL in a value', `GET / HTTP/1.1\r\n${H}X: a\x7fb\r\n\r\n`, 'header-value'],
    ['space before the colon', `GET / HTTP/1.1\r\n${H}X : y\r\n\r\n`, 'header-name'],
    ['space inside a field name', `GET / HTTP/1.1\r\n${H}X Y: z\r\n\r\n`, 'header-name'],
    ['empty field name', `GET / HTTP/1.1\r\n${H}: z\r\n\r\n`, 'header-name'],
    ['non-token byte in a field name', `GET / HTTP/1.1\r\n${H}X(: z\r\n\r\n`, 'header-name'],
    ['field line without a colon', `GET / HTTP/1.1\r\n${H}NoColon\r\n\r\n`, 'header-name'],
    ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\nAccept: */*\r\n\r\n', 'missing-host'],
    ['unknown method', `FOO / HTTP/1.1\r\n${H}\r\n`, 'method'],
    ['lowercase method', `get / HTTP/1.1\r\n${H}\r\n`, 'method'],
    ['PROXY protocol v1 header', 'PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n', 'method'],
    ['two-digit major version', `GET / HTTP/11.1\r\n${H}\r\n`, 'version'],
    ['version without a minor', `GET / HTTP/1\r\n${H}\r\n`, 'version'],
    ['version with a letter', `GET / HTTP/1.x\r\n${H}\r\n`, 'version'],
    ['lowercase version', `GET / http/1.1\r\n${H}\r\n`, 'version'],
    ['space after the version', `GET / HTTP/1.1 \r\n${H}\r\n`, 'version'],
    ['HTTP/0.9 request line', 'GET /\r\n\r\n', 'version'],
    ['empty target (two spaces)', `GET  / HTTP/1.1\r\n${H}\r\n`, 'target'],
    ['non-ASCII byte in the target', `GET /\xff HTTP/1.1\r\n${H}\r\n`, 'target'],
    ['asterisk-form with GET', `GET * HTTP/1.1\r\n${H}\r\n`, 'target'],
    ['CONNECT with origin-form', `CONNECT / HTTP/1.1\r\n${H}\r\n`, 'target'],
    ['CONNECT without port', `CONNECT app.test HTTP/1.1\r\n${H}\r\n`, 'target'],
    ['absolute-form with another scheme', `GET ftp://app.test/ HTTP/1.1\r\n${H}\r\n`, 'target'],
    ['absolute-form with userinfo', `GET http://u:p@app.test/ HTTP/1.1\r\n${H}\r\n`, 'target'],
    ['absolute-form with empty authority', `GET http:///x HTTP/1.1\r\n${H}\r\n`, 'target'],
    ['bare hostname as target', `GET app.test HTTP/1.1\r\n${H}\r\n`, 'target'],
  ];
  const badHosts = [
    '', 'app test', 'app..test', '.app.test', '.', 'app.test:', 'app.test:99999', 'app.test:123456', 'app.test:8x',
    'app.test:1:2', '[::1', '[::1]x', '[zz::1]', '[]', '[1.2.3.4]', 'user@app.test', 'app.test/x', 'caf\xe9.test',
    `${'a'.repeat(64)}.test`, `${'a.'.repeat(127)}ab`,
  ];
  for (const h of badHosts) cases.push([`bad Host ${JSON.stringify(h.length > 40 ? `${h.slice(0, 20)}…(${h.length})` : h)}`, `GET / HTTP/1.1\r\nHost: ${h}\r\n\r\n`, 'bad-host']);

  for (const [what, text] of [
    ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`],
    ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`],
    ['HTTP/0.9 with a version', `GET / HTTP/0.9\r\n${H}\r\n`],
    ['HTTP/9.9, nothing after the CR yet', `GET / HTTP/9.9\r`],
  ]) {
    // The worker's filter answers 505 to such versions on later requests; the first one must get the same.
    test(`${what}: well-formed but unsupported version → invalid-version (505), and no prefix says otherwise`, () => {
      const b = bytes(text!);
      const r = expectKind(sniffHttpHead(b), 'invalid');
      assert.equal(r.problem, 'version', r.reason);
      assert.equal(r.status, 505);
      assert.match(r.reason, /not supported/);
      assert.equal(headOutcome(r), 'invalid-version');
      for (let k = 0; k < b.length; k++) {
        const p = sniffHttpHead(b.subarray(0, k));
        if (p.kind !== 'need-more') assert.deepEqual(p, r, `prefix ${k}`);
      }
    });
  }

  for (const [what, text, problem] of cases) {
    test(`${what}: invalid-${problem} (400), and no prefix says otherwise`, () => {
      const b = bytes(text);
      const r = expectKind(sniffHttpHead(b), 'invalid');
      assert.equal(r.problem, problem, r.reason);
      assert.equal(r.status, 400);
      assert.equal(headOutcome(r), `invalid-${problem}`);
      for (let k = 0; k < b.length; k++) {
        const p = sniffHttpHead(b.subarray(0, k));
        if (p.kind !== 'need-more') assert.deepEqual(p, r, `prefix ${k}`);
      }
    });
  }

  test('64 KiB head: need-more up to 16383 bytes, too-large from 16384 (never buffers on)', () => {
    let text = `GET / HTTP/1.1\r\n${H}`;
    while (text.length < 64 * 1024) text += `X-Pad-${text.length}: ${'p'.repeat(200)}\r\n`;
    const b = bytes(`${text}\r\n`);
    expectKind(sniffHttpHead(b.subarray(0, 16383)), 'need-more');
    expectKind(sniffHttpHead(b.subarray(0, 16384)), 'too-large');
    expectKind(sniffHttpHead(b), 'too-large');
    assert.equal(headOutcome(sniffHttpHead(b)), 'too-large');
  });

  test('a head of exactly maxSize bytes is a head; one byte more is too-large; maxSize is a parameter', () => {
    const base = `GET / HTTP/1.1\r\n${H}X-Pad: `;
    const pad = 16384 - base.length - 4;
    const exact = bytes(`${base}${'p'.repeat(pad)}\r\n\r\n`);
    assert.equal(exact.length, 16384);
    assert.equal(expectKind(sniffHttpHead(exact), 'head').headLength, 16384);
    expectKind(sniffHttpHead(bytes(`${base}${'p'.repeat(pad + 1)}\r\n\r\n`)), 'too-large');
    const small = bytes(`GET / HTTP/1.1\r\n${H}\r\n`);
    expectKind(sniffHttpHead(small, small.length), 'head');
    expectKind(sniffHttpHead(small, small.length - 1), 'too-large');
  });

  test('a request line longer than maxSize: too-large', () => {
    expectKind(sniffHttpHead(bytes(`GET /${'a'.repeat(20000)} HTTP/1.1\r\n${H}\r\n`)), 'too-large');
  });
});

describe('not HTTP', () => {
  const junk: Array<[string, Buffer, number]> = [
    ['NUL', Buffer.from([0, 0, 0]), 1],
    ['TLS record header', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), 1],
    ['SSH banner (all token bytes up to the CR)', bytes('SSH-2.0-OpenSSH_9.2\r\n'), 20],
    ['leading space', bytes(' GET / HTTP/1.1\r\n'), 1],
    ['leading empty line', bytes('\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n'), 1],
    ['no space after the method', bytes('GET/ HTTP/1.1\r\n'), 4],
    ['PROXY protocol v2 signature', Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), 1],
    ['token longer than 20 bytes', bytes('A'.repeat(21)), 21],
    ['UTF-8 text', bytes('ÿsomething'), 1],
  ];
  for (const [what, b, at] of junk) {
    test(`${what}: not-http once ${at} byte(s) are in, need-more before`, () => {
      for (let k = 0; k < at; k++) expectKind(sniffHttpHead(b.subarray(0, k)), 'need-more');
      for (let k = at; k <= b.length; k++) expectKind(sniffHttpHead(b.subarray(0, k)), 'not-http');
    });
  }
});

describe('outcome labels', () => {
  test('headOutcome gives each label of HTTP_HEAD_OUTCOMES, all distinct', () => {
    assert.equal(new Set(HTTP_HEAD_OUTCOMES).size, HTTP_HEAD_OUTCOMES.length);
    const problems = HTTP_HEAD_OUTCOMES.filter((l) => l.startsWith('invalid-')).map((l) => l.slice('invalid-'.length));
    const samples: HttpHeadSniff[] = [
      { kind: 'need-more' },
      { kind: 'not-http', reason: '' },
      { kind: 'too-large' },
      { kind: 'head', method: 'GET', target: '/', version: '1.1', host: 'a', hostname: 'a', port: null, headLength: 1 },
      { kind: 'head', method: 'GET', target: '/', version: '1.0', host: '', hostname: '', port: null, headLength: 1 },
      ...problems.map((p) => ({ kind: 'invalid', problem: p, reason: '', status: 400 }) as HttpHeadSniff),
    ];
    assert.deepEqual([...new Set(samples.map(headOutcome))].sort(), [...HTTP_HEAD_OUTCOMES].sort());
  });

  test('every method we accept is one Node knows (so we are never more lenient than llhttp on methods)', () => {
    for (const m of HTTP_METHODS) assert.ok(http.METHODS.includes(m), m);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------------

function checkInvariants(b: Uint8Array, cuts: number[], maxSize = 16384): void {
  const full = sniffHttpHead(b, maxSize);
  assert.ok(KINDS.has(full.kind), `unknown kind ${full.kind}`);
  assert.ok((HTTP_HEAD_OUTCOMES as readonly string[]).includes(headOutcome(full)));
  if (full.kind === 'head') assert.ok(full.headLength <= Math.min(b.length, maxSize));
  // need-more only below the limit: the acceptor never has to buffer past maxSize to get an answer
  if (full.kind === 'need-more') assert.ok(b.length < maxSize);
  for (const c of cuts) {
    const k = c % (b.length + 1);
    const r = sniffHttpHead(b.subarray(0, k), maxSize);
    if (r.kind !== 'need-more') assert.deepEqual(r, full, `prefix ${k} of ${b.length} decided differently`);
  }
}

const VALID_HEADS = [
  'GET / HTTP/1.1\r\nHost: app.test\r\n\r\n',
  'POST /api?x=1 HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 2\r\nX-Y: caf\xe9\r\n\r\nhi',
  'GET http://app.test/x HTTP/1.1\r\nHost: APP.test.\r\nAccept: */*\r\n\r\n',
  'OPTIONS * HTTP/1.0\r\n\r\n',
];

/** Heads assembled from fragments that each tend to matter to the parser. */
const headish = fc
  .array(
    fc.constantFrom(
      'GET', 'POST', 'get', 'M-SEARCH', ' ', '  ', '/', '*', 'http://a.test', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/1.', '\r\n',
      '\r', '\n', '\r\n\r\n', 'Host: ', 'host:', 'a.test', ':8080', '[::1]', 'X-A: b', ':', '\t', '\0', '\xff', '.',
    ),
    { maxLength: 30 },
  )
  .map((parts) => bytes(parts.join('')));

const mutation = fc.record({ at: fc.nat(), op: fc.constantFrom('set' as const, 'insert' as const, 'delete' as const), byte: fc.integer({ min: 0, max: 255 }) });

function mutate(b: Buffer, muts: Array<{ at: number; op: 'set' | 'insert' | 'delete'; byte: number }>): Buffer {
  let out: Buffer = Buffer.from(b);
  for (const m of muts) {
    const at = m.at % (out.length + 1);
    if (m.op === 'set' && at < out.length) out[at] = m.byte;
    else if (m.op === 'insert') out = Buffer.concat([out.subarray(0, at), Buffer.from([m.byte]), out.subarray(at)]);
    else if (m.op === 'delete' && at < out.length) out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
  }
  return out;
}

describe('properties (fast-check)', () => {
  test('10 000 random inputs (raw bytes, head-ish fragments, mutated heads): never throw, decisions final, bounded time', () => {
    const heads = [...VALID_HEADS.map(bytes), ...(real.curl ? [real.curl] : []), real.node!];
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 400 }),
      headish,
      fc.tuple(fc.constantFrom(...heads), fc.array(mutation, { minLength: 1, maxLength: 5 })).map(([b, m]) => mutate(b, m)),
    );
    const t0 = performance.now();
    fc.assert(
      fc.property(input, fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), fc.constantFrom(16384, 64), (b, cuts, max) => {
        checkInvariants(b, cuts, max);
      }),
      { numRuns: 10_000, seed: 0x5eed },
    );
    const ms = performance.now() - t0;
    assert.ok(ms < 8000, `10 000 runs took ${ms.toFixed(0)} ms`); // generous: linear work is far below this
  });

  test('worst-case shapes at 16 KiB (one huge header, thousands of tiny headers, long target) stay fast', () => {
    const inputs = [
      bytes(`GET / HTTP/1.1\r\nHost: a.test\r\nX: ${'v'.repeat(16300)}\r\n\r\n`),
      bytes(`GET / HTTP/1.1\r\nHost: a.test\r\n${'a:\r\n'.repeat(4000)}\r\n`),
      bytes(`GET /${'t'.repeat(16300)} HTTP/1.1\r\nHost: a.test\r\n\r\n`),
      Buffer.alloc(16384, 0x41),
    ];
    const t0 = performance.now();
    for (let k = 0; k < 50; k++) for (const b of inputs) assert.ok(KINDS.has(sniffHttpHead(b).kind));
    const ms = performance.now() - t0;
    assert.ok(ms < 5000, `200 worst-case sniffs took ${ms.toFixed(0)} ms`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Differential: Node's parser (llhttp) as the reference for what must not be routed
// ---------------------------------------------------------------------------------------------------------------

type Verdict = 'accepted' | 'rejected' | 'pending';

/**
 * Ask a node:http server what it makes of `raw`: 'accepted' when its request (or connect) handler ran, 'rejected'
 * when it answered an error status itself (missing Host) or through 'clientError', 'pending' when it still waits.
 */
async function llhttpVerdict(port: number, raw: Buffer): Promise<Verdict> {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  try {
    await once(sock, 'connect');
    sock.write(raw);
    return await new Promise<Verdict>((resolve) => {
      let got = '';
      const timer = setTimeout(() => resolve('pending'), 1000);
      const done = (v: Verdict): void => {
        clearTimeout(timer);
        resolve(v);
      };
      sock.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
        if (m) done(m[1] === '299' ? 'accepted' : 'rejected');
        else if (got.length >= 12) done('rejected');
      });
      sock.on('close', () => done('rejected'));
    });
  } finally {
    sock.destroy();
  }
}

describe('differential against llhttp', () => {
  test('50 heads: whatever Node\'s parser rejects, sniffHttpHead does not route', async (t) => {
    const server = http.createServer((_req, res) => {
      res.writeHead(299, { connection: 'close' }); // a status only the request handler sends
      res.end();
    });
    server.on('connect', (_req, sock) => {
      sock.end('HTTP/1.1 299 Connected\r\n\r\n');
    });
    let clientErrors = 0;
    server.on('clientError', (_err, sock) => {
      clientErrors++;
      if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else sock.destroy();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    try {
      const H = 'Host: app.test\r\n';
      const handPicked = [
        `GET / HTTP/1.1\r\n${H}\r\n`,
        `POST /x HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`,
        `GET / HTTP/1.0\r\n\r\n`,
        `OPTIONS * HTTP/1.1\r\n${H}\r\n`,
        `CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n`,
        `GET http://app.test/ HTTP/1.1\r\n${H}\r\n`,
        `GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n`,
        `GET / HTTP/1.1\r\n${H}X: caf\xe9\r\n\r\n`,
        `GET /a|b HTTP/1.1\r\n${H}\r\n`,
        `GET / HTTP/1.1\n${H}\r\n`,
        `GET / HTTP/1.1\r\nHost: app.test\nX: y\r\n\r\n`,
        `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`,
        `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`,
        `GET / HTTP/1.1\r\n ${H}\r\n`,
        `GET / HTTP/1.1\r\n${H}${H}\r\n`,
        `GET / HTTP/1.1\r\n${H}X: a\0b\r\n\r\n`,
        `GET / HTTP/1.1\r\n${H}X: a\x01b\r\n\r\n`,
        `GET / HTTP/1.1\r\n${H}X : b\r\n\r\n`,
        `GET / HTTP/1.1\r\n${H}: b\r\n\r\n`,
        `GET / HTTP/1.1\r\n\r\n`,
        `GET / HTTP/1.1\r\nHost:\r\n\r\n`,
        `GET / HTTP/1.1\r\nHost: a b\r\n\r\n`,
        `FOO / HTTP/1.1\r\n${H}\r\n`,
        `get / HTTP/1.1\r\n${H}\r\n`,
        `GET / HTTP/1.2\r\n${H}\r\n`,
        `GET / HTTP/2.0\r\n${H}\r\n`,
        `GET /\xff HTTP/1.1\r\n${H}\r\n`,
        `GET  / HTTP/1.1\r\n${H}\r\n`,
        `GET * HTTP/1.1\r\n${H}\r\n`,
        `GET http://evil.test/ HTTP/1.1\r\n${H}\r\n`,
      ];
      const generated = fc.sample(
        fc.record({
          method: fc.constantFrom('GET', 'POST', 'DELETE', 'M-SEARCH', 'get', 'FOO'),
          target: fc.constantFrom('/', '/a?b=c', '*', 'http://app.test/x', '/a{b}', '/\x7f'),
          version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/1.2', 'http/1.1'),
          host: fc.constantFrom<string | null>('app.test', 'APP.test:8080', '[::1]', 'a_b.test', 'bad host', '', 'app.test:99999', null),
          fields: fc.array(
            fc.tuple(fc.constantFrom('X-A', 'Accept', 'X A', '', 'X(Y'), fc.constantFrom('v', '', 'a\0b', 'a\x01b', 'caf\xe9', '\tv\t', 'a\rb')),
            { maxLength: 3 },
          ),
          eol: fc.constantFrom('\r\n', '\r\n', '\r\n', '\n'),
          twoHosts: fc.boolean(),
        }),
        { seed: 20240601, numRuns: 20 },
      ).map((g) => {
        const lines = [`${g.method} ${g.target} ${g.version}`];
        if (g.host !== null) lines.push(`Host: ${g.host}`);
        if (g.twoHosts && g.host !== null) lines.push(`host: ${g.host}`);
        for (const [n, v] of g.fields) lines.push(`${n}: ${v}`);
        return lines.join(g.eol) + g.eol + g.eol;
      });
      const cases = [...handPicked, ...generated];
      assert.equal(cases.length, 50);

      const tally = { bothAccept: 0, bothRefuse: 0, weStricter: 0, llhttpPending: 0 };
      for (const text of cases) {
        const raw = bytes(text);
        const ours = sniffHttpHead(raw);
        const theirs = await llhttpVerdict(port, raw);
        if (theirs === 'rejected') {
          assert.notEqual(ours.kind, 'head', `llhttp rejects but we route: ${JSON.stringify(text)} → ${JSON.stringify(ours)}`);
          tally.bothRefuse++;
        } else if (theirs === 'pending') {
          tally.llhttpPending++;
        } else if (ours.kind === 'head') {
          tally.bothAccept++;
        } else {
          tally.weStricter++;
          t.diagnostic(`stricter than llhttp: ${JSON.stringify(text)} → ${headOutcome(ours)}`);
        }
        assert.notEqual(ours.kind, 'need-more', `complete head judged need-more: ${JSON.stringify(text)}`);
      }
      t.diagnostic(`tally ${JSON.stringify(tally)}, clientError events ${clientErrors}`);
      // The comparison must have teeth both ways.
      assert.ok(tally.bothAccept >= 8, `only ${tally.bothAccept} heads accepted by both`);
      assert.ok(tally.bothRefuse >= 15, `only ${tally.bothRefuse} heads refused by both`);
    } finally {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    }
  });
});
