// burrow command-line entry: dispatches subcommands. The only module that touches process.exit and stdout.
import { readFileSync } from 'node:fs';
import { nativeAddon } from '../native/native-addon.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const USAGE = `burrow ${pkg.version} — self-hosted tunnel relay speaking the ngrok agent protocol

Usage:
  burrow relay [flags]        run the relay (public edge)          — not implemented yet, see README "Status"
  burrow http|tcp|tls <port>  run an agent for a local service     — not implemented yet, see README "Status"
  burrow doctor               report what this install can do (native addon, Node version)
  burrow version              print the version
  burrow help                 this text
`;

function main(argv: string[]): number {
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
    case 'http':
    case 'tcp':
    case 'tls':
    case 'start':
      process.stderr.write(
        `burrow ${cmd}: not implemented yet. This build has the multiplexer and native addon only; ` +
          'the relay and agent land in the next milestones (README "Status").\n',
      );
      return 2;
    default:
      process.stderr.write(`burrow: unknown command '${cmd}'. Run 'burrow help' for the list of commands.\n`);
      return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
