// ResponseHeadRewriter: response header rules on final heads only (bodies, interim 1xx heads and bytes after a 101
// pass untouched), in any chunk split; generated response sequences checked against the expected bytes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HttpResponseTracker } from '../../../src/sniff/http-response-tracker.js';
import { ResponseHeadRewriter } from '../../../src/sniff/response-head-rewriter.js';
import type { HeaderRules } from '../../../src/sniff/http-request-filter.js';
import { bytewise, cutsArb, fuzzParams, splitAt } from '../../fuzz/fuzz-support.js';

const RULES: HeaderRules = {
  remove: [Buffer.from('x-secret'), Buffer.from('server')],
  add: Buffer.from('x-frame-options: DENY\r\nx-env: test\r\n'),
};
const ADDED = 'x-frame-options: DENY\r\nx-env: test\r\n';

/** What the client gets for `chunks` of service bytes, after a request per entry of `methods`; and the tracker. */
function run(methods: string[], chunks: Buffer[], end = false): { out: string; tracker: HttpResponseTracker } {
  const tracker = new HttpResponseTracker();
  for (const m of methods) tracker.request(m);
  const rw = new ResponseHeadRewriter(RULES, tracker);
  const out: Buffer[] = [];
  for (const c of chunks) rw.push(c, out);
  if (end) rw.flush(out);
  return { out: Buffer.concat(out).toString('latin1'), tracker };
}

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('ResponseHeadRewriter', () => {
  test('a final head loses the named fields (any case) and gets the added ones before its end; the body is untouched', () => {
    const body = 'HTTP/1.1 200 OK\r\nX-Secret: in the body\r\n\r\n';
    const text = `HTTP/1.1 200 OK\r\nSERVER: x\r\nContent-Length: ${body.length}\r\nx-secret: 1\r\n\r\n${body}`;
    const { out, tracker } = run(['GET'], [bytes(text)]);
    assert.equal(out, `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${ADDED}\r\n${body}`);
    assert.equal(tracker.settled, true);
  });

  test('interim 100/103 heads pass as they are; the final head after them is rewritten', () => {
    const text = 'HTTP/1.1 100 Continue\r\nServer: a\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 204 No Content\r\nServer: a\r\n\r\n';
    assert.equal(
      run(['POST'], [bytes(text)]).out,
      `HTTP/1.1 100 Continue\r\nServer: a\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 204 No Content\r\n${ADDED}\r\n`,
    );
  });

  test('keep-alive: HEAD, chunked and Content-Length responses in a row are each rewritten; a chunk body is not', () => {
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: s\r\n\r\n1c\r\nHTTP/1.1 200 OK\r\nServer: b\r\n\r\n0\r\nServer: trailer\r\n\r\n';
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\nServer: s\r\n\r\n' + chunked + 'HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno';
    const want =
      `HTTP/1.1 200 OK\r\nContent-Length: 10\r\n${ADDED}\r\n` +
      `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n${ADDED}\r\n1c\r\nHTTP/1.1 200 OK\r\nServer: b\r\n\r\n0\r\nServer: trailer\r\n\r\n` +
      `HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n${ADDED}\r\nno`;
    const whole = run(['HEAD', 'GET', 'GET'], [bytes(text)]);
    assert.equal(whole.out, want);
    assert.equal(whole.tracker.settled, true);
    assert.equal(run(['HEAD', 'GET', 'GET'], bytewise(bytes(text))).out, want, 'fed byte by byte');
  });

  test('an obs-fold continuation of a removed field goes with it; one of a kept field stays', () => {
    const text = 'HTTP/1.1 200 OK\r\nX-Secret: a\r\n b\r\n\tc\r\nX-Kept: d\r\n e\r\nContent-Length: 0\r\n\r\n';
    assert.equal(run(['GET'], [bytes(text)]).out, `HTTP/1.1 200 OK\r\nX-Kept: d\r\n e\r\nContent-Length: 0\r\n${ADDED}\r\n`);
  });

  test('bare LF line ends: fields found and removed, lines added before the empty line', () => {
    const text = 'HTTP/1.1 200 OK\nServer: x\nContent-Length: 1\n\nz';
    assert.equal(run(['GET'], [bytes(text)]).out, `HTTP/1.1 200 OK\nContent-Length: 1\n${ADDED}\nz`);
  });

  test('101: its head is rewritten; every byte after it (the new protocol) passes as it is', () => {
    const ws = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
    const frames = '\x81\x05HTTP/1.1 200 OK\r\nServer: no\r\n\r\n';
    const { out, tracker } = run(['GET'], [bytes(ws + frames)]);
    assert.equal(out, `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${ADDED}\r\n${frames}`);
    assert.equal(tracker.switched, true);
  });

  test('a body to the close (no length): later bytes that look like a head are body', () => {
    const text = 'HTTP/1.1 200 OK\r\nServer: s\r\n\r\nHTTP/1.1 200 OK\r\nServer: t\r\n\r\n';
    assert.equal(run(['GET'], [bytes(text)]).out, `HTTP/1.1 200 OK\r\n${ADDED}\r\nHTTP/1.1 200 OK\r\nServer: t\r\n\r\n`);
  });

  test('a head held across reads past 64 KiB passes as it is, and so does all that follows (memory stays bounded)', () => {
    const big = `HTTP/1.1 200 OK\r\nServer: s\r\nX-Big: ${'v'.repeat(70_000)}\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nServer: t\r\n\r\n`;
    // Whole in one read, nothing is held: it is rewritten like any other (the tracker frames it too).
    assert.equal(run(['GET', 'GET'], [bytes(big)]).out.startsWith(`HTTP/1.1 200 OK\r\nX-Big: v`), true, 'in one read');
    const split = splitAt(bytes(big), [0.1, 0.5, 0.9]);
    const r = run(['GET', 'GET'], split);
    assert.equal(r.out, big, 'across reads');
    assert.equal(r.tracker.lost, true);
  });

  test('a head cut short by the end of the stream is sent as it came (flush); nothing before it is lost', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nzHTTP/1.1 200 OK\r\nServer: s\r\n';
    const chunks = [bytes(text.slice(0, 40)), bytes(text.slice(40))];
    assert.equal(run(['GET', 'GET'], chunks).out, `HTTP/1.1 200 OK\r\nContent-Length: 1\r\n${ADDED}\r\nz`, 'held until its end comes');
    assert.equal(run(['GET', 'GET'], chunks, true).out, `HTTP/1.1 200 OK\r\nContent-Length: 1\r\n${ADDED}\r\nzHTTP/1.1 200 OK\r\nServer: s\r\n`);
  });
});

// ---- generated response sequences ----

interface GenResponse {
  method: 'GET' | 'HEAD';
  interim: boolean;
  kind: 'length' | 'chunked' | 'empty';
  secret: 'none' | 'plain' | 'folded';
  body: number; // bytes of body
}

const responseArb: fc.Arbitrary<GenResponse> = fc.record({
  method: fc.constantFrom('GET' as const, 'GET' as const, 'HEAD' as const),
  interim: fc.boolean(),
  kind: fc.constantFrom('length' as const, 'chunked' as const, 'empty' as const),
  secret: fc.constantFrom('none' as const, 'plain' as const, 'folded' as const),
  body: fc.integer({ min: 1, max: 200 }),
});

/** A body that contains text shaped like a head with a field the rules remove. */
function bodyOf(n: number): string {
  const decoy = '\r\nHTTP/1.1 200 OK\r\nServer: decoy\r\n\r\n';
  return (decoy + 'b'.repeat(n)).slice(0, n);
}

/** The service's bytes for `r` and what the client should get with RULES applied. */
function render(r: GenResponse): { sent: string; want: string } {
  let sent = '';
  let want = '';
  if (r.interim) {
    sent += 'HTTP/1.1 100 Continue\r\nServer: i\r\n\r\n';
    want += 'HTTP/1.1 100 Continue\r\nServer: i\r\n\r\n';
  }
  const secret = r.secret === 'none' ? '' : r.secret === 'plain' ? 'X-Secret: s\r\n' : 'X-Secret: s\r\n  folded\r\n';
  const status = r.kind === 'empty' ? 'HTTP/1.1 204 No Content\r\n' : 'HTTP/1.1 200 OK\r\n';
  const framing = r.kind === 'length' ? `Content-Length: ${r.body}\r\n` : r.kind === 'chunked' ? 'Transfer-Encoding: chunked\r\n' : '';
  sent += `${status}Date: d\r\n${secret}${framing}Server: s\r\n\r\n`;
  want += `${status}Date: d\r\n${framing}${ADDED}\r\n`;
  if (r.method === 'HEAD' || r.kind === 'empty') return { sent, want };
  const body = r.kind === 'length' ? bodyOf(r.body) : `${r.body.toString(16)}\r\n${bodyOf(r.body)}\r\n0\r\n\r\n`;
  return { sent: sent + body, want: want + body };
}

test('generated responses in random splits: every final head rewritten, everything else byte for byte', () => {
  fc.assert(
    fc.property(fc.array(responseArb, { minLength: 1, maxLength: 5 }), cutsArb, (responses, cuts) => {
      const parts = responses.map(render);
      const sent = bytes(parts.map((p) => p.sent).join(''));
      const { out, tracker } = run(responses.map((r) => r.method), splitAt(sent, cuts));
      assert.equal(out, parts.map((p) => p.want).join(''));
      assert.equal(tracker.settled, true);
      assert.equal(tracker.unanswered, 0);
    }),
    fuzzParams(),
  );
});
