// `burrow demo` (npm run demo): a relay with dev defaults, a tiny sample HTTP app and burrow's agent in one process,
// then the public URL and curl lines that work; Ctrl-C stops all three. CLI layer (stdout, signals). Not on a hot path.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { relative } from 'node:path';
import { Agent } from '../agent/agent.js';
import { endpointSpec } from '../agent/endpoint-spec.js';
import { formatHostPort, parseRelayArgs, type HostPort } from '../config/relay-config.js';
import { BurrowError } from '../core/errors.js';
import { runAgent } from './agent-command.js';
import { prepareRelay } from './relay-command.js';

const NAME = 'demo';

const HELP = `Usage: burrow demo [relay flags: --http-addr 127.0.0.1:8080 --https-addr 127.0.0.1:8443 --agent-addr 127.0.0.1:4443 --data-dir ./.burrow ...]

Starts, in one process: a relay (dev CA and token in --data-dir), a small sample HTTP app on a free loopback port,
and burrow's agent forwarding http://${NAME}.<domain> to the app. Accepts every 'burrow relay' flag. Prints the public URLs and curl lines.
Ctrl-C stops everything. The addresses default to the relay's defaults (stop 'npm start' first, or pick others).
`;

export async function demoCommand(argv: string[], version: string): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  // The relay's own flags and defaults (validated the same way); the demo only needs the dev token.
  const config = parseRelayArgs(argv, process.env, 'burrow demo');
  if (config.tokensFile !== null) {
    throw new BurrowError('BURROW_ERR_CONFIG_INVALID', "--tokens: 'burrow demo' uses the relay's dev token; drop --tokens (or run 'burrow relay' and 'burrow http' yourself)");
  }
  const { relay, pki, tokens } = await prepareRelay(config, version);
  const DOMAIN = config.domain;

  const app = http.createServer((req, res) => {
    const body =
      `Hello from the burrow demo app!\n` +
      `You asked for ${req.method} ${req.url} on ${req.headers.host}, ` +
      `forwarded for ${req.headers['x-forwarded-for'] ?? '?'} over ${req.headers['x-forwarded-proto'] ?? '?'}.\n`;
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    app.once('listening', resolve);
    app.once('error', reject);
  });
  const appPort = (app.address() as AddressInfo).port;

  const agentPort = relay.address('agent')!.port;
  const agent = new Agent({
    server: `localhost:${agentPort}`,
    authtoken: tokens.devToken ?? '',
    ca: pki.caPem ?? undefined,
    retryFirstConnect: true,
    graceMs: 2000,
  });
  const spec = endpointSpec(
    { kind: 'http', name: NAME, url: `http://${NAME}.${DOMAIN}`, upstream: `http://127.0.0.1:${appPort}` },
    { name: 'name', url: 'url', upstream: 'upstream' },
  );
  const host = `${NAME}.${DOMAIN}`;
  const hp = (a: HostPort | null): number => a?.port ?? 0;
  const ca = relative(process.cwd(), pki.caPath ?? pki.certPath) || pki.caPath || pki.certPath;
  const banner = [
    '',
    `  sample app   http://127.0.0.1:${appPort}  (relay ${formatHostPort(relay.address('agent')!)}, dev CA ${ca})`,
    `  public URL   http://${host}:${hp(relay.address('http'))}/   and   https://${host}:${hp(relay.address('https'))}/`,
    `  try          curl http://${host}:${hp(relay.address('http'))}/hello`,
    `               curl --cacert ${ca} https://${host}:${hp(relay.address('https'))}/hello`,
    `  your own app burrow http 3000 --server localhost:${agentPort} --authtoken "$(cat ${relative(process.cwd(), tokens.path) || tokens.path})" --ca ${ca}`,
  ];
  const tty = process.stdout.isTTY === true;
  if (!tty) process.stdout.write(`burrow demo ${version}\n${banner.join('\n')}\n\n`);
  try {
    return await runAgent(agent, [spec], { version, graceMs: 2000, banner: tty ? banner : [] });
  } finally {
    app.closeAllConnections();
    app.close();
    await relay.close();
  }
}
