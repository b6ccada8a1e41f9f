import type { Picker, PickRequest, ProxyEndpoint } from './picker.ts';

export interface OutlierOptions {
  /** Connect failures in a row that eject an endpoint; 0 disables ejection. */
  consecutiveFailures: number;
  /** First ejection length; the n-th ejection in a row lasts n times longer, capped at 10x. */
  ejectionMs: number;
  /** Never eject more than this share of the endpoints. */
  maxEjectionPercent: number;
}

/**
 * Passive outlier ejection (Envoy's consecutive-gateway-failure detector, simplified): the data
 * path reports each connect result; an endpoint failing `consecutiveFailures` times in a row is
 * skipped by every picker (they check `stats.ejectedUntil`) until its ejection ends. When every
 * endpoint is ejected or excluded, the pick is retried with ejected ones allowed (panic mode):
 * trying a maybe-broken endpoint beats refusing the connection.
 */
export class OutlierPicker implements Picker {
  readonly #inner: Picker;
  readonly #opts: OutlierOptions;
  #endpoints: readonly ProxyEndpoint[] = [];

  constructor(inner: Picker, opts: OutlierOptions) {
    this.#inner = inner;
    this.#opts = opts;
  }

  update(endpoints: readonly ProxyEndpoint[]): void {
    this.#endpoints = endpoints;
    this.#inner.update(endpoints);
  }

  pick(request: PickRequest): ProxyEndpoint | undefined {
    return this.#inner.pick(request) ?? (request.allowEjected ? undefined : this.#inner.pick({ ...request, allowEjected: true }));
  }

  /** A connect to `ep` succeeded: its failure streak ends. */
  success(ep: ProxyEndpoint): void {
    const stats = ep.stats;
    stats.consecutiveFailures = 0;
    if (stats.ejectedUntil !== 0 && stats.ejectedUntil <= Date.now()) {
      stats.ejectedUntil = 0;
      stats.ejections = 0;
    }
  }

  /** A connect to `ep` failed; returns true when this failure ejected it. */
  failure(ep: ProxyEndpoint): boolean {
    const stats = ep.stats;
    stats.consecutiveFailures++;
    const { consecutiveFailures, ejectionMs, maxEjectionPercent } = this.#opts;
    if (consecutiveFailures === 0 || stats.consecutiveFailures < consecutiveFailures) return false;
    const now = Date.now();
    if (stats.ejectedUntil > now) return false;
    const ejected = this.#endpoints.filter((e) => e.stats.ejectedUntil > now).length;
    if ((ejected + 1) * 100 > maxEjectionPercent * this.#endpoints.length) return false;
    stats.ejections = Math.min(stats.ejections + 1, 10);
    stats.ejectedUntil = now + ejectionMs * stats.ejections;
    stats.consecutiveFailures = 0;
    return true;
  }

  ejectedCount(): number {
    const now = Date.now();
    return this.#endpoints.filter((e) => e.stats.ejectedUntil > now).length;
  }
}
