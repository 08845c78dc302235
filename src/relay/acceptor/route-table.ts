// The acceptor's route table: hostname → pool and TCP port → pool. A pool is the set of endpoints (members) serving
// one URL; without pooling it has exactly one member. Each member is one endpoint of one agent session on one worker.
// Reservations are made here, on the main thread, so two workers can never bind the same name or port, and a name
// belongs to one owner (token) at a time, including a grace period after its last member leaves.
// Lookups are on the per-connection path (one Map.get); changes happen only on Bind/Unbind/session end.
import { randomBytes } from 'node:crypto';
import type { BalanceStrategy, PickCandidate, PickState } from '../../balancer/pick-member.js';
import type { MemberBreaker } from '../../breaker/member-breaker.js';
import type { EndpointProto } from '../relay-messages.js';

/** One endpoint serving a pool. Mutable counters are read by the pickers (PickCandidate). */
export interface PoolMember extends PickCandidate {
  /** endpointKey(): session id + the agent's Id (agents' Ids repeat across sessions). */
  readonly endpointKey: string;
  readonly sessionId: string;
  readonly workerId: number;
  /** ReserveRequest.authKey: the member's basic-auth credentials, as a digest ('' = none). */
  readonly authKey: string;
  available: boolean;
  outstanding: number;
  ewmaUs: number;
  /** When ewmaUs last took a sample (Date.now() ms; 0 = never). */
  ewmaAt: number;
  /** Only pooled endpoints have breakers (a lone member has no one to fail over to). */
  breaker: MemberBreaker | null;
}

export interface Route extends PickState {
  /** `h:<hostname>` or `p:<port>`. */
  readonly key: string;
  readonly proto: EndpointProto;
  /** Hostname for http/https/tls routes, '' for tcp. */
  readonly hostname: string;
  /** Port for tcp routes, 0 otherwise. */
  readonly port: number;
  /** Token identity of the owner: only binds by the same owner may join or reclaim. */
  readonly owner: string;
  /** True when every member bound with pooling enabled: more may join. */
  readonly pooled: boolean;
  strategy: BalanceStrategy;
  readonly members: PoolMember[];
  cursor: number;
}

/** A name or port whose last member left: only its owner may bind it until `until` (ms since epoch). */
interface Reservation {
  owner: string;
  until: number;
}

const ADJECTIVES = ['amber', 'brave', 'calm', 'deft', 'eager', 'fond', 'glad', 'hale', 'keen', 'lush', 'mild', 'neat', 'proud', 'quick', 'rapid', 'swift', 'tidy', 'vivid', 'warm', 'zesty'];
const NOUNS = ['badger', 'crane', 'dingo', 'egret', 'ferret', 'gecko', 'heron', 'ibis', 'koala', 'lemur', 'marten', 'newt', 'otter', 'panda', 'quail', 'raven', 'stoat', 'tapir', 'vole', 'wombat'];

/** A readable random label such as `brave-otter-3f9a1c` (24 bits of randomness on top of 400 word pairs). */
export function randomLabel(): string {
  const r = randomBytes(5);
  return `${ADJECTIVES[r[0]! % ADJECTIVES.length]}-${NOUNS[r[1]! % NOUNS.length]}-${r.subarray(2).toString('hex')}`;
}

export const routeKey = (proto: EndpointProto, hostname: string, port: number): string =>
  proto === 'tcp' ? `p:${port}` : `h:${hostname}`;

export class RouteTable {
  private readonly byHost: Map<string, Route>;
  private readonly byPort: Map<number, Route>;
  private readonly byEndpoint: Map<string, { route: Route; member: PoolMember }>;
  private readonly reserved: Map<string, Reservation>;

  constructor() {
    this.byHost = new Map();
    this.byPort = new Map();
    this.byEndpoint = new Map();
    this.reserved = new Map();
  }

  /** Number of endpoints (members) bound. */
  get size(): number {
    return this.byEndpoint.size;
  }

  lookupHost(hostname: string): Route | undefined {
    return this.byHost.get(hostname);
  }

  lookupPort(port: number): Route | undefined {
    return this.byPort.get(port);
  }

  /** By route key (`h:<hostname>` / `p:<port>`). */
  lookupKey(key: string): Route | undefined {
    return key.startsWith('p:') ? this.byPort.get(Number(key.slice(2))) : this.byHost.get(key.slice(2));
  }

  getEndpoint(endpointKey: string): { route: Route; member: PoolMember } | undefined {
    return this.byEndpoint.get(endpointKey);
  }

  /** Owner holding `key` in its reclaim grace period, if any (expired reservations are dropped here). */
  reservedFor(key: string, now: number): string | null {
    const r = this.reserved.get(key);
    if (r === undefined) return null;
    if (r.until <= now) {
      this.reserved.delete(key);
      return null;
    }
    return r.owner;
  }

  /** Creates the route with its first member (the caller checked that the key is free). */
  create(spec: Omit<Route, 'members' | 'cursor' | 'key'>, member: PoolMember): Route {
    const route: Route = { ...spec, key: routeKey(spec.proto, spec.hostname, spec.port), members: [member], cursor: 0 };
    if (route.proto === 'tcp') this.byPort.set(route.port, route);
    else this.byHost.set(route.hostname, route);
    this.byEndpoint.set(member.endpointKey, { route, member });
    this.reserved.delete(route.key);
    return route;
  }

  /** Adds a member to an existing (pooled) route. */
  join(route: Route, member: PoolMember): void {
    route.members.push(member);
    this.byEndpoint.set(member.endpointKey, { route, member });
  }

  /** Online, or held in its grace period for an owner other than `owner`. */
  isPortTaken(port: number, now: number, owner: string): boolean {
    if (this.byPort.has(port)) return true;
    const holder = this.reservedFor(`p:${port}`, now);
    return holder !== null && holder !== owner;
  }

  /**
   * TCP ports `owner` holds: online routes it owns and ports in their grace period for it. Walks every port route
   * and reservation (a TCP Bind is rare; the range is at most 65 535 ports).
   */
  tcpPortsHeldBy(owner: string, now: number): number {
    let n = 0;
    for (const route of this.byPort.values()) if (route.owner === owner) n++;
    for (const [key, r] of this.reserved) if (r.owner === owner && r.until > now && key.startsWith('p:')) n++;
    return n;
  }

  /** Ports in [from, to] held in their grace period for `owner` (what it may take back when at its port limit). */
  portsReservedFor(owner: string, from: number, to: number, now: number): number[] {
    const out: number[] = [];
    for (const [key, r] of this.reserved) {
      if (r.owner !== owner || r.until <= now || !key.startsWith('p:')) continue;
      const port = Number(key.slice(2));
      if (port >= from && port <= to && !this.byPort.has(port)) out.push(port);
    }
    return out;
  }

  /**
   * Removes one endpoint. Returns its route when that was the route's last member (callers close its TCP listener);
   * the route's name or port then stays reserved for its owner for `graceMs`.
   */
  remove(endpointKey: string, graceMs: number, now: number): { route: Route; member: PoolMember; last: boolean } | undefined {
    const e = this.byEndpoint.get(endpointKey);
    if (e === undefined) return undefined;
    this.byEndpoint.delete(endpointKey);
    const { route, member } = e;
    const i = route.members.indexOf(member);
    if (i >= 0) route.members.splice(i, 1);
    const last = route.members.length === 0;
    if (last) {
      if (route.proto === 'tcp') {
        if (this.byPort.get(route.port) === route) this.byPort.delete(route.port);
      } else if (this.byHost.get(route.hostname) === route) {
        this.byHost.delete(route.hostname);
      }
      this.dropExpired(now);
      if (graceMs > 0) {
        this.reserved.delete(route.key); // re-inserted at the end, so the map stays in `until` order (grace is fixed)
        this.reserved.set(route.key, { owner: route.owner, until: now + graceMs });
      }
    }
    return { route, member, last };
  }

  /** Names and ports currently held in a grace period (expired ones are dropped as routes leave). */
  get reservations(): number {
    return this.reserved.size;
  }

  /**
   * Drops expired reservations from the front. Without this a reservation went only when its own key was looked up
   * again, which a random name never is: every session that bound one and left added an entry for good.
   */
  private dropExpired(now: number): void {
    for (const [key, r] of this.reserved) {
      if (r.until > now) break;
      this.reserved.delete(key);
    }
  }

  /** Endpoint keys of every member matching `pred`. */
  endpointsWhere(pred: (m: PoolMember) => boolean): string[] {
    const out: string[] = [];
    for (const { member } of this.byEndpoint.values()) if (pred(member)) out.push(member.endpointKey);
    return out;
  }

  /** Every route (pool), each once. */
  all(): Route[] {
    return [...this.byHost.values(), ...this.byPort.values()];
  }
}
