// The ngrok SDK as agent in a child process (sdk-agent-child.ts), for tests in which the relay goes away first: once
// it has, the SDK's close()/Unbind never settle and would keep the test process alive, so the child is killed instead.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { withTimeout, type Cleanup } from './relay-fixture.js';

/**
 * The SDK as agent in a child process (test/helpers/sdk-agent-child.ts), bound to `hostname`; killed at cleanup.
 * `steps` collects the child's step names as they come ('connected', 'bound', 'disconnected', ...).
 */
export async function startChildAgent(
  cleanup: Cleanup,
  agentPort: number,
  caPath: string,
  token: string,
  hostname: string,
  upstream: string,
  options: { reconnect?: boolean; heartbeatS?: number; toleranceS?: number } = {},
): Promise<{ url: string; child: ChildProcessWithoutNullStreams; exited: Promise<unknown[]>; steps: string[] }> {
  const childJs = fileURLToPath(new URL('./sdk-agent-child.js', import.meta.url));
  const child = spawn(process.execPath, [childJs, String(agentPort), caPath, token, hostname, upstream, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  }) as ChildProcessWithoutNullStreams;
  const stderr: string[] = [];
  child.stderr.on('data', (c: Buffer) => stderr.push(c.toString()));
  const exited = once(child, 'exit');
  cleanup.defer(`stop the child agent for ${hostname}`, async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const lines = createInterface({ input: child.stdout });
  const steps: string[] = [];
  lines.on('line', (l) => {
    if (l.startsWith('{')) steps.push((JSON.parse(l) as { step: string }).step);
  });
  const url = await withTimeout(
    `the child SDK to bind ${hostname}`,
    new Promise<string>((resolve, reject) => {
      lines.on('line', (l) => {
        if (!l.startsWith('{')) return; // the SDK prints its own notes on stdout too ("Aborting connection to ...")
        const m = JSON.parse(l) as { step: string; url?: string; error?: string };
        if (m.step === 'bound') resolve(m.url!);
        if (m.step === 'failed') reject(new Error(`child SDK failed: ${m.error}`));
      });
      child.once('exit', (code) => reject(new Error(`child SDK exited (${code}) before binding: ${stderr.join('')}`)));
    }),
  );
  return { url, child, exited, steps };
}

