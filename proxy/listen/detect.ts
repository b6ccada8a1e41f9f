import type { ServicePort } from '../../src/registry/types.ts';

/** How a service port is proxied: opaque bytes, datagrams, HTTP/1.1 requests, or HTTP/2 streams. */
export type RouteMode = 'tcp' | 'udp' | 'http' | 'h2c';

const HTTP_APP_PROTOCOLS = new Set(['http', 'kubernetes.io/ws']);
const H2C_APP_PROTOCOLS = new Set(['kubernetes.io/h2c', 'h2c', 'grpc']);

/**
 * Protocol detection from the port's metadata (no sniffing yet): appProtocol `http` or
 * `kubernetes.io/ws`, or a port name `http` / `http-*` (the EdgeMesh and Istio convention), is
 * proxied per HTTP/1.1 request; appProtocol `kubernetes.io/h2c` (or `grpc`), or a port name
 * `grpc` / `grpc-*` / `h2c` / `http2` / `http2-*`, per HTTP/2 stream; everything else per connection.
 */
export function routeMode(port: ServicePort): RouteMode {
  if (port.protocol === 'UDP') return 'udp';
  if (port.appProtocol !== undefined) {
    const app = port.appProtocol.toLowerCase();
    if (HTTP_APP_PROTOCOLS.has(app)) return 'http';
    return H2C_APP_PROTOCOLS.has(app) ? 'h2c' : 'tcp';
  }
  const name = port.name;
  if (name === 'grpc' || name.startsWith('grpc-') || name === 'h2c' || name === 'http2' || name.startsWith('http2-'))
    return 'h2c';
  return name === 'http' || name.startsWith('http-') ? 'http' : 'tcp';
}
