import { eligible, type Picker, type PickRequest, type ProxyEndpoint } from './picker.ts';

/** Round robin, the default: each pick takes the next eligible endpoint. */
export class RoundRobinPicker implements Picker {
  #endpoints: readonly ProxyEndpoint[] = [];
  #next = 0;

  update(endpoints: readonly ProxyEndpoint[]): void {
    this.#endpoints = endpoints;
    // Start where we were, not at 0, so frequent endpoint changes do not favour the first one.
    if (this.#next >= endpoints.length) this.#next = 0;
  }

  pick(request: PickRequest): ProxyEndpoint | undefined {
    const list = this.#endpoints;
    const n = list.length;
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      const ep = list[(this.#next + i) % n];
      if (ep !== undefined && eligible(ep, request, now)) {
        this.#next = (this.#next + i + 1) % n;
        return ep;
      }
    }
    return undefined;
  }
}
