// What the agent CLI shows: on a TTY a live screen redrawn about once a second (session, relay, RTT p50/p99 from
// heartbeats, URL → upstream per endpoint with its breaker, connections, totals, recent events); off a TTY one JSON
// log line (pino) per agent event. CLI layer: writes to stdout. Never on the data path (reads counters on a timer).
import pino from 'pino';
import type { Agent, SessionInfo } from '../agent/agent.js';
import type { Endpoint } from '../agent/endpoint.js';
import type { BreakerState } from '../agent/upstream-dialer.js';
import { isBurrowError } from '../core/errors.js';
import { LineSink } from './line-sink.js';

export interface StatusViewOptions {
  /** Live screen (true) or JSON lines (false). */
  tty: boolean;
  version: string;
  out?: NodeJS.WriteStream;
  /** Lines shown under the title on the live screen (the demo's curl line). */
  banner?: string[];
}

export interface StatusView {
  /** A line for the operator ("SIGINT received, draining …"). */
  note(msg: string): void;
  /** Stop watching; resolves once what was logged is written out (JSON lines: or after EXIT_FLUSH_MS). */
  stop(): Promise<void>;
}

/** JSON lines waiting for a slow stdout reader, at most (beyond: dropped, counted, and the count logged). */
const LOG_BUFFER_MAX = 1024 * 1024;
/** At exit, the longest wait for the buffered lines to be written. */
const EXIT_FLUSH_MS = 2_000;

type Level = 'info' | 'warn' | 'error';

interface AgentEvent {
  level: Level;
  msg: string;
  fields: Record<string, unknown>;
}

const errText = (e: unknown): string | undefined => (e instanceof Error ? e.message : e === undefined || e === null ? undefined : String(e));
const errCode = (e: unknown): string | undefined => (isBurrowError(e) ? e.code : undefined);

/** Subscribe to every agent event worth a log line; `sink` gets each one. Returns the unsubscribe function. */
function watch(agent: Agent, sink: (e: AgentEvent) => void): () => void {
  // Handlers are typed per event below; the table itself has to accept them all.
  const on: Array<[string, (...a: any[]) => void]> = [
    ['online', (s: SessionInfo) =>
      sink({ level: 'info', msg: s.reconnected ? 'session online again' : 'session online', fields: { server: s.server, client_id: s.clientId } })],
    ['offline', (err?: Error) =>
      sink({ level: 'warn', msg: 'session lost', fields: { err: errText(err), code: errCode(err) } })],
    ['reconnecting', (r: { attempt: number; delayMs: number; error?: Error }) =>
      sink({ level: 'info', msg: 'reconnecting', fields: { attempt: r.attempt, delay_ms: r.delayMs, reason: errText(r.error), code: errCode(r.error) } })],
    ['endpoint-online', (ep: Endpoint) =>
      sink({ level: 'info', msg: 'endpoint online', fields: { endpoint: ep.name, url: ep.url, upstream: ep.upstream } })],
    ['endpoint-bind-error', (ep: Endpoint, err: Error, willRetry: boolean) =>
      sink({ level: willRetry ? 'warn' : 'error', msg: willRetry ? 'bind failed, retrying' : 'bind failed', fields: { endpoint: ep.name, err: errText(err), code: errCode(err) } })],
    ['endpoint-closed', (ep: Endpoint, err?: Error) =>
      sink({ level: err ? 'warn' : 'info', msg: 'endpoint closed', fields: { endpoint: ep.name, url: ep.url, err: errText(err), code: errCode(err) } })],
    ['breaker', (b: { upstream: string; state: BreakerState; error: Error | null }) =>
      sink({ level: b.state === 'open' ? 'warn' : 'info', msg: `upstream breaker ${b.state}`, fields: { upstream: b.upstream, state: b.state, last_error: errText(b.error) } })],
    ['upstream-error', (ep: Endpoint, err: Error) => {
      // While the breaker is open every connection is refused at once: the 'breaker open' line already said so, and
      // the counters show how many; one line per refusal would flood the log exactly when the service is down.
      if (errCode(err) === 'BURROW_ERR_AGENT_BREAKER_OPEN') return;
      sink({ level: 'warn', msg: 'upstream unavailable', fields: { endpoint: ep.name, upstream: ep.upstream, err: errText(err), code: errCode(err) } });
    }],
    ['command', (c: { type: string; detail: string }) =>
      sink({ level: 'info', msg: `relay command: ${c.type}`, fields: { detail: c.detail } })],
    ['close', (err?: Error) =>
      sink({ level: err ? 'error' : 'info', msg: 'agent stopped', fields: { err: errText(err), code: errCode(err) } })],
  ];
  for (const [ev, fn] of on) agent.on(ev, fn);
  return () => {
    for (const [ev, fn] of on) agent.off(ev, fn);
  };
}

/**
 * JSON lines: one per agent event, written asynchronously with a bounded buffer (line-sink.ts). A stdout that nobody
 * reads must not stop the agent: synchronous writes to a full pipe blocked its event loop, and with it every tunnel
 * and the heartbeat. Lines beyond LOG_BUFFER_MAX are dropped, and the count is logged.
 */
function jsonView(agent: Agent, opts: StatusViewOptions): StatusView {
  const sink = new LineSink((opts.out as { fd?: number } | undefined)?.fd ?? 1, LOG_BUFFER_MAX);
  const log: pino.Logger = pino({ name: 'burrow-agent', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, sink);
  const reportDrops = (): void => {
    const n = sink.takeDropped();
    if (n > 0) log.warn({ dropped: n }, 'log lines dropped: stdout was not read fast enough');
  };
  const dropTimer = setInterval(reportDrops, 10_000);
  dropTimer.unref();
  log.info({ version: opts.version, server: agent.serverText }, 'agent starting');
  const stopWatch = watch(agent, (e) => log[e.level](dropUndefined(e.fields), e.msg));
  let stopping: Promise<void> | null = null;
  return {
    note: (msg) => log.info(msg),
    stop: () => {
      if (stopping !== null) return stopping;
      stopWatch();
      clearInterval(dropTimer);
      reportDrops();
      stopping = sink.drained(EXIT_FLUSH_MS);
      return stopping;
    },
  };
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

// ── live screen ──────────────────────────────────────────────────────────────────────────────────────────────────

const ESC = '\x1b[';
const color = (code: number, s: string): string => `${ESC}${code}m${s}${ESC}0m`;
const green = (s: string): string => color(32, s);
const yellow = (s: string): string => color(33, s);
const red = (s: string): string => color(31, s);
const dim = (s: string): string => color(2, s);
const bold = (s: string): string => color(1, s);

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function ms(v: number): string {
  return Number.isNaN(v) ? '–' : v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(0)} ms`;
}

/** Visible length (ANSI colour codes do not count). */
function visible(s: string): number {
  return s.replace(/\x1b\[[0-9;]*m/g, '').length;
}

function truncate(s: string, width: number): string {
  if (visible(s) <= width) return s;
  // Drop colours on lines that do not fit: simpler than cutting inside escape sequences.
  const plain = s.replace(/\x1b\[[0-9;]*m/g, '');
  return `${plain.slice(0, Math.max(0, width - 1))}…`;
}

function screenView(agent: Agent, opts: StatusViewOptions): StatusView {
  const out = opts.out ?? process.stdout;
  const events: string[] = [];
  const startedAt = Date.now();
  const push = (level: Level, msg: string, detail?: string): void => {
    const t = new Date().toTimeString().slice(0, 8);
    const text = detail ? `${msg}: ${detail}` : msg;
    events.push(`${dim(t)}  ${level === 'error' ? red(text) : level === 'warn' ? yellow(text) : text}`);
    if (events.length > 8) events.shift();
    schedule();
  };
  const stopWatch = watch(agent, (e) => {
    const f = e.fields;
    const detail = [f['endpoint'], f['url'], f['upstream'], f['err'] ?? f['reason'] ?? f['last_error'], f['detail'],
      f['delay_ms'] !== undefined ? `in ${f['delay_ms']} ms` : undefined]
      .filter((x) => x !== undefined && x !== '').join(' · ');
    push(e.level, e.msg, detail);
  });

  const stateText = (): string => {
    switch (agent.state) {
      case 'online':
        return green('online');
      case 'connecting':
      case 'reconnecting':
        return yellow(agent.state);
      case 'closing':
        return yellow('closing (finishing open connections)');
      default:
        return agent.closeError ? red(`${agent.state}: ${agent.closeError.message}`) : agent.state;
    }
  };

  const render = (): void => {
    const width = Math.max(40, out.columns || 100); // a pty without a size reports 0
    const s = agent.stats;
    const c = s.connections;
    const up = Math.floor((Date.now() - startedAt) / 1000);
    const lines: string[] = [];
    lines.push(`${bold(`burrow agent ${opts.version}`)}${' '.repeat(8)}${dim('Ctrl+C to quit')}`);
    for (const b of opts.banner ?? []) lines.push(b);
    lines.push('');
    lines.push(`Session       ${stateText()}`);
    lines.push(`Relay         ${agent.serverText}${agent.clientId ? dim(`   client ${agent.clientId}`) : ''}`);
    lines.push(
      `Relay RTT     p50 ${ms(s.rttPercentileMs(50))} · p99 ${ms(s.rttPercentileMs(99))} · last ${ms(s.lastRttMs)}` +
        dim(`   (${s.rttCount} heartbeats)`),
    );
    lines.push(`Sessions      ${s.sessions} · reconnect attempts ${s.reconnectAttempts} · up ${Math.floor(up / 60)}m${up % 60}s`);
    lines.push('');
    lines.push(bold('Endpoints'));
    const eps = agent.endpoints;
    if (eps.length === 0) lines.push(dim('  (none)'));
    const nameW = Math.max(4, ...eps.map((e) => e.name.length));
    for (const ep of eps) {
      const st = ep.state === 'online' ? green('online   ') : ep.state === 'closed' ? red('closed   ') : yellow(ep.state.padEnd(9));
      const br = ep.dialer === null ? dim('listener') : ep.dialer.state === 'closed' ? dim('breaker closed') : ep.dialer.state === 'open' ? red('breaker OPEN') : yellow('breaker half-open');
      lines.push(`  ${ep.name.padEnd(nameW)}  ${st} ${ep.url || dim('(binding)')}  →  ${ep.upstream}`);
      lines.push(
        `  ${' '.repeat(nameW)}  ${dim(`open ${ep.counters.open} · total ${ep.counters.total} · errors ${ep.counters.upstreamErrors} ·`)} ${br}` +
          (ep.lastError && ep.state !== 'online' ? `  ${red(ep.lastError.message)}` : ''),
      );
    }
    lines.push('');
    lines.push(
      `Connections   open ${c.open} · total ${c.total} · in ${bytes(c.bytesToUpstream)} · out ${bytes(c.bytesFromUpstream)} · ` +
        `upstream errors ${c.upstreamErrors}`,
    );
    lines.push('');
    lines.push(bold('Events'));
    for (const e of events) lines.push(`  ${e}`);
    out.write(`${ESC}H${lines.map((l) => `${truncate(l, width)}${ESC}K`).join('\n')}\n${ESC}J`);
  };

  let pending = false;
  const schedule = (): void => {
    if (pending) return;
    pending = true;
    setImmediate(() => {
      pending = false;
      if (!stopped) render();
    });
  };
  let stopped = false;
  out.write(`${ESC}?25l${ESC}2J`); // hide the cursor, clear once
  render();
  const timer = setInterval(render, 1000);
  return {
    note: (msg) => push('info', msg),
    stop: () => {
      if (stopped) return Promise.resolve();
      stopped = true;
      clearInterval(timer);
      render();
      stopWatch();
      out.write(`${ESC}?25h`);
      return Promise.resolve();
    },
  };
}

/** Start the view that suits the output (live screen on a TTY, JSON lines otherwise). */
export function startStatusView(agent: Agent, opts: StatusViewOptions): StatusView {
  return opts.tty ? screenView(agent, opts) : jsonView(agent, opts);
}
