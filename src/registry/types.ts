/**
 * The service registry's model: what every data-plane module reads. It follows the Kubernetes
 * objects it comes from (Service, EndpointSlice, Node) but keeps only what meshlet uses, with
 * defaults already applied, so readers never re-derive them.
 */

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
export type TrafficPolicy = 'Cluster' | 'Local';
export type AddressType = 'IPv4' | 'IPv6' | 'FQDN';

/** `namespace/name`: the key of services and endpoint slices. */
export type ObjectKey = string;

export function objectKey(namespace: string, name: string): ObjectKey {
  return `${namespace}/${name}`;
}

export interface ServicePort {
  /** Port name; '' when the service has a single unnamed port. */
  name: string;
  port: number;
  protocol: Protocol;
  /** e.g. 'http', 'kubernetes.io/h2c', 'kubernetes.io/ws'; undefined when not set. */
  appProtocol?: string;
  /** Number, or the name of a container port (resolved per endpoint by the EndpointSlice). */
  targetPort: number | string;
  nodePort?: number;
}

export interface Service {
  namespace: string;
  name: string;
  type: ServiceType;
  /** Cluster IPs (IPv4 and/or IPv6); empty for headless and ExternalName services. */
  clusterIPs: string[];
  /** True when `clusterIP: None`: DNS answers with the endpoint addresses. */
  headless: boolean;
  /** The target of an ExternalName service. */
  externalName?: string;
  ports: ServicePort[];
  sessionAffinity: 'None' | 'ClientIP';
  /** Seconds a ClientIP affinity lasts (Kubernetes default 10800). */
  sessionAffinityTimeoutSeconds: number;
  internalTrafficPolicy: TrafficPolicy;
  externalTrafficPolicy: TrafficPolicy;
  /** e.g. 'PreferClose'; undefined when not set. */
  trafficDistribution?: string;
  /** Publish not-ready endpoints in DNS (StatefulSet peer discovery). */
  publishNotReadyAddresses: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface EndpointConditions {
  /** Ready to receive traffic (Kubernetes treats a missing value as true). */
  ready: boolean;
  /** Serving, even if terminating. */
  serving: boolean;
  terminating: boolean;
}

export interface Endpoint {
  addresses: string[];
  conditions: EndpointConditions;
  nodeName?: string;
  zone?: string;
  /** DNS hostname for `<hostname>.<svc>.<ns>.svc.<domain>` (headless services). */
  hostname?: string;
  /** `namespace/name` of the pod, when known. */
  targetRef?: string;
}

export interface EndpointPort {
  /** Matches ServicePort.name. */
  name: string;
  port: number;
  protocol: Protocol;
  appProtocol?: string;
}

/** One EndpointSlice: a part of one service's endpoints, sharing one set of ports. */
export interface EndpointSlice {
  namespace: string;
  name: string;
  /** The service it belongs to (label kubernetes.io/service-name). */
  serviceName: string;
  addressType: AddressType;
  ports: EndpointPort[];
  endpoints: Endpoint[];
}

export interface NodeAddress {
  type: 'InternalIP' | 'ExternalIP' | 'Hostname' | 'InternalDNS' | 'ExternalDNS';
  address: string;
}

export type NodeReadiness = 'True' | 'False' | 'Unknown';

export interface Node {
  name: string;
  addresses: NodeAddress[];
  /** The Ready condition as Kubernetes reports it. */
  ready: NodeReadiness;
  /** topology.kubernetes.io/zone, when set. */
  zone?: string;
  labels: Record<string, string>;
}

/** A whole registry state, as a source replaces it in one go (file load, relist). */
export interface RegistryState {
  services: Service[];
  endpointSlices: EndpointSlice[];
  nodes: Node[];
  /** Istio DestinationRules; absent where the source has none (no CRD, or a file without any). */
  destinationRules?: DestinationRule[];
}

/**
 * An Istio `DestinationRule` (networking.istio.io), as much of it as meshlet maps onto its
 * traffic policy (policies/destination-rule.ts). Fields keep Istio's names and shapes.
 */
export interface DestinationRule {
  namespace: string;
  name: string;
  /** spec.host as written: `svc`, `svc.ns`, `svc.ns.svc` or `svc.ns.svc.<domain>`. */
  host: string;
  trafficPolicy: IstioTrafficPolicy;
}

export interface IstioTrafficPolicy {
  loadBalancer?: {
    simple?: string;
    consistentHash?: {
      httpHeaderName?: string;
      httpCookie?: { name?: string };
      useSourceIp?: boolean;
      httpQueryParameterName?: string;
    };
  };
  outlierDetection?: {
    consecutiveGatewayErrors?: number;
    consecutive5xxErrors?: number;
    baseEjectionTime?: string;
    maxEjectionPercent?: number;
  };
  portLevelSettings?: ({ port?: { number?: number } } & Omit<IstioTrafficPolicy, 'portLevelSettings'>)[];
}
