// `burrow token create`: mint a new agent token with rules, append its hash line to the tokens file, print the token
// once (docs/security.md §Tokens). CLI layer: writes to stdout. Not on any data path.
import { resolve } from 'node:path';
import { BurrowError } from '../core/errors.js';
import { parseTokenRules } from '../config/token-rules.js';
import { createToken } from '../config/tokens.js';

const HELP = `Usage: burrow token create --tokens FILE [--allow PATTERN]... [--tcp A-B]... [--sessions N] [--endpoints N]

Creates a new random agent token (256 bits, base64url), appends "sha256:<hash> <rules>" to FILE (created with mode
0600 if missing) and prints the token once: it is not stored anywhere, keep it. Restart the relay to load it.

  --tokens FILE      the relay's --tokens file (env BURROW_RELAY_TOKENS)
  --allow PATTERN    hostnames the token may bind, e.g. 'app-*.example.com' ('*' = one or more of a-z 0-9 -
                     inside one label); repeat or comma-separate; default: any name under the relay's domain
  --tcp A-B          TCP ports the token may bind (a or a-b); repeat or comma-separate; default: all of --tcp-ports
  --sessions N       live sessions with this token at once (default: the relay's --max-sessions-per-token)
  --endpoints N      endpoints per session (default: the relay's --max-endpoints-per-session)
`;

/** A Set, not an object literal: `--constructor` or `--__proto__` must not look like a known flag. */
const RULE_FLAGS: ReadonlySet<string> = new Set(['allow', 'tcp', 'sessions', 'endpoints']);

export async function tokenCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const sub = argv[0];
  if (sub === undefined || sub === '--help' || sub === '-h' || argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'create') {
    process.stderr.write(`burrow: unknown subcommand 'burrow token ${sub}'; the only one is 'burrow token create' (see --help) [BURROW_ERR_CLI_USAGE]\n`);
    return 2;
  }
  let file = env['BURROW_RELAY_TOKENS'] || null;
  const lists = new Map<string, string[]>();
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : '';
    const next = argv[i + 1];
    // `--tokens --allow x`: the next flag is not this flag's value.
    const value = eq >= 0 ? arg.slice(eq + 1) : next !== undefined && !next.startsWith('--') ? argv[++i] : undefined;
    if (name !== 'tokens' && !RULE_FLAGS.has(name)) {
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `unexpected argument '${arg}' for 'burrow token create'; see 'burrow token create --help'`);
    }
    if (value === undefined || value === '') {
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `--${name} needs a value; see 'burrow token create --help'`);
    }
    if (name === 'tokens') file = value;
    else {
      const list = lists.get(name);
      if (list === undefined) lists.set(name, [value]);
      else list.push(value);
    }
  }
  if (file === null) {
    throw new BurrowError('BURROW_ERR_CONFIG_INVALID', "'burrow token create' needs --tokens FILE (the relay's --tokens file) to append the token's hash to");
  }
  for (const single of ['sessions', 'endpoints']) {
    if ((lists.get(single)?.length ?? 0) > 1) throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `--${single} was given twice; give it once`);
  }
  const fields = [...lists].map(([k, v]) => `${k}=${v.join(',')}`);
  // Same checks as the tokens file, reported as a bad flag.
  const rules = parseTokenRules(fields, 'burrow token create', {
    code: 'BURROW_ERR_CONFIG_INVALID',
    name: (key, value) => `--${key} ${JSON.stringify(value.slice(0, 80))}`,
  });
  const path = resolve(file);
  const created = await createToken(path, rules);
  process.stdout.write(
    `${created.token}\n` +
      `(token ${created.id}: shown once, keep it; its hash was appended to ${path}: ${created.line.slice(0, 7)}…${fields.length > 0 ? ` ${fields.join(' ')}` : ''})\n` +
      'Restart the relay to load it.\n',
  );
  return 0;
}
