// muxado wire error codes carried in RST and GOAWAY frames, and their mapping to burrow error codes
// (docs/PROTOCOL.md §Error codes, docs/errors.md). Pure; not on the hot path.
import type { ErrorCode } from '../core/errors.js';

export const MUX_NO_ERROR = 0x00;
export const MUX_PROTOCOL_ERROR = 0x01;
export const MUX_INTERNAL_ERROR = 0x02;
export const MUX_FLOW_CONTROL_ERROR = 0x03;
export const MUX_STREAM_CLOSED = 0x04;
export const MUX_STREAM_REFUSED = 0x05;
export const MUX_STREAM_CANCELLED = 0x06;
export const MUX_STREAM_RESET = 0x07;
export const MUX_FRAME_SIZE_ERROR = 0x08;
export const MUX_ACCEPT_QUEUE_FULL = 0x09;
export const MUX_ENHANCE_YOUR_CALM = 0x0a;
export const MUX_REMOTE_GONE_AWAY = 0x0b;
export const MUX_STREAMS_EXHAUSTED = 0x0c;
export const MUX_WRITE_TIMEOUT = 0x0d;
export const MUX_SESSION_CLOSED = 0x0e;
export const MUX_PEER_EOF = 0x0f;

const NAMES: readonly string[] = [
  'NoError',
  'ProtocolError',
  'InternalError',
  'FlowControlError',
  'StreamClosed',
  'StreamRefused',
  'StreamCancelled',
  'StreamReset',
  'FrameSizeError',
  'AcceptQueueFull',
  'EnhanceYourCalm',
  'RemoteGoneAway',
  'StreamsExhausted',
  'WriteTimeout',
  'SessionClosed',
  'PeerEOF',
];

/** Human name of a wire code; unknown codes are shown in hex (peers may send codes we do not know). */
export function muxErrorName(code: number): string {
  return NAMES[code] ?? `0x${(code >>> 0).toString(16)}`;
}

/** The burrow error code that best describes a wire code received from (or sent to) the peer. */
export function burrowCodeForMux(code: number): ErrorCode {
  switch (code) {
    case MUX_PROTOCOL_ERROR:
      return 'BURROW_ERR_MUX_PROTOCOL';
    case MUX_FLOW_CONTROL_ERROR:
      return 'BURROW_ERR_MUX_FLOW_CONTROL';
    case MUX_FRAME_SIZE_ERROR:
      return 'BURROW_ERR_MUX_FRAME_SIZE';
    case MUX_STREAM_CLOSED:
      return 'BURROW_ERR_MUX_STREAM_CLOSED';
    case MUX_STREAM_REFUSED:
    case MUX_ACCEPT_QUEUE_FULL:
    case MUX_ENHANCE_YOUR_CALM:
      return 'BURROW_ERR_MUX_STREAM_REFUSED';
    case MUX_REMOTE_GONE_AWAY:
      return 'BURROW_ERR_MUX_GOAWAY';
    case MUX_STREAMS_EXHAUSTED:
      return 'BURROW_ERR_MUX_STREAMS_EXHAUSTED';
    case MUX_SESSION_CLOSED:
    case MUX_PEER_EOF:
      return 'BURROW_ERR_MUX_SESSION_CLOSED';
    default:
      return 'BURROW_ERR_MUX_STREAM_RESET';
  }
}
