import type { HashKey } from '../../policies/model.ts';
import { eligible, type Picker, type PickRequest, type ProxyEndpoint } from './picker.ts';

/**
 * Ring points per endpoint. Fixed (not derived from the endpoint count) so a membership change
 * moves only the keys of the endpoints that came or went; 160 keeps each share within ~±15%.
 */
const VNODES = 160;

/**
 * Consistent hashing on a ring (Karger et al. 1997; Envoy RING_HASH): each endpoint owns many
 * points on a 32-bit ring, a request goes to the first point at or after the hash of its key.
 * Removing an endpoint moves only the keys it owned; adding one takes ~1/n of the keys. The ring
 * depends only on endpoint ids, so every node of the mesh builds the same ring.
 */
export class RingHashPicker implements Picker {
  readonly #key: HashKey;
  #hashes = new Uint32Array(0);
  #owners: ProxyEndpoint[] = [];
  #count = 0;

  constructor(key: HashKey) {
    this.#key = key;
  }

  update(endpoints: readonly ProxyEndpoint[]): void {
    this.#count = endpoints.length;
    const points: { hash: number; ep: ProxyEndpoint }[] = [];
    for (const ep of endpoints) {
      for (let i = 0; i < VNODES; i++) points.push({ hash: hash32(`${ep.id}#${i}`), ep });
    }
    // Ties broken by id so the ring never depends on the input order.
    points.sort((a, b) => a.hash - b.hash || (a.ep.id < b.ep.id ? -1 : a.ep.id > b.ep.id ? 1 : 0));
    this.#hashes = Uint32Array.from(points, (p) => p.hash);
    this.#owners = points.map((p) => p.ep);
  }

  pick(request: PickRequest): ProxyEndpoint | undefined {
    const size = this.#hashes.length;
    if (size === 0) return undefined;
    let i = lowerBound(this.#hashes, hash32(hashInput(this.#key, request)));
    const now = Date.now();
    // Walk on past ineligible owners: the next endpoint on the ring takes over (retries, ejection).
    const seen = new Set<string>();
    for (let step = 0; step < size && seen.size < this.#count; step++, i++) {
      const ep = this.#owners[i % size];
      if (ep === undefined) continue;
      if (eligible(ep, request, now)) return ep;
      seen.add(ep.id);
    }
    return undefined;
  }
}

/** The text hashed for a request; falls back to the client address when the header or cookie is absent. */
export function hashInput(key: HashKey, request: PickRequest): string {
  if (key.from === 'header') {
    const value = request.headers?.[key.name];
    if (value !== undefined) return Array.isArray(value) ? value.join(',') : value;
  } else if (key.from === 'cookie') {
    const value = cookieValue(request.headers?.cookie, key.name);
    if (value !== undefined) return value;
  }
  return request.clientIp;
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** FNV-1a over UTF-16 code units, then murmur3's fmix32 for avalanche. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function lowerBound(sorted: Uint32Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] ?? 0) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
