// burrow command-line entry: dispatches subcommands. The only module that touches process.exit and stdout.
// First: sets the data-plane V8 flag before the rest of the CLI loads (see tune-v8.ts).
import './tune-v8.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isBurrowError } from '../core/errors.js';
import { nativeAddon } from '../native/native-addon.js';
import { AGENT_VERSION } from '../agent/agent.js';
import { agentCommand } from './agent-command.js';
import { demoCommand } from './demo-command.js';
import { relayCommand } from './relay-command.js';
import { tokenCommand } from './token-command.js';

// One reading of package.json for the whole program (the agent's, which falls back when the file is unreadable).
const pkg = { version: AGENT_VERSION };

const USAGE = `burrow ${pkg.version} — self-hosted tunnel relay speaking the ngrok agent protocol

Usage:
  burrow relay [flags]        run the relay (public edge); burrow relay --help lists the flags
  burrow http <port|host:port> [--url http://name.<domain>]   forward a public HTTP(S) URL to a local HTTP service
  burrow tcp <port|host:port> [--url tcp://]                  forward a public TCP port to a local TCP service
  burrow tls <port|host:port> [--url tls://name.<domain>]    pass TLS for a host name through to a local TLS service
  burrow start [--config burrow.yml] [names…]                 run the endpoints of a config file in one session
      agent flags: --server host:port (BURROW_SERVER), --authtoken (BURROW_AUTHTOKEN), --ca file (BURROW_CA), --pool;
      'burrow <command> --help' lists them all
  burrow token create --tokens FILE [--allow PATTERN] [--tcp A-B] [--sessions N] [--endpoints N]
                              mint an agent token with rules; prints it once, appends its hash to FILE
  burrow demo                 run a relay, a sample app and an agent together, and print a URL to try
  burrow bench [--quick] [--scenario a,b] [--agent burrow|ngrok] ...   the benchmark (npm run bench; in a clone)
  burrow doctor               report what this install can do (native addon, Node version)
  burrow version              print the version
  burrow help [command]       this text, or a command's flags (the same as 'burrow <command> --help')
`;

/** Commands whose own --help `burrow help <command>` shows. */
const HELP_COMMANDS: ReadonlySet<string> = new Set(['relay', 'http', 'tcp', 'tls', 'start', 'token', 'demo', 'bench']);

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] ?? 'help';
  switch (cmd) {
    case 'help':
    case '--help':
    case '-h': {
      const topic = argv[1];
      if (cmd === 'help' && topic !== undefined && HELP_COMMANDS.has(topic)) return main([topic, '--help']);
      process.stdout.write(USAGE);
      return 0;
    }
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`${pkg.version}\n`);
      return 0;
    case 'doctor':
      process.stdout.write(
        `node ${process.version}\n` +
          `native addon: ${nativeAddon.available ? `available (${nativeAddon.path})` : `unavailable — ${nativeAddon.reason}`}\n` +
          `fd handoff to worker threads: ${nativeAddon.available ? 'on' : 'off (single-threaded fallback)'}\n`,
      );
      return 0;
    case 'relay':
      return relayCommand(argv.slice(1), pkg.version);
    case 'http':
    case 'tcp':
    case 'tls':
    case 'start':
      return agentCommand(cmd, argv.slice(1), pkg.version);
    case 'token':
      return tokenCommand(argv.slice(1));
    case 'demo':
      return demoCommand(argv.slice(1), pkg.version);
    case 'bench':
      return benchCommand(argv.slice(1));
    default:
      process.stderr.write(`burrow: unknown command '${cmd}'; run 'burrow help' for the list of commands [BURROW_ERR_CLI_USAGE]\n`);
      return 2;
  }
}

/**
 * `burrow bench` runs the same code as `npm run bench` (bench/run.ts, compiled to dist/bench/run.js). The bench is
 * not part of src/ nor of the published package, so it is loaded by a computed path at run time (no build-time
 * dependency of src/ on bench/), and a missing one is explained.
 */
async function benchCommand(args: string[]): Promise<number> {
  const entry = new URL('../../bench/run.js', import.meta.url);
  if (!existsSync(entry)) {
    process.stderr.write(
      `burrow: the benchmark is not in this install (${fileURLToPath(entry)} is missing). It ships with the source: ` +
        'clone the repository, then run `npm ci && npm run bench`.\n',
    );
    return 2;
  }
  const bench = (await import(entry.href)) as { runBench(argv: readonly string[]): Promise<void> };
  await bench.runBench(args);
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isBurrowError(err)) process.stderr.write(`burrow: ${err.message} [${err.code}]\n`);
    else process.stderr.write(`burrow: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
