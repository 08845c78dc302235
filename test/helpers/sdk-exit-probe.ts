// Child process for the SDK interop test's shutdown check: connects the official @ngrok/ngrok SDK to the relay named on
// the command line, binds and forwards an HTTP endpoint, closes the listener and the session, and then does nothing:
// the process must exit on its own. One JSON line per step on stdout. Test-only.
// Usage: node sdk-exit-probe.js <relay port> <CA PEM path> <authtoken> <upstream port>
import { readFileSync } from 'node:fs';
import ngrok from '@ngrok/ngrok';

function step(name: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ step: name, ...extra })}\n`);
}

const [port, caPath, token, upstreamPort] = process.argv.slice(2);
if (port === undefined || caPath === undefined || token === undefined || upstreamPort === undefined) {
  process.stderr.write('usage: sdk-exit-probe <relay port> <CA PEM path> <authtoken> <upstream port>\n');
  process.exitCode = 2;
} else {
  try {
    const session = await new ngrok.SessionBuilder()
      .authtoken(token)
      .serverAddr(`localhost:${port}`)
      .caCert(readFileSync(caPath))
      .handleDisconnection(() => false) // no reconnect loop: a dropped session should just end
      .connect();
    step('connected');
    const listener = await session.httpEndpoint().listenAndForward(`http://127.0.0.1:${upstreamPort}`);
    step('bound', { url: listener.url() });
    await listener.close();
    await session.close();
    step('closed');
  } catch (err) {
    step('failed', { error: String(err) });
    process.exitCode = 1;
  }
}
