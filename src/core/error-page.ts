// Small HTTP error responses written by burrow itself: the relay (404 no route, 421, 400, 502 ...) and the agent (502
// when the upstream cannot be reached). Pure; not on the hot path.

/** Reason phrases of the statuses burrow answers with itself (RFC 9110 §15). */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  421: 'Misdirected Request',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Retry-After (seconds) on our 503 pages: every member of a pool failing (breakers half-open within seconds), or a relay shutting down. */
const RETRY_AFTER_S = 5;

/** A complete HTTP/1.1 response with `Connection: close` and a short HTML body naming the problem. */
export function errorPage(status: number, statusText: string, detail: string, extraHeaders = ''): Buffer {
  const body =
    `<!doctype html><html><head><title>${status} ${escapeHtml(statusText)}</title></head>` +
    `<body><h1>${status} ${escapeHtml(statusText)}</h1><p>${escapeHtml(detail)}</p><hr><p>burrow</p></body></html>\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} ${statusText}\r\n` +
      'Content-Type: text/html; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n' +
      'Cache-Control: no-store\r\n' +
      `X-Burrow-Error: ${status}\r\n` +
      extraHeaders +
      '\r\n' +
      body,
  );
}

/** 503 with Retry-After: the service may be back within seconds (`detail` says why it is not now). */
export function unavailablePage(detail: string): Buffer {
  return errorPage(503, STATUS_TEXT[503]!, detail, `Retry-After: ${RETRY_AFTER_S}\r\n`);
}

/** The answer while the relay shuts down (the acceptor and the workers give the same one). */
export const SHUTTING_DOWN_DETAIL = 'This relay is shutting down; retry in a few seconds.';
