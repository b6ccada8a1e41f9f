import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { ConsumerHub } from './consumers.ts';
import type { EaaCore } from './core.ts';
import type { EaaMetrics } from './metrics.ts';
import { encodeNotificationToConsumer, type NotificationFromProducer, type Urn } from './model.ts';

/**
 * Where a notification goes (docs/eaa.md §Routing): straight to this node's subscribers, and
 * once to every other node that serves at least one subscriber. The receiving node delivers to
 * its own subscribers only (no second hop) and drops an id it has seen (a retried forward).
 */

/** A notification as it travels between nodes. */
export interface Envelope {
  /** `<origin node>/<boot id>/<sequence>`: unique across nodes and restarts. */
  id: string;
  producer: Urn;
  name: string;
  version: string;
  payload?: string;
}

const SEEN_LIMIT = 65_536;

export class NotificationRouter {
  private readonly core: EaaCore;
  private readonly hub: ConsumerHub;
  private readonly metrics: EaaMetrics;
  private readonly log: Logger;
  private readonly forward: (node: string, env: Envelope) => void;
  private readonly bootId = randomBytes(6).toString('hex');
  private seq = 0;
  /** Ids of forwarded notifications already delivered here, oldest first (bounded). */
  private readonly seen = new Set<string>();

  constructor(opts: {
    core: EaaCore;
    hub: ConsumerHub;
    metrics: EaaMetrics;
    logger: Logger;
    forward: (node: string, env: Envelope) => void;
  }) {
    this.core = opts.core;
    this.hub = opts.hub;
    this.metrics = opts.metrics;
    this.log = opts.logger;
    this.forward = opts.forward;
  }

  /** POST /notifications accepted from a local producer. */
  publish(producer: Urn, n: NotificationFromProducer): void {
    const byNode = this.core.recipients(producer, n.name, n.version);
    if (byNode.size === 0) return;
    const local = byNode.get(this.core.node);
    if (local) this.deliver(local, encodeNotificationToConsumer(n, producer));
    if (byNode.size === (local ? 1 : 0)) return;
    const env: Envelope = { id: `${this.core.node}/${this.bootId}/${++this.seq}`, producer, name: n.name, version: n.version };
    if (n.payload !== undefined) env.payload = n.payload;
    for (const node of byNode.keys()) {
      if (node === this.core.node) continue;
      this.forward(node, env);
      this.metrics.outcome('forwarded');
    }
  }

  /** A notification forwarded by another node. */
  receive(env: Envelope): void {
    if (this.seen.has(env.id)) {
      this.metrics.outcome('duplicate');
      return;
    }
    this.seen.add(env.id);
    if (this.seen.size > SEEN_LIMIT) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    const local = this.core.recipients(env.producer, env.name, env.version).get(this.core.node);
    if (!local) return;
    this.deliver(
      local,
      encodeNotificationToConsumer({ name: env.name, version: env.version, payload: env.payload }, env.producer),
    );
  }

  private deliver(cns: readonly string[], frame: string): void {
    for (const cn of cns) {
      const result = this.hub.send(cn, frame);
      this.metrics.outcome(result);
      if (result === 'dropped') this.log.warn({ cn }, 'consumer socket is not keeping up; notification dropped');
    }
  }
}
