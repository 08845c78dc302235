// Test PKI: a throwaway EC P-256 CA and a server leaf it signed, made with the openssl CLI, strict enough for
// rustls/webpki (the @ngrok/ngrok SDK) as well as node:tls and curl. Test-only; never on a hot path.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  /** Fresh temp dir holding ca.pem, leaf.pem and leaf.key for this caller; removed by cleanup(). */
  readonly dir: string;
  readonly caPem: string;
  readonly caPath: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** The names in the leaf's subjectAltName, in order. */
  readonly hosts: readonly string[];
  /** Removes `dir`. Idempotent; dirs not cleaned up are removed at process exit. */
  cleanup(): void;
}

export interface TestPkiOptions {
  /** SAN entries: IP literals become `IP:`, everything else `DNS:`. */
  hosts?: string[];
}

export const DEFAULT_TEST_HOSTS: readonly string[] = [
  'localhost',
  '127.0.0.1',
  '*.burrow.localhost',
  'burrow.localhost',
  'connect.burrow.localhost',
];

interface PkiMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
}

// Six openssl runs (two keys, CA, CSR, leaf, verify) cost ~50 ms; tests call this often, so material is made once per
// process and host list, and each call only writes its own copy of the files.
const cache = new Map<string, PkiMaterial>();

// Dirs handed out and not yet cleaned up. Callers that only use the PEM strings tend to forget cleanup(), so
// whatever is left is removed when the process (or worker thread) exits; only a SIGKILL can leak one.
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function removeDir(dir: string): void {
  liveDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

// A hostname, a wildcard hostname, or an IP literal: nothing that could smuggle syntax into the openssl config.
const HOST_RE = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

/** Makes (or reuses) a CA + leaf for `hosts` and writes them into a fresh temp dir. Synchronous. */
export function makeTestPki(opts: TestPkiOptions = {}): TestPki {
  const hosts = opts.hosts ?? [...DEFAULT_TEST_HOSTS];
  if (hosts.length === 0) throw new TypeError('makeTestPki: hosts must name at least one DNS name or IP');
  for (const h of hosts) {
    if (isIP(h) === 0 && !HOST_RE.test(h)) throw new TypeError(`makeTestPki: ${JSON.stringify(h)} is not a hostname or IP`);
  }
  const key = hosts.join('\n');
  let material = cache.get(key);
  if (material === undefined) {
    material = generate(hosts);
    cache.set(key, material);
  }

  const dir = mkdtempSync(join(tmpdir(), 'burrow-pki-'));
  liveDirs.add(dir);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const d of [...liveDirs]) removeDir(d);
    });
  }
  const caPath = join(dir, 'ca.pem');
  const certPath = join(dir, 'leaf.pem');
  const keyPath = join(dir, 'leaf.key');
  writeFileSync(caPath, material.caPem);
  writeFileSync(certPath, material.certPem);
  writeFileSync(keyPath, material.keyPem, { mode: 0o600 });
  return {
    dir,
    caPem: material.caPem,
    caPath,
    certPem: material.certPem,
    keyPem: material.keyPem,
    certPath,
    keyPath,
    hosts: [...hosts],
    cleanup(): void {
      removeDir(dir);
    },
  };
}

/** Positive 128-bit serial in hex (RFC 5280 §4.1.2.2: positive, at most 20 octets; random so re-runs never collide). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x10; // top bit clear (positive), non-zero first octet (no DER padding surprises)
  return `0x${b.toString('hex')}`;
}

function generate(hosts: readonly string[]): PkiMaterial {
  const work = mkdtempSync(join(tmpdir(), 'burrow-pki-gen-'));
  try {
    const san = hosts.map((h) => (isIP(h) !== 0 ? `IP:${h}` : `DNS:${h}`)).join(', ');
    const leafCn = hosts.find((h) => isIP(h) === 0 && !h.startsWith('*.')) ?? hosts[0]!;
    // One config, two extension sections. Passing our own -config keeps the system openssl.cnf's default
    // v3_ca/req extensions out, so nothing is duplicated or silently added.
    writeFileSync(
      join(work, 'pki.cnf'),
      [
        '[req]',
        'distinguished_name = dn_ca',
        'prompt = no',
        '[dn_ca]',
        `CN = burrow test CA ${randomBytes(4).toString('hex')}`,
        '[v3_ca]',
        'basicConstraints = critical, CA:TRUE',
        'keyUsage = critical, keyCertSign, cRLSign',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid:always',
        // webpki requires a real end-entity: CA:FALSE, serverAuth EKU, the name in the SAN (CN is ignored),
        // and an AKI that matches the CA's SKI to build the chain.
        '[v3_leaf]',
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = serverAuth',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid:always',
        `subjectAltName = ${san}`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(work, 'leaf-req.cnf'),
      ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', `CN = ${leafCn}`, ''].join('\n'),
    );
    const run = (args: string[]): void => {
      try {
        execFileSync('openssl', args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        const e = err as Error & { stderr?: Buffer };
        throw new Error(`makeTestPki: openssl ${args.join(' ')} failed: ${e.stderr?.toString().trim() || e.message}`, {
          cause: err,
        });
      }
    };
    const ecKey = (out: string): string[] => ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', out];
    run(ecKey('ca.key'));
    run([
      'req', '-x509', '-new', '-key', 'ca.key', '-config', 'pki.cnf', '-extensions', 'v3_ca',
      '-sha256', '-days', '3650', '-set_serial', randomSerial(), '-out', 'ca.pem',
    ]);
    run(ecKey('leaf.key'));
    run(['req', '-new', '-key', 'leaf.key', '-config', 'leaf-req.cnf', '-out', 'leaf.csr']);
    // openssl 3.0 `x509` has no -not_before, so validity starts now; fine on one host (no clock skew).
    run([
      'x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', randomSerial(),
      '-days', '825', '-sha256', '-extfile', 'pki.cnf', '-extensions', 'v3_leaf', '-out', 'leaf.pem',
    ]);
    run(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslserver', 'leaf.pem']);
    return {
      caPem: readFileSync(join(work, 'ca.pem'), 'utf8'),
      certPem: readFileSync(join(work, 'leaf.pem'), 'utf8'),
      keyPem: readFileSync(join(work, 'leaf.key'), 'utf8'),
    };
  } finally {
    // The CA key lives only here: nobody can sign anything else with it after this returns.
    rmSync(work, { recursive: true, force: true });
  }
}
