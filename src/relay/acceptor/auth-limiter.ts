// Rate limit of failed agent authentications per client IP (docs/security.md §Tokens): a token bucket per address,
// `perMinute` failures deep, refilled at `perMinute` per minute. While an address's bucket is empty, every Auth from
// it is refused without looking at the token, so guessing runs at most `perMinute` tries a minute. Main thread; once
// per Auth. Memory: at most MAX_TRACKED addresses (the oldest are forgotten first). An IPv6 client is counted by its
// /64, the block one host or one site is given (RFC 6177): one host holds millions of addresses there, so counting
// each alone would give a guesser a fresh budget per address.
import net from 'node:net';

/** Addresses tracked at once; beyond that the least recently failed are dropped (they start afresh). */
const MAX_TRACKED = 10_000;
const MINUTE_MS = 60_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class AuthLimiter {
  private readonly perMinute: number;
  private readonly buckets: Map<string, Bucket>;

  constructor(perMinute: number) {
    this.perMinute = perMinute;
    this.buckets = new Map();
  }

  /** Milliseconds until `ip` may try again; 0 = not limited. */
  blockedFor(ip: string, now: number): number {
    const b = this.refill(limitKey(ip), now);
    if (b === null || b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) * MINUTE_MS) / this.perMinute);
  }

  /** Record one failed authentication from `ip`. */
  fail(ip: string, now: number): void {
    const key = limitKey(ip);
    const b = this.refill(key, now) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.max(0, b.tokens - 1);
    // Re-insert: Map order is then "least recently failed first", which is what eviction drops.
    this.buckets.delete(key);
    this.buckets.set(key, b);
    if (this.buckets.size > MAX_TRACKED) this.buckets.delete(this.buckets.keys().next().value!);
  }

  get tracked(): number {
    return this.buckets.size;
  }

  private refill(ip: string, now: number): Bucket | null {
    const b = this.buckets.get(ip);
    if (b === undefined) return null;
    b.tokens = Math.min(this.perMinute, b.tokens + ((now - b.at) * this.perMinute) / MINUTE_MS);
    b.at = now;
    if (b.tokens >= this.perMinute) {
      this.buckets.delete(ip); // full again: nothing to remember
      return null;
    }
    return b;
  }
}

/**
 * What a client's failures are counted under: the address itself (IPv4), or its /64 (IPv6, `2001:db8:0:1::/64`).
 * Except where a /64 holds many unrelated clients, which are counted by their whole address: NAT64 (64:ff9b::/96,
 * every IPv4 client of a translated network), Teredo (2001::/32, every client of one Teredo server) and link-local
 * (fe80::/10, with its zone).
 */
export function limitKey(ip: string): string {
  if (!net.isIPv6(ip)) return ip;
  const groups = ipv6Groups(ip);
  if (groups === null) return ip;
  const [g0, g1, g2, g3, g4, g5] = groups as [string, string, string, string, string, string];
  const nat64 = g0 === '64' && g1 === 'ff9b' && g2 === '0' && g3 === '0' && g4 === '0' && g5 === '0';
  const teredo = g0 === '2001' && g1 === '0';
  const linkLocal = (parseInt(g0, 16) & 0xffc0) === 0xfe80;
  if (nat64 || teredo) return groups.join(':');
  if (linkLocal) return `${groups.join(':')}${ip.includes('%') ? ip.slice(ip.indexOf('%')) : ''}`;
  return `${groups.slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, in lowercase hex without leading zeros; null if it is none. */
function ipv6Groups(ip: string): string[] | null {
  const zone = ip.indexOf('%');
  let text = zone < 0 ? ip : ip.slice(0, zone);
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    // An IPv4 tail (::ffff:192.0.2.1, 64:ff9b::192.0.2.1) is two groups.
    const o = tail.split('.').map(Number);
    if (o.length !== 4 || o.some((x) => !(x >= 0 && x <= 255))) return null;
    text = `${text.slice(0, lastColon + 1)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const fill = 8 - head.length - rest.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const all = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill('0'), ...rest];
  return all.map((g) => parseInt(g, 16).toString(16));
}
