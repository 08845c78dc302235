// Load test `slow-reader`: clients that read 10 KiB/s from 100 MiB responses through the relay (burrow's agent, one
// session). Flow control must hold the rest back: the relay may buffer about one receive window (512 KiB) per stream
// plus socket buffers, never the response. Passes when the relay's RSS growth stays under streams × 1 MiB + 64 MiB,
// every client keeps receiving correct bytes at its pace, and the relay stays up.
// --short: 20 clients for 15 s (full: 50 clients for 60 s). Usage: node dist/load-tests/slow-reader.js [--short]
import net from 'node:net';
import { mib, relayStillRunning, runLoadTest, sampleRss, startHttpAgent, startRelayAndOrigin } from './lib/harness.js';

const BODY = 100 * 1024 * 1024;
const READ_BYTES_PER_TICK = 1024;
const TICK_MS = 100; // 1 KiB per 100 ms = 10 KiB/s
const PER_STREAM_ALLOWANCE_KIB = 1024;
const BASE_ALLOWANCE_KIB = 64 * 1024;

interface Reader {
  got: number;
  bad: boolean;
  error: string | null;
  stop(): void;
}

/** A client that sends one GET for the large body and then reads at most 1 KiB per tick. */
function slowReader(port: number, host: string): Reader {
  const r: Reader = { got: 0, bad: false, error: null, stop: () => {} };
  const sock = net.connect(port, '127.0.0.1');
  sock.pause();
  let head = '';
  let inBody = false;
  sock.on('error', (err) => (r.error ??= err.message));
  sock.once('close', () => {
    if (r.error === null && timer !== null) r.error = 'connection closed early';
  });
  sock.write(`GET /large HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  let timer: NodeJS.Timeout | null = setInterval(() => {
    const n = Math.min(READ_BYTES_PER_TICK, sock.readableLength);
    if (n === 0) {
      sock.read(0); // let the stream pull from the kernel into its (16 KiB) buffer
      return;
    }
    const chunk = sock.read(n) as Buffer | null;
    if (chunk === null) return;
    if (!inBody) {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!head.startsWith('HTTP/1.1 200')) r.bad = true;
      const rest = head.length - end - 4;
      inBody = true;
      r.got += rest;
      return;
    }
    for (let i = 0; i < chunk.length; i++) if (chunk[i] !== 0x61) r.bad = true;
    r.got += chunk.length;
  }, TICK_MS);
  r.stop = () => {
    if (timer !== null) clearInterval(timer);
    timer = null;
    sock.destroy();
  };
  return r;
}

await runLoadTest(
  'slow-reader',
  (short) => (short ? 90_000 : 180_000),
  async (ctx) => {
    const clients = ctx.short ? 20 : 50;
    const seconds = ctx.short ? 15 : 60;
    const rig = await startRelayAndOrigin(ctx, { largeBody: BODY });
    const { relay } = rig;
    const agent = await startHttpAgent(ctx, rig, 'slow.burrow.localhost');
    ctx.log(`agent pid ${agent.child.pid}; ${clients} clients reading 10 KiB/s for ${seconds} s`);
    const rss = sampleRss(relay.child.pid!, 500);
    const readers = Array.from({ length: clients }, () => slowReader(relay.banner.httpPort, 'slow.burrow.localhost'));
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const samples = rss.stop();
    for (const x of readers) x.stop();
    const base = samples[0]!.kib;
    const peak = Math.max(...samples.map((x) => x.kib));
    const growth = peak - base;
    const allowance = clients * PER_STREAM_ALLOWANCE_KIB + BASE_ALLOWANCE_KIB;
    const expected = seconds * 10 * 1024;
    const slow = readers.filter((x) => x.got < expected * 0.5);
    const broken = readers.filter((x) => x.bad || x.error !== null);
    const rates = readers.map((x) => x.got / seconds / 1024);
    const at = (f: number): string => mib(samples[Math.min(samples.length - 1, Math.floor(f * samples.length))]!.kib);
    ctx.log(`relay RSS at 0/25/50/75/100 %: ${[0, 0.25, 0.5, 0.75, 1].map(at).join(' / ')}`);
    return {
      criteria: [
        {
          what: `relay RSS growth <= ${clients} streams x 1 MiB + 64 MiB`,
          ok: growth <= allowance,
          detail: `+${mib(growth)} (from ${mib(base)} to a peak of ${mib(peak)}; allowance ${mib(allowance)})`,
        },
        {
          what: 'every client keeps reading correct bytes at about 10 KiB/s',
          ok: slow.length === 0 && broken.length === 0,
          detail: `rates ${Math.min(...rates).toFixed(1)}–${Math.max(...rates).toFixed(1)} KiB/s; ${broken.length} broken${broken[0]?.error ? ` (${broken[0].error})` : ''}, ${slow.length} starved`,
        },
        relayStillRunning(relay),
      ],
      facts: `${clients} clients x 100 MiB responses read at 10 KiB/s for ${seconds} s; relay RSS +${mib(growth)} (allowance ${mib(allowance)})`,
    };
  },
);
