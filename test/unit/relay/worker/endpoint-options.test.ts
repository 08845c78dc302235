// Bind options at the relay (src/relay/worker/endpoint-options.ts): IP restrictions parsed and matched; options the
// relay does not implement refused by name; the SDK's unset values (null, 0, false, "") accepted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBurrowError } from '../../../../src/core/errors.js';
import { checkSupportedOptions, parseBasicAuth, parseIpRestriction, parseProxyProto, parseHeaderRules } from '../../../../src/relay/worker/endpoint-options.js';
import { proxyProtocolHeader } from '../../../../src/relay/worker/proxy-protocol.js';

/** The HTTP Opts the ngrok SDK writes with nothing set (PROTOCOL.md §9). */
const SDK_HTTP_UNSET = {
  Domain: '', Hostname: 'a.burrow.localhost', Auth: '', Subdomain: '', HostHeaderRewrite: false, LocalUrlScheme: null, ProxyProto: 0,
  Compression: null, CircuitBreaker: null, IPRestriction: null, BasicAuth: null, OAuth: null, OIDC: null, WebhookVerification: null,
  MutualTLSCA: null, RequestHeaders: null, ResponseHeaders: null, WebsocketTCPConverter: null, UserAgentFilter: null, TrafficPolicy: null,
};

test('IPRestriction: deny wins, allow lists are exclusive, bare addresses and IPv6 work', () => {
  const p = parseIpRestriction({ allow_cidrs: ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'], deny_cidrs: ['10.9.0.0/16'] })!;
  assert.equal(p.allows('10.1.2.3'), true);
  assert.equal(p.allows('10.9.2.3'), false, 'deny wins over allow');
  assert.equal(p.allows('192.0.2.7'), true);
  assert.equal(p.allows('192.0.2.8'), false, 'not in any allowed network');
  assert.equal(p.allows('2001:db8::1'), true);
  assert.equal(p.allows('2001:db9::1'), false);
  assert.equal(p.allows('127.0.0.1'), false);
  const denyOnly = parseIpRestriction({ deny_cidrs: ['127.0.0.0/8'] })!;
  assert.equal(denyOnly.allows('127.0.0.1'), false);
  assert.equal(denyOnly.allows('192.0.2.1'), true, 'with no allow list, anything not denied may connect');
  // Each family matches its own networks only (net.BlockList alone lets ::/0 match IPv4 addresses).
  const noV6 = parseIpRestriction({ deny_cidrs: ['::/0'] })!;
  assert.equal(noV6.allows('10.1.2.3'), true, 'an IPv6 deny rule caught an IPv4 client');
  assert.equal(noV6.allows('2001:db8::1'), false);
  const v6Only = parseIpRestriction({ allow_cidrs: ['2001:db8::/32'] })!;
  assert.equal(v6Only.allows('10.1.2.3'), false, 'an IPv4 client passed an allow list of IPv6 networks only');
  assert.equal(v6Only.allows('2001:db8::5'), true);
  assert.equal(parseIpRestriction(null), null);
  assert.equal(parseIpRestriction({ allow_cidrs: [], deny_cidrs: null }), null);
});

test('IPRestriction: an entry that is not a network refuses the Bind, naming it', () => {
  for (const [v, where] of [
    [{ allow_cidrs: ['10.0.0.0/33'] }, /allow_cidrs\[0\] "10\.0\.0\.0\/33" is not a network/],
    [{ deny_cidrs: ['10.0.0.0/8', 'example.com'] }, /deny_cidrs\[1\] "example\.com"/],
    [{ allow_cidrs: ['::/129'] }, /allow_cidrs\[0\]/],
    [{ allow_cidrs: ['10.0.0.0/'] }, /allow_cidrs\[0\]/],
    [{ allow_cidrs: '10.0.0.0/8' }, /allow_cidrs must be a list/],
    [{ allow_cidrs: [8] }, /allow_cidrs\[0\] 8/],
    ['10.0.0.0/8', /IPRestriction must be an object/],
  ] as const) {
    assert.throws(() => parseIpRestriction(v), (e: unknown) => isBurrowError(e, 'BURROW_ERR_BIND_INVALID') && where.test((e as Error).message), JSON.stringify(v));
  }
});

test('unsupported options refuse the Bind by name; the SDK\'s unset values pass', () => {
  checkSupportedOptions('https', SDK_HTTP_UNSET, { Token: '', IPPolicyRef: '', Metadata: '', PoolingEnabled: false });
  checkSupportedOptions('http', { ...SDK_HTTP_UNSET, TrafficPolicy: '', IPRestriction: { allow_cidrs: ['10.0.0.0/8'] } }, {});
  checkSupportedOptions('https', { ...SDK_HTTP_UNSET, Auth: 'u:p', BasicAuth: { credentials: [{ username: 'u', cleartext_password: 'password1' }] } }, {});
  checkSupportedOptions('tcp', { Addr: '', ProxyProto: 0, IPRestriction: null, TrafficPolicy: null }, {});
  checkSupportedOptions('tls', { Hostname: '', Subdomain: '', ProxyProto: 0, MutualTLSAtAgent: true, MutualTLSAtEdge: false, TLSTermination: null }, {});
  const refused: Array<[Parameters<typeof checkSupportedOptions>, RegExp]> = [
    [['https', { ...SDK_HTTP_UNSET, OAuth: { provider: 'google' } }, {}], /Opts\.OAuth/],
    [['https', { ...SDK_HTTP_UNSET, Compression: {} }, {}], /Opts\.Compression/],
    [['https', { ...SDK_HTTP_UNSET, HostHeaderRewrite: true }, {}], /Opts\.HostHeaderRewrite/],
    [['https', { ...SDK_HTTP_UNSET, TrafficPolicy: '{"inbound":[]}' }, {}], /Opts\.TrafficPolicy/],
    [['tls', { Hostname: '', ProxyProto: 0, MutualTLSAtEdge: true }, {}], /Opts\.MutualTLSAtEdge/],
    // What the SDK's mutualTlsca() on a tls endpoint sends (review finding: `=== true` let it through).
    [['tls', { Hostname: '', ProxyProto: 0, MutualTLSAtEdge: { mutual_tls_ca: 'LS0tLS1CRUdJTg==' } }, {}], /Opts\.MutualTLSAtEdge/],
    [['tcp', { Addr: '', ProxyProto: 0, BasicAuth: { credentials: [{ username: 'u', cleartext_password: 'p' }] } }, {}], /Opts\.BasicAuth: basic auth, which only http endpoints have/],
    [['tls', { Hostname: '', ProxyProto: 0, Auth: 'u:p' }, {}], /Opts\.Auth/],
    [['tls', { Hostname: '', ProxyProto: 0, TLSTermination: { key: '', cert: '' } }, {}], /Opts\.TLSTermination/],
    [['https', SDK_HTTP_UNSET, { IPPolicyRef: 'ipp_123' }], /Extra\.IPPolicyRef/],
  ];
  for (const [args, msg] of refused) {
    assert.throws(() => checkSupportedOptions(...args), (e: unknown) => isBurrowError(e, 'BURROW_ERR_BIND_INVALID') && msg.test((e as Error).message), msg.source);
  }
});

/** The Authorization value a client sends for `user`:`password`, as a head buffer and its bounds. */
function authValue(v: string): [Buffer, number, number] {
  const b = Buffer.from(`x${v}y`, 'latin1');
  return [b, 1, 1 + v.length];
}

test('basic auth: the credentials\' tokens are accepted (scheme in any case, spaces after it), nothing else', () => {
  const check = parseBasicAuth({ ...SDK_HTTP_UNSET, BasicAuth: { credentials: [{ username: 'user', cleartext_password: 'password123' }, { username: 'ops', cleartext_password: 'pässwörd-2' }] } })!;
  const token = (u: string, p: string): string => Buffer.from(`${u}:${p}`, 'utf8').toString('base64');
  assert.equal(check.accepts(...authValue(`Basic ${token('user', 'password123')}`)), true);
  assert.equal(check.accepts(...authValue(`basic   ${token('ops', 'pässwörd-2')}`)), true);
  assert.equal(check.accepts(...authValue(`BASIC ${token('user', 'password123')}`)), true);
  for (const bad of [
    `Basic ${token('user', 'password124')}`,
    `Basic ${token('ops', 'password123')}`,
    `Basic${token('user', 'password123')}`,
    `Bearer ${token('user', 'password123')}`,
    `Basic ${token('user', 'password123')}=`,
    'Basic ',
    '',
  ]) {
    assert.equal(check.accepts(...authValue(bad)), false, bad);
  }
  // The older Auth "user:password" form is one more credential.
  const legacy = parseBasicAuth({ ...SDK_HTTP_UNSET, Auth: 'admin:s3cret:with:colons' })!;
  assert.equal(legacy.accepts(...authValue(`Basic ${token('admin', 's3cret:with:colons')}`)), true);
  assert.equal(parseBasicAuth(SDK_HTTP_UNSET), null);
  // Same credentials in another order: same key (pool members may stand in for each other), others differ.
  const a = parseBasicAuth({ BasicAuth: { credentials: [{ username: 'a', cleartext_password: '1' }, { username: 'b', cleartext_password: '2' }] } })!;
  const b = parseBasicAuth({ BasicAuth: { credentials: [{ username: 'b', cleartext_password: '2' }, { username: 'a', cleartext_password: '1' }] } })!;
  const c = parseBasicAuth({ BasicAuth: { credentials: [{ username: 'a', cleartext_password: '1' }] } })!;
  assert.equal(a.key, b.key);
  assert.notEqual(a.key, c.key);
});

test('basic auth: credentials the relay cannot use refuse the Bind, naming them', () => {
  for (const [opts, msg] of [
    [{ BasicAuth: { credentials: [] } }, /non-empty credentials list/],
    [{ BasicAuth: {} }, /non-empty credentials list/],
    [{ BasicAuth: { credentials: [{ username: 'u', hashed_password: 'JDJ5JDEw' }] } }, /credentials\[0\]: the relay needs the password itself/],
    [{ BasicAuth: { credentials: [{ username: 'u', cleartext_password: 'p' }, { username: 'a:b', cleartext_password: 'p' }] } }, /credentials\[1\]\.username/],
    [{ BasicAuth: { credentials: [{ username: '', cleartext_password: 'p' }] } }, /credentials\[0\]\.username/],
    [{ Auth: 'nopassword' }, /Auth must be "user:password"/],
    [{ Auth: ':pw' }, /Auth must be "user:password"/],
  ] as const) {
    assert.throws(() => parseBasicAuth(opts), (e: unknown) => isBurrowError(e, 'BURROW_ERR_BIND_INVALID') && msg.test((e as Error).message), JSON.stringify(opts));
  }
});

test('ProxyProto: 0, 1, 2 (numbers or strings) are taken; anything else refuses the Bind', () => {
  assert.deepEqual([parseProxyProto(0), parseProxyProto(null), parseProxyProto(1), parseProxyProto('2')], [0, 0, 1, 2]);
  for (const bad of [3, '1.0', true, -1]) {
    assert.throws(() => parseProxyProto(bad), (e: unknown) => isBurrowError(e, 'BURROW_ERR_BIND_INVALID') && /ProxyProto .* is not 0 \(off\), 1 or 2/.test((e as Error).message));
  }
  checkSupportedOptions('tcp', { Addr: '', ProxyProto: 2 }, {});
});

test('PROXY protocol header: v1 and v2 for IPv4, IPv6, mapped IPv4 and mixed families', () => {
  assert.equal(proxyProtocolHeader(1, '192.0.2.7', 56324, '198.51.100.1', 443).toString('latin1'), 'PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n');
  assert.equal(proxyProtocolHeader(1, '::ffff:192.0.2.7', 1, '::ffff:127.0.0.1', 2).toString('latin1'), 'PROXY TCP4 192.0.2.7 127.0.0.1 1 2\r\n');
  assert.equal(proxyProtocolHeader(1, '2001:db8::1', 5, '::1', 6).toString('latin1'), 'PROXY TCP6 2001:db8::1 ::1 5 6\r\n');
  assert.equal(proxyProtocolHeader(1, '192.0.2.7', 5, '::1', 6).toString('latin1'), 'PROXY UNKNOWN\r\n');
  const sig = '0d0a0d0a000d0a515549540a';
  // v2 PROXY, TCP over IPv4, 12 address bytes: 192.0.2.7, 198.51.100.1, ports 0x1234 and 443.
  assert.equal(proxyProtocolHeader(2, '192.0.2.7', 0x1234, '198.51.100.1', 443).toString('hex'), `${sig}2111000c` + 'c0000207' + 'c6336401' + '1234' + '01bb');
  assert.equal(
    proxyProtocolHeader(2, '2001:db8::1', 1, '::ffff:10.0.0.1', 2).toString('hex'),
    `${sig}20000000`,
    'mixed families: LOCAL, no addresses',
  );
  assert.equal(
    proxyProtocolHeader(2, '2001:db8::1', 1, 'fe80::1:2:3.4.5.6', 2).toString('hex'),
    `${sig}21210024` + '20010db8000000000000000000000001' + 'fe800000000000000001000203040506' + '0001' + '0002',
  );
});

test('request header rules: the SDK\'s add ("name:value") and remove, addParsed, rendered lines, reserved fields refused', () => {
  const r = parseHeaderRules('RequestHeaders', { add: ['x-added: yes', 'x-env:prod'], remove: ['X-Secret'] })!;
  assert.equal(r.add.toString('latin1'), 'x-added: yes\r\nx-env: prod\r\n');
  assert.deepEqual(r.remove.map((b) => b.toString('latin1')), ['x-secret']);
  assert.equal(parseHeaderRules('RequestHeaders', { addParsed: { 'X-One': '1' } })!.add.toString('latin1'), 'x-one: 1\r\n');
  // Request names are kept with '-' for '_' (the filter reads a field's '_' as '-'); response names as they are.
  assert.deepEqual(parseHeaderRules('RequestHeaders', { remove: ['X_User'] })!.remove.map((b) => b.toString('latin1')), ['x-user']);
  assert.deepEqual(parseHeaderRules('ResponseHeaders', { remove: ['X_User'] })!.remove.map((b) => b.toString('latin1')), ['x_user']);
  assert.equal(parseHeaderRules('RequestHeaders', null), null);
  assert.equal(parseHeaderRules('RequestHeaders', {}), null);
  assert.equal(parseHeaderRules('RequestHeaders', { add: ['a:1'], remove: ['b'] })!.key, parseHeaderRules('RequestHeaders', { remove: ['B'], add: ['a: 1'] })!.key);
  for (const [v, msg] of [
    [{ add: ['host:evil.example'] }, /add\[0\] "host" is kept by the relay as it is/],
    [{ remove: ['Content-Length'] }, /remove\[0\] "Content-Length" is kept by the relay as it is/],
    [{ add: ['X-Forwarded-For:1.2.3.4'] }, /"X-Forwarded-For" is kept by the relay as it is/],
    [{ remove: ['transfer-encoding'] }, /is kept by the relay as it is/],
    [{ add: ['x-a:ok\r\nhost: evil'] }, /add\[0\] \(x-a\): the value must be/],
    // Written one byte per character: U+010D U+010A would become CR LF and smuggle a framing field (review finding).
    [{ add: ['x-a:ok\u010d\u010aTransfer-Encoding: chunked'] }, /add\[0\] \(x-a\): the value must be .*nothing above U\+00FF/],
    [{ add: ['bad name:v'] }, /add\[0\] "bad name" is not a header field name/],
    [{ add: ['novalue'] }, /add\[0\] "novalue" is not "name:value"/],
    [{ remove: 'x' }, /remove must be a list/],
    [{ add: Array.from({ length: 40 }, (_, i) => `x-${i}:v`) }, /at most 32 rules/],
  ] as const) {
    assert.throws(() => parseHeaderRules('RequestHeaders', v), (e: unknown) => isBurrowError(e, 'BURROW_ERR_BIND_INVALID') && msg.test((e as Error).message), JSON.stringify(v));
  }
  // On a tcp or tls Bind they are refused (HTTP only).
  assert.throws(() => checkSupportedOptions('tcp', { Addr: '', ProxyProto: 0, RequestHeaders: { add: ['a:b'] } }, {}), /Opts\.RequestHeaders/);
});

test('response header rules: the same forms and checks, named ResponseHeaders; http only', () => {
  const r = parseHeaderRules('ResponseHeaders', { add: ['x-frame-options:DENY'], remove: ['Server'] })!;
  assert.equal(r.add.toString('latin1'), 'x-frame-options: DENY\r\n');
  assert.deepEqual(r.remove.map((b) => b.toString('latin1')), ['server']);
  assert.throws(() => parseHeaderRules('ResponseHeaders', { remove: ['Transfer-Encoding'] }), /ResponseHeaders\.remove\[0\] "Transfer-Encoding" is kept by the relay/);
  const big = Array.from({ length: 3 }, (_, i) => `x-big-${i}:${'v'.repeat(4000)}`);
  assert.throws(() => parseHeaderRules('ResponseHeaders', { add: big }), /ResponseHeaders\.add: the added fields come to \d+ bytes per response/);
  assert.doesNotThrow(() => checkSupportedOptions('http', { ...SDK_HTTP_UNSET, ResponseHeaders: { add: ['a:b'] } }, {}));
  assert.throws(() => checkSupportedOptions('tls', { Hostname: '', ResponseHeaders: { add: ['a:b'] } }, {}), /Opts\.ResponseHeaders: response header rules, which only http endpoints have/);
  assert.throws(() => parseHeaderRules('ResponseHeaders', { add: ['x-a:1\u010d\u010aContent-Length: 0'] }), /nothing above U\+00FF/);
  // obs-text (0x80–0xFF) stays allowed: one byte each on the wire, as written.
  assert.equal(parseHeaderRules('ResponseHeaders', { add: ['x-a:caf\u00e9'] })!.add.toString('latin1'), 'x-a: caf\u00e9\r\n');
});

test('rule sizes are bounded: networks per list, credentials, bytes added to each request head', () => {
  const nets = Array.from({ length: 1025 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  assert.throws(() => parseIpRestriction({ allow_cidrs: nets }), /allow_cidrs lists 1025 networks; at most 1024/);
  assert.ok(parseIpRestriction({ allow_cidrs: nets.slice(0, 1024) }) !== null);
  const creds = Array.from({ length: 65 }, (_, i) => ({ username: `u${i}`, cleartext_password: 'p' }));
  assert.throws(() => parseBasicAuth({ BasicAuth: { credentials: creds } }), /BasicAuth has 65 credentials; at most 64/);
  const big = Array.from({ length: 3 }, (_, i) => `x-big-${i}:${'v'.repeat(4000)}`);
  assert.throws(() => parseHeaderRules('RequestHeaders', { add: big }), /the added fields come to \d+ bytes per request; at most 8192/);
  assert.throws(() => parseBasicAuth({ Auth: 'user:pa\u0001ss' }), /Auth must be "user:password"/);
});
