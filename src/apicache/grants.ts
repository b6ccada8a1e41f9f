import type { Persister } from './persist.ts';

/**
 * Who may read what from the cache while the cloud is unreachable. The apiserver is the only
 * authority: a grant is recorded when it answered a client's GET/LIST/WATCH with 2xx, and an
 * offline read is served only when a grant of the same identity covers it (same resource; the
 * grant's namespace is '' or the same; its field selector is '' or the same; field selectors
 * matter because the Node authorizer decides on them). Label selectors never change
 * authorization, so they are not part of a grant. Kept in memory and persisted like the cache,
 * so a restart while offline keeps the same answers.
 */
export class AccessGrants {
  readonly #byIdentity = new Map<string, Set<string>>();
  readonly #persister: Persister | undefined;

  constructor(persister: Persister | undefined) {
    this.#persister = persister;
    persister?.register({
      name: 'grants',
      header: () => ({ kind: 'grants' }),
      entries: () => this.#entries(),
    });
  }

  restore(entries: Map<string, string>): void {
    for (const [identity, json] of entries) {
      try {
        const list = JSON.parse(json) as unknown;
        if (Array.isArray(list)) this.#byIdentity.set(identity, new Set(list.filter((g): g is string => typeof g === 'string')));
      } catch {}
    }
  }

  grant(identity: string, resource: string, namespace: string, fieldSelector: string): void {
    const g = `${resource}|${namespace}|${fieldSelector}`;
    let set = this.#byIdentity.get(identity);
    if (!set) {
      set = new Set();
      this.#byIdentity.set(identity, set);
    }
    if (set.has(g)) return;
    set.add(g);
    this.#persister?.put('grants', identity, JSON.stringify([...set]));
  }

  allows(identity: string, resource: string, namespace: string, fieldSelector: string): boolean {
    const set = this.#byIdentity.get(identity);
    if (!set) return false;
    for (const g of set) {
      const [r, ns, fs] = g.split('|');
      if (r === resource && (ns === '' || ns === namespace) && (fs === '' || fs === fieldSelector)) return true;
    }
    return false;
  }

  get identities(): number {
    return this.#byIdentity.size;
  }

  *#entries(): Iterable<[string, string]> {
    for (const [id, set] of this.#byIdentity) yield [id, JSON.stringify([...set])];
  }
}

/** Discovery and /version answers (non-resource GETs), kept whole: kubectl and client-go need them to start. */
export class DiscoveryCache {
  readonly #docs = new Map<string, { contentType: string; body: string }>();
  readonly #persister: Persister | undefined;

  constructor(persister: Persister | undefined) {
    this.#persister = persister;
    persister?.register({
      name: 'discovery',
      header: () => ({ kind: 'discovery' }),
      entries: () => this.#entries(),
    });
  }

  static key(path: string, accept: string): string {
    return `${path} ${accept.replace(/\s+/g, '')}`;
  }

  /** Paths worth keeping: /version, /api, /apis and group-version discovery (not /openapi: large, kubectl caches it). */
  static cacheable(path: string): boolean {
    return path === '/version' || path === '/api' || path === '/apis' || /^\/api\/v1$|^\/apis\/[^/]+\/[^/]+$/.test(path);
  }

  restore(entries: Map<string, string>): void {
    for (const [k, json] of entries) {
      try {
        const d = JSON.parse(json) as { contentType?: unknown; body?: unknown };
        if (typeof d.contentType === 'string' && typeof d.body === 'string')
          this.#docs.set(k, { contentType: d.contentType, body: d.body });
      } catch {}
    }
  }

  set(key: string, contentType: string, body: string): void {
    const old = this.#docs.get(key);
    if (old && old.body === body && old.contentType === contentType) return;
    this.#docs.set(key, { contentType, body });
    this.#persister?.put('discovery', key, JSON.stringify({ contentType, body }));
  }

  get(key: string): { contentType: string; body: string } | undefined {
    return this.#docs.get(key);
  }

  *#entries(): Iterable<[string, string]> {
    for (const [k, d] of this.#docs) yield [k, JSON.stringify(d)];
  }
}
