import type { ServicePort } from '../../src/registry/types.ts';

/** How a service port is proxied: opaque bytes, datagrams, or HTTP/1.1 requests. */
export type RouteMode = 'tcp' | 'udp' | 'http';

const HTTP_APP_PROTOCOLS = new Set(['http', 'kubernetes.io/ws']);

/**
 * Protocol detection from the port's metadata (no sniffing in phase 1): appProtocol `http` or
 * `kubernetes.io/ws`, or a port name `http` / `http-*` (the EdgeMesh and Istio convention), is
 * proxied per request; everything else per connection. `kubernetes.io/h2c` (gRPC) stays opaque
 * TCP until the h2c path lands, so it works today with per-connection balancing.
 */
export function routeMode(port: ServicePort): RouteMode {
  if (port.protocol === 'UDP') return 'udp';
  if (port.appProtocol !== undefined) return HTTP_APP_PROTOCOLS.has(port.appProtocol.toLowerCase()) ? 'http' : 'tcp';
  return port.name === 'http' || port.name.startsWith('http-') ? 'http' : 'tcp';
}
