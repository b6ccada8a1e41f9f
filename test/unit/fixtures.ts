import type { EndpointSlice, Node, Service } from '../../src/registry/types.ts';

/** Small builders of registry objects with Kubernetes defaults, for unit tests. */
export function service(name: string, overrides: Partial<Service> = {}): Service {
  return {
    namespace: 'default',
    name,
    type: 'ClusterIP',
    clusterIPs: ['198.19.0.10'],
    headless: false,
    ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    internalTrafficPolicy: 'Cluster',
    externalTrafficPolicy: 'Cluster',
    publishNotReadyAddresses: false,
    labels: {},
    annotations: {},
    ...overrides,
  };
}

export function slice(
  name: string,
  serviceName: string,
  addresses: string[],
  overrides: Partial<EndpointSlice> = {},
): EndpointSlice {
  return {
    namespace: 'default',
    name,
    serviceName,
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: addresses.map((address) => ({
      addresses: [address],
      conditions: { ready: true, serving: true, terminating: false },
    })),
    ...overrides,
  };
}

export function node(name: string, overrides: Partial<Node> = {}): Node {
  return { name, addresses: [{ type: 'InternalIP', address: '198.18.0.10' }], ready: 'True', labels: {}, ...overrides };
}
