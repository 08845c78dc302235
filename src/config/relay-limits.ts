// The relay's resource limits (docs/security.md §Limits): one record with defaults, filled from `burrow relay` flags
// and handed to the acceptor and every worker. Plain data (structured-clone friendly). Not on the hot path.

export interface RelayLimits {
  /** Live agent sessions per token across all workers (a token's `sessions=` rule overrides it). */
  maxSessionsPerToken: number;
  /** Endpoints one agent session may bind (a token's `endpoints=` rule overrides it). */
  maxEndpointsPerSession: number;
  /** TCP ports one token holds across the relay, ports in their reclaim grace included. */
  maxTcpPortsPerToken: number;
  /** Relay-opened proxy streams per session; at most 480 (the ngrok SDK drops a session at 513 live streams). */
  maxStreamsPerSession: number;
  /** Open public connections per endpoint; more are refused (HTTP: 503 page). */
  maxConnsPerEndpoint: number;
  /** Open public connections per client IP address across all listeners; more are closed at accept. */
  maxConnsPerIp: number;
  /** Largest HTTP request head after the first on a connection (the first is bounded by --preread-max). */
  httpHeadMax: number;
  /** Deadline for a started HTTP request head to complete (slowloris), ms. */
  httpHeadTimeoutMs: number;
  /** An HTTP(S) connection with no bytes either way for this long is closed, ms; 0 = never. */
  idleTimeoutMs: number;
  /**
   * The same for TCP and TLS-passthrough endpoint connections; 0 (the default) = never: quiet SSH sessions and
   * database pools are legitimate there, and TCP keepalive already finds dead peers.
   */
  tcpIdleTimeoutMs: number;
  /** Largest RPC message (Auth, Bind, ...) accepted from an agent, bytes. */
  rpcMax: number;
  /** Failed agent authentications per client IP per minute before further attempts are refused for a while. */
  authFailuresPerMinute: number;
}

/** The SDK-imposed ceiling on maxStreamsPerSession (PROTOCOL.md §13). */
export const STREAMS_PER_SESSION_CEILING = 480;

export const DEFAULT_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxSessionsPerToken: 20,
  maxEndpointsPerSession: 50,
  maxTcpPortsPerToken: 100,
  maxStreamsPerSession: STREAMS_PER_SESSION_CEILING,
  maxConnsPerEndpoint: 10_000,
  maxConnsPerIp: 1_000,
  httpHeadMax: 64 * 1024,
  httpHeadTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  tcpIdleTimeoutMs: 0,
  rpcMax: 256 * 1024,
  authFailuresPerMinute: 10,
});
