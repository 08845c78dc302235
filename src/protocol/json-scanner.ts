// Finds where one complete JSON value ends in a byte stream, without parsing it (RPC framing, PROTOCOL.md §RPC:
// the caller does not half-close, so the callee must see the end of the value itself). Pure; not on the hot path.
//
// Tracks only nesting depth and string/escape state; JSON.parse then validates the exact slice once.

const ST_BEFORE = 0; // skipping leading whitespace
const ST_VALUE = 1; // inside an object/array
const ST_STRING = 2; // inside a string
const ST_ESCAPE = 3; // after a backslash in a string
const ST_SCALAR = 4; // top-level number / literal (ends at whitespace or delimiter)

export const JSON_NEED_MORE = -1;
export const JSON_INVALID = -2;

export class JsonValueScanner {
  private state = ST_BEFORE;
  private depth = 0;
  private stringAtDepth = 0;

  /**
   * Scan the next chunk of the byte stream (state carries across chunks). Returns the offset in `buf` just past the
   * end of the first complete JSON value, JSON_NEED_MORE, or JSON_INVALID (a byte that cannot start a JSON value).
   * After a value was found the scanner must not be fed again.
   */
  scan(buf: Uint8Array): number {
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i]!;
      switch (this.state) {
        case ST_BEFORE:
          if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
          if (c === 0x7b || c === 0x5b) {
            this.state = ST_VALUE;
            this.depth = 1;
          } else if (c === 0x22) {
            this.state = ST_STRING;
            this.stringAtDepth = 0;
          } else if (c === 0x2d || (c >= 0x30 && c <= 0x39) || c === 0x74 || c === 0x66 || c === 0x6e) {
            this.state = ST_SCALAR;
          } else {
            return JSON_INVALID;
          }
          break;
        case ST_VALUE:
          if (c === 0x22) {
            this.state = ST_STRING;
            this.stringAtDepth = this.depth;
          } else if (c === 0x7b || c === 0x5b) {
            this.depth++;
          } else if (c === 0x7d || c === 0x5d) {
            this.depth--;
            if (this.depth === 0) return i + 1;
          }
          break;
        case ST_STRING:
          if (c === 0x5c) this.state = ST_ESCAPE;
          else if (c === 0x22) {
            if (this.stringAtDepth === 0) return i + 1;
            this.state = ST_VALUE;
          }
          break;
        case ST_ESCAPE:
          this.state = ST_STRING;
          break;
        default: // ST_SCALAR
          if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x2c || c === 0x7d || c === 0x5d) {
            return i;
          }
      }
    }
    return JSON_NEED_MORE;
  }
}
