// PROXY protocol header (haproxy's proxy-protocol.txt, versions 1 and 2) that the relay puts in front of a public
// connection's bytes when its endpoint was bound with Opts.ProxyProto 1 or 2: the agent passes the stream to the
// service untouched, so the service learns the client's address as if it faced the client. Once per proxy stream.
import net from 'node:net';

/** v2 signature: \r\n\r\n\0\r\nQUIT\n. */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_PROXY = 0x21; // version 2, command PROXY
const V2_LOCAL = 0x20; // version 2, command LOCAL: no addresses (the receiver uses the connection's own)
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;

/**
 * The header for a connection from `src`:`srcPort` to the relay's `dst`:`dstPort`. Addresses of two families (a
 * dual-stack listener seen through an IPv6 socket) give the protocol's "unknown" form.
 */
export function proxyProtocolHeader(version: 1 | 2, src: string, srcPort: number, dst: string, dstPort: number): Buffer {
  const s = unmapped(src);
  const d = unmapped(dst);
  const family = net.isIPv4(s) && net.isIPv4(d) ? 4 : net.isIPv6(s) && net.isIPv6(d) ? 6 : 0;
  if (version === 1) {
    if (family === 0) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    return Buffer.from(`PROXY TCP${family} ${s} ${d} ${srcPort} ${dstPort}\r\n`, 'latin1');
  }
  if (family === 0) return Buffer.concat([V2_SIGNATURE, Buffer.from([V2_LOCAL, 0x00, 0x00, 0x00])]);
  const addrLen = family === 4 ? 4 : 16;
  const out = Buffer.alloc(16 + 2 * addrLen + 4);
  V2_SIGNATURE.copy(out, 0);
  out[12] = V2_PROXY;
  out[13] = family === 4 ? V2_TCP4 : V2_TCP6;
  out.writeUInt16BE(2 * addrLen + 4, 14);
  writeAddress(out, 16, s, family);
  writeAddress(out, 16 + addrLen, d, family);
  out.writeUInt16BE(srcPort, 16 + 2 * addrLen);
  out.writeUInt16BE(dstPort, 18 + 2 * addrLen);
  return out;
}

/** `::ffff:a.b.c.d` → `a.b.c.d` (how an IPv4 peer of a dual-stack socket is named). */
function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && net.isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

function writeAddress(out: Buffer, at: number, ip: string, family: 4 | 6): void {
  if (family === 4) {
    const parts = ip.split('.');
    for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
    return;
  }
  // IPv6: up to one '::', an optional dotted IPv4 tail, a zone (%eth0) dropped.
  const bare = ip.split('%')[0]!;
  const groups: number[] = [];
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const b = g.split('.').map(Number);
        out.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
      } else out.push(parseInt(g, 16));
    }
    return out;
  };
  const gap = bare.indexOf('::');
  if (gap < 0) groups.push(...parse(bare));
  else {
    const head = parse(bare.slice(0, gap));
    const tail = parse(bare.slice(gap + 2));
    groups.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  }
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i]!, at + 2 * i);
}
