import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import type { DestinationRule, EndpointSlice, Node, ObjectKey, RegistryState, Service } from './types.ts';
import { objectKey } from './types.ts';

/** What changed since the previous update. Deleted objects are listed too. */
export interface RegistryUpdate {
  /** Increases by one per delivered update. */
  version: number;
  /** Services whose definition or endpoints changed, as `namespace/name`. */
  services: ReadonlySet<ObjectKey>;
  /** Nodes that changed, by name. */
  nodes: ReadonlySet<string>;
  /**
   * True when a source replaced the whole state (file reload, relist) since the last update.
   * `services` still names exactly the services that differ, so subscribers need not rebuild all.
   */
  reset: boolean;
}

export type RegistryListener = (update: RegistryUpdate, registry: ServiceRegistry) => void;

export interface RegistryOptions {
  /** Changes within this window (ms) from the first one are delivered as one update. */
  coalesceMs: number;
  logger?: Logger;
}

export interface RegistryCounts {
  services: number;
  endpointSlices: number;
  endpoints: number;
  nodes: number;
}

/**
 * The single source of truth at run time. Sources write; data-plane modules read and subscribe.
 *
 * Writes are idempotent: an upsert equal to what is stored changes nothing and wakes nobody.
 * Subscribers are told once per coalescing window, with the set of services and nodes that
 * changed, so a burst of a thousand EndpointSlice updates costs each subscriber one rebuild.
 */
export class ServiceRegistry {
  #services = new Map<ObjectKey, Service>();
  #slices = new Map<ObjectKey, EndpointSlice>();
  /** service key → slice keys, so a service's endpoints are found without a scan. */
  #slicesByService = new Map<ObjectKey, Set<ObjectKey>>();
  #nodes = new Map<string, Node>();
  /** Endpoints over all slices, kept as slices come and go so counts() (every scrape) is O(1). */
  #endpoints = 0;
  #rules = new Map<ObjectKey, DestinationRule>();
  /** service key → keys of the DestinationRules whose host names it. */
  #rulesByService = new Map<ObjectKey, Set<ObjectKey>>();
  #listeners = new Set<RegistryListener>();
  #pendingServices = new Set<ObjectKey>();
  #pendingNodes = new Set<string>();
  #pendingReset = false;
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #version = 0;
  #synced = false;
  readonly #coalesceMs: number;
  readonly #log: Logger;

  constructor(opts: RegistryOptions) {
    this.#coalesceMs = opts.coalesceMs;
    this.#log = (opts.logger ?? silentLogger()).child({ module: 'registry' });
  }

  // ---- reads ---------------------------------------------------------------------------

  get version(): number {
    return this.#version;
  }

  /** True once a source has delivered its first complete state. */
  get synced(): boolean {
    return this.#synced;
  }

  getService(namespace: string, name: string): Service | undefined {
    return this.#services.get(objectKey(namespace, name));
  }

  getServiceByKey(key: ObjectKey): Service | undefined {
    return this.#services.get(key);
  }

  services(): IterableIterator<Service> {
    return this.#services.values();
  }

  /** The EndpointSlices of one service, in a stable order (by slice name). */
  endpointSlicesOf(namespace: string, name: string): EndpointSlice[] {
    const keys = this.#slicesByService.get(objectKey(namespace, name));
    if (!keys) return [];
    return [...keys]
      .sort()
      .map((key) => this.#slices.get(key))
      .filter((slice): slice is EndpointSlice => slice !== undefined);
  }

  endpointSlices(): IterableIterator<EndpointSlice> {
    return this.#slices.values();
  }

  getNode(name: string): Node | undefined {
    return this.#nodes.get(name);
  }

  nodes(): IterableIterator<Node> {
    return this.#nodes.values();
  }

  /**
   * The DestinationRule for a service: the one whose host names it (the first by name when
   * several do, as Istio leaves that undefined).
   */
  destinationRuleFor(namespace: string, name: string): DestinationRule | undefined {
    const keys = this.#rulesByService.get(objectKey(namespace, name));
    if (!keys || keys.size === 0) return undefined;
    const first = [...keys].sort()[0];
    return first === undefined ? undefined : this.#rules.get(first);
  }

  counts(): RegistryCounts {
    return {
      services: this.#services.size,
      endpointSlices: this.#slices.size,
      endpoints: this.#endpoints,
      nodes: this.#nodes.size,
    };
  }

  /** A plain copy of everything, sorted, for debug views and tests. */
  snapshot(): RegistryState {
    const byKey = <T extends { namespace: string; name: string }>(a: T, b: T) =>
      objectKey(a.namespace, a.name).localeCompare(objectKey(b.namespace, b.name));
    return structuredClone({
      services: [...this.#services.values()].sort(byKey),
      endpointSlices: [...this.#slices.values()].sort(byKey),
      nodes: [...this.#nodes.values()].sort((a, b) => a.name.localeCompare(b.name)),
      destinationRules: [...this.#rules.values()].sort(byKey),
    });
  }

  // ---- writes (sources only) ---------------------------------------------------------------

  /** Replaces the whole state, as after a file reload; only real differences are announced. */
  replaceAll(state: RegistryState): void {
    this.replaceServices(state.services);
    this.replaceEndpointSlices(state.endpointSlices);
    this.replaceNodes(state.nodes);
    this.replaceDestinationRules(state.destinationRules ?? []);
    this.markSynced();
  }

  /** Replaces every service, as after a relist: the ones not in `services` are deleted. */
  replaceServices(services: readonly Service[]): void {
    const next = new Map(services.map((s) => [objectKey(s.namespace, s.name), s]));
    for (const key of [...this.#services.keys()]) if (!next.has(key)) this.deleteService(key);
    for (const service of next.values()) this.upsertService(service);
    this.#pendingReset = true;
    this.#schedule();
  }

  replaceEndpointSlices(slices: readonly EndpointSlice[]): void {
    const next = new Map(slices.map((s) => [objectKey(s.namespace, s.name), s]));
    for (const key of [...this.#slices.keys()]) if (!next.has(key)) this.deleteEndpointSlice(key);
    for (const slice of next.values()) this.upsertEndpointSlice(slice);
    this.#pendingReset = true;
    this.#schedule();
  }

  replaceNodes(nodes: readonly Node[]): void {
    const next = new Map(nodes.map((n) => [n.name, n]));
    for (const name of [...this.#nodes.keys()]) if (!next.has(name)) this.deleteNode(name);
    for (const node of next.values()) this.upsertNode(node);
    this.#pendingReset = true;
    this.#schedule();
  }

  upsertService(service: Service): void {
    const key = objectKey(service.namespace, service.name);
    if (isDeepStrictEqual(this.#services.get(key), service)) return;
    this.#services.set(key, service);
    this.#touchService(key);
  }

  deleteService(key: ObjectKey): void {
    if (this.#services.delete(key)) this.#touchService(key);
  }

  upsertEndpointSlice(slice: EndpointSlice): void {
    const key = objectKey(slice.namespace, slice.name);
    const previous = this.#slices.get(key);
    if (isDeepStrictEqual(previous, slice)) return;
    if (previous && previous.serviceName !== slice.serviceName) this.#unindexSlice(key, previous);
    this.#slices.set(key, slice);
    this.#endpoints += slice.endpoints.length - (previous?.endpoints.length ?? 0);
    const serviceKey = objectKey(slice.namespace, slice.serviceName);
    let keys = this.#slicesByService.get(serviceKey);
    if (!keys) {
      keys = new Set();
      this.#slicesByService.set(serviceKey, keys);
    }
    keys.add(key);
    this.#touchService(serviceKey);
  }

  deleteEndpointSlice(key: ObjectKey): void {
    const previous = this.#slices.get(key);
    if (!previous) return;
    this.#slices.delete(key);
    this.#endpoints -= previous.endpoints.length;
    this.#unindexSlice(key, previous);
  }

  upsertNode(node: Node): void {
    if (isDeepStrictEqual(this.#nodes.get(node.name), node)) return;
    this.#nodes.set(node.name, node);
    this.#touchNode(node.name);
  }

  deleteNode(name: string): void {
    if (this.#nodes.delete(name)) this.#touchNode(name);
  }

  replaceDestinationRules(rules: readonly DestinationRule[]): void {
    const next = new Map(rules.map((r) => [objectKey(r.namespace, r.name), r]));
    for (const key of [...this.#rules.keys()]) if (!next.has(key)) this.deleteDestinationRule(key);
    for (const rule of next.values()) this.upsertDestinationRule(rule);
  }

  upsertDestinationRule(rule: DestinationRule): void {
    const key = objectKey(rule.namespace, rule.name);
    const previous = this.#rules.get(key);
    if (isDeepStrictEqual(previous, rule)) return;
    if (previous) this.#unindexRule(key, previous);
    this.#rules.set(key, rule);
    const target = ruleTarget(rule);
    if (target === undefined) return; // a wildcard or foreign host: nothing meshlet proxies
    let keys = this.#rulesByService.get(target);
    if (!keys) {
      keys = new Set();
      this.#rulesByService.set(target, keys);
    }
    keys.add(key);
    this.#touchService(target);
  }

  deleteDestinationRule(key: ObjectKey): void {
    const previous = this.#rules.get(key);
    if (!previous) return;
    this.#rules.delete(key);
    this.#unindexRule(key, previous);
  }

  /** A source calls this once its first complete state is in. */
  markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    this.#schedule();
  }

  // ---- subscription ------------------------------------------------------------------------

  /** Calls `listener` after each coalesced batch of changes; returns the unsubscribe function. */
  subscribe(listener: RegistryListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Delivers pending changes now instead of at the end of the window. */
  flush(): void {
    this.#clearTimer();
    if (this.#pendingServices.size === 0 && this.#pendingNodes.size === 0 && !this.#pendingReset) return;
    const update: RegistryUpdate = {
      version: ++this.#version,
      services: this.#pendingServices,
      nodes: this.#pendingNodes,
      reset: this.#pendingReset,
    };
    this.#pendingServices = new Set();
    this.#pendingNodes = new Set();
    this.#pendingReset = false;
    for (const listener of this.#listeners) {
      try {
        listener(update, this);
      } catch (err) {
        // One broken subscriber must not starve the others of updates.
        this.#log.error({ err, version: update.version }, 'registry subscriber threw');
      }
    }
  }

  /** Stops any pending delivery; used on shutdown. */
  close(): void {
    this.#clearTimer();
    this.#listeners.clear();
  }

  #unindexSlice(key: ObjectKey, slice: EndpointSlice): void {
    const serviceKey = objectKey(slice.namespace, slice.serviceName);
    const keys = this.#slicesByService.get(serviceKey);
    keys?.delete(key);
    if (keys?.size === 0) this.#slicesByService.delete(serviceKey);
    this.#touchService(serviceKey);
  }

  #unindexRule(key: ObjectKey, rule: DestinationRule): void {
    const target = ruleTarget(rule);
    if (target === undefined) return;
    const keys = this.#rulesByService.get(target);
    keys?.delete(key);
    if (keys?.size === 0) this.#rulesByService.delete(target);
    this.#touchService(target);
  }

  #touchService(key: ObjectKey): void {
    this.#pendingServices.add(key);
    this.#schedule();
  }

  #touchNode(name: string): void {
    this.#pendingNodes.add(name);
    this.#schedule();
  }

  #schedule(): void {
    // The window starts at the first change and is not extended by later ones, so a steady
    // stream of changes still reaches subscribers at least once per window.
    if (this.#timer !== undefined) return;
    this.#timer = this.#coalesceMs > 0 ? setTimeout(() => this.flush(), this.#coalesceMs) : setImmediate(() => this.flush());
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer as NodeJS.Timeout);
    clearImmediate(this.#timer as NodeJS.Immediate);
    this.#timer = undefined;
  }
}

/**
 * The service a DestinationRule's host names, as `namespace/name`: a short name `svc` (relative to
 * the rule's namespace) or a fully qualified `svc.ns.svc.<cluster domain>`, as Istio reads hosts.
 * Wildcards and other hosts name no single service.
 */
export function ruleTarget(rule: DestinationRule): ObjectKey | undefined {
  const labels = rule.host.trim().toLowerCase().split('.');
  const [name, namespace, svc] = labels;
  if (!name || rule.host.includes('*')) return undefined;
  if (labels.length === 1) return objectKey(rule.namespace, name);
  if (labels.length >= 4 && namespace && svc === 'svc') return objectKey(namespace, name);
  return undefined;
}
