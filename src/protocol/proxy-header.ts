// ProxyHeader framing: after the u32 stream type (PROXY = 3) the relay writes an i64 little-endian length and that
// many bytes of JSON, then the raw connection bytes follow (PROTOCOL.md §Proxy streams). Pure; once per stream.
import { BurrowError } from '../core/errors.js';
import type { ProxyHeader } from './messages.js';

export const PROXY_HEADER_LENGTH_SIZE = 8;
/** Default cap on the JSON part; a ProxyHeader is a handful of short fields. */
export const DEFAULT_MAX_PROXY_HEADER = 64 * 1024;

/** Encode the length prefix + JSON of a ProxyHeader (the stream type is written by the typed-stream layer). */
export function encodeProxyHeader(header: ProxyHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.allocUnsafe(PROXY_HEADER_LENGTH_SIZE + json.length);
  out.writeBigInt64LE(BigInt(json.length), 0);
  json.copy(out, PROXY_HEADER_LENGTH_SIZE);
  return out;
}

export interface ProxyHeaderDecoded {
  header: ProxyHeader;
  /** Bytes of `buf` taken by the length prefix and JSON; the rest is connection payload. */
  consumed: number;
}

/**
 * Try to decode a ProxyHeader from the start of `buf`. Returns null when more bytes are needed; throws
 * BURROW_ERR_PROXY_HEADER when the length is negative or above `maxSize`, or the JSON is not an object.
 */
export function decodeProxyHeader(buf: Buffer, maxSize: number = DEFAULT_MAX_PROXY_HEADER): ProxyHeaderDecoded | null {
  if (buf.length < PROXY_HEADER_LENGTH_SIZE) return null;
  const len = buf.readBigInt64LE(0);
  if (len < 0n || len > BigInt(maxSize)) {
    throw new BurrowError(
      'BURROW_ERR_PROXY_HEADER',
      `ProxyHeader length ${len} is outside 0..${maxSize} bytes; the peer is not speaking the proxy-stream format`,
    );
  }
  const n = Number(len);
  if (buf.length < PROXY_HEADER_LENGTH_SIZE + n) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8', PROXY_HEADER_LENGTH_SIZE, PROXY_HEADER_LENGTH_SIZE + n));
  } catch (err) {
    throw new BurrowError('BURROW_ERR_PROXY_HEADER', `ProxyHeader JSON does not parse: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BurrowError('BURROW_ERR_PROXY_HEADER', 'ProxyHeader JSON must be an object');
  }
  return { header: parsed as ProxyHeader, consumed: PROXY_HEADER_LENGTH_SIZE + n };
}
