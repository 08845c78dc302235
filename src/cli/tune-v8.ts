// V8 heap tuning for the processes that carry traffic (burrow relay, burrow http|tcp|tls|start, burrow demo). CLI
// layer: V8 flags are process-wide, so only a command that owns its process sets them; the agent library (connect())
// leaves its host's heap alone. Start-up only: main.ts imports this module first, so for those commands the flag is
// set when this module is evaluated, before the rest of the CLI loads (loading it alone grew the main thread's new
// space from 1 to 8 MiB).
import { setFlagsFromString } from 'node:v8';

/** The commands whose process carries traffic. */
export const DATA_PLANE_COMMANDS: ReadonlySet<string> = new Set(['relay', 'http', 'tcp', 'tls', 'start', 'demo']);

/**
 * Keep the young generation at its initial size (1 MiB semi-spaces) instead of letting V8 grow it to 16 MiB.
 *
 * Why: the data path allocates little on the JS heap but a lot outside it (every socket and TLS read is a fresh
 * ArrayBuffer). With large semi-spaces, scavenges are rare, so dead read buffers pile up until V8's external-memory
 * limit (64 MiB) forces a full mark-compact: ~13 per second in the agent during an upload (--trace-gc), about a fifth of
 * its CPU. Small semi-spaces are scavenged often enough that those buffers die young. Measured (bench/RESULTS.md,
 * 2026-11-28 GC entry): tcp-bulk +25 %, keep-alive through the relay not slower.
 *
 * How: `--semi-space-growth-factor` is read each time V8 grows new space, so setting it at start-up, before the first
 * growth, takes effect; `--max-semi-space-size` is read only when the heap is set up and cannot be changed from here.
 * Both relay worker threads and the main thread are covered (flags are per process). Must run before traffic.
 */
export function tuneV8ForDataPlane(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

// `burrow <command>`: argv[2] is the command (bin/burrow.js → dist/src/cli/main.js).
if (DATA_PLANE_COMMANDS.has(process.argv[2] ?? '')) tuneV8ForDataPlane();
