import type { Config } from '../config/schema.ts';
import type { EndpointSlice, Service } from '../registry/types.ts';

/** Name of the EndpointSlice the proxy sees for the EAA Service on this node (never written to the apiserver). */
export const LOCAL_SLICE_NAME = 'meshlet-eaa-local';

/**
 * The EAA Service (`eaa.service`, `openness/eaa`) as a node-local Service. OpenNESS apps call
 * `eaa.openness:443` (and `:80` for `/auth`); in meshlet every node's agent serves that API, so
 * the endpoint of this Service is always this node's own EAA listener: this function gives the
 * proxy one synthetic EndpointSlice for it, in place of whatever the apiserver holds. Nothing is
 * written to Kubernetes (no RBAC, no slice per node to keep in step, works while the cloud is away)
 * and another node is never chosen, so a pod's TLS session and WebSocket stay on its own node.
 *
 * A Service port is routed when its targetPort is the EAA `port` (HTTPS) or `authPort` (plain
 * HTTP `/auth`, when enabled), as a number: the chart sets them from the agent's config. Other
 * ports of the Service get no endpoint. Auto ports (0) cannot be routed (the proxy is built from
 * the config, before the EAA listeners bind).
 *
 * Returns undefined for every other Service (the proxy then uses the registry's slices).
 */
export function eaaLocalSlices(config: Config): ((service: Service) => EndpointSlice[] | undefined) | undefined {
  const eaa = config.eaa;
  if (!eaa.enabled || eaa.service === '') return undefined;
  const [namespace, name] = eaa.service.split('/') as [string, string];
  const targets = new Set<number>();
  if (eaa.port !== 0) targets.add(eaa.port);
  if (eaa.authEnabled && eaa.authPort !== 0) targets.add(eaa.authPort);
  const address = dialAddress(eaa.address);
  const addressType = address.includes(':') ? 'IPv6' : 'IPv4';
  const nodeName = config.node.name;
  return (service) => {
    if (service.namespace !== namespace || service.name !== name) return undefined;
    const ports = service.ports
      .filter((p) => p.protocol === 'TCP' && typeof p.targetPort === 'number' && targets.has(p.targetPort))
      .map((p) => ({ name: p.name, port: p.targetPort as number, protocol: p.protocol }));
    return [
      {
        namespace,
        name: LOCAL_SLICE_NAME,
        serviceName: name,
        addressType,
        ports,
        endpoints:
          ports.length === 0
            ? []
            : [{ addresses: [address], conditions: { ready: true, serving: true, terminating: false }, nodeName }],
      },
    ];
  };
}

/** Where the proxy dials a listener bound to `address` (an unspecified address means loopback). */
function dialAddress(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '::1';
  return address;
}
