// `burrow relay`: parse flags, prepare the data dir (dev CA, token), start the relay, print how to connect, and
// shut down gracefully on SIGINT/SIGTERM. CLI layer: the only place that writes to stdout for the relay.
import { ensureRelayPki, type RelayPki } from '../config/dev-pki.js';
import { ensureDataDir, formatHostPort, isWildcard, parseRelayArgs, relayHelpText, type HostPort, type RelayConfig } from '../config/relay-config.js';
import { loadTokens, type TokenStore } from '../config/tokens.js';
import { startRelay, type Relay } from '../relay/relay.js';

export interface PreparedRelay {
  relay: Relay;
  pki: RelayPki;
  tokens: TokenStore;
}

/** Data dir, dev CA / certificate and tokens for `config`, then the relay itself (shared by `relay` and `demo`). */
export async function prepareRelay(config: RelayConfig, version: string): Promise<PreparedRelay> {
  await ensureDataDir(config.dataDir);
  const pki = await ensureRelayPki({ dataDir: config.dataDir, domain: config.domain, certPath: config.certPath, keyPath: config.keyPath });
  const tokens = await loadTokens({ dataDir: config.dataDir, tokensFile: config.tokensFile });
  const relay = await startRelay({
    domain: config.domain,
    httpAddr: config.httpAddr,
    httpsAddr: config.httpsAddr,
    agentAddr: config.agentAddr,
    tcpPorts: config.tcpPorts,
    tcpHost: config.tcpHost,
    workers: config.workers,
    prereadMax: config.prereadMax,
    prereadTimeoutMs: config.prereadTimeoutMs,
    tcpKeepaliveMs: config.tcpKeepaliveMs,
    graceMs: config.graceMs,
    lbStrategy: config.lbStrategy,
    reclaimGraceMs: config.reclaimGraceMs,
    breakerResetMs: config.breakerResetMs,
    breakerTimeoutMs: config.breakerTimeoutMs,
    certPem: pki.certPem,
    keyPem: pki.keyPem,
    tokens: [...tokens.entries],
    limits: config.limits,
    version,
    adminAddr: config.adminAddr,
    adminToken: config.adminToken,
    metrics: config.metrics,
    metricsPerEndpoint: config.metricsPerEndpoint,
  });
  return { relay, pki, tokens };
}

/** The banner's worker count: the threads that are running (start-up waits for all, but some may have failed). */
function workerLine(relay: Relay): string {
  const up = relay.dispatcher.readyWorkers();
  const expected = relay.dispatcher.expectedWorkers;
  return up === expected ? `${up} threads` : `${up} of ${expected} threads running (the others failed to start and are retried; see the warnings)`;
}

/**
 * What an agent should dial for the agent listener `agent` (--server): loopback and wildcard binds are reached as
 * localhost (a name the dev certificate carries); an IPv6 literal needs brackets (`--server [::1]:4443` parses,
 * `:::4443` does not).
 */
export function agentDialAddress(agent: HostPort): string {
  const host = agent.host === '127.0.0.1' || agent.host === '::1' || isWildcard(agent.host) ? 'localhost' : agent.host;
  return formatHostPort({ host, port: agent.port });
}

/**
 * How to connect an agent and reach an endpoint. With the dev CA, everything on this machine. With the user's own
 * certificate (--cert), its file is a leaf (+ intermediates), not a trust anchor, and names the user's domain, not
 * localhost: agents dial a name the certificate covers (connect.<domain>) and trust its issuer.
 */
function connectHints(domain: string, agentServer: string, agentPort: number, caPath: string | null, devToken: string | null, httpsPort: number | null, httpPort: number | null): string[] {
  const own = caPath === null;
  const server = own ? `connect.${domain}:${agentPort}` : agentServer;
  const url = httpsPort !== null ? `https://NAME.${domain}:${httpsPort}/` : `http://NAME.${domain}:${httpPort}/`;
  return [
    'Expose a local service with the burrow agent (in another terminal):',
    `  node bin/burrow.js http 3000 --server ${server} --authtoken ${devToken ?? 'TOKEN'}${own ? '' : ` --ca ${caPath}`}`,
    '',
    'Or connect an agent with the ngrok SDK (npm i @ngrok/ngrok):',
    `  new ngrok.SessionBuilder().authtoken(TOKEN).serverAddr('${server}')`,
    own ? '    .connect()' : `    .caCert(fs.readFileSync('${caPath}')).connect()`,
    `Then: curl ${own || httpsPort === null ? '' : `--cacert ${caPath} `}${url}`,
    ...(own
      ? [
          `(Your certificate: ${server.split(':')[0]} must resolve to this relay; if its issuer is not a public CA, give agents`,
          ' that CA with --ca / .caCert() and curl with --cacert; the certificate file itself is not a CA.)',
        ]
      : []),
  ];
}

export async function relayCommand(argv: string[], version: string): Promise<number> {
  const config = parseRelayArgs(argv);
  if (config.help) {
    process.stdout.write(relayHelpText());
    return 0;
  }
  const { relay, pki, tokens } = await prepareRelay(config, version);

  const http = relay.address('http');
  const https = relay.address('https');
  const agent = relay.address('agent')!;
  const admin = relay.adminAddress();
  const agentServer = agentDialAddress(agent);
  const lines = [
    `burrow relay ${version} — domain ${config.domain}`,
    `  http     ${http ? `http://${formatHostPort(http)}` : 'off'}`,
    `  https    ${https ? `https://${formatHostPort(https)}  (TLS endpoints and agents with SNI connect.${config.domain} too)` : 'off'}`,
    `  agents   ${formatHostPort(agent)}`,
    `  admin    ${admin ? `http://${formatHostPort(admin)}/metrics  (also /healthz /readyz /api/sessions /api/endpoints)` : 'off'}`,
    `  tcp      ports ${config.tcpPorts.from}-${config.tcpPorts.to} on ${config.tcpHost}`,
    `  workers  ${relay.threaded ? workerLine(relay) : 'single-threaded (native addon unavailable: run `burrow doctor`)'}`,
    `  CA       ${pki.caPath ?? `(your certificate ${pki.certPath})`}`,
    tokens.devToken !== null ? `  token    ${tokens.devToken}   (dev token, saved in ${tokens.path})` : `  tokens   ${tokens.count} from ${tokens.path}`,
    '',
    ...connectHints(config.domain, agentServer, agent.port, pki.caPath, tokens.devToken, https?.port ?? null, http?.port ?? null),
    '',
  ];
  // Installed before the banner: whoever waits for the banner to send SIGUSR2 must not meet the default action (exit).
  if (process.env['BURROW_TEST_HOOKS'] === '1') {
    // Test hook (docs/testing.md): SIGUSR2 crashes one worker, round-robin.
    process.on('SIGUSR2', () => {
      try {
        const id = relay.dispatcher.crashWorkerForTest();
        process.stderr.write(`burrow: test hook: worker ${id} told to crash\n`);
      } catch (err) {
        process.stderr.write(`burrow: test hook: ${(err as Error).message}\n`);
      }
    });
  }
  process.stdout.write(lines.join('\n') + '\n');
  for (const w of pki.warnings) process.stderr.write(`burrow: warning: ${w}\n`);

  let closeFailed = false;
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) {
        process.stderr.write(`burrow: second ${sig}, exiting now\n`);
        process.exit(1);
      }
      stopping = true;
      process.stderr.write(`burrow: ${sig} received, draining (up to ${config.graceMs} ms)...\n`);
      relay.close().then(resolve, (err: Error) => {
        process.stderr.write(`burrow: the relay did not close cleanly: ${err.message}\n`);
        closeFailed = true;
        resolve();
      });
    };
    // on, not once: a second signal must reach stop() (and exit at once), not Node's default handler.
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  return closeFailed ? 1 : 0;
}
