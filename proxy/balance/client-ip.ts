import { eligible, type Picker, type PickRequest, type ProxyEndpoint } from './picker.ts';

/** Affinity entries kept at most; the oldest go first (Map keeps insertion order). */
const MAX_CLIENTS = 65_536;

/**
 * `sessionAffinity: ClientIP`: a client address keeps the endpoint it got first for `ttlMs` after
 * its last use (kube-proxy semantics), while that endpoint exists and is eligible. Wraps any
 * picker, which chooses for new clients. The table survives registry updates (same picker).
 */
export class ClientIpAffinityPicker implements Picker {
  readonly #inner: Picker;
  readonly #ttlMs: number;
  readonly #table = new Map<string, { id: string; expires: number }>();
  #byId = new Map<string, ProxyEndpoint>();

  constructor(inner: Picker, ttlMs: number) {
    this.#inner = inner;
    this.#ttlMs = ttlMs;
  }

  update(endpoints: readonly ProxyEndpoint[]): void {
    this.#byId = new Map(endpoints.map((ep) => [ep.id, ep]));
    this.#inner.update(endpoints);
  }

  pick(request: PickRequest): ProxyEndpoint | undefined {
    const now = Date.now();
    const entry = this.#table.get(request.clientIp);
    if (entry !== undefined && entry.expires > now) {
      const ep = this.#byId.get(entry.id);
      if (ep !== undefined && eligible(ep, request, now)) {
        entry.expires = now + this.#ttlMs;
        return ep;
      }
    }
    const ep = this.#inner.pick(request);
    if (ep !== undefined) {
      this.#table.delete(request.clientIp);
      if (this.#table.size >= MAX_CLIENTS) {
        const oldest = this.#table.keys().next();
        if (oldest.done !== true) this.#table.delete(oldest.value);
      }
      this.#table.set(request.clientIp, { id: ep.id, expires: now + this.#ttlMs });
    }
    return ep;
  }

  get size(): number {
    return this.#table.size;
  }
}
