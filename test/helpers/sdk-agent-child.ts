// Child process running the official @ngrok/ngrok SDK as an agent, so a test can kill it (SIGKILL) and the relay sees
// a session die the way it does when an agent host crashes. Connects, binds one HTTP endpoint forwarding to a local
// upstream, prints one JSON line per step on stdout, then stays up until killed or until its stdin closes (so it never
// outlives the test process). Test-only.
// Usage: node sdk-agent-child.js <agent port> <CA PEM path> <authtoken> <hostname> <upstream url> [<options JSON>]
//   options: {"reconnect": true, "heartbeatS": 1, "toleranceS": 1} — reconnect after a lost session (the SDK's own
//   loop; a 'disconnected' step is printed each time) instead of staying down; heartbeat interval and tolerance, s.
import { readFileSync } from 'node:fs';
import ngrok from '@ngrok/ngrok';

function step(name: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ step: name, ...extra })}\n`);
}

const [port, caPath, token, hostname, upstream, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson ?? '{}') as { reconnect?: boolean; heartbeatS?: number; toleranceS?: number };
if (port === undefined || caPath === undefined || token === undefined || hostname === undefined || upstream === undefined) {
  process.stderr.write('usage: sdk-agent-child <agent port> <CA PEM path> <authtoken> <hostname> <upstream url>\n');
  process.exit(2);
}
// The parent holds our stdin open; when it goes away, so do we. Reading stdin also keeps the event loop alive.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
try {
  const builder = new ngrok.SessionBuilder()
    .authtoken(token)
    .serverAddr(`localhost:${port}`)
    .caCert(readFileSync(caPath))
    .handleDisconnection((addr, error) => {
      step('disconnected', { addr, error });
      return options.reconnect === true;
    });
  if (options.heartbeatS !== undefined) builder.heartbeatInterval(options.heartbeatS);
  if (options.toleranceS !== undefined) builder.heartbeatTolerance(options.toleranceS);
  const session = await builder.connect();
  step('connected');
  const listener = await session.httpEndpoint().domain(hostname).listenAndForward(upstream);
  step('bound', { url: listener.url() });
} catch (err) {
  step('failed', { error: String(err) });
  process.exit(1);
}
