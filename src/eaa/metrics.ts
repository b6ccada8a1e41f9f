import { Counter, Gauge, type Registry } from 'prom-client';

/** Outcomes of one notification for one recipient (or one peer hop). */
export type NotificationOutcome =
  | 'delivered' // written to a local consumer's WebSocket
  | 'no_socket' // the subscriber has no open WebSocket here: missed, as in OpenNESS
  | 'dropped' // the consumer's socket buffer is full, or a peer queue overflowed
  | 'forwarded' // handed to another node (once per node)
  | 'duplicate' // a forwarded notification seen before (retry), suppressed
  | 'rate_limited' // the producer went over eaa.maxNotificationsPerSecond
  | 'rejected'; // refused: bad body, unknown producer

export interface EaaMetricsSources {
  counts(): { services: number; subscriptions: number; localServices: number };
  websocketClients(): number;
  peerQueue(): { peer: string; queued: number; up: boolean }[];
}

/**
 * `meshlet_eaa_*`. The two per-notification counters are kept as plain numbers and handed to
 * prom-client when it collects: its inc() hashes and validates the labels on every call, which
 * cost more than the rest of the bookkeeping of a notification.
 */
export class EaaMetrics {
  readonly notifications: Counter<'outcome'>;
  readonly requests: Counter<'route' | 'code'>;
  readonly peerSyncs: Counter<'result'>;
  private readonly pendingOutcomes = new Map<NotificationOutcome, number>();
  private readonly pendingRequests = new Map<string, { route: string; code: number; n: number }>();

  constructor(registry: Registry, src: EaaMetricsSources) {
    new Gauge({
      name: 'meshlet_eaa_services',
      help: 'Registered EAA services known to this node, cluster-wide (scope=all) and served by this node (scope=local).',
      labelNames: ['scope'],
      registers: [registry],
      collect() {
        const c = src.counts();
        this.set({ scope: 'all' }, c.services);
        this.set({ scope: 'local' }, c.localServices);
      },
    });
    new Gauge({
      name: 'meshlet_eaa_subscriptions',
      help: 'EAA subscriptions (one per consumer, target and notification name/version), cluster-wide.',
      registers: [registry],
      collect() {
        this.set(src.counts().subscriptions);
      },
    });
    new Gauge({
      name: 'meshlet_eaa_websocket_clients',
      help: 'Consumers with an open notification WebSocket on this node.',
      registers: [registry],
      collect() {
        this.set(src.websocketClients());
      },
    });
    new Gauge({
      name: 'meshlet_eaa_peer_queue',
      help: 'Notifications waiting to be forwarded to a peer node.',
      labelNames: ['peer'],
      registers: [registry],
      collect() {
        this.reset();
        for (const p of src.peerQueue()) this.set({ peer: p.peer }, p.queued);
      },
    });
    const outcomes = this.pendingOutcomes;
    this.notifications = new Counter({
      name: 'meshlet_eaa_notifications_total',
      help: 'Notifications by outcome (per local recipient, per peer hop, or per refused request).',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        for (const [outcome, n] of outcomes) if (n > 0) this.inc({ outcome }, n);
        outcomes.clear();
      },
    });
    const requests = this.pendingRequests;
    this.requests = new Counter({
      name: 'meshlet_eaa_requests_total',
      help: 'EAA API requests by route and status code.',
      labelNames: ['route', 'code'],
      registers: [registry],
      collect() {
        for (const r of requests.values()) if (r.n > 0) this.inc({ route: r.route, code: String(r.code) }, r.n);
        requests.clear();
      },
    });
    this.peerSyncs = new Counter({
      name: 'meshlet_eaa_peer_syncs_total',
      help: 'State exchanges with peer agents (push or pull) by result.',
      labelNames: ['result'],
      registers: [registry],
    });
  }

  outcome(outcome: NotificationOutcome, n = 1): void {
    if (n > 0) this.pendingOutcomes.set(outcome, (this.pendingOutcomes.get(outcome) ?? 0) + n);
  }

  /** One answered API request. */
  request(route: string, code: number): void {
    const key = `${route} ${code}`;
    const r = this.pendingRequests.get(key);
    if (r) r.n++;
    else this.pendingRequests.set(key, { route, code, n: 1 });
  }
}
