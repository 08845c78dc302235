// ensureRelayPki: the dev CA + leaf it generates (files, modes, extensions), acceptance by strict verifiers (openssl
// verify, node:tls, curl, and rustls/webpki inside the @ngrok/ngrok SDK), reuse, re-issue, and --cert/--key loading.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isBurrowError, type ErrorCode } from '../../../src/core/errors.js';
import { DEV_PKI_FILES, ensureRelayPki, type RelayPki } from '../../../src/config/dev-pki.js';

const execFileAsync = promisify(execFile);
const DOMAIN = 'burrow.localhost';
const DAY_MS = 86_400_000;
// dist/test/unit/config → repository root (where node_modules/@ngrok/ngrok lives).
const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-pki-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openssl(args: string[], cwd?: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * A self-signed P-256 certificate for `name` (CN and SAN) in dir/c.pem with key dir/k.pem, valid from `start` to `end`
 * (openssl's YYYYMMDDHHMMSSZ). `openssl req -x509` cannot set dates in OpenSSL 3.0; `openssl ca -selfsign` can.
 */
function selfSignedWithDates(dir: string, start: string, end: string, name: string): void {
  writeFileSync(join(dir, 'ca.cnf'), '[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nrand_serial = yes\n' +
    'default_md = sha256\npolicy = p\ncopy_extensions = copy\n[p]\ncommonName = supplied\n');
  writeFileSync(join(dir, 'index.txt'), '');
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'r.csr',
    '-subj', `/CN=${name.replace('*.', '')}`, '-addext', `subjectAltName=DNS:${name}`], dir);
  openssl(['ca', '-batch', '-notext', '-config', 'ca.cnf', '-selfsign', '-keyfile', 'k.pem', '-in', 'r.csr',
    '-startdate', start, '-enddate', end, '-out', 'c.pem'], dir);
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, fragments: string[]): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isBurrowError(err, code), `expected ${code}, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

/** A TLS (or HTTPS) server on 127.0.0.1:0 serving `pki`, closed after the test. */
async function tlsServer(t: TestContext, pki: RelayPki, handler?: (s: tls.TLSSocket) => void): Promise<tls.Server> {
  const server = tls.createServer({ cert: pki.certPem, key: pki.keyPem }, handler ?? ((s) => s.end('hello\n')));
  // close() waits for open connections, and a client such as the SDK child keeps its connection open: cut them all.
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  });
  return server;
}

function portOf(server: { address(): AddressInfo | string | null }): number {
  return (server.address() as AddressInfo).port;
}

/** Connects a node:tls client; resolves with the handshake outcome. */
function tlsClient(port: number, servername: string, ca: string | undefined): Promise<{ ok: true } | { ok: false; code: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ...(ca === undefined ? {} : { ca }) });
    s.once('secureConnect', () => {
      assert.equal(s.authorized, true);
      s.destroy();
      resolve({ ok: true });
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      s.destroy();
      resolve({ ok: false, code: err.code ?? err.message });
    });
  });
}

describe('first start generates a dev CA and a leaf', () => {
  test('files, modes, key format, generated flag', async (t) => {
    const root = tempDir(t);
    const dataDir = join(root, 'nested', 'data');
    const pki = await ensureRelayPki({ dataDir, domain: DOMAIN });
    assert.equal(pki.generated, true);
    assert.equal(pki.caPath, join(dataDir, 'ca.pem'));
    assert.equal(pki.certPath, join(dataDir, 'relay.pem'));
    assert.equal(pki.keyPath, join(dataDir, 'relay-key.pem'));
    assert.ok(Object.isFrozen(pki));
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dataDir, 'ca-key.pem')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dataDir, 'relay-key.pem')).mode & 0o777, 0o600);
    assert.equal(readFileSync(pki.caPath!, 'utf8'), pki.caPem);
    assert.equal(readFileSync(pki.certPath, 'utf8'), pki.certPem);
    assert.equal(readFileSync(pki.keyPath, 'utf8'), pki.keyPem);
    // PKCS#8 PEM, loadable by node:tls.
    assert.match(pki.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(readFileSync(join(dataDir, 'ca-key.pem'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(createPrivateKey(pki.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    tls.createSecureContext({ cert: pki.certPem, key: pki.keyPem });
    // No temp or lock file is left behind.
    assert.deepEqual(
      readdirSync(dataDir).sort(),
      ['ca-key.pem', 'ca.pem', 'relay-key.pem', 'relay.pem'],
    );
  });

  test('openssl verify -CAfile accepts the leaf for TLS server use', async (t) => {
    const pki = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const out = openssl(['verify', '-CAfile', pki.caPath!, '-purpose', 'sslserver', '-x509_strict', pki.certPath]);
    assert.equal(out.trim(), `${pki.certPath}: OK`);
  });

  test('openssl x509 -text shows the leaf profile: CA:FALSE, digitalSignature, serverAuth, SKI/AKI, every SAN', async (t) => {
    const pki = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const leaf = openssl(['x509', '-in', pki.certPath, '-noout', '-text']);
    assert.match(leaf, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(leaf, /X509v3 Key Usage: critical\s+Digital Signature\s/);
    assert.match(leaf, /X509v3 Extended Key Usage:\s*\n\s+TLS Web Server Authentication\s/);
    assert.match(leaf, /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
    assert.match(leaf, /Signature Algorithm: ecdsa-with-SHA256/);
    const san = /X509v3 Subject Alternative Name:\s*\n\s+(.*)\n/.exec(leaf)?.[1];
    assert.equal(
      san,
      'DNS:*.burrow.localhost, DNS:burrow.localhost, DNS:connect.burrow.localhost, DNS:localhost, ' +
        'IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    const ca = openssl(['x509', '-in', pki.caPath!, '-noout', '-text']);
    assert.match(ca, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
    assert.match(ca, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    const caSki = /X509v3 Subject Key Identifier:\s*\n\s+([0-9A-F:]+)/.exec(ca)?.[1];
    const leafAki = /X509v3 Authority Key Identifier:\s*\n\s+(?:keyid:)?([0-9A-F:]+)/.exec(leaf)?.[1];
    assert.ok(caSki !== undefined && caSki.length > 0);
    assert.equal(leafAki, caSki);
    assert.match(leaf, /X509v3 Subject Key Identifier:/);
  });

  test('subjects, issuer and validity periods', async (t) => {
    const before = Date.now();
    const pki = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const ca = new X509Certificate(pki.caPem!);
    const leaf = new X509Certificate(pki.certPem);
    assert.match(ca.subject, /^CN=burrow dev CA \(burrow\.localhost\) [0-9a-f]{8}$/);
    assert.equal(ca.issuer, ca.subject);
    assert.equal(leaf.issuer, ca.subject);
    assert.equal(leaf.subject, 'CN=burrow.localhost');
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
    const near = (actual: string, expected: number): void => {
      // Certificate times have 1 s resolution; allow a minute for a slow machine.
      assert.ok(Math.abs(new Date(actual).getTime() - expected) < 60_000, `${actual} is not near ${new Date(expected).toISOString()}`);
    };
    near(leaf.validFrom, before - 3_600_000);
    near(leaf.validTo, before + 365 * DAY_MS);
    near(ca.validTo, before + 3652 * DAY_MS);
    // Serials are positive, random, and differ between CA and leaf.
    assert.notEqual(ca.serialNumber, leaf.serialNumber);
    assert.ok(/^[0-7]/.test(leaf.serialNumber), leaf.serialNumber);
  });
});

describe('clients accept the leaf', () => {
  test('node:tls with ca = the dev CA and SNI under the domain; wrong CA or name is refused', { timeout: 60_000 }, async (t) => {
    const pki = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const other = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const port = portOf(await tlsServer(t, pki));
    for (const name of ['x.burrow.localhost', 'burrow.localhost', 'connect.burrow.localhost', 'localhost']) {
      assert.deepEqual(await tlsClient(port, name, pki.caPem!), { ok: true }, name);
    }
    assert.deepEqual(await tlsClient(port, 'x.other.test', pki.caPem!), { ok: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    assert.deepEqual(await tlsClient(port, 'a.b.burrow.localhost', pki.caPem!), { ok: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    const wrongCa = await tlsClient(port, 'x.burrow.localhost', other.caPem!);
    assert.equal(wrongCa.ok, false);
  });

  test('curl --cacert ca.pem over https://app.burrow.localhost', { timeout: 60_000 }, async (t) => {
    const pki = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const server = https.createServer({ cert: pki.certPem, key: pki.keyPem }, (_req, res) => res.end('via burrow dev cert\n'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      return closed;
    });
    const port = portOf(server);
    const url = `https://app.burrow.localhost:${port}/`;
    const resolveArg = `app.burrow.localhost:${port}:127.0.0.1`;
    const ok = await execFileAsync('curl', ['-sS', '--fail', '--cacert', pki.caPath!, url, '--resolve', resolveArg]);
    assert.equal(ok.stdout, 'via burrow dev cert\n');
    // With another dev CA, curl refuses the certificate (exit 60: peer certificate cannot be authenticated).
    const other = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    await assert.rejects(
      execFileAsync('curl', ['-sS', '--fail', '--cacert', other.caPath!, url, '--resolve', resolveArg]),
      (err: { code?: number }) => err.code === 60,
    );
  });

  // The timeout turns a hang into a failure; no step waits on it.
  test('the @ngrok/ngrok SDK (rustls/webpki) completes the TLS handshake with caCert = the dev CA, and not with another CA', { timeout: 60_000 }, async (t) => {
    const pki = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const other = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    assert.equal(await sdkHandshake(t, pki, pki.caPath!), 'accepted');
    assert.equal(await sdkHandshake(t, pki, other.caPath!), 'refused');
  });
});

// The SDK runs in a child process: its native runtime keeps the event loop alive and retries on failure, so the test
// kills it once the server has seen the outcome. In TLS 1.3 the client checks the server certificate before it sends
// Finished, so the server's 'secureConnection' means webpki accepted the chain, and 'tlsClientError' that it did not.
const SDK_SCRIPT = `
import { readFileSync } from 'node:fs';
import ngrok from '@ngrok/ngrok';
await new ngrok.SessionBuilder()
  .authtoken('burrow-pki-test-token')
  .serverAddr('localhost:' + process.env.PKI_TEST_PORT)
  .caCert(readFileSync(process.env.PKI_TEST_CA))
  .handleDisconnection(() => false)
  .connect()
  .catch(() => {});
`;

async function sdkHandshake(t: TestContext, pki: RelayPki, caPath: string): Promise<'accepted' | 'refused'> {
  let settle!: (v: 'accepted' | 'refused') => void;
  const outcome = new Promise<'accepted' | 'refused'>((resolve) => (settle = resolve));
  // Accepted only once the SDK sends its first mux frame over the verified connection.
  const server = await tlsServer(t, pki, (s) => {
    s.on('error', () => {});
    s.once('data', () => settle('accepted'));
  });
  server.on('tlsClientError', () => settle('refused'));
  const child = spawn(process.execPath, ['--input-type=module', '-e', SDK_SCRIPT], {
    cwd: REPO_ROOT,
    env: { ...process.env, PKI_TEST_PORT: String(portOf(server)), PKI_TEST_CA: caPath },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = once(child, 'exit');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  // If the child dies before any handshake (SDK missing, script error), fail with its stderr instead of hanging.
  const early = exited.then(([code]) => {
    throw new Error(`SDK child exited (${String(code)}) before a handshake: ${stderr}`);
  });
  return Promise.race([outcome, early]);
}

describe('later starts', () => {
  test('a second call reuses the files', async (t) => {
    const dataDir = tempDir(t);
    const first = await ensureRelayPki({ dataDir, domain: DOMAIN });
    const mtime = statSync(first.certPath).mtimeMs;
    const second = await ensureRelayPki({ dataDir, domain: DOMAIN });
    assert.equal(second.generated, false);
    assert.equal(second.caPem, first.caPem);
    assert.equal(second.certPem, first.certPem);
    assert.equal(second.keyPem, first.keyPem);
    assert.equal(statSync(first.certPath).mtimeMs, mtime);
  });

  test('a domain change re-issues the leaf from the same CA', async (t) => {
    const dataDir = tempDir(t);
    const first = await ensureRelayPki({ dataDir, domain: DOMAIN });
    const changed = await ensureRelayPki({ dataDir, domain: 'tunnels.example.com' });
    assert.equal(changed.generated, true);
    assert.equal(changed.caPem, first.caPem);
    assert.equal(readFileSync(changed.caPath!, 'utf8'), first.caPem);
    assert.notEqual(changed.certPem, first.certPem);
    assert.notEqual(changed.keyPem, first.keyPem);
    const leaf = new X509Certificate(changed.certPem);
    // checkHost returns the SAN entry that matched (the wildcard for x.*), or undefined.
    assert.equal(leaf.checkHost('x.tunnels.example.com'), '*.tunnels.example.com');
    assert.equal(leaf.checkHost('tunnels.example.com'), 'tunnels.example.com');
    assert.ok(leaf.checkHost('connect.tunnels.example.com') !== undefined);
    assert.equal(leaf.checkHost('x.burrow.localhost'), undefined);
    assert.equal(openssl(['verify', '-CAfile', changed.caPath!, '-purpose', 'sslserver', '-x509_strict', changed.certPath]).trim(), `${changed.certPath}: OK`);
    // The re-issued leaf is then reused.
    const again = await ensureRelayPki({ dataDir, domain: 'tunnels.example.com' });
    assert.equal(again.generated, false);
    assert.equal(again.certPem, changed.certPem);
  });

  test('a leaf that expires within 30 days is re-issued from the same CA; one valid longer is kept', async (t) => {
    const dataDir = tempDir(t);
    const first = await ensureRelayPki({ dataDir, domain: DOMAIN });
    // Replace the leaf with one the same CA signed with openssl, same profile and key, valid for `days`.
    const craftLeaf = (days: number): string => {
      const work = mkdtempSync(join(dataDir, 'work-'));
      try {
        writeFileSync(
          join(work, 'ext.cnf'),
          [
            '[v3_leaf]',
            'basicConstraints = critical, CA:FALSE',
            'keyUsage = critical, digitalSignature',
            'extendedKeyUsage = serverAuth',
            'subjectKeyIdentifier = hash',
            'authorityKeyIdentifier = keyid:always',
            'subjectAltName = DNS:*.burrow.localhost, DNS:burrow.localhost, DNS:connect.burrow.localhost, DNS:localhost, ' +
              'IP:127.0.0.1, IP:::1',
            '',
          ].join('\n'),
        );
        openssl(['req', '-new', '-key', first.keyPath, '-subj', '/CN=burrow.localhost', '-out', 'leaf.csr'], work);
        openssl(
          ['x509', '-req', '-in', 'leaf.csr', '-CA', first.caPath!, '-CAkey', join(dataDir, 'ca-key.pem'), '-set_serial',
            `0x${days.toString(16)}`, '-days', String(days), '-sha256', '-extfile', 'ext.cnf', '-extensions', 'v3_leaf',
            '-out', first.certPath],
          work,
        );
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
      return readFileSync(first.certPath, 'utf8');
    };

    // Control: valid for 60 days, so kept — proving the openssl-made leaf passes every other reuse check.
    const longer = craftLeaf(60);
    const kept = await ensureRelayPki({ dataDir, domain: DOMAIN });
    assert.equal(kept.generated, false);
    assert.equal(kept.certPem, longer);

    const shortLived = craftLeaf(10);
    const renewed = await ensureRelayPki({ dataDir, domain: DOMAIN });
    assert.equal(renewed.generated, true);
    assert.equal(renewed.caPem, first.caPem);
    assert.notEqual(renewed.certPem, shortLived);
    assert.ok(new Date(new X509Certificate(renewed.certPem).validTo).getTime() > Date.now() + 300 * DAY_MS);
  });

  test('a missing or corrupt leaf is re-issued; the CA stays', async (t) => {
    const dataDir = tempDir(t);
    const first = await ensureRelayPki({ dataDir, domain: DOMAIN });
    unlinkSync(first.certPath);
    const a = await ensureRelayPki({ dataDir, domain: DOMAIN });
    assert.equal(a.generated, true);
    assert.equal(a.caPem, first.caPem);
    writeFileSync(a.keyPath, 'garbage');
    const b = await ensureRelayPki({ dataDir, domain: DOMAIN });
    assert.equal(b.generated, true);
    assert.equal(b.caPem, first.caPem);
    tls.createSecureContext({ cert: b.certPem, key: b.keyPem });
  });

  test('a leaf whose key does not match is re-issued', async (t) => {
    const dataDir = tempDir(t);
    const first = await ensureRelayPki({ dataDir, domain: DOMAIN });
    const other = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    writeFileSync(first.keyPath, other.keyPem);
    const again = await ensureRelayPki({ dataDir, domain: DOMAIN });
    assert.equal(again.generated, true);
    tls.createSecureContext({ cert: again.certPem, key: again.keyPem });
  });

  test('a leaf from another CA is re-issued from ours', async (t) => {
    const dataDir = tempDir(t);
    const first = await ensureRelayPki({ dataDir, domain: DOMAIN });
    const other = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    writeFileSync(first.certPath, other.certPem);
    writeFileSync(first.keyPath, other.keyPem);
    const again = await ensureRelayPki({ dataDir, domain: DOMAIN });
    assert.equal(again.generated, true);
    assert.ok(new X509Certificate(again.certPem).verify(new X509Certificate(first.caPem!).publicKey));
  });

  test('an incomplete CA is an error naming both files, not a silent new CA', async (t) => {
    const dataDir = tempDir(t);
    await ensureRelayPki({ dataDir, domain: DOMAIN });
    unlinkSync(join(dataDir, 'ca-key.pem'));
    await rejectsWith(ensureRelayPki({ dataDir, domain: DOMAIN }), 'BURROW_ERR_CONFIG_PKI', [
      join(dataDir, 'ca.pem'),
      join(dataDir, 'ca-key.pem'),
      'incomplete',
    ]);
  });

  test('a corrupt CA certificate is an error naming it', async (t) => {
    const dataDir = tempDir(t);
    await ensureRelayPki({ dataDir, domain: DOMAIN });
    writeFileSync(join(dataDir, 'ca.pem'), 'not a certificate');
    await rejectsWith(ensureRelayPki({ dataDir, domain: DOMAIN }), 'BURROW_ERR_CONFIG_PKI', [
      `${join(dataDir, 'ca.pem')} does not hold a PEM certificate`,
      'delete',
    ]);
  });

  test('a CA key that does not match the CA certificate is an error', async (t) => {
    const dataDir = tempDir(t);
    const other = tempDir(t);
    await ensureRelayPki({ dataDir, domain: DOMAIN });
    await ensureRelayPki({ dataDir: other, domain: DOMAIN });
    writeFileSync(join(dataDir, 'ca-key.pem'), readFileSync(join(other, 'ca-key.pem')));
    await rejectsWith(ensureRelayPki({ dataDir, domain: DOMAIN }), 'BURROW_ERR_CONFIG_PKI', ['do not belong together']);
  });

  test('concurrent first starts on one data dir end with one CA and one leaf', async (t) => {
    const dataDir = tempDir(t);
    const results = await Promise.all([1, 2, 3].map(() => ensureRelayPki({ dataDir, domain: DOMAIN })));
    for (const r of results) {
      assert.equal(r.caPem, results[0]!.caPem);
      assert.equal(r.certPem, results[0]!.certPem);
    }
    assert.equal(results.filter((r) => r.generated).length, 1);
    assert.equal(readFileSync(join(dataDir, 'ca.pem'), 'utf8'), results[0]!.caPem);
    assert.throws(() => statSync(join(dataDir, DEV_PKI_FILES.lock)), { code: 'ENOENT' });
  });

  test('a data dir that is a file is BURROW_ERR_CONFIG_FILE', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'f');
    writeFileSync(file, 'x');
    await rejectsWith(ensureRelayPki({ dataDir: file, domain: DOMAIN }), 'BURROW_ERR_CONFIG_FILE', [file, 'not a directory']);
  });
});

describe('--cert / --key', () => {
  test('a matching pair is loaded as is, with no CA', async (t) => {
    const src = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const pki = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN, certPath: src.certPath, keyPath: src.keyPath });
    assert.deepEqual(pki, {
      caPath: null,
      caPem: null,
      certPem: src.certPem,
      keyPem: src.keyPem,
      certPath: src.certPath,
      keyPath: src.keyPath,
      generated: false,
      warnings: [],
    });
  });

  test('a leaf for another domain loads, with warnings naming *.<domain> and connect.<domain>', async (t) => {
    const other = await ensureRelayPki({ dataDir: tempDir(t), domain: 'elsewhere.test' });
    const pki = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN, certPath: other.certPath, keyPath: other.keyPath });
    assert.equal(pki.warnings.length, 2, pki.warnings.join('\n'));
    assert.match(pki.warnings[0]!, new RegExp(`does not cover \\*\\.${DOMAIN.replace('.', '\\.')}: .*http:// URLs`));
    assert.match(pki.warnings[1]!, new RegExp(`does not cover connect\\.${DOMAIN.replace('.', '\\.')}: agents`));
    assert.ok(pki.warnings.every((w) => w.includes(other.certPath)), 'a warning does not name the file');
  });

  test('a certificate not valid yet loads, with a warning giving its start date', async (t) => {
    const dir = tempDir(t);
    selfSignedWithDates(dir, '20990101000000Z', '21000101000000Z', `*.${DOMAIN}`);
    const pki = await ensureRelayPki({ dataDir: dir, domain: DOMAIN, certPath: join(dir, 'c.pem'), keyPath: join(dir, 'k.pem') });
    assert.deepEqual(pki.warnings, [
      `the certificate in ${join(dir, 'c.pem')} is not valid before 2099-01-01T00:00:00.000Z: clients refuse it until then (check this machine's clock)`,
    ]);
  });

  test('the data dir is not touched', async (t) => {
    const src = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const dataDir = join(tempDir(t), 'never-made');
    await ensureRelayPki({ dataDir, domain: DOMAIN, certPath: src.certPath, keyPath: src.keyPath });
    assert.throws(() => statSync(dataDir), { code: 'ENOENT' });
  });

  test('a mismatched pair is BURROW_ERR_CONFIG_PKI naming both files', async (t) => {
    const a = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const b = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    await rejectsWith(ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN, certPath: a.certPath, keyPath: b.keyPath }), 'BURROW_ERR_CONFIG_PKI', [
      a.certPath,
      b.keyPath,
      'do not belong together',
    ]);
  });

  test('a file that is not a certificate or not a key is BURROW_ERR_CONFIG_PKI naming it', async (t) => {
    const a = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const dir = tempDir(t);
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'hello');
    await rejectsWith(ensureRelayPki({ dataDir: dir, domain: DOMAIN, certPath: junk, keyPath: a.keyPath }), 'BURROW_ERR_CONFIG_PKI', [
      `--cert ${junk} does not hold a PEM certificate`,
    ]);
    await rejectsWith(ensureRelayPki({ dataDir: dir, domain: DOMAIN, certPath: a.certPath, keyPath: junk }), 'BURROW_ERR_CONFIG_PKI', [
      `--key ${junk} does not hold an unencrypted PEM private key`,
    ]);
    // Swapped: the key file given as --cert.
    await rejectsWith(ensureRelayPki({ dataDir: dir, domain: DOMAIN, certPath: a.keyPath, keyPath: a.certPath }), 'BURROW_ERR_CONFIG_PKI', [
      a.keyPath,
    ]);
  });

  test('a missing file is BURROW_ERR_CONFIG_FILE naming it', async (t) => {
    const a = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    const missing = join(tempDir(t), 'missing.pem');
    await rejectsWith(ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN, certPath: missing, keyPath: a.keyPath }), 'BURROW_ERR_CONFIG_FILE', [
      `--cert ${missing} cannot be read`,
    ]);
  });

  test('an expired certificate is refused', async (t) => {
    const dir = tempDir(t);
    selfSignedWithDates(dir, '20190101000000Z', '20200101000000Z', 'old.example');
    await rejectsWith(
      ensureRelayPki({ dataDir: dir, domain: DOMAIN, certPath: join(dir, 'c.pem'), keyPath: join(dir, 'k.pem') }),
      'BURROW_ERR_CONFIG_PKI',
      [join(dir, 'c.pem'), 'expired on 2020-01-01'],
    );
  });

  test('only one of certPath / keyPath is a config error', async (t) => {
    const a = await ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN });
    await rejectsWith(ensureRelayPki({ dataDir: tempDir(t), domain: DOMAIN, certPath: a.certPath }), 'BURROW_ERR_CONFIG_INVALID', ['--key']);
  });
});
