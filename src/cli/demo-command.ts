// `burrow demo` (npm run demo): a relay with dev defaults, a tiny sample HTTP app and burrow's agent in one process,
// then the public URL and curl lines that work; Ctrl-C stops all three. CLI layer (stdout, signals). Not on a hot path.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { relative } from 'node:path';
import { Agent } from '../agent/agent.js';
import { endpointSpec } from '../agent/endpoint-spec.js';
import { formatHostPort, parseRelayArgs } from '../config/relay-config.js';
import { BurrowError } from '../core/errors.js';
import { exitWhenIdle, runAgent } from './agent-command.js';
import { agentDialAddress, prepareRelay } from './relay-command.js';

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
    throw new BurrowError(
      'BURROW_ERR_CONFIG_INVALID',
      "--tokens (or BURROW_RELAY_TOKENS): 'burrow demo' uses the relay's dev token; drop it (or run 'burrow relay' and 'burrow http' yourself)",
    );
  }
  if (config.httpAddr === null && config.httpsAddr === null) {
    throw new BurrowError('BURROW_ERR_CONFIG_INVALID', "--http-addr and --https-addr are both off: 'burrow demo' needs one of them to show the app");
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

  const agentServer = agentDialAddress(relay.address('agent')!);
  const agent = new Agent({
    server: agentServer,
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
  const ca = relative(process.cwd(), pki.caPath ?? pki.certPath) || pki.caPath || pki.certPath;
  const httpL = relay.address('http');
  const httpsL = relay.address('https');
  // Only the listeners that are on (a port of 0 would mean nothing to the reader).
  const urls = [httpL ? `http://${host}:${httpL.port}/` : null, httpsL ? `https://${host}:${httpsL.port}/` : null].filter((u) => u !== null);
  const tries = [
    httpL ? `curl http://${host}:${httpL.port}/hello` : null,
    httpsL ? `curl --cacert ${ca} https://${host}:${httpsL.port}/hello` : null,
  ].filter((t) => t !== null);
  const banner = [
    '',
    `  sample app   http://127.0.0.1:${appPort}  (relay ${formatHostPort(relay.address('agent')!)}, dev CA ${ca})`,
    `  public URL   ${urls.join('   and   ')}`,
    ...tries.map((t, i) => `${i === 0 ? '  try          ' : '               '}${t}`),
    `  your own app node bin/burrow.js http 3000 --server ${agentServer} --authtoken "$(cat ${relative(process.cwd(), tokens.path) || tokens.path})" --ca ${ca}`,
  ];
  const tty = process.stdout.isTTY === true;
  if (!tty) process.stdout.write(`burrow demo ${version}\n${banner.join('\n')}\n\n`);
  let code = 1;
  try {
    code = await runAgent(agent, [spec], { version, graceMs: 2000, banner: tty ? banner : [] });
  } finally {
    // runAgent has removed its signal handlers: a signal during the relay's drain exits at once with 1, as README
    // §Exit status says, not with Node's default (130/143).
    const now = (): never => {
      process.stderr.write('burrow: second signal, exiting now\n');
      process.exit(1);
    };
    process.on('SIGINT', now);
    process.on('SIGTERM', now);
    app.closeAllConnections();
    app.close();
    await relay.close();
    process.off('SIGINT', now);
    process.off('SIGTERM', now);
  }
  return exitWhenIdle(code);
}
