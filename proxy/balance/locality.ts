import type { Picker, PickRequest, ProxyEndpoint } from './picker.ts';

export interface LocalityOptions {
  nodeName: string;
  /** This node's zone, when known. */
  zone: string | undefined;
  /** internalTrafficPolicy: Local: only this node's endpoints, never others (traffic drops instead). */
  nodeLocalOnly: boolean;
  /** trafficDistribution: PreferClose: this node's endpoints, then this zone's, then any. */
  preferClose: boolean;
}

/**
 * Locality as tiers: endpoints are split once per update, each tier has its own picker (same
 * policy), and a pick falls to the next tier only when a closer one has no eligible endpoint
 * (all tried, ejected or absent). Without locality settings there is one tier.
 */
export class LocalityPicker implements Picker {
  readonly #opts: LocalityOptions;
  readonly #tiers: Picker[];

  constructor(opts: LocalityOptions, makePicker: () => Picker) {
    this.#opts = opts;
    const count = opts.nodeLocalOnly ? 1 : opts.preferClose ? 3 : 1;
    this.#tiers = Array.from({ length: count }, makePicker);
  }

  update(endpoints: readonly ProxyEndpoint[]): void {
    const { nodeName, zone, nodeLocalOnly, preferClose } = this.#opts;
    if (nodeLocalOnly) {
      this.#tiers[0]?.update(endpoints.filter((ep) => ep.nodeName === nodeName));
      return;
    }
    if (!preferClose) {
      this.#tiers[0]?.update(endpoints);
      return;
    }
    const sameNode: ProxyEndpoint[] = [];
    const sameZone: ProxyEndpoint[] = [];
    const rest: ProxyEndpoint[] = [];
    for (const ep of endpoints) {
      if (ep.nodeName === nodeName) sameNode.push(ep);
      else if (zone !== undefined && ep.zone === zone) sameZone.push(ep);
      else rest.push(ep);
    }
    this.#tiers[0]?.update(sameNode);
    this.#tiers[1]?.update(sameZone);
    this.#tiers[2]?.update(rest);
  }

  pick(request: PickRequest): ProxyEndpoint | undefined {
    for (const tier of this.#tiers) {
      const ep = tier.pick(request);
      if (ep !== undefined) return ep;
    }
    return undefined;
  }
}
