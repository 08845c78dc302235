// burrow command-line entry: dispatches subcommands. The only module that touches process.exit and stdout.
import { readFileSync } from 'node:fs';
import { isBurrowError } from '../core/errors.js';
import { nativeAddon } from '../native/native-addon.js';
import { relayCommand } from './relay-command.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const USAGE = `burrow ${pkg.version} — self-hosted tunnel relay speaking the ngrok agent protocol

Usage:
  burrow relay [flags]        run the relay (public edge); burrow relay --help lists the flags
  burrow http|tcp|tls <port>  run an agent for a local service     — not implemented yet, see README "Status"
  burrow doctor               report what this install can do (native addon, Node version)
  burrow version              print the version
  burrow help                 this text
`;

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] ?? 'help';
  switch (cmd) {
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
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
      process.stderr.write(
        `burrow ${cmd}: not implemented yet: burrow's own agent lands in a later milestone (README "Status"). ` +
          'Until then, use the ngrok SDK as the agent (see `burrow relay` output).\n',
      );
      return 2;
    default:
      process.stderr.write(`burrow: unknown command '${cmd}'. Run 'burrow help' for the list of commands.\n`);
      return 2;
  }
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
