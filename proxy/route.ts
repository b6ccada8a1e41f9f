/**
 * The route context of one service port: everything the data path needs, built when the
 * registry changes and never per connection or request (picker, endpoints, timeouts, metric
 * children, child logger). Listeners hold the current one and swap it on update.
 */
import { isDeepStrictEqual } from 'node:util';
import { policyFromService, type TrafficPolicy } from '../policies/model.ts';
import type { ProxySettings } from '../src/config/schema.ts';
import type { Logger } from '../src/log.ts';
import type { DestinationRule, EndpointSlice, Service, ServicePort } from '../src/registry/types.ts';
import { buildBalancer } from './balance/build.ts';
import type { OutlierPicker } from './balance/outlier.ts';
import { newStats, type ProxyEndpoint } from './balance/picker.ts';
import type { Dialer } from './connect/dialer.ts';
import type { RouteMode } from './listen/detect.ts';
import type { ProxyMetrics, RouteMetrics } from './metrics.ts';

export interface RouteContext {
  /** `namespace/name:port/PROTOCOL`. */
  readonly key: string;
  readonly service: string;
  /** The port's name, or its number when unnamed. */
  readonly portLabel: string;
  readonly servicePort: ServicePort;
  readonly mode: RouteMode;
  readonly policy: TrafficPolicy;
  readonly picker: OutlierPicker;
  readonly endpoints: readonly ProxyEndpoint[];
  readonly settings: ProxySettings;
  readonly dialer: Dialer;
  readonly metrics: RouteMetrics;
  readonly log: Logger;
}

export interface RouteDeps {
  settings: ProxySettings;
  nodeName: string;
  nodeZone: string | undefined;
  dialer: Dialer;
  metrics: ProxyMetrics;
  log: Logger;
}

export function routeKey(service: Service, port: ServicePort): string {
  return `${service.namespace}/${service.name}:${port.port}/${port.protocol}`;
}

/** Builds (or refreshes, reusing `previous`'s picker and endpoint counters) a route. */
export function buildRoute(
  service: Service,
  port: ServicePort,
  slices: readonly EndpointSlice[],
  mode: RouteMode,
  deps: RouteDeps,
  previous: RouteContext | undefined,
  rule?: DestinationRule,
): RouteContext {
  const serviceKey = `${service.namespace}/${service.name}`;
  const portLabel = port.name === '' ? String(port.port) : port.name;
  const { policy, warnings } = policyFromService(service, deps.settings.lbPolicy, rule, port.port);
  const log = previous?.log ?? deps.log.child({ service: serviceKey, port: portLabel });
  for (const warning of warnings) log.warn({ code: 'MESHLET_ERR_PROXY_POLICY' }, warning);

  // The picker keeps state worth keeping (affinity table, round-robin position): reuse it
  // when the policy is the same, so an endpoint change does not reset sessions.
  const picker =
    previous !== undefined && isDeepStrictEqual(previous.policy, policy)
      ? previous.picker
      : buildBalancer({ policy, nodeName: deps.nodeName, zone: deps.nodeZone, outlier: deps.settings.outlier });
  const endpoints = endpointsOf(port, slices, previous?.endpoints);
  picker.update(endpoints);
  return {
    key: routeKey(service, port),
    service: serviceKey,
    portLabel,
    servicePort: port,
    mode,
    policy,
    picker,
    endpoints,
    settings: deps.settings,
    dialer: deps.dialer,
    // Reused with the route, so the per-status-code children it caches survive endpoint changes.
    metrics: previous?.metrics ?? deps.metrics.forRoute(serviceKey, portLabel, port.protocol),
    log,
  };
}

/**
 * The endpoints a service port balances over: the ready ones; when none is ready, the serving
 * ones that are terminating (KEP-1669 "ProxyTerminatingEndpoints"), so a rolling update of the
 * last pod does not drop traffic. Counters carry over from `previous` by id.
 */
export function endpointsOf(
  port: ServicePort,
  slices: readonly EndpointSlice[],
  previous: readonly ProxyEndpoint[] | undefined,
): ProxyEndpoint[] {
  const old = new Map(previous?.map((ep) => [ep.id, ep.stats]));
  const ready: ProxyEndpoint[] = [];
  const serving: ProxyEndpoint[] = [];
  const seen = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    const slicePort = slice.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
    if (slicePort === undefined) continue;
    for (const endpoint of slice.endpoints) {
      const isReady = endpoint.conditions.ready;
      if (!isReady && !endpoint.conditions.serving) continue;
      for (const address of endpoint.addresses) {
        const id = address.includes(':') ? `[${address}]:${slicePort.port}` : `${address}:${slicePort.port}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const ep: ProxyEndpoint = {
          id,
          address,
          port: slicePort.port,
          nodeName: endpoint.nodeName,
          zone: endpoint.zone,
          ready: isReady,
          stats: old.get(id) ?? newStats(),
        };
        (isReady ? ready : serving).push(ep);
      }
    }
  }
  return ready.length > 0 ? ready : serving;
}
