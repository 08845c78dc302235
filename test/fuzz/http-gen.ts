// Generator of HTTP/1.x request messages for the HTTP fuzzers and the llhttp differential test: mostly well-formed
// requests with the faults DESIGN.md §6 names mixed in (CL+TE, duplicate CL, bad chunk sizes, bare LF, obs-fold,
// NUL/CR in values, bad names, odd versions and targets, X-Forwarded-*), as latin1 strings. Test-only.
import fc from 'fast-check';

const EOL = fc.oneof({ weight: 80, arbitrary: fc.constant('\r\n') }, fc.constant('\n'), fc.constant('\r'), fc.constant('\r\r\n'));

const METHOD = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH') },
  fc.constantFrom('CONNECT', 'FOO', 'get', 'G T', '', 'GET\t', 'M-SEARCH', 'PROPFIND', 'TRACE', 'GET\x00'),
);

const TARGET = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('/', '/a/b?c=d', '/x%20y', '/?q=1#f') },
  fc.constantFrom(
    '*',
    'http://app.example.test/x',
    'https://app.example.test:8443/',
    'http://user@app.example.test/',
    'http://other.example.test/',
    '/a b',
    '/\x7f',
    '/\xe4',
    '',
    'app.example.test:80',
    '//double',
    '/\x00',
  ),
);

const VERSION = fc.oneof(
  { weight: 10, arbitrary: fc.constant('HTTP/1.1') },
  { weight: 3, arbitrary: fc.constant('HTTP/1.0') },
  fc.constantFrom('HTTP/2.0', 'HTTP/1.2', 'HTTP/0.9', 'http/1.1', 'HTTP/1.10', 'HTTP/1', 'HTTP/1.1 ', 'HTTPS/1.1', ''),
);

const HOST_VALUE = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('app.example.test', 'app.example.test:8080', 'APP.Example.Test', 'app.example.test.') },
  fc.constantFrom('', 'app..example.test', 'app.example.test:99999', 'app.example.test:', '[::1]', '[::1]:80', 'a b', 'app.example.test,other', 'other.example.test', 'app.example.test:8o', 'x\x00y'),
);

const CL_VALUE = fc.oneof(
  { weight: 6, arbitrary: fc.nat({ max: 20 }).map(String) },
  fc.constantFrom('', ' 5', '5 ', '5, 5', '5,5', '+5', '-1', '0x5', '05', '5.0', '99999999999999999999', '1e1', '\x005'),
);

const TE_VALUE = fc.oneof(
  { weight: 6, arbitrary: fc.constant('chunked') },
  fc.constantFrom('Chunked', ' chunked', 'chunked ', 'gzip, chunked', 'chunked, gzip', 'identity', 'chunked, chunked', 'xchunked', 'chunked\x00', ',chunked', 'gzip', ''),
);

const HEADER_NAME = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom('Accept', 'User-Agent', 'X-Test', 'Cookie', 'Connection', 'Upgrade', 'Expect') },
  { weight: 2, arbitrary: fc.constantFrom('X-Forwarded-For', 'X-Forwarded-Host', 'x-forwarded-proto', 'Forwarded', 'X-Real-IP', 'X_Forwarded_For') },
  fc.constantFrom('Bad Name', 'X\x00Y', '', 'X:Y', 'X@Y', 'X\tY', '\xe4', 'Host ', ' Host', 'X-Ok\x7f'),
);

const HEADER_VALUE = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom('1', 'text/html', 'keep-alive', 'close', 'upgrade', 'websocket', '100-continue', '  spaced  ', '') },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 30 }) },
  fc.constantFrom('a\x00b', 'a\rb', 'a\nb', 'a\x01b', 'a\x7fb', '\xe4\xf6', 'a\tb', 'a\r\n folded', 'a\r\n\tfolded'),
);

interface Field {
  name: string;
  sep: string;
  value: string;
  eol: string;
}

const FIELD: fc.Arbitrary<Field> = fc.record({
  name: HEADER_NAME,
  sep: fc.oneof({ weight: 40, arbitrary: fc.constant(': ') }, fc.constantFrom(':', ' : ', ':\t', ' :')),
  value: HEADER_VALUE,
  eol: EOL,
});

/** One chunk of a chunked body: size line (sometimes wrong) + data + CRLF. */
const CHUNK = fc.record({
  data: fc.string({ unit: 'binary-ascii', maxLength: 12 }),
  size: fc.oneof({ weight: 8, arbitrary: fc.constant<string | null>(null) }, fc.constantFrom('g', '-1', '0x5', ' 5', '5 ', '', 'FFFFFFFFFFFFFFFFF', '5;', '5;a=b', '5;a="q"', '5 ;a', '+5')),
  tail: fc.oneof({ weight: 10, arbitrary: fc.constant('\r\n') }, fc.constantFrom('', '\n', 'xx\r\n')),
});

export interface GeneratedRequest {
  /** The whole message (head + body) as latin1. */
  text: string;
  /** Rough description for failure messages. */
  shape: string;
}

const REQUEST = fc.record({
  leadingCrlf: fc.oneof({ weight: 10, arbitrary: fc.constant('') }, fc.constantFrom('\r\n', '\n', '\r\n\r\n')),
  method: METHOD,
  sp1: fc.oneof({ weight: 20, arbitrary: fc.constant(' ') }, fc.constantFrom('  ', '\t')),
  target: TARGET,
  sp2: fc.oneof({ weight: 20, arbitrary: fc.constant(' ') }, fc.constantFrom('  ', '\t', '')),
  version: VERSION,
  rlEol: EOL,
  host: fc.oneof({ weight: 8, arbitrary: fc.constant(1) }, fc.constantFrom(0, 2)),
  hostValue: HOST_VALUE,
  hostValue2: HOST_VALUE,
  cl: fc.oneof({ weight: 5, arbitrary: fc.constant<string[]>([]) }, fc.array(CL_VALUE, { minLength: 1, maxLength: 2 })),
  te: fc.oneof({ weight: 5, arbitrary: fc.constant<string[]>([]) }, fc.array(TE_VALUE, { minLength: 1, maxLength: 2 })),
  fields: fc.array(FIELD, { maxLength: 5 }),
  endEol: EOL,
  body: fc.string({ unit: 'binary-ascii', maxLength: 20 }),
  chunks: fc.array(CHUNK, { maxLength: 3 }),
  lastChunk: fc.oneof({ weight: 8, arbitrary: fc.constant('0\r\n\r\n') }, fc.constantFrom('0\r\n', '0\n\n', '00\r\n\r\n', '0;x=y\r\n\r\n', '0\r\nTrailer: v\r\n\r\n', '0\r\nContent-Length: 5\r\n\r\n', '0\r\n\r\r\n')),
});

/** A request message with a body consistent with its own CL/TE headers (as far as those headers make sense). */
export const requestArb: fc.Arbitrary<GeneratedRequest> = REQUEST.map((r) => {
  const lines: string[] = [];
  let head = `${r.leadingCrlf}${r.method}${r.sp1}${r.target}${r.sp2}${r.version}${r.rlEol}`;
  if (r.host >= 1) lines.push(`Host: ${r.hostValue}\r\n`);
  if (r.host >= 2) lines.push(`Host: ${r.hostValue2}\r\n`);
  for (const te of r.te) lines.push(`Transfer-Encoding: ${te}\r\n`);
  // The body length for Content-Length framing: the declared value when it is a plain number (so the message is
  // complete), else whatever body was generated.
  let body = r.body;
  for (const cl of r.cl) {
    const n = /^\d{1,3}$/.test(cl) ? Number(cl) : -1;
    if (n >= 0 && r.te.length === 0) body = r.body.padEnd(n, 'b').slice(0, n);
    lines.push(`Content-Length: ${cl}\r\n`);
  }
  for (const f of r.fields) lines.push(`${f.name}${f.sep}${f.value}${f.eol}`);
  head += lines.join('') + r.endEol;
  let text: string;
  if (r.te.length > 0) {
    const chunks = r.chunks.map((c) => `${c.size ?? c.data.length.toString(16)}\r\n${c.data}${c.tail}`).join('');
    text = head + chunks + r.lastChunk;
  } else {
    text = head + (r.cl.length > 0 ? body : '');
  }
  return { text, shape: `${r.method} ${r.version} host×${r.host} cl=${JSON.stringify(r.cl)} te=${JSON.stringify(r.te)} fields=${r.fields.length}` };
});

/** Hostnames the generated requests treat as routed to the connection (see HOST_VALUE / TARGET). */
export const ALLOWED_HOST = 'app.example.test';
