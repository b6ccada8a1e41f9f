import type { Pool } from 'undici';
import type { ProxyEndpoint } from '../balance/picker.ts';
import { UpstreamPools } from '../http/upstream-pools.ts';

/**
 * UpstreamPools whose undici Pools are created on an endpoint's first request, not when a
 * route retains it. An undici Pool costs about 17 KiB even with no connection (its request
 * queue preallocates 2,048 slots), so eager pools for 10,000 endpoints held 165 MiB of heap
 * on a node that called a handful of them. Routes still retain and release every endpoint:
 * the counts live here, and a Pool exists only for an endpoint that is retained and was used
 * (released, as before, when the last route using it lets it go).
 */
export class LazyUpstreamPools extends UpstreamPools {
  /** Endpoint id → routes retaining it, and whether its Pool has been created. */
  readonly #refs = new Map<string, { refs: number; open: boolean }>();

  /** Endpoints retained by at least one route (with or without a Pool yet). */
  get retained(): number {
    return this.#refs.size;
  }

  override retain(endpoints: readonly ProxyEndpoint[]): void {
    for (const ep of endpoints) {
      const entry = this.#refs.get(ep.id);
      if (entry !== undefined) entry.refs++;
      else this.#refs.set(ep.id, { refs: 1, open: false });
    }
  }

  override release(endpoints: readonly ProxyEndpoint[]): void {
    for (const ep of endpoints) {
      const entry = this.#refs.get(ep.id);
      if (entry === undefined || --entry.refs > 0) continue;
      this.#refs.delete(ep.id);
      if (entry.open) super.release([ep]);
    }
  }

  override get(ep: ProxyEndpoint): Pool {
    const entry = this.#refs.get(ep.id);
    if (entry !== undefined && !entry.open) {
      entry.open = true;
      super.retain([ep]);
    }
    return super.get(ep);
  }

  override async close(): Promise<void> {
    this.#refs.clear();
    await super.close();
  }

  override destroy(): void {
    this.#refs.clear();
    super.destroy();
  }
}
