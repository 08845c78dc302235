// The error-code registry and docs/errors.md must list exactly the same codes (STYLE.md §Errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, BurrowError, isBurrowError } from '../../../src/core/errors.js';

const docs = readFileSync(new URL('../../../../docs/errors.md', import.meta.url), 'utf8');

test('every code in src/core/errors.ts is documented in docs/errors.md', () => {
  for (const code of Object.keys(ERROR_CODES)) {
    assert.match(docs, new RegExp(`\\b${code}\\b`), `${code} missing from docs/errors.md`);
  }
});

test('docs/errors.md lists no code the registry lacks', () => {
  const documented = new Set(docs.match(/BURROW_ERR_[A-Z0-9_]+/g) ?? []);
  for (const code of documented) assert.ok(code in ERROR_CODES, `${code} is documented but not in ERROR_CODES`);
});

test('codes follow BURROW_ERR_<AREA>_<WHAT>', () => {
  for (const code of Object.keys(ERROR_CODES)) assert.match(code, /^BURROW_ERR_[A-Z0-9]+_[A-Z0-9_]+$/);
});

test('BurrowError carries its code and cause', () => {
  const cause = new Error('inner');
  const e = new BurrowError('BURROW_ERR_MUX_PROTOCOL', 'outer', { cause });
  assert.equal(e.code, 'BURROW_ERR_MUX_PROTOCOL');
  assert.equal(e.cause, cause);
  assert.ok(isBurrowError(e));
  assert.ok(isBurrowError(e, 'BURROW_ERR_MUX_PROTOCOL'));
  assert.ok(!isBurrowError(e, 'BURROW_ERR_MUX_GOAWAY'));
  assert.ok(!isBurrowError(new Error('x')));
});
