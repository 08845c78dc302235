// The agent's dialer: one TLS connection to the relay's agent listener (PROTOCOL.md §1: no ALPN, SNI = the host of
// the server address, the relay's CA or the system roots). Once per session; not on the data path.
import { isIP } from 'node:net';
import tls from 'node:tls';
import { BurrowError } from '../core/errors.js';

export interface RelayDialOptions {
  host: string;
  port: number;
  /** PEM CA(s) to trust instead of the system roots (a dev relay's `ca.pem`). */
  ca?: string | Buffer | undefined;
  /** TCP connect + TLS handshake deadline (default 10 s). */
  timeoutMs?: number;
  /** TCP keepalive idle time on the relay connection, ms (default 30 s; 0 = off). */
  keepaliveMs?: number;
  /** Aborting it destroys the connection and rejects with BURROW_ERR_AGENT_CLOSED (the agent is closing). */
  signal?: AbortSignal;
}

/** OpenSSL / Node codes meaning "the relay's certificate is not acceptable": retrying cannot help. */
const CERT_ERROR_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'INVALID_CA',
]);

/**
 * OpenSSL codes meaning "this address is not the relay's agent listener": a port that does not speak TLS (the relay's
 * http listener, say), or a TLS server that refuses this name (the relay's https listener takes agents only under
 * connect.<domain>). Retrying cannot help either. Code → hint.
 */
const WRONG_SERVER_HINTS = new Map([
  ['ERR_SSL_WRONG_VERSION_NUMBER', 'the port does not answer in TLS (a plain HTTP or TCP port?)'],
  ['ERR_SSL_TLSV1_UNRECOGNIZED_NAME', 'the server refused the name this agent asked for (SNI)'],
]);

/** True when a dial failed because the address is not a relay's agent listener (see WRONG_SERVER_HINTS). */
export function isWrongServerError(err: unknown): boolean {
  const cause = err instanceof BurrowError ? err.cause : err;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && WRONG_SERVER_HINTS.has(code);
}

/** True when a dial failed because the relay's certificate did not verify (as opposed to a network failure). */
export function isCertificateError(err: unknown): boolean {
  const cause = err instanceof BurrowError ? err.cause : err;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && CERT_ERROR_CODES.has(code);
}

/**
 * Connect to the relay and finish the TLS handshake. Rejects with BURROW_ERR_AGENT_CONNECT naming the address and the
 * reason (the original error is the cause; see isCertificateError), or with BURROW_ERR_AGENT_CLOSED when `signal`
 * aborts the attempt.
 */
export function dialRelay(options: RelayDialOptions): Promise<tls.TLSSocket> {
  const { host, port } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const keepaliveMs = options.keepaliveMs ?? 30_000;
  const where = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted === true) {
      reject(new BurrowError('BURROW_ERR_AGENT_CLOSED', `the agent closed before connecting to the relay at ${where}`));
      return;
    }
    const socket = tls.connect({
      host,
      port,
      // RFC 6066 §3: SNI carries host names only, never IP literals (the certificate's IP SAN is checked instead).
      servername: isIP(host) === 0 ? host : undefined,
      ca: options.ca,
      // RFC 6761 §6.3: names under .localhost are loopback, as curl and browsers treat them, but getaddrinfo here
      // does not resolve them, so `--server connect.burrow.localhost:8443` (the relay's https listener, routed by that
      // SNI) failed with ENOTFOUND.
      ...(isLocalhostName(host) ? { lookup: loopbackLookup } : {}),
      // Nagle is turned off by MuxSession (it batches frames per event-loop turn itself).
    });
    const timer = setTimeout(() => {
      fail(new Error(`no TLS session within ${timeoutMs} ms`));
    }, timeoutMs);
    const signal = options.signal;
    // A relay that accepted the TCP connection but never answers (one shutting down, say) would otherwise hold the
    // socket and this timer, and with them the agent's process, until the deadline.
    const onAbort = (): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new BurrowError('BURROW_ERR_AGENT_CLOSED', `the agent closed while connecting to the relay at ${where}`));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const fail = (err: Error): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      const code = (err as NodeJS.ErrnoException).code;
      let hint = '';
      if (code !== undefined && CERT_ERROR_CODES.has(code)) {
        hint = options.ca === undefined
          ? '; the relay\'s certificate is not trusted by the system roots: pass the relay\'s CA with --ca (a dev relay prints its ca.pem path)'
          : '; the relay\'s certificate is not signed by the CA given with --ca, or does not name this host';
      } else if (code === 'ECONNREFUSED') {
        hint = '; is the relay running, and is this its --agent-addr?';
      } else if (code !== undefined && WRONG_SERVER_HINTS.has(code)) {
        hint = `; ${WRONG_SERVER_HINTS.get(code)}: point --server at the relay's --agent-addr (port 4443 unless changed)`;
      }
      // OpenSSL's messages end in a newline; the hint goes on the same line.
      reject(new BurrowError('BURROW_ERR_AGENT_CONNECT', `cannot connect to the relay at ${where}: ${err.message.trimEnd()}${hint}`, { cause: err }));
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', fail);
      if (keepaliveMs > 0) socket.setKeepAlive(true, keepaliveMs);
      resolve(socket);
    });
  });
}

/** A name under `.localhost` (a trailing dot allowed); `localhost` itself is left to the system resolver. */
function isLocalhostName(host: string): boolean {
  return host.toLowerCase().replace(/\.$/, '').endsWith('.localhost');
}

/** A net.connect `lookup` that answers 127.0.0.1 (both of its callback forms: one address, or `all`). */
function loopbackLookup(
  _hostname: string,
  options: { all?: boolean },
  callback: (err: Error | null, address: string | Array<{ address: string; family: number }>, family?: number) => void,
): void {
  if (options.all === true) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
}
