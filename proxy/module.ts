import type { Registry as MetricsRegistry } from 'prom-client';
import type { AgentModule } from '../src/agent/module.ts';
import type { Config } from '../src/config/schema.ts';
import { errorMessage } from '../src/errors.ts';
import type { Logger } from '../src/log.ts';
import type { RegistryUpdate, ServiceRegistry } from '../src/registry/registry.ts';
import type { EndpointSlice, Protocol, Service } from '../src/registry/types.ts';
import type { Dialer } from './connect/dialer.ts';
import { DirectDialer } from './connect/direct-dialer.ts';
import { H2Sessions } from './h2c/sessions.ts';
import { UpstreamPools } from './http/upstream-pools.ts';
import { kernelEndpoints } from './iptables/kernel-forwarding.ts';
import type { InterceptTarget } from './iptables/rules.ts';
import { routeMode } from './listen/detect.ts';
import { ServiceListener } from './listen/service-listener.ts';
import { ProxyMetrics } from './metrics.ts';
import { buildRoute, type RouteContext, type RouteDeps, routeKey } from './route.ts';
import { createBoundServer } from './stack.ts';

export interface ProxyModuleOptions {
  config: Config;
  registry: ServiceRegistry;
  metrics: MetricsRegistry;
  logger: Logger;
  /** Defaults to the direct dialer; the tunnel phase passes its own. */
  dialer?: Dialer;
  /**
   * Endpoints this node serves itself for some Services, in place of the registry's slices
   * (undefined: use the registry). The EAA Service is one (src/eaa/local-service.ts).
   */
  localSlices?: ((service: Service) => EndpointSlice[] | undefined) | undefined;
}

/** Where the iptables layer sends a service port's traffic. */
export interface ListenerAddress {
  address: string;
  port: number;
}

/**
 * The service proxy as an agent module: one listener per service port, built and torn down
 * from registry updates (only the services an update names are rebuilt). An endpoint change
 * swaps the listener's route context in place; only a change of port or protocol mode rebinds.
 */
export class ProxyModule implements AgentModule {
  readonly name = 'proxy';
  readonly #config: Config;
  readonly #registry: ServiceRegistry;
  readonly #log: Logger;
  readonly #metrics: ProxyMetrics;
  readonly #pools: UpstreamPools;
  readonly #h2: H2Sessions;
  readonly #routeDeps: RouteDeps;
  readonly #localSlices: ProxyModuleOptions['localSlices'];
  /** By route key `ns/name:port/PROTO`. */
  readonly #listeners = new Map<string, ServiceListener>();
  /** Service key `ns/name` → route keys of its listeners, so one service is found without a scan. */
  readonly #routesByService = new Map<string, Set<string>>();
  /** `clusterIP|port|PROTO` → listener, for listenerFor(). */
  #byClusterIP = new Map<string, ServiceListener>();
  #unsubscribe: (() => void) | undefined;
  #queue: Promise<void> = Promise.resolve();
  #ready = false;
  readonly #listenerWatchers = new Set<() => void>();

  constructor(opts: ProxyModuleOptions) {
    this.#config = opts.config;
    this.#registry = opts.registry;
    this.#localSlices = opts.localSlices;
    this.#log = opts.logger.child({ module: 'proxy/module' });
    this.#metrics = new ProxyMetrics(opts.metrics, () => {
      let listening = 0;
      let failed = 0;
      for (const l of this.#listeners.values()) {
        if (l.state === 'listening') listening++;
        else if (l.state === 'failed') failed++;
      }
      return { listening, failed };
    });
    const settings = opts.config.proxy;
    const dialer = opts.dialer ?? new DirectDialer();
    this.#pools = new UpstreamPools(dialer, {
      connections: settings.upstreamConnections,
      connectTimeoutMs: settings.connectTimeoutMs,
    });
    this.#h2 = new H2Sessions(dialer, settings.connectTimeoutMs);
    this.#routeDeps = {
      settings,
      nodeName: opts.config.node.name,
      nodeZone: undefined,
      dialer,
      metrics: this.#metrics,
      log: opts.logger.child({ module: 'proxy/route' }),
    };
  }

  async start(): Promise<void> {
    this.#unsubscribe = this.#registry.subscribe((update) => this.#enqueue(update));
    await this.#enqueue(undefined);
    this.#ready = true;
    this.#log.info({ listeners: this.#listeners.size, mode: this.#config.proxy.listenPort }, 'proxy started');
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    await this.#queue;
    const grace = this.#config.shutdown.gracePeriodMs;
    await Promise.all([...this.#listeners.values()].map((l) => l.close(grace)));
    this.#listeners.clear();
    this.#routesByService.clear();
    this.#byClusterIP.clear();
    await Promise.all([this.#pools.close(), this.#h2.close()]);
    this.#ready = false;
  }

  ready(): boolean {
    return this.#ready;
  }

  /** Resolves once every registry update received so far is applied (listeners bound). */
  settled(): Promise<void> {
    return this.#queue;
  }

  /** The listener serving `clusterIP:port/proto`, for the iptables layer (DNAT target). */
  listenerFor(clusterIP: string, port: number, proto: Protocol): ListenerAddress | undefined {
    const listener = this.#byClusterIP.get(`${clusterIP}|${port}|${proto}`);
    if (listener === undefined || listener.state !== 'listening') return undefined;
    return { address: listener.address, port: listener.port };
  }

  /**
   * Every bound listener as an interception target: clusterIP:port (and nodePort) → listener,
   * or, for a TCP port forwarded in the kernel, clusterIP:port → its endpoints.
   */
  interceptTargets(): InterceptTarget[] {
    const targets: InterceptTarget[] = [];
    for (const listener of this.#listeners.values()) {
      if (listener.state !== 'listening') continue;
      const port = listener.route.servicePort;
      if (port.protocol === 'SCTP') continue;
      const service = this.#registry.getServiceByKey(listener.route.service);
      if (service === undefined || service.clusterIPs.length === 0) continue;
      const direct = kernelEndpoints(
        listener.route,
        service,
        this.#config.proxy.interception.tcpForwarding,
        this.#config.node.name,
        this.#routeDeps.nodeZone,
      );
      targets.push({
        id: `${listener.route.service}:${port.name || port.port}`,
        protocol: port.protocol,
        clusterIPs: service.clusterIPs,
        port: port.port,
        ...(port.nodePort !== undefined && { nodePort: port.nodePort }),
        listenAddress: listener.address,
        listenPort: listener.port,
        ...(direct !== undefined && { endpoints: direct }),
      });
    }
    return targets;
  }

  /** Calls `watcher` after every applied update that may have changed the listeners; returns the unsubscribe. */
  onListenersChanged(watcher: () => void): () => void {
    this.#listenerWatchers.add(watcher);
    return () => this.#listenerWatchers.delete(watcher);
  }

  status(): Record<string, unknown> {
    const listeners = [...this.#listeners.values()].map((l) => l.status());
    return {
      listenPort: this.#config.proxy.listenPort,
      listeners: listeners.length,
      failed: listeners.filter((l) => l.state === 'failed'),
      upstreamPools: this.#pools.open,
      upstreamEndpoints: this.#pools.size,
      h2Sessions: this.#h2.size,
      routes: listeners,
    };
  }

  /** Updates run one at a time, in order; `undefined` means every service. */
  #enqueue(update: RegistryUpdate | undefined): Promise<void> {
    this.#queue = this.#queue
      .then(() => this.#apply(update))
      .catch((err: unknown) => this.#log.error({ err: errorMessage(err) }, 'proxy update failed'));
    return this.#queue;
  }

  async #apply(update: RegistryUpdate | undefined): Promise<void> {
    const nodeName = this.#config.node.name;
    const zone = this.#registry.getNode(nodeName)?.zone;
    const zoneChanged = zone !== this.#routeDeps.nodeZone;
    this.#routeDeps.nodeZone = zone;
    // An update names every service that changed, also after a reset (a file reload or a
    // relist: the registry diffs the new state against the old one), so only those are rebuilt.
    // All of them are only at start and when this node's zone moves (locality balancing).
    let keys: ReadonlySet<string>;
    if (update === undefined || zoneChanged) {
      const all = new Set<string>(this.#routesByService.keys());
      for (const s of this.#registry.services()) all.add(`${s.namespace}/${s.name}`);
      keys = all;
    } else {
      keys = update.services;
    }
    const opening: Promise<unknown>[] = [];
    for (const key of keys) this.#applyService(key, opening);
    // Listeners that failed to bind (a port clash) are retried on every update.
    for (const listener of this.#listeners.values()) {
      if (listener.state === 'failed') opening.push(this.#open(listener));
    }
    await Promise.all(opening);
    this.#reindex();
    for (const watcher of this.#listenerWatchers) watcher();
  }

  #applyService(key: string, opening: Promise<unknown>[]): void {
    const service = this.#registry.getServiceByKey(key);
    const settings = this.#config.proxy;
    const wanted = new Set<string>();
    if (service !== undefined && proxied(service)) {
      const slices = this.#localSlices?.(service) ?? this.#registry.endpointSlicesOf(service.namespace, service.name);
      const rule = this.#registry.destinationRuleFor(service.namespace, service.name);
      for (const port of service.ports) {
        if (port.protocol === 'SCTP') continue;
        const rkey = routeKey(service, port);
        wanted.add(rkey);
        const mode = routeMode(port);
        const wantedPort = settings.listenPort === 'service' ? port.port : 0;
        const existing = this.#listeners.get(rkey);
        const reuse =
          existing !== undefined &&
          existing.mode === mode &&
          (settings.listenPort === 'auto' || existing.wantedPort === wantedPort);
        const route = buildRoute(service, port, slices, mode, this.#routeDeps, reuse ? existing.route : undefined, rule);
        this.#retain(route);
        if (reuse) {
          this.#release(existing.route);
          existing.route = route;
          continue;
        }
        if (existing !== undefined) this.#remove(existing);
        const listener = new ServiceListener(route, settings.address, wantedPort, (getRoute) =>
          createBoundServer(mode, getRoute, { pools: this.#pools, h2: this.#h2 }),
        );
        this.#add(listener);
        opening.push(this.#open(listener));
      }
    }
    for (const rkey of [...(this.#routesByService.get(key) ?? [])]) {
      const listener = this.#listeners.get(rkey);
      if (listener !== undefined && !wanted.has(rkey)) this.#remove(listener);
    }
  }

  #add(listener: ServiceListener): void {
    const { key, service } = listener.route;
    this.#listeners.set(key, listener);
    let routes = this.#routesByService.get(service);
    if (routes === undefined) {
      routes = new Set();
      this.#routesByService.set(service, routes);
    }
    routes.add(key);
  }

  async #open(listener: ServiceListener): Promise<void> {
    const ok = await listener.open();
    const fields = { route: listener.route.key, address: `${listener.address}:${listener.port || listener.wantedPort}` };
    if (ok) this.#log.info({ ...fields, mode: listener.mode }, 'listener open');
    else this.#log.warn({ ...fields, err: listener.error, code: 'MESHLET_ERR_PROXY_BIND' }, 'listener cannot bind; will retry');
  }

  #remove(listener: ServiceListener): void {
    const { key, service, portLabel } = listener.route;
    this.#listeners.delete(key);
    const routes = this.#routesByService.get(service);
    routes?.delete(key);
    if (routes?.size === 0) this.#routesByService.delete(service);
    this.#release(listener.route);
    this.#log.info({ route: key }, 'listener closed');
    // Existing connections drain on their own (as conntrack entries would); new ones are refused.
    // Once they have, the port's metric series go too, unless a listener serves it again.
    listener
      .close(this.#config.shutdown.gracePeriodMs)
      .catch(() => {})
      .then(() => this.#forgetSeries(service, portLabel))
      .catch((err: unknown) => this.#log.warn({ err: errorMessage(err), route: key }, 'cannot drop metric series'));
  }

  /** True while some listener serves `service`'s port labelled `portLabel`. */
  #serves(service: string, portLabel: string): boolean {
    for (const rkey of this.#routesByService.get(service) ?? []) {
      if (this.#listeners.get(rkey)?.route.portLabel === portLabel) return true;
    }
    return false;
  }

  /**
   * Removes every `meshlet_proxy_*` series of a service port nobody serves any more, so a
   * registry that churns services does not grow /metrics (and the heap) for ever.
   */
  async #forgetSeries(service: string, portLabel: string): Promise<void> {
    const m = this.#metrics;
    const families: SeriesFamily[] = [
      m.connections,
      m.activeConnections,
      m.requests,
      m.connectFailures,
      m.bytes,
      m.udpFlows,
      m.noEndpoint,
      m.ejections,
    ];
    for (const metric of families) {
      const { values } = await metric.get();
      if (this.#serves(service, portLabel)) return; // it came back while we waited
      for (const { labels } of values) {
        if (labels.service === service && labels.port === portLabel) metric.remove(labels);
      }
    }
  }

  /** Upstream connection pools follow the routes that use them (HTTP/1.1 pools, HTTP/2 sessions). */
  #retain(route: RouteContext): void {
    if (route.mode === 'http') this.#pools.retain(route.endpoints);
    else if (route.mode === 'h2c') this.#h2.retain(route.endpoints);
  }

  #release(route: RouteContext): void {
    if (route.mode === 'http') this.#pools.release(route.endpoints);
    else if (route.mode === 'h2c') this.#h2.release(route.endpoints);
  }

  #reindex(): void {
    const index = new Map<string, ServiceListener>();
    for (const listener of this.#listeners.values()) {
      const service = this.#registry.getServiceByKey(listener.route.service);
      const port = listener.route.servicePort;
      for (const ip of service?.clusterIPs ?? []) index.set(`${ip}|${port.port}|${port.protocol}`, listener);
    }
    this.#byClusterIP = index;
  }
}

/** What #forgetSeries needs of a labelled prom-client Counter or Gauge. */
interface SeriesFamily {
  get(): Promise<{ values: { labels: Partial<Record<string, string | number>> }[] }>;
  remove(labels: Partial<Record<string, string | number>>): void;
}

/** Label that opts a service out of meshlet's proxy (kube-proxy, if any, keeps it). */
export const OPT_OUT_LABEL = 'meshlet.io/proxy';
/** EdgeMesh's opt-out label, honoured so its users can switch without relabelling. */
export const EDGEMESH_OPT_OUT_LABEL = 'service.edgemesh.kubeedge.io/service-proxy-name';

/**
 * ExternalName and headless services have nothing to proxy (DNS answers for them); a service
 * labelled `meshlet.io/proxy: "false"` (or carrying EdgeMesh's service-proxy-name label) opts out.
 */
export function proxied(service: Service): boolean {
  if (service.type === 'ExternalName' || service.headless) return false;
  return service.labels[OPT_OUT_LABEL] !== 'false' && service.labels[EDGEMESH_OPT_OUT_LABEL] === undefined;
}

export function createProxyModule(opts: ProxyModuleOptions): ProxyModule {
  return new ProxyModule(opts);
}
