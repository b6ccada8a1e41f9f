import { eligible, type Picker, type PickRequest, type ProxyEndpoint } from './picker.ts';

/** Uniform random choice among the eligible endpoints. */
export class RandomPicker implements Picker {
  #endpoints: readonly ProxyEndpoint[] = [];
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  update(endpoints: readonly ProxyEndpoint[]): void {
    this.#endpoints = endpoints;
  }

  pick(request: PickRequest): ProxyEndpoint | undefined {
    const list = this.#endpoints;
    const now = Date.now();
    const first = list[Math.floor(this.#random() * list.length)];
    if (first !== undefined && eligible(first, request, now)) return first;
    const candidates = list.filter((ep) => eligible(ep, request, now));
    return candidates[Math.floor(this.#random() * candidates.length)];
  }
}
