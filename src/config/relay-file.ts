// Reads `burrow relay --config FILE`: a YAML mapping from relay flag names (written with underscores: http_addr,
// max_conns_per_ip) to values. Only reads and shapes the file; each value is judged by its flag's own parser in
// relay-config.ts, with a label naming the file, line and key. Once at start-up; not on the hot path.
import { isMap, isScalar, type Node as YamlNode, type Pair } from 'yaml';
import { BurrowError } from '../core/errors.js';
import { readYamlFile } from './config-files.js';

/** One value of the file, as text (what the flag would take), and where it is (`relay.yml:3: http_addr`). */
export interface RelayFileValue {
  value: string;
  label: string;
}

/** `max-conns-per-ip` → `max_conns_per_ip`. */
export function relayFileKey(flagName: string): string {
  return flagName.replace(/-/g, '_');
}

/**
 * Values of the file by key. `known` lists the keys a file may hold; `secret` the ones taken only as YAML strings
 * (a token YAML would read as a number changes). YAML true/false read as on/off (the relay's switches).
 * Throws BURROW_ERR_CONFIG_FILE when the file cannot be read or is not YAML, BURROW_ERR_CONFIG_INVALID naming the line
 * and key for anything else.
 */
export function loadRelayFile(path: string, known: readonly string[], secret: ReadonlySet<string>): Map<string, RelayFileValue> {
  const { root, where: at } = readYamlFile(path);
  const out = new Map<string, RelayFileValue>();
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) return out; // an empty file sets nothing
  if (!isMap(root)) {
    throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${at(root, '(top level)')}: must be a mapping of relay settings (http_addr: 127.0.0.1:8080, ...)`);
  }
  for (const pair of root.items as Array<Pair<YamlNode, YamlNode>>) {
    const k = isScalar(pair.key) ? pair.key.value : null;
    if (typeof k !== 'string') throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${at(pair.key, '(key)')}: keys must be plain strings`);
    if (!known.includes(k)) {
      const hint = known.includes(k.replace(/-/g, '_')) ? ` (write ${k.replace(/-/g, '_')})` : '';
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${at(pair.key, k)}: unknown key '${k}'${hint}; the keys are the flags of 'burrow relay --help' with _ for -`);
    }
    const v = pair.value;
    const label = at(v ?? pair.key, k);
    if (!isScalar(v) || v.value === null || typeof v.value === 'object') {
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${label}: must be a single value (a string, number, or on/off)`);
    }
    if (secret.has(k) && typeof v.value !== 'string') {
      throw new BurrowError('BURROW_ERR_CONFIG_INVALID', `${label}: is read as a ${typeof v.value} by YAML, which would change it; put it in quotes`);
    }
    const value = typeof v.value === 'boolean' ? (v.value ? 'on' : 'off') : String(v.value);
    out.set(k, { value, label });
  }
  return out;
}
