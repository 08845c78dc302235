// The relay's TLS identity: loads --cert/--key, or keeps a dev CA + wildcard leaf in the data dir (made with
// @peculiar/x509 on first start, leaf re-issued when the domain changes or expiry nears). Start-up only.
import { X509Certificate as NodeX509, createPrivateKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { chmod, open, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSecureContext } from 'node:tls';
import { BurrowError } from '../core/errors.js';
import { errorReason, readConfigText, readIfExists } from './config-files.js';
import { ensureDataDir } from './relay-config.js';

type CryptoKey = webcrypto.CryptoKey;

/** The TLS material the relay serves. PEM strings; paths absolute. */
export interface RelayPki {
  /** The dev CA clients must trust (`--cacert`, `--ca`); null with --cert/--key. */
  readonly caPath: string | null;
  readonly caPem: string | null;
  /** Leaf (or the user's chain) and its PKCS#8 key, ready for tls.createSecureContext. */
  readonly certPem: string;
  readonly keyPem: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** True when this call wrote a new leaf (first start, domain change, expiry near, leaf missing or unusable). */
  readonly generated: boolean;
  /**
   * What works less than the user likely expects with this --cert, said at start (the relay still runs): a leaf not
   * valid yet, or one that does not cover `*.<domain>` or `connect.<domain>`. Always empty for the dev certificate.
   */
  readonly warnings: readonly string[];
}

export interface RelayPkiOptions {
  dataDir: string;
  /** Validated, lowercased base domain (RelayConfig.domain). */
  domain: string;
  /** --cert / --key: both or neither. */
  certPath?: string | null;
  keyPath?: string | null;
}

/** File names inside the data dir. */
export const DEV_PKI_FILES = Object.freeze({
  ca: 'ca.pem',
  caKey: 'ca-key.pem',
  cert: 'relay.pem',
  key: 'relay-key.pem',
  lock: '.pki.lock',
});

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const CA_VALIDITY_MS = 3652 * DAY_MS; // 10 years
const LEAF_VALIDITY_MS = 365 * DAY_MS; // within the 398-day limit browsers enforce on server certificates
const LEAF_BACKDATE_MS = HOUR_MS; // tolerate clients whose clock is a little behind
const LEAF_RENEW_BEFORE_MS = 30 * DAY_MS;
const LOCK_WAIT_MS = 30_000;
const LOCK_STALE_MS = 60_000;
const LOCK_POLL_MS = 50;
const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/**
 * Returns the relay's certificate and key. With certPath/keyPath: loads and checks them (caPath null). Otherwise keeps a
 * dev CA + leaf in `dataDir`, creating or re-issuing what is missing or stale; the CA is never replaced, so clients that
 * trust it keep working. Throws BurrowError (BURROW_ERR_CONFIG_PKI, BURROW_ERR_CONFIG_FILE) naming the files involved.
 */
export async function ensureRelayPki(opts: RelayPkiOptions): Promise<RelayPki> {
  const certPath = opts.certPath ?? null;
  const keyPath = opts.keyPath ?? null;
  if (certPath !== null || keyPath !== null) {
    if (certPath === null || keyPath === null) {
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', 'give both --cert and --key, or neither to use the dev certificate');
    }
    return loadUserPki(certPath, keyPath, opts.domain);
  }
  await ensureDataDir(opts.dataDir);
  return withLock(join(opts.dataDir, DEV_PKI_FILES.lock), () => ensureDevPki(opts.dataDir, opts.domain));
}

// ── --cert / --key ───────────────────────────────────────────────────────────────────────────────────────────────

async function loadUserPki(certPath: string, keyPath: string, domain: string): Promise<RelayPki> {
  const certPem = await readConfigText(certPath, '--cert');
  const keyPem = await readConfigText(keyPath, '--key');
  let cert: NodeX509;
  try {
    cert = new NodeX509(certPem);
  } catch (err) {
    throw new BurrowError(
      'BURROW_ERR_CONFIG_PKI',
      `--cert ${certPath} does not hold a PEM certificate (${errorReason(err)}); give the certificate file`,
      { cause: err },
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new BurrowError(
      'BURROW_ERR_CONFIG_PKI',
      `--key ${keyPath} does not hold an unencrypted PEM private key (${errorReason(err)}); give the key file, decrypted`,
      { cause: err },
    );
  }
  const mismatch = (err?: unknown): BurrowError =>
    new BurrowError(
      'BURROW_ERR_CONFIG_PKI',
      `the certificate in ${certPath} and the private key in ${keyPath} do not belong together` +
        `${err === undefined ? '' : ` (${errorReason(err)})`}; give --key the key the certificate was issued for`,
      err === undefined ? undefined : { cause: err },
    );
  if (!cert.checkPrivateKey(key)) throw mismatch();
  try {
    createSecureContext({ cert: certPem, key: keyPem }); // what the listeners will do; OpenSSL has the last word
  } catch (err) {
    throw mismatch(err);
  }
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= Date.now()) {
    throw new BurrowError('BURROW_ERR_CONFIG_PKI', `the certificate in ${certPath} expired on ${notAfter.toISOString()}; renew it`);
  }
  return Object.freeze({ caPath: null, caPem: null, certPem, keyPem, certPath, keyPath, generated: false, warnings: userCertWarnings(cert, certPath, domain) });
}

/**
 * A user's leaf may be fine for TLS and still leave part of the relay unusable: one that starts in the future is
 * refused by every client until then (a wrong clock here or at the issuer), and one that does not cover the endpoint
 * names or connect.<domain> makes the relay hand out http:// URLs (acceptor certCovers) and tell agents a name they
 * cannot verify. Neither stops the relay: a certificate for one name is a valid choice with http endpoints.
 */
function userCertWarnings(cert: NodeX509, certPath: string, domain: string): string[] {
  const warnings: string[] = [];
  const notBefore = new Date(cert.validFrom);
  if (notBefore.getTime() > Date.now()) {
    warnings.push(`the certificate in ${certPath} is not valid before ${notBefore.toISOString()}: clients refuse it until then (check this machine's clock)`);
  }
  // Any one-label name stands for every endpoint name: the relay's own names are one label under the domain.
  if (cert.checkHost(`burrow-name-check.${domain}`) === undefined) {
    warnings.push(
      `the certificate in ${certPath} does not cover *.${domain}: endpoints on names it does not list get http:// URLs, ` +
        `not https:// (give a certificate for *.${domain} to serve them over https)`,
    );
  }
  if (cert.checkHost(`connect.${domain}`) === undefined) {
    warnings.push(
      `the certificate in ${certPath} does not cover connect.${domain}: agents cannot verify the relay under that name; ` +
        'point them at a name the certificate lists (--server / serverAddr)',
    );
  }
  return warnings;
}

// ── dev CA + leaf ────────────────────────────────────────────────────────────────────────────────────────────────

interface LoadedCa {
  pem: string;
  cert: NodeX509;
  signingKey: CryptoKey;
  /** The CA's subject as parsed by @peculiar/x509 (re-encodes to the same DER, so issuer == subject byte for byte). */
  subject: InstanceType<X509Module['Name']>;
  /** Hex key id: the CA's SKI, used as the leaf's AKI. */
  keyId: string;
}

async function ensureDevPki(dataDir: string, domain: string): Promise<RelayPki> {
  const x509 = await loadX509();
  const caPath = join(dataDir, DEV_PKI_FILES.ca);
  const caKeyPath = join(dataDir, DEV_PKI_FILES.caKey);
  const certPath = join(dataDir, DEV_PKI_FILES.cert);
  const keyPath = join(dataDir, DEV_PKI_FILES.key);

  const caPem = await readIfExists(caPath);
  const caKeyPem = await readIfExists(caKeyPath);
  let ca: LoadedCa;
  let caIsNew = false;
  if (caPem === null && caKeyPem === null) {
    const created = await createCa(x509, domain);
    ca = created.ca;
    // Key first: a crash in between leaves ca-key.pem alone, which the next start reports instead of guessing.
    await writeAtomic(caKeyPath, created.keyPem, 0o600);
    await writeAtomic(caPath, ca.pem, 0o644);
    caIsNew = true;
  } else if (caPem === null || caKeyPem === null) {
    const [have, missing] = caPem === null ? [caKeyPath, caPath] : [caPath, caKeyPath];
    throw new BurrowError(
      'BURROW_ERR_CONFIG_PKI',
      `found ${have} but not ${missing}: the dev CA is incomplete. Restore ${missing}, or delete ${have} to generate a ` +
        'new dev CA (clients must then trust the new ca.pem)',
    );
  } else {
    ca = await loadCa(x509, caPem, caKeyPem, caPath, caKeyPath);
  }

  if (!caIsNew) {
    const leafPem = await readIfExists(certPath);
    const leafKeyPem = await readIfExists(keyPath);
    if (leafPem !== null && leafKeyPem !== null && leafIsUsable(x509, leafPem, leafKeyPem, ca, domain)) {
      return Object.freeze({ caPath, caPem: ca.pem, certPem: leafPem, keyPem: leafKeyPem, certPath, keyPath, generated: false, warnings: [] });
    }
  }
  const leaf = await issueLeaf(x509, ca, domain);
  await writeAtomic(keyPath, leaf.keyPem, 0o600);
  await writeAtomic(certPath, leaf.certPem, 0o644);
  return Object.freeze({ caPath, caPem: ca.pem, certPem: leaf.certPem, keyPem: leaf.keyPem, certPath, keyPath, generated: true, warnings: [] });
}

async function createCa(x509: X509Module, domain: string): Promise<{ ca: LoadedCa; keyPem: string }> {
  try {
    const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
    const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey);
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      // Random suffix: two dev CAs (two machines, or a re-created data dir) never share a name in a trust store.
      name: [{ CN: [`burrow dev CA (${domain}) ${randomBytes(4).toString('hex')}`] }],
      notBefore: new Date(now - LEAF_BACKDATE_MS),
      notAfter: new Date(now + CA_VALIDITY_MS),
      keys,
      signingAlgorithm: EC_P256,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true), // RFC 5280 §4.2.1.9: critical in CA certificates
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        ski,
      ],
    });
    const pem = cert.toString('pem') + '\n';
    const ca: LoadedCa = {
      pem,
      cert: new NodeX509(pem),
      signingKey: keys.privateKey,
      subject: cert.subjectName,
      keyId: ski.keyId,
    };
    return { ca, keyPem: await exportPkcs8Pem(keys.privateKey) };
  } catch (err) {
    throw new BurrowError('BURROW_ERR_CONFIG_PKI', `could not generate the dev CA (${errorReason(err)})`, { cause: err });
  }
}

async function loadCa(x509: X509Module, pem: string, keyPem: string, caPath: string, caKeyPath: string): Promise<LoadedCa> {
  const broken = (what: string, err?: unknown): BurrowError =>
    new BurrowError(
      'BURROW_ERR_CONFIG_PKI',
      `${what}${err === undefined ? '' : ` (${errorReason(err)})`}. Fix or restore it, or delete ${caPath} and ${caKeyPath} ` +
        'to generate a new dev CA (clients must then trust the new ca.pem)',
      err === undefined ? undefined : { cause: err },
    );
  let cert: NodeX509;
  let parsed: InstanceType<X509Module['X509Certificate']>;
  try {
    cert = new NodeX509(pem);
    parsed = new x509.X509Certificate(pem);
  } catch (err) {
    throw broken(`${caPath} does not hold a PEM certificate`, err);
  }
  if (!cert.ca) throw broken(`${caPath} is not a CA certificate (basicConstraints CA:TRUE missing)`);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw broken(`${caKeyPath} does not hold an unencrypted PEM private key`, err);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw broken(`${caKeyPath} is not an EC P-256 key`);
  }
  if (!cert.checkPrivateKey(key)) throw broken(`${caPath} and ${caKeyPath} do not belong together`);
  const caNotAfter = new Date(cert.validTo).getTime();
  if (caNotAfter - Date.now() < LEAF_RENEW_BEFORE_MS) {
    throw broken(`the dev CA ${caPath} expires on ${new Date(caNotAfter).toISOString()}`);
  }
  let signingKey: CryptoKey;
  try {
    const der = key.export({ type: 'pkcs8', format: 'der' });
    signingKey = await webcrypto.subtle.importKey('pkcs8', der, EC_P256, false, ['sign']);
  } catch (err) {
    throw broken(`${caKeyPath} could not be loaded for signing`, err);
  }
  const ski = parsed.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId = ski?.keyId ?? (await x509.SubjectKeyIdentifierExtension.create(parsed.publicKey)).keyId;
  return { pem, cert, signingKey, subject: parsed.subjectName, keyId };
}

/** The SAN entries a leaf for `domain` must carry, as `dns:name` / `ip:addr`. */
function wantedNames(domain: string): Array<{ type: 'dns' | 'ip'; value: string }> {
  const dns = [...new Set([`*.${domain}`, domain, `connect.${domain}`, 'localhost'])];
  return [
    ...dns.map((value) => ({ type: 'dns' as const, value })),
    { type: 'ip', value: '127.0.0.1' },
    { type: 'ip', value: '::1' },
  ];
}

/**
 * Reuse an existing leaf only if it parses, pairs with its key, was signed by this CA, is a server end-entity
 * certificate, names everything wantedNames() lists, and stays valid for more than LEAF_RENEW_BEFORE_MS. Anything
 * else is re-issued: the leaf is derived data, the CA is what users trust.
 */
function leafIsUsable(x509: X509Module, pem: string, keyPem: string, ca: LoadedCa, domain: string): boolean {
  try {
    const leaf = new NodeX509(pem);
    const now = Date.now();
    if (leaf.ca || !(leaf.keyUsage ?? []).includes(SERVER_AUTH_OID)) return false;
    if (!leaf.checkIssued(ca.cert) || !leaf.verify(ca.cert.publicKey)) return false;
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) return false;
    if (new Date(leaf.validFrom).getTime() > now || new Date(leaf.validTo).getTime() - now < LEAF_RENEW_BEFORE_MS) return false;
    const san = new x509.X509Certificate(pem).getExtension(x509.SubjectAlternativeNameExtension);
    if (san === null) return false;
    const have = new Set(san.names.toJSON().map((n) => `${n.type}:${n.value.toLowerCase()}`));
    return wantedNames(domain).every((n) => have.has(`${n.type}:${n.value}`));
  } catch {
    return false;
  }
}

async function issueLeaf(x509: X509Module, ca: LoadedCa, domain: string): Promise<{ certPem: string; keyPem: string }> {
  try {
    const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
    const now = Date.now();
    const caNotAfter = new Date(ca.cert.validTo).getTime();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: [{ CN: [domain] }],
      issuer: ca.subject,
      notBefore: new Date(now - LEAF_BACKDATE_MS),
      notAfter: new Date(Math.min(now + LEAF_VALIDITY_MS, caNotAfter)), // never outlive the issuer
      publicKey: keys.publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: EC_P256,
      // webpki (the @ngrok/ngrok SDK) insists on a real end-entity: CA:FALSE, serverAuth, names in the SAN (it ignores
      // the CN). AKI = the CA's SKI lets OpenSSL pick the issuer without guessing.
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        new x509.AuthorityKeyIdentifierExtension(ca.keyId),
        new x509.SubjectAlternativeNameExtension(wantedNames(domain)),
      ],
    });
    const certPem = cert.toString('pem') + '\n';
    const keyPem = await exportPkcs8Pem(keys.privateKey);
    // Check what we made the way the listeners and clients will use it, so a bad leaf never reaches the disk.
    const check = new NodeX509(certPem);
    if (!check.verify(ca.cert.publicKey) || !check.checkIssued(ca.cert)) throw new Error('the new leaf does not verify against the CA');
    createSecureContext({ cert: certPem, key: keyPem });
    return { certPem, keyPem };
  } catch (err) {
    throw new BurrowError('BURROW_ERR_CONFIG_PKI', `could not issue the relay certificate for ${domain} (${errorReason(err)})`, { cause: err });
  }
}

// ── helpers ──────────────────────────────────────────────────────────────────────────────────────────────────────

type X509Module = typeof import('@peculiar/x509');
let x509Module: Promise<X509Module> | null = null;

/**
 * @peculiar/x509 registers its algorithms through tsyringe, which needs a Reflect metadata polyfill loaded first;
 * `reflect-metadata` is imported before the library (dynamically, so the order is guaranteed).
 */
function loadX509(): Promise<X509Module> {
  x509Module ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    return x509;
  })();
  return x509Module;
}

/** Positive serial of 16 random octets (RFC 5280 §4.1.2.2: positive, ≤ 20 octets; random so re-issues never collide). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01; // top bit clear (positive), first octet non-zero (no DER padding)
  return b.toString('hex');
}

async function exportPkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g)!;
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}



/** Write to a temp file in the same dir, then rename: readers see the old file or the new one, never half of one. */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await chmod(tmp, mode); // the umask may have narrowed `mode`; keys must end up exactly 0600
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new BurrowError('BURROW_ERR_CONFIG_FILE', `could not write ${path} (${errorReason(err)}); check the data dir's permissions`, {
      cause: err,
    });
  }
}

/**
 * Serialises PKI creation between relays sharing a data dir (two first starts must not each write half a CA).
 * An exclusive lock file; one older than LOCK_STALE_MS is left over from a crash and is taken over.
 */
async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new BurrowError('BURROW_ERR_CONFIG_FILE', `could not create ${lockPath} (${errorReason(err)}); check the data dir's permissions`, {
          cause: err,
        });
      }
      const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > LOCK_STALE_MS) {
        await unlink(lockPath).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) {
        throw new BurrowError(
          'BURROW_ERR_CONFIG_PKI',
          `another burrow relay is creating certificates in this data dir (lock ${lockPath} is held); if none is running, delete the lock file`,
        );
      }
      await sleep(LOCK_POLL_MS); // waiting on another process: no event to wait for
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => {});
  }
}

