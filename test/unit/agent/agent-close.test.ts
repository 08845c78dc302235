// Agent.close() while a session is still being set up: a relay that accepted the TCP connection but never completes
// TLS, or completes TLS but never answers Auth (one that is shutting down, say), must not keep the agent's
// connection, and with it the agent's process, alive until the connect deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { Agent } from '../../../src/agent/agent.js';
import { isBurrowError } from '../../../src/core/errors.js';
import { makeTestPki } from '../../helpers/certs.js';

/** Far beyond the test's own timeout: only close() can end the attempt in time. */
const CONNECT_DEADLINE_MS = 120_000;

async function closeWhileConnecting(server: net.Server, event: 'connection' | 'secureConnection', ca?: string): Promise<void> {
  const conns: net.Socket[] = [];
  server.on(event, (s: net.Socket) => {
    conns.push(s);
    s.on('error', () => {});
    s.resume(); // read and drop (the Auth request, for the TLS case)
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  // Every other deadline that could end the attempt is as far away (the heartbeat's would otherwise cut a session
  // stuck in Auth after 15 s).
  const agent = new Agent({
    server: `localhost:${port}`,
    authtoken: 't',
    ca,
    connectTimeoutMs: CONNECT_DEADLINE_MS,
    heartbeatIntervalMs: CONNECT_DEADLINE_MS,
    heartbeatToleranceMs: CONNECT_DEADLINE_MS,
  });
  try {
    const started = agent.start();
    started.catch(() => {}); // checked below, after close()
    const [conn] = (await once(server, event)) as [net.Socket];
    if (event === 'secureConnection') await once(conn, 'data'); // the heartbeat and Auth streams are on their way
    const gone = once(conn, 'close');
    await agent.close();
    await gone; // the agent dropped its connection (without the abort: only after CONNECT_DEADLINE_MS)
    await assert.rejects(started, (err: unknown) => isBurrowError(err, 'BURROW_ERR_AGENT_CLOSED'));
    assert.equal(agent.state, 'closed');
  } finally {
    agent.destroy();
    for (const c of conns) c.destroy();
    server.close();
  }
}

test('close() while the relay has accepted TCP but not answered TLS drops the connection at once', { timeout: 20_000 }, () =>
  closeWhileConnecting(net.createServer(), 'connection'));

test('close() while Auth is unanswered drops the session at once', { timeout: 20_000 }, async () => {
  const pki = makeTestPki();
  try {
    await closeWhileConnecting(tls.createServer({ key: pki.keyPem, cert: pki.certPem }), 'secureConnection', pki.caPem);
  } finally {
    pki.cleanup();
  }
});
