// Package entry (`import { connect } from 'burrow'`): the agent library API. Re-exports only; nothing runs here.
export { connect, type ConnectOptions } from './agent/connect.js';
export {
  Agent,
  AGENT_VERSION,
  type AgentOptions,
  type AgentState,
  type ForwardOptions,
  type ListenOptions,
  type SessionInfo,
} from './agent/agent.js';
export { Endpoint, Listener, type EndpointState, type IncomingConnection } from './agent/endpoint.js';
export type { EndpointKind, EndpointSpec } from './agent/endpoint-spec.js';
export type { AgentStats, ConnectionCounters } from './agent/agent-stats.js';
export type { BackoffOptions } from './agent/backoff.js';
export type { BreakerOptions, BreakerState } from './agent/upstream-dialer.js';
export { BurrowError, isBurrowError, type ErrorCode } from './core/errors.js';
