// BurrowError and the registry of stable error codes. Every code here is listed in docs/errors.md
// (checked by test/unit/core/errors.test.ts). Not on the hot path: errors are built only on failure.

/** Stable error codes: `BURROW_ERR_<AREA>_<WHAT>`. Never renumber or rename; add new ones at the end of an area. */
export const ERROR_CODES = {
  // native addon
  BURROW_ERR_NATIVE_UNAVAILABLE: 'The native addon (native/) is not built; fd handoff to worker threads is off.',
  BURROW_ERR_NATIVE_DUP: 'dup(fd) failed in the native addon.',
  // frame codec / mux protocol
  BURROW_ERR_MUX_PROTOCOL: 'The peer broke the muxado framing rules.',
  BURROW_ERR_MUX_FRAME_SIZE: 'A frame announced a length above the accepted maximum.',
  BURROW_ERR_MUX_FLOW_CONTROL: 'The peer sent more data than the stream window allows, or overflowed a window.',
  BURROW_ERR_MUX_STREAM_CLOSED: 'Data or a write arrived for a stream that is closed in that direction.',
  BURROW_ERR_MUX_STREAM_REFUSED: 'The stream was refused (accept backlog full, stream limit, or session going away).',
  BURROW_ERR_MUX_STREAM_RESET: 'The peer reset the stream.',
  BURROW_ERR_MUX_SESSION_CLOSED: 'The mux session is closed.',
  BURROW_ERR_MUX_GOAWAY: 'The peer sent GOAWAY; no new streams may be opened.',
  BURROW_ERR_MUX_HEARTBEAT_TIMEOUT: 'No heartbeat answer arrived within the tolerance; the session is considered dead.',
  BURROW_ERR_MUX_TRANSPORT: 'The underlying connection failed or ended.',
  BURROW_ERR_MUX_STREAMS_EXHAUSTED: 'No stream ids are left on this session.',
  // typed streams, RPC, ProxyHeader
  BURROW_ERR_RPC_TOO_LARGE: 'An RPC JSON message exceeded the size limit.',
  BURROW_ERR_RPC_BAD_JSON: 'An RPC message was not a single JSON object.',
  BURROW_ERR_RPC_REMOTE: 'The remote side answered the RPC with an Error field.',
  BURROW_ERR_RPC_INCOMPLETE: 'The stream ended before a complete RPC message arrived.',
  BURROW_ERR_PROXY_HEADER: 'A ProxyHeader was malformed or too large.',
  BURROW_ERR_TYPED_STREAM: 'A typed stream ended before its 4-byte type, or had an unknown type.',
  // configuration (flags, config files, data dir)
  BURROW_ERR_CONFIG_INVALID: 'A flag or config value is invalid; the message names it and says what is expected.',
  BURROW_ERR_CONFIG_FILE: 'A config, token or certificate file could not be read or parsed.',
  BURROW_ERR_CONFIG_PKI: 'The dev CA / certificate could not be created or loaded.',
  BURROW_ERR_ADMIN_TOKEN_REQUIRED: 'The admin server (--admin-addr / --metrics-addr) is bound off loopback without a token.',
  BURROW_ERR_CLI_USAGE: 'An unknown command or subcommand; the CLI exits 2.',
  // relay control plane
  BURROW_ERR_AUTH_FAILED: 'An agent presented a missing or unknown auth token.',
  BURROW_ERR_BIND_INVALID: 'A Bind request was malformed or asked for something not allowed (bad hostname, port, protocol).',
  BURROW_ERR_BIND_CONFLICT: 'A Bind asked for a hostname or TCP port that is already online.',
  BURROW_ERR_BIND_EXHAUSTED: 'No TCP port is free in the --tcp-ports range.',
  BURROW_ERR_RELAY_LISTEN: 'A listener could not be bound (address in use, permission denied).',
  BURROW_ERR_RELAY_IP_RESTRICTED: "A public connection came from an address the endpoint's IP restrictions refuse.",
  BURROW_ERR_WORKER_CRASHED: 'A worker thread died (its sessions were dropped and it was replaced), or none could start.',
  BURROW_ERR_RELAY_HANDOFF: 'A connection could not be handed to its worker (worker gone, fd error).',
  BURROW_ERR_RELAY_TEST_HOOK: 'A test-only hook was used without BURROW_TEST_HOOKS=1, or cannot act (no worker threads).',
  BURROW_ERR_AUTH_RATE_LIMITED: 'Too many failed authentications from one IP address; Auth is refused there for a while.',
  BURROW_ERR_AUTH_SESSION_LIMIT: 'A token already has its maximum number of live agent sessions.',
  BURROW_ERR_BIND_LIMIT: 'An agent session already has its maximum number of endpoints.',
  BURROW_ERR_BIND_FORBIDDEN: 'The token\'s rules do not allow this hostname or TCP port.',
  BURROW_ERR_RELAY_CONN_LIMIT: 'A public connection was refused: its endpoint or its client IP is at the connection limit.',
  // public HTTP path
  BURROW_ERR_HTTP_BAD_REQUEST: 'A public HTTP request broke HTTP/1.1 framing rules (answered 400; 501 for a method or transfer coding the relay does not implement, 505 for an HTTP version other than 1.0/1.1).',
  BURROW_ERR_HTTP_HEAD_TOO_LARGE: 'A public HTTP request head exceeded the size limit (answered 431).',
  BURROW_ERR_HTTP_UNAUTHORIZED: 'A request to an endpoint with basic auth came without the right user name and password.',
  BURROW_ERR_HTTP_MISDIRECTED: 'A request on a connection routed to one endpoint named another host (answered 421).',
  BURROW_ERR_HTTP_HEAD_TIMEOUT: 'A public client did not send a complete request head in time (slowloris).',
  BURROW_ERR_UPSTREAM_UNAVAILABLE: 'The agent session for an endpoint is gone or refused the proxy stream (answered 502).',
  BURROW_ERR_HTTP_UPGRADE_NOT_FIRST: 'A WebSocket Upgrade came after another request on its connection (answered 400).',
  // burrow's own agent (src/agent)
  BURROW_ERR_AGENT_CONNECT: 'The agent could not reach the relay, or the TLS handshake with it failed.',
  BURROW_ERR_AGENT_AUTH: 'The relay rejected the agent\'s Auth (missing or unknown token).',
  BURROW_ERR_AGENT_AUTH_LIMIT: 'The relay refused the agent\'s Auth for now: its token is at its session limit, or its IP is rate-limited.',
  BURROW_ERR_AGENT_BIND: 'The relay refused to bind one of the agent\'s endpoints.',
  BURROW_ERR_AGENT_UPSTREAM: 'The agent could not connect to the local upstream (refused, timed out, unreachable).',
  BURROW_ERR_AGENT_BREAKER_OPEN: 'The upstream\'s circuit breaker is open; the connection was answered without dialling.',
  BURROW_ERR_AGENT_TUNNEL_STOPPED: 'The relay stopped one of the agent\'s endpoints (StopTunnel).',
  BURROW_ERR_AGENT_CLOSED: 'The agent, or the endpoint, is closed; the operation cannot run.',
  BURROW_ERR_AGENT_METRICS_LISTEN: 'The agent\'s metrics server (--metrics-addr) could not bind its address.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The one error class burrow throws or emits. `code` is stable and documented; `message` is for humans. */
export class BurrowError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BurrowError';
    this.code = code;
  }
}

export function isBurrowError(err: unknown, code?: ErrorCode): err is BurrowError {
  return err instanceof BurrowError && (code === undefined || err.code === code);
}
