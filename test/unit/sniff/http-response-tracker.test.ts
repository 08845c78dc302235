// HttpResponseTracker: where responses end (RFC 9112 §6.3), fed in any chunk split; generated response sequences
// checked against the byte offsets where each response ends.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HttpResponseTracker } from '../../../src/sniff/http-response-tracker.js';
import { bytesArb, bytewise, cutsArb, fuzzParams, mutationArb, splitAt } from '../../fuzz/fuzz-support.js';

/** A tracker that was told about `methods`, fed `text` in the given chunks. */
function feed(methods: string[], chunks: Buffer[]): HttpResponseTracker {
  const t = new HttpResponseTracker();
  for (const m of methods) t.request(m);
  for (const c of chunks) t.push(c);
  return t;
}

/** `unanswered` after each byte of `text`, fed one byte at a time. */
function unansweredPerByte(methods: string[], text: string): number[] {
  const t = new HttpResponseTracker();
  for (const m of methods) t.request(m);
  return bytewise(Buffer.from(text, 'latin1')).map((b) => {
    t.push(b);
    return t.unanswered;
  });
}

const OK = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

describe('HttpResponseTracker', () => {
  test('Content-Length: settled exactly at the last body byte, whatever the split', () => {
    const text = OK('hello', 'Content-Type: text/plain\r\n');
    const counts = unansweredPerByte(['GET'], text);
    assert.deepEqual(counts.slice(0, -1), new Array(text.length - 1).fill(1));
    assert.equal(counts.at(-1), 0);
    const t = feed(['GET'], [Buffer.from(text, 'latin1')]);
    assert.equal(t.settled, true);
    assert.equal(t.closeDelimited, false);
  });

  test('pipelined: two requests, two responses in one read → settled only after the second', () => {
    const one = OK('a');
    const t = feed(['GET', 'POST'], [Buffer.from(one, 'latin1')]);
    assert.equal(t.unanswered, 1);
    assert.equal(t.settled, false);
    t.push(Buffer.from(OK('bb'), 'latin1'));
    assert.equal(t.settled, true);
  });

  test('no body: the answer to HEAD, 204 and 304 end with their head (a Content-Length there is not a body)', () => {
    const head = 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n';
    assert.equal(feed(['HEAD'], [Buffer.from(head)]).settled, true);
    assert.equal(feed(['GET'], [Buffer.from(head)]).settled, false);
    assert.equal(feed(['GET'], [Buffer.from('HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n')]).settled, true);
    assert.equal(feed(['GET'], [Buffer.from('HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n')]).settled, true);
    // HEAD, then GET: the second response's body counts.
    const t = feed(['HEAD', 'GET'], [Buffer.from(head + OK('xyz'))]);
    assert.equal(t.settled, true);
  });

  test('interim 100 and 103 do not answer the request; 101 turns the connection opaque', () => {
    const t = feed(['POST'], [Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n')]);
    assert.equal(t.unanswered, 1);
    assert.equal(t.awaitingHeads, 1, 'an interim answer is not the final head (an Upgrade waits for it)');
    assert.equal(t.settled, false);
    t.push(Buffer.from(OK('done')));
    assert.equal(t.settled, true);
    const up = feed(['GET'], [Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00')]);
    assert.equal(up.settled, false);
    assert.equal(up.closeDelimited, true);
    assert.equal(up.switched, true);
    const declined = feed(['GET'], [Buffer.from('HTTP/1.1 426 Upgrade Required\r\nContent-Length: 5\r\n\r\n')]);
    assert.equal(declined.awaitingHeads, 0, 'the final head was read, its body is still to come');
    assert.equal(declined.switched, false);
  });

  test('chunked with extensions and trailers: settled after the empty line ending the trailers', () => {
    const text =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '5;name=val\r\nhello\r\n' + 'A\r\n0123456789\r\n' + '0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n';
    const counts = unansweredPerByte(['GET'], text);
    assert.equal(counts.indexOf(0), text.length - 1, 'answered before (or after) the last byte');
    const plain = 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n';
    assert.equal(feed(['GET'], [Buffer.from(plain)]).settled, true);
  });

  test('close-delimited: no length, or a Transfer-Encoding that does not end in chunked', () => {
    for (const head of ['HTTP/1.0 200 OK\r\nServer: x\r\n\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n']) {
      const t = feed(['GET'], [Buffer.from(head + 'body that runs to the close')]);
      assert.equal(t.closeDelimited, true, head);
      assert.equal(t.settled, false, head);
      assert.equal(t.lost, false, head);
    }
  });

  test('header names in any case, OWS around the value; equal duplicate Content-Lengths are one', () => {
    assert.equal(feed(['GET'], [Buffer.from('HTTP/1.1 200 OK\r\nCONTENT-length:  \t3 \r\n\r\nabc')]).settled, true);
    assert.equal(feed(['GET'], [Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc')]).settled, true);
    // A name that only starts like one is another field.
    assert.equal(feed(['GET'], [Buffer.from('HTTP/1.1 200 OK\r\nContent-Lengthy: 9\r\nContent-Length: 1\r\n\r\nz')]).settled, true);
  });

  test('what cannot be framed is lost for good: not HTTP, conflicting or bad lengths, a bad chunk line, a huge head', () => {
    const cases = [
      'SSH-2.0-OpenSSH\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc',
      'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n',
    ];
    for (const text of cases) {
      const t = feed(['GET'], [Buffer.from(text)]);
      assert.equal(t.lost, true, text.slice(0, 80));
      assert.equal(t.settled, false);
      t.push(Buffer.from(OK('later')));
      assert.equal(t.settled, false, 'lost, then settled again');
    }
    // A head is buffered across reads up to 64 KiB; one read holding it whole is scanned in place.
    const huge = Buffer.from(`HTTP/1.1 200 OK\r\nX: ${'y'.repeat(70_000)}\r\nContent-Length: 0\r\n\r\n`);
    assert.equal(feed(['GET'], splitAt(huge, Array.from({ length: 10 }, (_, k) => (k + 1) / 11))).lost, true);
    assert.equal(feed(['GET'], [huge]).settled, true);
  });

  test('a head split right inside its end (LF | CR LF, LF CR | LF) is still found', () => {
    const text = OK('q');
    const end = text.indexOf('\r\n\r\n');
    for (let cut = end - 2; cut <= end + 4; cut++) {
      const t = feed(['GET'], [Buffer.from(text.slice(0, cut)), Buffer.from(text.slice(cut))]);
      assert.equal(t.settled, true, `cut at ${cut}`);
    }
  });
});

// ---- generated response sequences ----

interface GenResponse {
  method: 'GET' | 'HEAD';
  interim: number[];
  kind: 'length' | 'chunked' | 'empty';
  body: number[]; // chunk sizes (length: one element)
  trailers: number;
  caseFlip: boolean;
}

const responseArb: fc.Arbitrary<GenResponse> = fc.record({
  method: fc.constantFrom('GET' as const, 'GET' as const, 'HEAD' as const),
  interim: fc.array(fc.constantFrom(100, 103), { maxLength: 2 }),
  kind: fc.constantFrom('length' as const, 'chunked' as const, 'empty' as const),
  body: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 4 }),
  trailers: fc.integer({ min: 0, max: 2 }),
  caseFlip: fc.boolean(),
});

function render(r: GenResponse): string {
  let s = r.interim.map((c) => `HTTP/1.1 ${c} Interim\r\nX-I: 1\r\n\r\n`).join('');
  const name = (n: string): string => (r.caseFlip ? n.toUpperCase() : n);
  if (r.kind === 'empty') return s + `HTTP/1.1 204 No Content\r\n${name('Content-Length')}: 12\r\n\r\n`;
  if (r.kind === 'length') {
    const n = r.body.reduce((a, b) => a + b, 0);
    s += `HTTP/1.1 200 OK\r\nDate: x\r\n${name('Content-Length')}: ${n}\r\n\r\n`;
    return r.method === 'HEAD' ? s : s + 'b'.repeat(n);
  }
  s += `HTTP/1.1 200 OK\r\n${name('Transfer-Encoding')}: chunked\r\n\r\n`;
  if (r.method === 'HEAD') return s;
  for (const size of r.body) s += `${size.toString(16)}${size % 3 === 0 ? ';e=1' : ''}\r\n${'c'.repeat(size)}\r\n`;
  s += '0\r\n' + 'T: v\r\n'.repeat(r.trailers) + '\r\n';
  return s;
}

test('generated responses in random splits: unanswered = requests minus responses whose last byte was fed', () => {
  fc.assert(
    fc.property(fc.array(responseArb, { minLength: 1, maxLength: 5 }), cutsArb, (responses, cuts) => {
      const texts = responses.map(render);
      const all = Buffer.from(texts.join(''), 'latin1');
      const ends: number[] = [];
      let at = 0;
      for (const t of texts) ends.push((at += t.length));
      const tracker = new HttpResponseTracker();
      for (const r of responses) tracker.request(r.method);
      let fed = 0;
      for (const c of splitAt(all, cuts)) {
        tracker.push(c);
        fed += c.length;
        const done = ends.filter((e) => e <= fed).length;
        assert.equal(tracker.unanswered, responses.length - done, `after ${fed} of ${all.length} bytes`);
        assert.equal(tracker.lost, false);
      }
      assert.equal(tracker.settled, true);
    }),
    fuzzParams(),
  );
});

test('any bytes, mutated responses included, in any split: no throw, and the split does not change the verdict', () => {
  const inputArb = fc.oneof(
    bytesArb(3000),
    fc.array(responseArb, { minLength: 1, maxLength: 3 }).chain((rs) => mutationArb(Buffer.from(rs.map(render).join(''), 'latin1'))),
  );
  fc.assert(
    fc.property(inputArb, cutsArb, fc.array(fc.constantFrom('GET', 'HEAD'), { maxLength: 4 }), (input, cuts, methods) => {
      const whole = feed(methods, [input]);
      const split = feed(methods, splitAt(input, cuts));
      const verdict = (t: HttpResponseTracker): unknown => [t.unanswered, t.awaitingHeads, t.settled, t.lost, t.closeDelimited];
      assert.deepEqual(verdict(split), verdict(whole));
    }),
    fuzzParams(),
  );
});

test('a connection that always has a request ahead of the answers keeps a bounded request queue', () => {
  const t = new HttpResponseTracker();
  const answer = Buffer.from(OK('x'));
  t.request('GET');
  for (let i = 0; i < 100_000; i++) {
    t.request('GET'); // the next request is forwarded before this answer arrives
    t.push(answer);
  }
  assert.equal(t.unanswered, 1);
  // The queue itself is private; its length is what would grow with every request.
  const queue = (t as unknown as { heads: number[] }).heads;
  assert.ok(queue.length <= 2 * 1024 + 2, `the request queue holds ${queue.length} entries after 100 000 answered requests`);
});
