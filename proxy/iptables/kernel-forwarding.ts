import type { Service } from '../../src/registry/types.ts';
import type { RouteContext } from '../route.ts';

/** Service annotation that picks how its opaque TCP ports are forwarded: `proxy` or `kernel`. */
export const ANNOTATION_TCP_FORWARDING = 'meshlet.io/tcp-forwarding';

export type TcpForwarding = 'proxy' | 'kernel';

export interface KernelEndpoint {
  address: string;
  port: number;
}

/**
 * The endpoints iptables should DNAT a service port to directly, or undefined when the port
 * stays with meshlet's listener. Kernel forwarding is for opaque TCP only (UDP would need
 * conntrack entries flushed when endpoints go, and HTTP needs per-request balancing), with a
 * policy iptables can express: round robin or random become a random pick per connection;
 * `internalTrafficPolicy: Local` and `trafficDistribution: PreferClose` become the choice of
 * endpoints written. Ring hash, least request and ClientIP affinity need meshlet, so those
 * ports stay proxied, as do ports with no endpoint (the listener then refuses the connection).
 */
export function kernelEndpoints(
  route: RouteContext,
  service: Service,
  defaultMode: TcpForwarding,
  nodeName: string,
  zone: string | undefined,
): KernelEndpoint[] | undefined {
  const wanted = service.annotations[ANNOTATION_TCP_FORWARDING] ?? defaultMode;
  if (wanted !== 'kernel' || route.mode !== 'tcp' || route.servicePort.protocol !== 'TCP') return undefined;
  const { policy } = route;
  if ((policy.lb !== 'round-robin' && policy.lb !== 'random') || policy.clientIpAffinityMs !== undefined) return undefined;
  let endpoints = route.endpoints;
  if (policy.nodeLocalOnly) {
    endpoints = endpoints.filter((e) => e.nodeName === nodeName);
  } else if (policy.preferClose) {
    const local = endpoints.filter((e) => e.nodeName === nodeName);
    const sameZone = zone === undefined ? [] : endpoints.filter((e) => e.zone === zone);
    endpoints = local.length > 0 ? local : sameZone.length > 0 ? sameZone : endpoints;
  }
  if (endpoints.length === 0) return undefined;
  return endpoints.map((e) => ({ address: e.address, port: e.port }));
}
