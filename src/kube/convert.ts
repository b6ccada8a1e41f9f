import type {
  AddressType,
  DestinationRule,
  Endpoint,
  EndpointPort,
  EndpointSlice,
  IstioTrafficPolicy,
  Node,
  NodeAddress,
  Protocol,
  Service,
  ServicePort,
  ServiceType,
} from '../registry/types.ts';

/**
 * Kubernetes JSON → registry objects, applying the API's defaults so readers never have to.
 * Only the fields meshlet reads are typed; everything is optional because the wire may omit it.
 */

interface Meta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubeService {
  metadata?: Meta;
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    externalName?: string;
    ports?: {
      name?: string;
      port?: number;
      protocol?: string;
      appProtocol?: string;
      targetPort?: number | string;
      nodePort?: number;
    }[];
    sessionAffinity?: string;
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
    internalTrafficPolicy?: string;
    externalTrafficPolicy?: string;
    trafficDistribution?: string;
    publishNotReadyAddresses?: boolean;
  };
}

export interface KubeEndpointSlice {
  metadata?: Meta;
  addressType?: string;
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[] | null;
  endpoints?:
    | {
        addresses?: string[];
        conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
        nodeName?: string;
        zone?: string;
        hostname?: string;
        targetRef?: { kind?: string; namespace?: string; name?: string };
      }[]
    | null;
}

export interface KubeNode {
  metadata?: Meta;
  status?: {
    addresses?: { type?: string; address?: string }[];
    conditions?: { type?: string; status?: string }[];
  };
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const ZONE_LABEL = 'topology.kubernetes.io/zone';
const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const NODE_ADDRESS_TYPES: readonly NodeAddress['type'][] = ['InternalIP', 'ExternalIP', 'Hostname', 'InternalDNS', 'ExternalDNS'];

function protocol(value: string | undefined): Protocol {
  return value === 'UDP' || value === 'SCTP' ? value : 'TCP';
}

export function serviceFromKube(obj: KubeService): Service | undefined {
  const name = obj.metadata?.name;
  const namespace = obj.metadata?.namespace;
  if (!name || !namespace) return undefined;
  const spec = obj.spec ?? {};
  const type = SERVICE_TYPES.find((t) => t === spec.type) ?? 'ClusterIP';
  const headless = spec.clusterIP === 'None';
  const ips = spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : []);
  const ports: ServicePort[] = (spec.ports ?? []).map((p) => ({
    name: p.name ?? '',
    port: p.port ?? 0,
    protocol: protocol(p.protocol),
    targetPort: p.targetPort ?? p.port ?? 0,
    ...(p.appProtocol !== undefined && { appProtocol: p.appProtocol }),
    ...(p.nodePort !== undefined && { nodePort: p.nodePort }),
  }));
  return {
    namespace,
    name,
    type,
    clusterIPs: type === 'ExternalName' || headless ? [] : ips.filter((ip) => ip && ip !== 'None'),
    headless,
    ...(spec.externalName !== undefined && { externalName: spec.externalName }),
    ports,
    sessionAffinity: spec.sessionAffinity === 'ClientIP' ? 'ClientIP' : 'None',
    sessionAffinityTimeoutSeconds: spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10_800,
    internalTrafficPolicy: spec.internalTrafficPolicy === 'Local' ? 'Local' : 'Cluster',
    externalTrafficPolicy: spec.externalTrafficPolicy === 'Local' ? 'Local' : 'Cluster',
    ...(spec.trafficDistribution !== undefined && { trafficDistribution: spec.trafficDistribution }),
    publishNotReadyAddresses: spec.publishNotReadyAddresses ?? false,
    labels: obj.metadata?.labels ?? {},
    annotations: obj.metadata?.annotations ?? {},
  };
}

/** undefined for slices that belong to no service (no kubernetes.io/service-name label). */
export function endpointSliceFromKube(obj: KubeEndpointSlice): EndpointSlice | undefined {
  const name = obj.metadata?.name;
  const namespace = obj.metadata?.namespace;
  const serviceName = obj.metadata?.labels?.[SERVICE_NAME_LABEL];
  if (!name || !namespace || !serviceName) return undefined;
  const addressType: AddressType = obj.addressType === 'IPv6' ? 'IPv6' : obj.addressType === 'FQDN' ? 'FQDN' : 'IPv4';
  const ports: EndpointPort[] = (obj.ports ?? []).map((p) => ({
    name: p.name ?? '',
    port: p.port ?? 0,
    protocol: protocol(p.protocol),
    ...(p.appProtocol !== undefined && { appProtocol: p.appProtocol }),
  }));
  const endpoints: Endpoint[] = (obj.endpoints ?? []).map((ep) => {
    // API semantics: a missing `ready` means ready; a missing `serving` follows `ready`.
    const ready = ep.conditions?.ready ?? true;
    const target = ep.targetRef?.name ? `${ep.targetRef.namespace ?? namespace}/${ep.targetRef.name}` : undefined;
    return {
      addresses: ep.addresses ?? [],
      conditions: { ready, serving: ep.conditions?.serving ?? ready, terminating: ep.conditions?.terminating ?? false },
      ...(ep.nodeName !== undefined && { nodeName: ep.nodeName }),
      ...(ep.zone !== undefined && { zone: ep.zone }),
      ...(ep.hostname !== undefined && { hostname: ep.hostname }),
      ...(target !== undefined && { targetRef: target }),
    };
  });
  return { namespace, name, serviceName, addressType, ports, endpoints };
}

export function nodeFromKube(obj: KubeNode): Node | undefined {
  const name = obj.metadata?.name;
  if (!name) return undefined;
  const addresses: NodeAddress[] = [];
  for (const a of obj.status?.addresses ?? []) {
    const type = NODE_ADDRESS_TYPES.find((t) => t === a.type);
    if (type && a.address) addresses.push({ type, address: a.address });
  }
  const ready = obj.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  const labels = obj.metadata?.labels ?? {};
  const zone = labels[ZONE_LABEL];
  return {
    name,
    addresses,
    ready: ready === 'True' || ready === 'False' ? ready : 'Unknown',
    ...(zone !== undefined && { zone }),
    labels,
  };
}

export interface KubeDestinationRule {
  metadata?: Meta;
  spec?: { host?: string; trafficPolicy?: unknown };
}

/** Keeps the rule's trafficPolicy as Istio wrote it; policies/destination-rule.ts reads what it maps. */
export function destinationRuleFromKube(obj: KubeDestinationRule): DestinationRule | undefined {
  const name = obj.metadata?.name;
  const namespace = obj.metadata?.namespace;
  const host = obj.spec?.host;
  if (!name || !namespace || typeof host !== 'string') return undefined;
  const policy = obj.spec?.trafficPolicy;
  const trafficPolicy = typeof policy === 'object' && policy !== null ? (policy as IstioTrafficPolicy) : {};
  return { namespace, name, host, trafficPolicy };
}
