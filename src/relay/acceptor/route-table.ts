// The acceptor's route table: hostname → endpoint and TCP port → endpoint, each owned by one worker and session.
// Reservations are made here, on the main thread, so two workers can never bind the same name or port.
// Lookups are on the per-connection path (one Map.get); changes happen only on Bind/Unbind/session end.
import { randomBytes } from 'node:crypto';
import type { EndpointProto } from '../relay-messages.js';

export interface Route {
  endpointId: string;
  sessionId: string;
  workerId: number;
  proto: EndpointProto;
  /** Hostname for http/https/tls routes, '' for tcp. */
  hostname: string;
  /** Port for tcp routes, 0 otherwise. */
  port: number;
}

const ADJECTIVES = ['amber', 'brave', 'calm', 'deft', 'eager', 'fond', 'glad', 'hale', 'keen', 'lush', 'mild', 'neat', 'proud', 'quick', 'rapid', 'swift', 'tidy', 'vivid', 'warm', 'zesty'];
const NOUNS = ['badger', 'crane', 'dingo', 'egret', 'ferret', 'gecko', 'heron', 'ibis', 'koala', 'lemur', 'marten', 'newt', 'otter', 'panda', 'quail', 'raven', 'stoat', 'tapir', 'vole', 'wombat'];

/** A readable random label such as `brave-otter-3f9a1c` (24 bits of randomness on top of 400 word pairs). */
export function randomLabel(): string {
  const r = randomBytes(5);
  return `${ADJECTIVES[r[0]! % ADJECTIVES.length]}-${NOUNS[r[1]! % NOUNS.length]}-${r.subarray(2).toString('hex')}`;
}

export class RouteTable {
  private readonly byHost: Map<string, Route>;
  private readonly byPort: Map<number, Route>;
  private readonly byEndpoint: Map<string, Route>;

  constructor() {
    this.byHost = new Map();
    this.byPort = new Map();
    this.byEndpoint = new Map();
  }

  get size(): number {
    return this.byEndpoint.size;
  }

  lookupHost(hostname: string): Route | undefined {
    return this.byHost.get(hostname);
  }

  lookupPort(port: number): Route | undefined {
    return this.byPort.get(port);
  }

  getEndpoint(endpointId: string): Route | undefined {
    return this.byEndpoint.get(endpointId);
  }

  /** Adds the route; returns the route already holding its hostname/port instead when there is one. */
  add(route: Route): Route | null {
    const existing = route.proto === 'tcp' ? this.byPort.get(route.port) : this.byHost.get(route.hostname);
    if (existing !== undefined) return existing;
    if (route.proto === 'tcp') this.byPort.set(route.port, route);
    else this.byHost.set(route.hostname, route);
    this.byEndpoint.set(route.endpointId, route);
    return null;
  }

  isPortTaken(port: number): boolean {
    return this.byPort.has(port);
  }

  /** Removes one endpoint's route; returns it (callers close its TCP listener). */
  remove(endpointId: string): Route | undefined {
    const r = this.byEndpoint.get(endpointId);
    if (r === undefined) return undefined;
    this.byEndpoint.delete(endpointId);
    if (r.proto === 'tcp') {
      if (this.byPort.get(r.port) === r) this.byPort.delete(r.port);
    } else if (this.byHost.get(r.hostname) === r) {
      this.byHost.delete(r.hostname);
    }
    return r;
  }

  /** Removes every route matching `pred`; returns them. */
  removeWhere(pred: (r: Route) => boolean): Route[] {
    const gone: Route[] = [];
    for (const r of [...this.byEndpoint.values()]) {
      if (pred(r)) {
        this.remove(r.endpointId);
        gone.push(r);
      }
    }
    return gone;
  }

  all(): Route[] {
    return [...this.byEndpoint.values()];
  }
}
