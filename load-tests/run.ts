// `npm run load-test -- [--short] [name ...]`: runs the load tests one after another, each as its own process
// (node dist/load-tests/<name>.js), echoes their output, and ends with their summary lines. Exit code 1 when any
// failed, 2 on a bad argument. Not on the hot path.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const TESTS = ['soak', 'slow-reader', 'many-agents', 'reconnect-storm', 'chaos'] as const;

const args = process.argv.slice(2);
const short = args.includes('--short');
const names = args.filter((a) => a !== '--short');
const bad = names.filter((n) => n.startsWith('-') || !(TESTS as readonly string[]).includes(n));
if (bad.length > 0) {
  process.stderr.write(`load-test: unknown ${bad.map((b) => `'${b}'`).join(', ')}; usage: npm run load-test -- [--short] [${TESTS.join('|')} ...]\n`);
  process.exitCode = 2;
} else {
  const selected = names.length === 0 ? [...TESTS] : TESTS.filter((t) => names.includes(t));
  const summaries: string[] = [];
  let failed = 0;
  for (const name of selected) {
    const script = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
    process.stdout.write(`\n== ${name}${short ? ' --short' : ''}\n`);
    const t0 = Date.now();
    const { code, last } = await new Promise<{ code: number | null; last: string }>((resolve) => {
      const child = spawn(process.execPath, [script, ...(short ? ['--short'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        process.stdout.write(c);
        out = (out + c.toString('utf8')).slice(-4096);
      });
      child.on('close', (c) => resolve({ code: c, last: out.trim().split('\n').filter((l) => /^(PASS|FAIL) /.test(l)).pop() ?? '' }));
    });
    if (code !== 0) failed++;
    summaries.push(`${last || `FAIL ${name}: exited with code ${code} and no summary line`}  [${((Date.now() - t0) / 1000).toFixed(0)} s]`);
  }
  process.stdout.write(`\nload tests: ${selected.length - failed} passed, ${failed} failed\n${summaries.map((s) => `  ${s}`).join('\n')}\n`);
  process.exitCode = failed > 0 ? 1 : 0;
}
