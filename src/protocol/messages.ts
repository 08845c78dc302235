// Wire shapes (JSON keys exactly as on the wire) of the typed-stream RPC messages and the stream-type numbers.
// Types and constants only; not on the hot path. Contract and examples: docs/PROTOCOL.md §6–§11.

// "REQUIRED" on a field of a message the relay *sends* means: the ngrok agent SDK (ngrok-rust 0.18, inside
// @ngrok/ngrok 1.7.0) fails to deserialize the whole message when that key is missing, so the RPC fails.
// Optional fields (`?:`) may be left out, and may also be `null` when typed `| null`. Unknown extra keys are
// always ignored by the SDK. For messages the relay *receives*, the SDK always writes every key listed here
// (optional ones as `null`), but burrow must still default missing keys so that other agents work too.

// ---------------------------------------------------------------------------------------------------------
// Stream types: the first 4 bytes (u32, big-endian) of every stream.
// ---------------------------------------------------------------------------------------------------------

/** Agent → relay RPC: Auth → AuthResp. */
export const STREAM_TYPE_AUTH = 0;
/** Agent → relay RPC: Bind → BindResp. */
export const STREAM_TYPE_BIND = 1;
/** Agent → relay RPC: Unbind → UnbindResp. */
export const STREAM_TYPE_UNBIND = 2;
/** Relay → agent: i64 little-endian length + ProxyHeader JSON, then raw connection bytes. */
export const STREAM_TYPE_PROXY = 3;
/** Relay → agent command: Restart → CommandResp. */
export const STREAM_TYPE_RESTART = 4;
/** Relay → agent command: Stop → CommandResp. */
export const STREAM_TYPE_STOP = 5;
/** Relay → agent command: Update → CommandResp. */
export const STREAM_TYPE_UPDATE = 6;
/** Agent → relay RPC: StartTunnelWithLabel → StartTunnelWithLabelResp. */
export const STREAM_TYPE_BIND_LABELED = 7;
/** Relay → agent: StopTunnel request; the agent writes no response, it just closes the stream. (8 is unused.) */
export const STREAM_TYPE_STOP_TUNNEL = 9;
/** Heartbeat stream, opened by the agent: 4-byte ids that the relay echoes back unchanged. */
export const STREAM_TYPE_HEARTBEAT = 0xffffffff;

/** Size of the stream-type prefix in bytes. */
export const STREAM_TYPE_SIZE = 4;
/** Size of one heartbeat id (and of its echo) in bytes. */
export const HEARTBEAT_ID_SIZE = 4;
/** SDK default heartbeat interval and tolerance, in nanoseconds (as carried in AuthExtra). */
export const DEFAULT_HEARTBEAT_INTERVAL_NS = 10_000_000_000;
export const DEFAULT_HEARTBEAT_TOLERANCE_NS = 15_000_000_000;

/** Protocol versions the SDK offers in Auth.Version, best first. */
export const CLIENT_PROTOCOL_VERSIONS: readonly string[] = ['3', '2'];
/** The version burrow answers with in AuthResp.Version (the SDK does not check it). */
export const SERVER_PROTOCOL_VERSION = '3';

/** ProxyHeader.EdgeType values: strings on the wire; an unknown string reads as undefined, a number fails. */
export const EDGE_TYPE_UNDEFINED = '0';
export const EDGE_TYPE_TCP = '1';
export const EDGE_TYPE_TLS = '2';
export const EDGE_TYPE_HTTPS = '3';
export type EdgeType = string;

/** `ProxyProto` values: a JSON *number*. 1/2 make the SDK expect a PROXY v1/v2 header on proxy streams. */
export const PROXY_PROTO_NONE = 0;
export const PROXY_PROTO_V1 = 1;
export const PROXY_PROTO_V2 = 2;
export type ProxyProtoVersion = number;

/** Bind.Proto values. http/https bind HttpEndpointOpts, tcp binds TcpEndpointOpts, tls binds TlsEndpointOpts. */
export type BindProto = 'http' | 'https' | 'tcp' | 'tls';

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/**
 * Error answer to any agent → relay RPC. A non-empty `Error` fails the call in the SDK; lines starting with
 * `ERR_NGROK_` become the error code shown to users. `""` counts as success.
 */
export interface ErrorResp {
  Error: string;
}

// ---------------------------------------------------------------------------------------------------------
// Auth (type 0)
// ---------------------------------------------------------------------------------------------------------

/** Auth.Extra as sent by the SDK (every key is present). */
export interface AuthExtra {
  OS: string;
  Arch: string;
  /** The agent's auth token ("" when none). */
  AuthToken: string;
  Version: string;
  Hostname: string;
  UserAgent: string;
  Metadata: string;
  /** Echo of AuthRespExtra.Cookie from the previous session ("" at first). */
  Cookie: string;
  /** Nanoseconds. */
  HeartbeatInterval: number;
  /** Nanoseconds. */
  HeartbeatTolerance: number;
  /** "" = supported; non-empty = reason it is not; null = agent too old to say. */
  UpdateUnsupportedError: string | null;
  StopUnsupportedError: string | null;
  RestartUnsupportedError: string | null;
  ProxyType: string;
  MutualTLS: boolean;
  ServiceRun: boolean;
  ConfigVersion: string;
  CustomInterface: boolean;
  CustomCAs: boolean;
  ClientType: string;
}

/** Agent → relay, first RPC of a session. */
export interface Auth {
  /** Supported protocol versions, best first (SDK: ["3","2"]). */
  Version: string[];
  /** "" for a new session; the previous AuthResp.ClientId on reconnect. */
  ClientId: string;
  Extra: AuthExtra;
}

/** AuthResp.Extra: every field optional (missing or null both fine). */
export interface AuthRespExtra {
  Version?: string | null;
  Region?: string | null;
  /** The agent stores it and sends it back in AuthExtra.Cookie on reconnect. */
  Cookie?: string | null;
  AccountName?: string | null;
  /** Integer. */
  SessionDuration?: number | null;
  PlanName?: string | null;
  Banner?: string | null;
}

/**
 * Relay → agent. Minimal accepted form: `{"Version":"3","ClientId":"sess_x"}`.
 */
export interface AuthResp {
  /** REQUIRED (string; value not checked by the SDK). */
  Version: string;
  /** REQUIRED. Session id; the agent sends it back as Auth.ClientId on reconnect. */
  ClientId: string;
  /** Optional, but if present it MUST be an object: `null` fails deserialization. */
  Extra?: AuthRespExtra;
}

// ---------------------------------------------------------------------------------------------------------
// Endpoint options (Bind.Opts / BindResp.Opts). No enum tag on the wire: the bare struct for the kind named
// by Bind.Proto. Nested option objects use snake_case keys (headers: camelCase); byte fields are base64.
// ---------------------------------------------------------------------------------------------------------

export interface IpRestriction {
  allow_cidrs?: string[];
  deny_cidrs?: string[];
}

/** Serialized as `{}`. */
export type Compression = Record<string, never>;

export interface CircuitBreaker {
  error_threshold?: number;
}

export interface BasicAuthCredential {
  /** REQUIRED inside a credential. */
  username: string;
  cleartext_password?: string;
  /** base64. */
  hashed_password?: string;
}

export interface BasicAuth {
  credentials?: BasicAuthCredential[];
}

export interface OAuth {
  /** REQUIRED inside OAuth. */
  provider: string;
  client_id?: string;
  client_secret?: string;
  /** base64. */
  sealed_client_secret?: string;
  allow_emails?: string[];
  allow_domains?: string[];
  scopes?: string[];
}

export interface OIDC {
  /** REQUIRED inside OIDC. */
  issuer_url: string;
  client_id?: string;
  client_secret?: string;
  /** base64. */
  sealed_client_secret?: string;
  allow_emails?: string[];
  allow_domains?: string[];
  scopes?: string[];
}

export interface WebhookVerification {
  /** REQUIRED inside WebhookVerification. */
  provider: string;
  secret?: string;
  /** base64. */
  sealed_secret?: string;
}

export interface MutualTls {
  /** base64 of the CA certificate bytes (snake_case key on the wire). */
  mutual_tls_ca?: string;
}

/** Request/response header rules (camelCase keys). `add` entries are "name:value". */
export interface HeaderRules {
  add?: string[];
  remove?: string[];
  addParsed?: Record<string, string>;
}

/** Serialized as `{}`. */
export type WebsocketTcpConverter = Record<string, never>;

export interface UserAgentFilter {
  allow?: string[];
  deny?: string[];
}

export interface TrafficPolicyAction {
  Type?: string;
  /** Arbitrary JSON object. */
  Config?: Record<string, unknown>;
}

export interface TrafficPolicyRule {
  Name?: string;
  Expressions?: string[];
  Actions?: TrafficPolicyAction[];
}

export interface TrafficPolicyDocument {
  Inbound?: TrafficPolicyRule[];
  Outbound?: TrafficPolicyRule[];
}

/** The SDK always sends a JSON string (a policy document encoded as text); an object is also accepted. */
export type TrafficPolicy = string | TrafficPolicyDocument;

/** Opts for Proto "http" / "https". */
export interface HttpEndpointOpts {
  /** Optional (defaults to ""). */
  Domain?: string;
  /** REQUIRED in BindResp.Opts. */
  Hostname: string;
  /** REQUIRED in BindResp.Opts. */
  Auth: string;
  /** REQUIRED in BindResp.Opts. */
  Subdomain: string;
  /** REQUIRED in BindResp.Opts. */
  HostHeaderRewrite: boolean;
  LocalUrlScheme?: string | null;
  /** REQUIRED in BindResp.Opts (number 0/1/2; null fails). */
  ProxyProto: ProxyProtoVersion;
  Compression?: Compression | null;
  CircuitBreaker?: CircuitBreaker | null;
  IPRestriction?: IpRestriction | null;
  BasicAuth?: BasicAuth | null;
  OAuth?: OAuth | null;
  OIDC?: OIDC | null;
  WebhookVerification?: WebhookVerification | null;
  MutualTLSCA?: MutualTls | null;
  RequestHeaders?: HeaderRules | null;
  ResponseHeaders?: HeaderRules | null;
  WebsocketTCPConverter?: WebsocketTcpConverter | null;
  UserAgentFilter?: UserAgentFilter | null;
  TrafficPolicy?: TrafficPolicy | null;
}

/** Opts for Proto "tcp". */
export interface TcpEndpointOpts {
  /** REQUIRED in BindResp.Opts ("" = let the relay choose; "host:port" when the agent asks for one). */
  Addr: string;
  /** REQUIRED in BindResp.Opts (number). */
  ProxyProto: ProxyProtoVersion;
  IPRestriction?: IpRestriction | null;
  TrafficPolicy?: TrafficPolicy | null;
}

/** TLS termination material for a tls endpoint (snake_case keys, base64 values). */
export interface TlsTermination {
  cert?: string;
  key?: string;
  sealed_key?: string;
}

/** Opts for Proto "tls". A missing/null TLSTermination means TLS passthrough to the agent. */
export interface TlsEndpointOpts {
  /** Optional (defaults to ""). */
  Domain?: string;
  /** REQUIRED in BindResp.Opts. */
  Hostname: string;
  /** REQUIRED in BindResp.Opts. */
  Subdomain: string;
  /** REQUIRED in BindResp.Opts (number). */
  ProxyProto: ProxyProtoVersion;
  /** REQUIRED in BindResp.Opts. */
  MutualTLSAtAgent: boolean;
  MutualTLSAtEdge?: MutualTls | null;
  TLSTermination?: TlsTermination | null;
  IPRestriction?: IpRestriction | null;
  TrafficPolicy?: TrafficPolicy | null;
}

/** Bare options struct; which one is decided by Bind.Proto (no tag on the wire). */
export type BindOpts = HttpEndpointOpts | TcpEndpointOpts | TlsEndpointOpts;

// ---------------------------------------------------------------------------------------------------------
// Bind (type 1)
// ---------------------------------------------------------------------------------------------------------

export interface BindExtra {
  /** "" on first bind; the BindResp.Extra.Token we returned, on rebind after reconnect. */
  Token: string;
  IPPolicyRef: string;
  Metadata: string;
  Bindings: string[];
  PoolingEnabled: boolean;
}

/** Agent → relay. */
export interface Bind<O extends BindOpts = BindOpts> {
  /** "" for a new tunnel; the tunnel id from the earlier BindResp when rebinding after a reconnect. */
  Id: string;
  /** One of BindProto in practice; kept as string so unknown values can be rejected with an Error answer. */
  Proto: string;
  /** The agent's local target, e.g. "http://localhost:8080" (informational). */
  ForwardsTo: string;
  /** App protocol for the upstream, "" or e.g. "http2". */
  ForwardsProto: string;
  Opts: O;
  Extra: BindExtra;
}

export interface BindRespExtra {
  /** REQUIRED (string, may be ""). Sent back by the agent in BindExtra.Token on rebind. */
  Token: string;
}

/**
 * Relay → agent. All five keys REQUIRED. Echo the request's Opts (the SDK keeps them: ProxyProto handling,
 * TLS passthrough, and rebinding all use the returned Opts).
 */
export interface BindResp<O extends BindOpts = BindOpts> {
  /** REQUIRED. Tunnel id; ProxyHeader.Id must equal it. */
  Id: string;
  /** REQUIRED. Public URL shown as is: "https://host", "http://host", "tcp://host:port", "tls://host". */
  URL: string;
  /** REQUIRED and must be non-empty (echo Bind.Proto); an empty proto is treated as labeled on rebind. */
  Proto: string;
  /** REQUIRED. Must contain the required keys of the options struct for Proto. */
  Opts: O;
  /** REQUIRED (object with Token). */
  Extra: BindRespExtra;
}

// ---------------------------------------------------------------------------------------------------------
// BindLabeled (type 7)
// ---------------------------------------------------------------------------------------------------------

/** Agent → relay. */
export interface StartTunnelWithLabel {
  Labels: Record<string, string>;
  ForwardsTo: string;
  ForwardsProto: string;
  Metadata: string;
}

/** Relay → agent. */
export interface StartTunnelWithLabelResp {
  /** REQUIRED. Tunnel id used in ProxyHeader.Id. */
  Id: string;
}

// ---------------------------------------------------------------------------------------------------------
// Unbind (type 2)
// ---------------------------------------------------------------------------------------------------------

/** Agent → relay. */
export interface Unbind {
  Id: string;
}

/** Relay → agent: `{}`. No required keys, but it must be a JSON object. */
export type UnbindResp = Record<string, never>;

// ---------------------------------------------------------------------------------------------------------
// Proxy stream (type 3)
// ---------------------------------------------------------------------------------------------------------

/**
 * Relay → agent, after the stream type and an i64 little-endian byte length. All five keys REQUIRED.
 */
export interface ProxyHeader {
  /** REQUIRED. Tunnel id (BindResp.Id / StartTunnelWithLabelResp.Id); unknown ids are dropped by the agent. */
  Id: string;
  /** REQUIRED. Public client address "ip:port" ("[v6]:port"); unparsable → agent uses 0.0.0.0:0. */
  ClientAddr: string;
  /** REQUIRED. The tunnel's bind proto: "http", "https", "tcp" or "tls". */
  Proto: string;
  /** REQUIRED. A string "0".."3" (see EDGE_TYPE_*); a number fails deserialization. */
  EdgeType: EdgeType;
  /** REQUIRED. Boolean; for tls endpoints the SDK substitutes its own value. */
  PassthroughTLS: boolean;
}

// ---------------------------------------------------------------------------------------------------------
// Relay → agent commands (types 4, 5, 6, 9)
// ---------------------------------------------------------------------------------------------------------

/** Relay → agent (type 4): `{}`. */
export type Restart = Record<string, never>;

/** Relay → agent (type 5): `{}`. */
export type Stop = Record<string, never>;

/** Relay → agent (type 6). */
export interface Update {
  /** REQUIRED. Version to update to. */
  Version: string;
  /** REQUIRED. */
  PermitMajorVersion: boolean;
}

/** Agent → relay answer to Restart/Stop/Update: `{}` on success (Error left out), else `{"Error":"..."}`. */
export interface CommandResp {
  Error?: string;
}
export type RestartResp = CommandResp;
export type StopResp = CommandResp;
export type UpdateResp = CommandResp;

/** Relay → agent (type 9). The agent closes the tunnel with this message and writes no answer. */
export interface StopTunnel {
  /** REQUIRED. Tunnel id to stop. */
  Id: string;
  /** REQUIRED. Why (given to the agent's listener as the closing error). */
  Message: string;
  /** Optional ngrok-style error code. */
  ErrorCode?: string | null;
}
