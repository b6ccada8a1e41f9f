import { isIP } from 'node:net';
import { z } from 'zod';
import type {
  AddressType,
  DestinationRule,
  Endpoint,
  EndpointPort,
  EndpointSlice,
  IstioTrafficPolicy,
  Node,
  RegistryState,
  Service,
} from '../registry/types.ts';

/**
 * The registry file of standalone mode: Kubernetes-shaped, but compact enough to write by hand.
 * Endpoints are written under their service; each may give its own port numbers by port name
 * (two demo backends on one host differ only by port), else the service's numeric targetPort.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const ip = z.union([z.ipv4(), z.ipv6()]);
const portNumber = z.number().int().min(1).max(65535);
const protocol = z.enum(['TCP', 'UDP', 'SCTP']);
const labels = z.record(z.string(), z.string());

const FileServicePort = z.strictObject({
  name: z.string().regex(DNS_LABEL, 'must be a DNS label').max(63).default(''),
  port: portNumber,
  targetPort: z.union([portNumber, z.string().regex(DNS_LABEL).max(15)]).optional(),
  protocol: protocol.default('TCP'),
  appProtocol: z.string().min(1).optional(),
  nodePort: z.number().int().min(1).max(65535).optional(),
});

const FileEndpoint = z.strictObject({
  addresses: z.array(ip).min(1),
  /** Port number per service port name ('' for an unnamed port). */
  ports: z.record(z.string(), portNumber).optional(),
  ready: z.boolean().default(true),
  serving: z.boolean().optional(),
  terminating: z.boolean().default(false),
  nodeName: z.string().min(1).optional(),
  zone: z.string().min(1).optional(),
  hostname: z.string().regex(DNS_LABEL, 'must be a DNS label').max(63).optional(),
});

const FileService = z
  .strictObject({
    name: z.string().regex(DNS_LABEL, 'must be a DNS label').max(63),
    namespace: z.string().regex(DNS_LABEL, 'must be a DNS label').max(63).default('default'),
    type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).default('ClusterIP'),
    clusterIP: z.union([ip, z.literal('None')]).optional(),
    clusterIPs: z.array(ip).optional(),
    externalName: z.string().min(1).optional(),
    ports: z.array(FileServicePort).default([]),
    sessionAffinity: z.enum(['None', 'ClientIP']).default('None'),
    sessionAffinityTimeoutSeconds: z.number().int().min(1).max(86_400).default(10_800),
    internalTrafficPolicy: z.enum(['Cluster', 'Local']).default('Cluster'),
    externalTrafficPolicy: z.enum(['Cluster', 'Local']).default('Cluster'),
    trafficDistribution: z.string().min(1).optional(),
    publishNotReadyAddresses: z.boolean().default(false),
    labels: labels.default({}),
    annotations: labels.default({}),
    endpoints: z.array(FileEndpoint).default([]),
  })
  .superRefine((svc, ctx) => {
    if (svc.type === 'ExternalName' && !svc.externalName) {
      ctx.addIssue({ code: 'custom', path: ['externalName'], message: 'an ExternalName service needs externalName' });
    }
    const names = svc.ports.map((p) => p.name);
    if (names.length > 1 && names.some((n) => n === '')) {
      ctx.addIssue({ code: 'custom', path: ['ports'], message: 'every port needs a name when a service has several' });
    }
    if (new Set(names).size !== names.length) {
      ctx.addIssue({ code: 'custom', path: ['ports'], message: 'port names must be unique' });
    }
  });

const FileNode = z.strictObject({
  name: z.string().min(1).max(253),
  addresses: z.array(ip).default([]),
  ready: z.boolean().default(true),
  zone: z.string().min(1).optional(),
  labels: labels.default({}),
});

const IstioPolicyFields = {
  loadBalancer: z
    .strictObject({
      simple: z.enum(['UNSPECIFIED', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN']).optional(),
      consistentHash: z
        .strictObject({
          httpHeaderName: z.string().min(1).optional(),
          httpCookie: z
            .strictObject({ name: z.string().min(1), path: z.string().optional(), ttl: z.string().optional() })
            .optional(),
          useSourceIp: z.boolean().optional(),
          httpQueryParameterName: z.string().min(1).optional(),
        })
        .optional(),
    })
    .optional(),
  outlierDetection: z
    .strictObject({
      consecutiveGatewayErrors: z.number().int().min(0).optional(),
      consecutive5xxErrors: z.number().int().min(0).optional(),
      baseEjectionTime: z.string().optional(),
      maxEjectionPercent: z.number().int().min(0).max(100).optional(),
    })
    .optional(),
};

/** An Istio DestinationRule, written with Istio's field names (see policies/README.md). */
const FileDestinationRule = z.strictObject({
  name: z.string().regex(DNS_LABEL, 'must be a DNS label').max(63),
  namespace: z.string().regex(DNS_LABEL, 'must be a DNS label').max(63).default('default'),
  host: z.string().min(1),
  trafficPolicy: z
    .strictObject({
      ...IstioPolicyFields,
      portLevelSettings: z
        .array(z.strictObject({ port: z.strictObject({ number: portNumber }), ...IstioPolicyFields }))
        .optional(),
    })
    .default({}),
});

export const RegistryFileSchema = z.strictObject({
  nodes: z.array(FileNode).default([]),
  services: z.array(FileService).default([]),
  destinationRules: z.array(FileDestinationRule).default([]),
});

export type RegistryFile = z.output<typeof RegistryFileSchema>;
type FileServiceOut = RegistryFile['services'][number];

/** Turns a validated registry file into registry objects, with Kubernetes defaults applied. */
export function registryStateFromFile(file: RegistryFile): RegistryState {
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  const seen = new Set<string>();
  for (const svc of file.services) {
    const key = `${svc.namespace}/${svc.name}`;
    if (seen.has(key)) throw new Error(`service ${key} is listed twice`);
    seen.add(key);
    services.push(toService(svc));
    endpointSlices.push(...toEndpointSlices(svc));
  }
  const nodes: Node[] = file.nodes.map((n) => ({
    name: n.name,
    addresses: n.addresses.map((address) => ({ type: 'InternalIP' as const, address })),
    ready: n.ready ? 'True' : 'False',
    ...(n.zone !== undefined && { zone: n.zone }),
    labels: n.labels,
  }));
  const destinationRules: DestinationRule[] = file.destinationRules.map((r) => ({
    namespace: r.namespace,
    name: r.name,
    host: r.host,
    trafficPolicy: r.trafficPolicy as IstioTrafficPolicy,
  }));
  return { services, endpointSlices, nodes, destinationRules };
}

function toService(svc: FileServiceOut): Service {
  const headless = svc.clusterIP === 'None';
  const clusterIPs =
    svc.type === 'ExternalName' || headless
      ? []
      : (svc.clusterIPs ?? (svc.clusterIP !== undefined && svc.clusterIP !== 'None' ? [svc.clusterIP] : []));
  return {
    namespace: svc.namespace,
    name: svc.name,
    type: svc.type,
    clusterIPs,
    headless,
    ...(svc.externalName !== undefined && { externalName: svc.externalName }),
    ports: svc.ports.map((p) => ({
      name: p.name,
      port: p.port,
      protocol: p.protocol,
      targetPort: p.targetPort ?? p.port,
      ...(p.appProtocol !== undefined && { appProtocol: p.appProtocol }),
      ...(p.nodePort !== undefined && { nodePort: p.nodePort }),
    })),
    sessionAffinity: svc.sessionAffinity,
    sessionAffinityTimeoutSeconds: svc.sessionAffinityTimeoutSeconds,
    internalTrafficPolicy: svc.internalTrafficPolicy,
    externalTrafficPolicy: svc.externalTrafficPolicy,
    ...(svc.trafficDistribution !== undefined && { trafficDistribution: svc.trafficDistribution }),
    publishNotReadyAddresses: svc.publishNotReadyAddresses,
    labels: svc.labels,
    annotations: svc.annotations,
  };
}

/**
 * EndpointSlices group endpoints that share one address family and one set of port numbers,
 * as the EndpointSlice controller does; slices are named `<service>-file-<n>`.
 */
function toEndpointSlices(svc: FileServiceOut): EndpointSlice[] {
  const groups = new Map<string, { addressType: AddressType; ports: EndpointPort[]; endpoints: Endpoint[] }>();
  for (const [index, ep] of svc.endpoints.entries()) {
    const ports: EndpointPort[] = svc.ports.map((p) => {
      const number = ep.ports?.[p.name] ?? p.targetPort ?? p.port;
      if (typeof number !== 'number') {
        throw new Error(
          `service ${svc.namespace}/${svc.name} endpoint ${index}: port "${p.name}" has a named targetPort "${number}"; give its number in the endpoint's ports`,
        );
      }
      return {
        name: p.name,
        port: number,
        protocol: p.protocol,
        ...(p.appProtocol !== undefined && { appProtocol: p.appProtocol }),
      };
    });
    for (const name of Object.keys(ep.ports ?? {})) {
      if (!svc.ports.some((p) => p.name === name)) {
        throw new Error(`service ${svc.namespace}/${svc.name} endpoint ${index}: no service port named "${name}"`);
      }
    }
    const family = isIP(ep.addresses[0] ?? '') === 6 ? 'IPv6' : 'IPv4';
    if (ep.addresses.some((a) => (isIP(a) === 6 ? 'IPv6' : 'IPv4') !== family)) {
      throw new Error(`service ${svc.namespace}/${svc.name} endpoint ${index}: addresses mix IPv4 and IPv6`);
    }
    const groupKey = `${family} ${ports.map((p) => p.port).join(',')}`;
    let group = groups.get(groupKey);
    if (!group) {
      group = { addressType: family, ports, endpoints: [] };
      groups.set(groupKey, group);
    }
    group.endpoints.push({
      addresses: ep.addresses,
      conditions: { ready: ep.ready && !ep.terminating, serving: ep.serving ?? ep.ready, terminating: ep.terminating },
      ...(ep.nodeName !== undefined && { nodeName: ep.nodeName }),
      ...(ep.zone !== undefined && { zone: ep.zone }),
      ...(ep.hostname !== undefined && { hostname: ep.hostname }),
    });
  }
  return [...groups.values()].map((group, i) => ({
    namespace: svc.namespace,
    name: `${svc.name}-file-${i}`,
    serviceName: svc.name,
    ...group,
  }));
}
