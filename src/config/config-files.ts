// Shared helpers of the config loaders: reading files the user named, and quoting values in error messages so every
// BURROW_ERR_CONFIG_* message has the same shape. Not on the hot path.
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { BurrowError } from '../core/errors.js';

/** A value as shown in an error message: single-quoted, control characters escaped, long values cut. */
export function quote(value: string): string {
  const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return `'${shown.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}'`;
}

/** The message of an error-ish value. */
export function errorReason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `path` must be an existing, readable regular file (named by `label`, holding `what`); returns it. */
export function checkReadableFile(path: string, label: string, what: string): string {
  try {
    if (!statSync(path).isFile()) {
      throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${label}: ${quote(path)} is not a regular file; give the path of ${what}`);
    }
    accessSync(path, fsConstants.R_OK);
  } catch (err) {
    if (err instanceof BurrowError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${code})`;
    throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${label}: ${quote(path)} ${why}; give the path of ${what}`, { cause: err });
  }
  return path;
}

/** Read a file named by `flag`; failure → BURROW_ERR_CONFIG_FILE naming flag and path. */
export async function readConfigText(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${flag} ${path} cannot be read (${errorReason(err)}); check the path and its permissions`, {
      cause: err,
    });
  }
}

/** Read a file that may not exist yet (null); any other failure → BURROW_ERR_CONFIG_FILE. */
export async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${path} cannot be read (${errorReason(err)}); check its permissions`, { cause: err });
  }
}

/** A parsed YAML config file: its top node, and `where(node, key)` → `path:line: key` for messages. */
export interface YamlFile {
  root: YamlNode | null;
  where(node: YamlNode | null | undefined, key: string): string;
}

/**
 * Read and parse a YAML config file (a leading BOM ignored, duplicate keys refused). A file that cannot be read or is
 * not YAML throws BURROW_ERR_CONFIG_FILE naming the path (and line and column).
 */
export function readYamlFile(path: string): YamlFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  const lc = new LineCounter();
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const { line, col } = lc.linePos(e.pos[0]);
    throw new BurrowError('BURROW_ERR_CONFIG_FILE', `${path}:${line}:${col}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  return {
    root: doc.contents as YamlNode | null,
    where(node, key) {
      const off = node?.range?.[0];
      return off === undefined ? `${path}: ${key}` : `${path}:${lc.linePos(off).line}: ${key}`;
    },
  };
}
