// Child-process entry for the relay HTTP bench (bench/macro/relay-http.ts forks the compiled
// dist/bench/macro/agent-process.js): the official @ngrok/ngrok SDK as the agent. Connects to the relay's agent
// listener, binds an HTTP endpoint for the given domain, forwards it to the origin, and stays up until the parent
// disconnects; then it closes the listener and the session and exits.
// Each further argument binds a TCP endpoint (a port from the relay's --tcp-ports) forwarded to that upstream.
//   child → parent  {type:'ready', url, tcpUrls} | {type:'failed', error}
// Usage (by the benches only): agent-process.js <agent port> <CA PEM path> <authtoken> <domain> <upstream URL>
//   [<tcp upstream URL, tcp://127.0.0.1:PORT> ...]
// The SDK's forwarding runs in its Rust runtime (tokio threads of this process); nothing here is on the data path.
import { readFileSync } from 'node:fs';
import ngrok from '@ngrok/ngrok';

const send = process.send?.bind(process);
const [port, caPath, token, domain, upstream, ...tcpUpstreams] = process.argv.slice(2);
if (
  send === undefined ||
  port === undefined ||
  caPath === undefined ||
  token === undefined ||
  domain === undefined ||
  upstream === undefined
) {
  process.stderr.write('agent-process.js is started by the relay bench (npm run bench -- relay), not by hand\n');
  process.exitCode = 2;
} else {
  try {
    const session = await new ngrok.SessionBuilder()
      .authtoken(token)
      .serverAddr(`localhost:${port}`) // SNI = localhost, which the relay's dev certificate covers
      .caCert(readFileSync(caPath))
      .handleDisconnection(() => false) // a dropped session ends the bench's agent instead of reconnecting
      .connect();
    const listener = await session.httpEndpoint().domain(domain).listenAndForward(upstream);
    const tcp: ngrok.Listener[] = [];
    for (const u of tcpUpstreams) tcp.push(await session.tcpEndpoint().listenAndForward(u));
    process.once('disconnect', () => {
      // Bounded: the SDK's close() may wait on the relay, and the bench will not wait for it either.
      const bye = setTimeout(() => process.exit(0), 2000);
      void listener
        .close()
        .then(() => Promise.all(tcp.map((t) => t.close())))
        .then(() => session.close())
        .catch(() => {})
        .finally(() => {
          clearTimeout(bye);
          process.exit(0);
        });
    });
    const tcpUrls = tcp.map((t) => t.url());
    send({ type: 'ready', url: listener.url(), tcpUrls });
  } catch (err) {
    send({ type: 'failed', error: String(err) });
    process.exitCode = 1;
    process.disconnect();
  }
}
