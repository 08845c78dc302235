// The library entry point: `connect()` opens an agent session to a relay and returns the Agent, whose forward() and
// listen() add endpoints. Once per session; not on the data path.
import { Agent, type AgentOptions } from './agent.js';

export interface ConnectOptions extends Omit<AgentOptions, 'server' | 'retryFirstConnect'> {
  /** The relay's agent address, "host:port" (default "localhost:4443", the relay's default --agent-addr). */
  server?: AgentOptions['server'];
  /**
   * Keep retrying (with backoff) when the first connection fails for network reasons, instead of rejecting
   * (default false). Later sessions always reconnect.
   */
  retryFirstConnect?: boolean;
}

/**
 * Connect to a burrow relay (TLS, heartbeat, Auth). Resolves with the running Agent once the first session is up;
 * rejects with BURROW_ERR_AGENT_CONNECT (unreachable, untrusted certificate) or BURROW_ERR_AGENT_AUTH (bad token).
 *
 * ```ts
 * const agent = await connect({ server: 'localhost:4443', authtoken, ca: readFileSync('.burrow/ca.pem') });
 * const web = await agent.forward('http://127.0.0.1:3000', { url: 'http://app.burrow.localhost' });
 * console.log(web.url);
 * ```
 */
export async function connect(options: ConnectOptions): Promise<Agent> {
  const agent = new Agent({ ...options, server: options.server ?? 'localhost:4443' });
  await agent.start();
  return agent;
}
