// Loads the C addon from native/ (dup(fd) for thread handoff, DESIGN.md §1) and reports whether it is there.
// The only module that touches native/. Not on the per-chunk hot path: dup runs once per handed-off connection.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BurrowError } from '../core/errors.js';

interface NativeBinding {
  dup(fd: number): number;
  close(fd: number): void;
  setQuickAck?(fd: number): boolean;
  peerGone?(fd: number): boolean;
}

export interface NativeAddon {
  /** Whether the addon loaded; when false, `reason` says why and `dup`/`close` throw BURROW_ERR_NATIVE_UNAVAILABLE. */
  readonly available: boolean;
  readonly reason: string;
  readonly path: string | null;
  /** Duplicate `fd` with F_DUPFD_CLOEXEC; the caller owns the new descriptor. */
  dup(fd: number): number;
  /** Close a descriptor that was duplicated but never handed to a socket. */
  close(fd: number): void;
  /** Re-arm TCP_QUICKACK on a TCP socket; false (never a throw) when unsupported, unavailable or closed. */
  setQuickAck(fd: number): boolean;
  /**
   * Whether a socket nobody reads was reset by its peer (a pending error; poll, zero timeout; a FIN is not);
   * false (never a throw) when unknown: addon unavailable, or a descriptor that cannot be polled.
   */
  peerGone(fd: number): boolean;
}

function findPackageRoot(): string {
  // dist/src/native/native-addon.js or src/native/native-addon.ts: walk up to the folder holding native/.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'native', 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  return dir;
}

function load(): NativeAddon {
  const root = findPackageRoot();
  const path = join(root, 'native', 'build', 'Release', 'burrow_native.node');
  let binding: NativeBinding | null = null;
  let reason = 'loaded';
  if (process.env.BURROW_DISABLE_NATIVE === '1') {
    reason = 'disabled by BURROW_DISABLE_NATIVE=1';
  } else if (!existsSync(path)) {
    reason =
      `${path} is missing: the native build did not run or failed (with python3, make and a C compiler installed, run ` +
      `\`npm run install\` in ${root}, or \`npm rebuild burrow\` in a project that has burrow as a dependency)`;
  } else {
    try {
      binding = createRequire(import.meta.url)(path) as NativeBinding;
    } catch (err) {
      reason = `loading ${path} failed: ${(err as Error).message}`;
    }
  }
  const unavailable = (): never => {
    throw new BurrowError('BURROW_ERR_NATIVE_UNAVAILABLE', `native addon unavailable: ${reason}`);
  };
  if (binding === null) {
    return { available: false, reason, path: null, dup: unavailable, close: unavailable, setQuickAck: () => false, peerGone: () => false };
  }
  const b = binding;
  return {
    available: true,
    reason,
    path,
    dup(fd: number): number {
      try {
        return b.dup(fd);
      } catch (err) {
        const e = err as Error & { code?: string };
        throw new BurrowError('BURROW_ERR_NATIVE_DUP', `dup(${fd}) failed: ${e.message}`, { cause: err });
      }
    },
    close(fd: number): void {
      b.close(fd);
    },
    setQuickAck: typeof b.setQuickAck === 'function' ? b.setQuickAck.bind(b) : () => false,
    peerGone: typeof b.peerGone === 'function' ? b.peerGone.bind(b) : () => false,
  };
}

/** The process-wide addon handle (loaded once per thread on first import). */
export const nativeAddon: NativeAddon = load();

/** Close a duplicated descriptor its holder owns (never handed to a socket); one already closed is not an error here. */
export function closeFdQuietly(fd: number): void {
  try {
    nativeAddon.close(fd);
  } catch {
    // already closed
  }
}
