/**
 * The one balancing contract: `update(endpoints)` when the registry changes, `pick(request)` per
 * connection, HTTP request or UDP flow. Policies (round-robin.ts, random.ts, least-request.ts,
 * ring-hash.ts) implement it; affinity, locality and outlier ejection wrap a picker (client-ip.ts,
 * locality.ts, outlier.ts) instead of living inside one. build.ts composes them for a policy.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Counters that survive registry rebuilds of a route (carried over by endpoint id). */
export interface EndpointStats {
  /** Connections or HTTP requests in flight: least-request reads it. */
  active: number;
  consecutiveFailures: number;
  /** Epoch ms until which the endpoint is ejected; 0 when not. */
  ejectedUntil: number;
  /** How often it was ejected in a row (the next ejection lasts longer). */
  ejections: number;
}

export interface ProxyEndpoint {
  /** `address:port` (`[v6]:port`): unique within a route. */
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly nodeName: string | undefined;
  readonly zone: string | undefined;
  /** False for a terminating-but-serving endpoint used only because no ready one exists. */
  readonly ready: boolean;
  readonly stats: EndpointStats;
}

export interface PickRequest {
  /** The client's address: source-ip hashing and ClientIP affinity read it. */
  clientIp: string;
  /** HTTP request headers, for header and cookie hashing; undefined at L4. */
  headers?: IncomingHttpHeaders;
  /** Endpoint ids already tried for this request (retries go elsewhere). */
  exclude?: ReadonlySet<string>;
  /** Set on the last-resort pick: ejected endpoints are allowed again (panic mode). */
  allowEjected?: boolean;
}

export interface Picker {
  pick(request: PickRequest): ProxyEndpoint | undefined;
  update(endpoints: readonly ProxyEndpoint[]): void;
}

export function newStats(): EndpointStats {
  return { active: 0, consecutiveFailures: 0, ejectedUntil: 0, ejections: 0 };
}

/** True when the endpoint may be picked for this request. */
export function eligible(ep: ProxyEndpoint, request: PickRequest, now: number): boolean {
  if (request.exclude?.has(ep.id)) return false;
  return request.allowEjected === true || ep.stats.ejectedUntil <= now;
}
