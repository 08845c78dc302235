// Drives a JsonValueScanner over a chunked input (shared by the unit tests and the RPC fuzzer). Test-only.
import assert from 'node:assert/strict';
import { JSON_INVALID, JSON_NEED_MORE, JsonValueScanner } from '../../src/protocol/json-scanner.js';

/**
 * Feeds `chunks` to one scanner, stopping at the first complete value.
 * Returns the absolute end offset, JSON_INVALID, or JSON_NEED_MORE if the input ran out.
 */
export function scanChunks(chunks: Uint8Array[]): number {
  const s = new JsonValueScanner();
  let base = 0;
  for (const c of chunks) {
    const r = s.scan(c);
    if (r === JSON_INVALID) return JSON_INVALID;
    if (r !== JSON_NEED_MORE) {
      assert.ok(r >= 0 && r <= c.length, `offset ${r} outside the chunk of ${c.length}`);
      return base + r;
    }
    base += c.length;
  }
  return JSON_NEED_MORE;
}
