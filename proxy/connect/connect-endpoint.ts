import type { Duplex } from 'node:stream';
import { ErrorCodes, errorMessage, MeshletError } from '../../src/errors.ts';
import type { PickRequest, ProxyEndpoint } from '../balance/picker.ts';
import type { RouteContext } from '../route.ts';

export interface Connected {
  socket: Duplex;
  endpoint: ProxyEndpoint;
}

/**
 * Balance, then dial, retrying another endpoint when a connect fails. Safe at any layer because
 * no byte has been sent yet. Each result feeds outlier ejection; each failure is counted.
 */
export async function connectEndpoint(route: RouteContext, pick: PickRequest, allowHalfOpen: boolean): Promise<Connected> {
  const { value: socket, endpoint } = await pickAndDial(route, pick, (ep) =>
    route.dialer.connect(ep, { timeoutMs: route.settings.connectTimeoutMs, allowHalfOpen }),
  );
  return { socket, endpoint };
}

/**
 * The pick → dial → retry-elsewhere loop behind every protocol: `dial` opens whatever the
 * protocol needs (a socket, an HTTP/2 session). Rejects with the last dial error, or with
 * MESHLET_ERR_NO_ENDPOINT when there was nothing to try.
 */
export async function pickAndDial<T>(
  route: RouteContext,
  pick: PickRequest,
  dial: (endpoint: ProxyEndpoint) => Promise<T>,
): Promise<{ value: T; endpoint: ProxyEndpoint }> {
  const tried = new Set<string>(pick.exclude);
  let lastError: unknown;
  for (let attempt = 0; attempt <= route.settings.connectRetries; attempt++) {
    const endpoint = route.picker.pick({ ...pick, exclude: tried });
    if (endpoint === undefined) break;
    tried.add(endpoint.id);
    try {
      const value = await dial(endpoint);
      route.picker.success(endpoint);
      return { value, endpoint };
    } catch (err) {
      lastError = err;
      recordConnectFailure(route, endpoint, err);
    }
  }
  if (lastError !== undefined) throw lastError;
  route.metrics.noEndpoint.inc();
  throw new MeshletError(ErrorCodes.NO_ENDPOINT, `no usable endpoint for ${route.key}`);
}

/** Counts a failed connect, feeds outlier detection and logs an ejection. */
export function recordConnectFailure(route: RouteContext, endpoint: ProxyEndpoint, err: unknown): void {
  const code = (err as { code?: unknown }).code;
  if (code === ErrorCodes.PROXY_TIMEOUT) route.metrics.connectTimeout.inc();
  else if ((err as { cause?: { code?: unknown } }).cause?.code === 'ECONNREFUSED') route.metrics.connectRefused.inc();
  else route.metrics.connectOther.inc();
  if (route.picker.failure(endpoint)) {
    route.metrics.ejections.inc();
    route.log.warn({ endpoint: endpoint.id, until: new Date(endpoint.stats.ejectedUntil).toISOString() }, 'endpoint ejected');
  }
  route.log.debug({ endpoint: endpoint.id, err: errorMessage(err) }, 'upstream connect failed');
}
