#!/usr/bin/env node
// burrow command-line entry: loads the compiled CLI (run `npm run build` first when working from a clone).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write('burrow: dist/ is missing; run `npm run build` (or `npm start`, which builds first).\n');
  process.exit(1);
}
await import(cli.href);
