// Builds native/ (the dup(fd) addon) with the node-gyp that npm bundles. Runs as the package's install script.
// A failed build does not fail the install: the relay then runs single-threaded and says so at start-up
// (DESIGN.md §1). Set BURROW_REQUIRE_NATIVE=1 (CI does) to make a failed build fatal.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native');
// Inside npm lifecycle scripts npm puts its bundled node-gyp on PATH and names it in npm_config_node_gyp.
const gypJs = process.env.npm_config_node_gyp;
const res = gypJs
  ? spawnSync(process.execPath, [gypJs, 'rebuild'], { cwd: nativeDir, stdio: 'inherit' })
  : spawnSync('node-gyp', ['rebuild'], { cwd: nativeDir, stdio: 'inherit', shell: process.platform === 'win32' });
if (res.status !== 0) {
  const why = res.error ? res.error.message : `node-gyp exited with status ${res.status}`;
  process.stderr.write(
    `burrow: building the native addon failed (${why}).\n` +
      'burrow: the relay will run single-threaded (no fd handoff to worker threads).\n' +
      'burrow: to fix, install python3, make and a C compiler, then run `npm run install` in the burrow folder (a clone),\n' +
      'burrow: or `npm rebuild burrow` in a project that has burrow as a dependency.\n',
  );
  if (process.env.BURROW_REQUIRE_NATIVE === '1') process.exit(1);
}
