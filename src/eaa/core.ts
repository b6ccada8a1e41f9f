import type { Logger } from '../log.ts';
import type { NotificationDescriptor, Service, Subscription, Urn } from './model.ts';
import { type EaaRecord, isLive, type RecordStore } from './store.ts';

/**
 * The EAA's state and rules, independent of HTTP (docs/eaa.md §Semantics): who is registered,
 * who subscribed to what, and which consumers on which nodes a notification goes to. Every
 * change is a record written to the store and handed to `onLocalWrite` for replication.
 */

interface Subscribers {
  /** CNs subscribed to the whole namespace. */
  namespace: Set<string>;
  /** Producer id → CNs subscribed to that producer only. */
  byProducer: Map<string, Set<string>>;
}

const notifKey = (ns: string, name: string, version: string) => `${ns}\u0000${name}\u0000${version}`;
const descKey = (d: NotificationDescriptor) => `${d.name}\u0000${d.version}`;
/** Bounds the recipients cache when producers make up (name, version) pairs without end. */
const RECIPIENT_CACHE_LIMIT = 10_000;

export class EaaCore {
  readonly node: string;
  private readonly store: RecordStore;
  private readonly log: Logger;
  private readonly onLocalWrite: (rec: EaaRecord) => void;
  private index: Map<string, Subscribers> | undefined;
  /** recipients() answers, valid as long as `index` (both are dropped on every subscription change). */
  private recipientCache = new Map<string, ReadonlyMap<string, readonly string[]>>();

  constructor(opts: { node: string; store: RecordStore; logger: Logger; onLocalWrite?: (rec: EaaRecord) => void }) {
    this.node = opts.node;
    this.store = opts.store;
    this.log = opts.logger;
    this.onLocalWrite = opts.onLocalWrite ?? (() => {});
  }

  // ---- producers ------------------------------------------------------------------------------

  /** POST /services: replaces the producer's whole service (upsert). */
  register(cn: string, service: Service): Promise<void> {
    return this.write({ kind: 'service', cn, node: this.node, service, ...this.stamp() });
  }

  /** DELETE /services: false when `cn` has no live registration (OpenNESS answers 404). */
  async deregister(cn: string): Promise<boolean> {
    const rec = this.store.get('service', cn);
    if (rec === undefined || !isLive(rec)) return false;
    await this.write({ kind: 'service', cn, node: this.node, service: null, ...this.stamp() });
    return true;
  }

  isRegistered(cn: string): boolean {
    const rec = this.store.get('service', cn);
    return rec !== undefined && isLive(rec);
  }

  /** GET /services: every live registration in the cluster, this node's first then by CN. */
  services(): Service[] {
    const out: { node: string; cn: string; s: Service }[] = [];
    for (const r of this.store.all())
      if (r.kind === 'service' && r.service !== null) out.push({ node: r.node, cn: r.cn, s: r.service });
    out.sort(
      (a, b) => (a.node === this.node ? 0 : 1) - (b.node === this.node ? 0 : 1) || (a.cn < b.cn ? -1 : a.cn > b.cn ? 1 : 0),
    );
    return out.map((o) => o.s);
  }

  // ---- consumers ------------------------------------------------------------------------------

  subscriptionsOf(cn: string): Subscription[] {
    const rec = this.store.get('subscriptions', cn);
    return rec?.kind === 'subscriptions' ? rec.subscriptions : [];
  }

  /**
   * POST /subscriptions/{ns}[/{id}]: replaces the caller's set at that level (OpenNESS 20.09+),
   * duplicates collapsed. A descriptor already known cluster-wide keeps its first description.
   */
  subscribe(cn: string, urn: Urn, descriptors: NotificationDescriptor[]): Promise<void> {
    const unique = new Map<string, NotificationDescriptor>();
    for (const d of descriptors) if (!unique.has(descKey(d))) unique.set(descKey(d), this.knownDescriptor(urn.namespace, d));
    const rest = this.subscriptionsOf(cn).filter((s) => !sameUrn(s.urn, urn));
    const next = unique.size > 0 ? [...rest, { urn, notifications: [...unique.values()] }] : rest;
    return this.writeSubscriptions(cn, next);
  }

  /** DELETE /subscriptions/{ns}[/{id}] with a body: removes the listed (name, version) pairs. */
  unsubscribe(cn: string, urn: Urn, descriptors: NotificationDescriptor[]): Promise<void> {
    const drop = new Set(descriptors.map(descKey));
    const next: Subscription[] = [];
    let changed = false;
    for (const s of this.subscriptionsOf(cn)) {
      if (!sameUrn(s.urn, urn)) {
        next.push(s);
        continue;
      }
      const kept = s.notifications.filter((d) => !drop.has(descKey(d)));
      if (kept.length !== s.notifications.length) changed = true;
      if (kept.length > 0) next.push({ urn: s.urn, notifications: kept });
    }
    return changed ? this.writeSubscriptions(cn, next) : Promise.resolve();
  }

  /** DELETE /subscriptions: everything of `cn`, both levels. */
  unsubscribeAll(cn: string): Promise<void> {
    return this.subscriptionsOf(cn).length === 0 ? Promise.resolve() : this.writeSubscriptions(cn, []);
  }

  /**
   * A consumer opened its WebSocket here: if its subscriptions name another node, they move to
   * this one, so notifications for it are routed where its socket is.
   */
  async rehome(cn: string): Promise<void> {
    const rec = this.store.get('subscriptions', cn);
    if (rec?.kind !== 'subscriptions' || rec.node === this.node || rec.subscriptions.length === 0) return;
    this.log.info({ cn, from: rec.node }, 'consumer moved to this node; its subscriptions follow');
    await this.writeSubscriptions(cn, rec.subscriptions);
  }

  /**
   * The consumers of a notification from `producer` named (name, version): namespace subscribers
   * plus that producer's subscribers, each once, grouped by the node that serves them.
   */
  recipients(producer: Urn, name: string, version: string): ReadonlyMap<string, readonly string[]> {
    const index = this.buildIndex();
    const key = notifKey(producer.namespace, name, version);
    // A producer publishes the same (name, version) over and over: answer it once per index.
    const cacheKey = `${key}\u0000${producer.id}`;
    const cached = this.recipientCache.get(cacheKey);
    if (cached !== undefined) return cached;
    const byNode = new Map<string, string[]>();
    if (this.recipientCache.size >= RECIPIENT_CACHE_LIMIT) this.recipientCache.clear();
    this.recipientCache.set(cacheKey, byNode);
    const subs = index.get(key);
    if (subs === undefined) return byNode;
    const cns = new Set(subs.namespace);
    for (const cn of subs.byProducer.get(producer.id) ?? []) cns.add(cn);
    for (const cn of cns) {
      const node = this.store.get('subscriptions', cn)?.node ?? this.node;
      const list = byNode.get(node);
      if (list) list.push(cn);
      else byNode.set(node, [cn]);
    }
    return byNode;
  }

  // ---- replication ----------------------------------------------------------------------------

  /** Records from a peer; returns how many changed the state. */
  mergeRemote(records: readonly EaaRecord[]): number {
    let n = 0;
    for (const r of records) if (this.store.merge(r)) n++;
    if (n > 0) {
      this.dropIndex();
      this.store.flush().catch(() => {}); // the store logs its own write errors
    }
    return n;
  }

  records(): EaaRecord[] {
    return [...this.store.all()];
  }

  counts(): { services: number; subscriptions: number; localServices: number } {
    let services = 0;
    let localServices = 0;
    let subscriptions = 0;
    for (const r of this.store.all()) {
      if (r.kind === 'service' && r.service !== null) {
        services++;
        if (r.node === this.node) localServices++;
      } else if (r.kind === 'subscriptions') for (const s of r.subscriptions) subscriptions += s.notifications.length;
    }
    return { services, subscriptions, localServices };
  }

  // ---- internals ------------------------------------------------------------------------------

  private stamp(): { version: number; writer: string; updatedAt: number } {
    return { version: this.store.clock() + 1, writer: this.node, updatedAt: Date.now() };
  }

  private writeSubscriptions(cn: string, subscriptions: Subscription[]): Promise<void> {
    return this.write({ kind: 'subscriptions', cn, node: this.node, subscriptions, ...this.stamp() });
  }

  private async write(rec: EaaRecord): Promise<void> {
    this.store.merge(rec);
    if (rec.kind === 'subscriptions') this.dropIndex();
    this.onLocalWrite(rec);
    await this.store.flush().catch(() => {}); // logged by the store; memory and peers still hold it
  }

  private knownDescriptor(ns: string, d: NotificationDescriptor): NotificationDescriptor {
    for (const r of this.store.all()) {
      if (r.kind !== 'subscriptions') continue;
      for (const s of r.subscriptions) {
        if (s.urn.namespace !== ns) continue;
        const found = s.notifications.find((x) => x.name === d.name && x.version === d.version);
        if (found) return { name: d.name, version: d.version, description: found.description };
      }
    }
    return { name: d.name, version: d.version, description: d.description };
  }

  private dropIndex(): void {
    this.index = undefined;
    this.recipientCache = new Map();
  }

  private buildIndex(): Map<string, Subscribers> {
    if (this.index) return this.index;
    const index = new Map<string, Subscribers>();
    for (const r of this.store.all()) {
      if (r.kind !== 'subscriptions') continue;
      for (const s of r.subscriptions) {
        for (const d of s.notifications) {
          const key = notifKey(s.urn.namespace, d.name, d.version);
          let subs = index.get(key);
          if (!subs) {
            subs = { namespace: new Set(), byProducer: new Map() };
            index.set(key, subs);
          }
          if (s.urn.id === '') subs.namespace.add(r.cn);
          else {
            let set = subs.byProducer.get(s.urn.id);
            if (!set) {
              set = new Set();
              subs.byProducer.set(s.urn.id, set);
            }
            set.add(r.cn);
          }
        }
      }
    }
    this.index = index;
    return index;
  }
}

function sameUrn(a: Urn, b: Urn): boolean {
  return a.namespace === b.namespace && a.id === b.id;
}
