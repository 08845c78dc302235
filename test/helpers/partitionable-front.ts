// Test helper: a TCP forwarder in front of the relay's agent listener that can cut a link silently (a network
// partition, as seen by both ends) and hold new connections back. Loopback only.
import net from 'node:net';
import { listen, type Cleanup } from './relay-fixture.js';

export interface PartitionableFront {
  port: number;
  /** [agent side, relay side] of every forwarded connection, in accept order. */
  pairs: Array<[net.Socket, net.Socket]>;
  /** Stop forwarding both ways on pair `i` and stop reading it: both ends see silence, neither sees a close. */
  partition(i: number): void;
  /**
   * partition(i), then reset the agent's side: the agent sees its link fail (as after a change of network, when a
   * middlebox answers with RST) while the relay's side stays open and silent.
   */
  cutAgentSide(i: number): void;
  /** New connections wait (accepted, not yet forwarded) until release(). */
  hold(): void;
  release(): void;
}

/**
 * A TCP forwarder in front of `targetPort` (the relay's agent listener) that can go silent on the connections it has
 * (a network partition: the relay keeps the old session, the agent gives up on it) while new connections pass.
 */
export async function partitionableFront(cleanup: Cleanup, targetPort: number): Promise<PartitionableFront> {
  const pairs: Array<[net.Socket, net.Socket]> = [];
  let held: net.Socket[] | null = null;
  const forward = (c: net.Socket): void => {
    const r = net.connect({ host: '127.0.0.1', port: targetPort });
    r.on('error', () => {});
    c.pipe(r);
    r.pipe(c);
    pairs.push([c, r]);
  };
  const front = net.createServer((c) => {
    c.on('error', () => {});
    if (held !== null) {
      c.pause();
      held.push(c);
    } else forward(c);
  });
  const port = await listen(front);
  cleanup.defer('close the front', () => {
    for (const [c, r] of pairs) {
      c.destroy();
      r.destroy();
    }
    for (const c of held ?? []) c.destroy();
    return new Promise<void>((res) => front.close(() => res()));
  });
  const partition = (i: number): void => {
    const [c, r] = pairs[i]!;
    c.unpipe(r);
    r.unpipe(c);
    c.pause();
    r.pause();
  };
  return {
    port,
    pairs,
    partition,
    cutAgentSide(i) {
      partition(i);
      pairs[i]![0].resetAndDestroy();
    },
    hold() {
      held ??= [];
    },
    release() {
      const waiting = held ?? [];
      held = null;
      for (const c of waiting) forward(c);
    },
  };
}

