import { eligible, type Picker, type PickRequest, type ProxyEndpoint } from './picker.ts';

/**
 * Least request by the power of two choices: two random eligible endpoints, the one with fewer
 * requests in flight wins. Close to "least loaded" without scanning every endpoint, and without
 * the herd effect of always choosing the global minimum (Mitzenmacher 2001; Envoy LEAST_REQUEST).
 */
export class LeastRequestPicker implements Picker {
  #endpoints: readonly ProxyEndpoint[] = [];
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  update(endpoints: readonly ProxyEndpoint[]): void {
    this.#endpoints = endpoints;
  }

  pick(request: PickRequest): ProxyEndpoint | undefined {
    const now = Date.now();
    let list = this.#endpoints;
    if (request.exclude !== undefined || list.some((ep) => !eligible(ep, request, now))) {
      list = list.filter((ep) => eligible(ep, request, now));
    }
    const n = list.length;
    if (n <= 1) return list[0];
    const i = Math.floor(this.#random() * n);
    let j = Math.floor(this.#random() * (n - 1));
    if (j >= i) j++;
    const a = list[i];
    const b = list[j];
    if (a === undefined || b === undefined) return a ?? b;
    return b.stats.active < a.stats.active ? b : a;
  }
}
