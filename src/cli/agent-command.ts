// `burrow http|tcp|tls <upstream>` and `burrow start`: parse flags / the config file, run the agent with the status
// view, and on SIGINT/SIGTERM drain (GOAWAY, open connections finish within --grace) and exit. CLI layer: the only
// agent code that touches stdout, stderr and the process's signals. Start-up and shutdown only; not on the data path.
import { Agent } from '../agent/agent.js';
import type { EndpointSpec } from '../agent/endpoint-spec.js';
import { agentHelpText, parseAgentArgs, type AgentCommand } from '../config/agent-config.js';
import { formatHostPort } from '../config/relay-config.js';
import { isBurrowError } from '../core/errors.js';
import { startStatusView } from './status-view.js';
import { startAgentMetricsServer } from '../metrics/agent-metrics.js';

export async function agentCommand(command: AgentCommand, argv: string[], version: string): Promise<number> {
  const config = parseAgentArgs(command, argv);
  if (config.help) {
    process.stdout.write(agentHelpText(command));
    return 0;
  }
  const agent = new Agent({
    server: config.server,
    authtoken: config.authtoken,
    ca: config.caPem ?? undefined,
    retryFirstConnect: true,
    graceMs: config.graceMs,
  });
  const metrics = config.metricsAddr === null ? null : await startAgentMetricsServer(agent, config.metricsAddr, config.metricsToken, version);
  const banner = metrics === null ? undefined : [`Metrics       http://${formatHostPort(metrics)}/metrics`];
  let code: number;
  try {
    code = await runAgent(agent, config.endpoints, { version, graceMs: config.graceMs, banner });
  } finally {
    metrics?.close();
  }
  return exitWhenIdle(code);
}

export interface RunAgentOptions {
  version: string;
  graceMs: number;
  /** Extra lines for the status view (the demo's curl line). */
  banner?: string[];
}

/**
 * After the agent has closed, how long the process may stay up before it says what still holds it open, and exits:
 * longer than a closed session may keep its connection to wait for the relay's FIN (mux-session.ts
 * TRANSPORT_LINGER_MS, 2 s).
 */
const LINGER_REPORT_MS = 3000;

/**
 * End the process with `code` once nothing is left open, or after LINGER_REPORT_MS, saying what still is. Not left to
 * end by itself: Node 20 then sometimes spins at 100 % CPU in its exit-time handle cleanup (uv_run in
 * Environment::CleanupHandles, seen with perf after agent shutdowns in the bench) and never exits.
 */
export async function exitWhenIdle(code: number): Promise<never> {
  const deadline = Date.now() + LINGER_REPORT_MS;
  let open = openResources();
  while (open.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    open = openResources();
  }
  if (open.length > 0) {
    process.stderr.write(`burrow: still running ${LINGER_REPORT_MS} ms after the agent closed; open: ${open.join(', ')}; exiting\n`);
  }
  process.exit(code);
}

/** What keeps the process running, less stdout's and stderr's own pipe or terminal handles (those never close). */
function openResources(): string[] {
  const open = process.getActiveResourcesInfo();
  for (const stream of [process.stdout, process.stderr]) {
    const kind = (stream as unknown as { _handle?: { constructor: { name: string } } })._handle?.constructor.name;
    const i = kind === 'Pipe' ? open.indexOf('PipeWrap') : kind === 'TTY' ? open.indexOf('TTYWrap') : -1;
    if (i >= 0) open.splice(i, 1);
  }
  return open;
}

/**
 * Start `agent` with `endpoints`, show its status, and wait until it closes: after SIGINT/SIGTERM (0), the relay's
 * Stop command (0), or a fatal error (1: bad token, untrusted relay certificate, an endpoint the relay refused at
 * start, every endpoint stopped by the relay). A second signal exits at once.
 */
export async function runAgent(
  agent: Agent,
  endpoints: readonly EndpointSpec[],
  opts: RunAgentOptions,
): Promise<number> {
  const view = startStatusView(agent, { tty: process.stdout.isTTY === true, version: opts.version, banner: opts.banner });
  const closed = new Promise<Error | undefined>((resolve) => agent.once('close', resolve));
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      void view.stop(); // lines still buffered for a slow stdout may be lost: the user asked to exit now
      process.stderr.write(`burrow: second ${sig}, exiting now\n`);
      process.exit(1);
    }
    view.note(`${sig} received: no new connections; open ones may finish for up to ${opts.graceMs} ms`);
    void agent.close(opts.graceMs);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  agent.on('endpoint-closed', (_ep, err?: Error) => {
    // The relay stopped the last endpoint: nothing is left to serve.
    if (err !== undefined && agent.endpoints.length === 0 && agent.state !== 'closing' && agent.state !== 'closed') agent.destroy(err);
  });
  agent.start().catch(() => {}); // failures arrive as 'close' with the error
  for (const spec of endpoints) {
    // A refusal of an endpoint's first Bind is the user's to fix (name taken, outside the relay's domain): stop.
    agent.addEndpoint(spec).catch((err: Error) => agent.destroy(err));
  }
  const err = await closed;
  await view.stop();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (err !== undefined) {
    process.stderr.write(`burrow: ${err.message}${isBurrowError(err) ? ` [${err.code}]` : ''}\n`);
    return 1;
  }
  return 0;
}
