import { LRUCache } from 'lru-cache';
import type { DnsHandler, Next, Outcome } from '../chain.ts';
import type { DnsMetrics } from '../metrics.ts';
import { RCODE } from '../wire/constants.ts';
import { inspectResponse } from '../wire/message.ts';
import type { Query } from '../wire/query.ts';

export interface CacheOptions {
  maxEntries: number;
  minTtl: number;
  maxTtl: number;
  /** Cap on negative caching (RFC 2308). */
  negativeTtl: number;
  /** Seconds past expiry an entry may still be served when resolution fails (RFC 8767); 0 = never. */
  serveStale: number;
  /** TTL written into a stale answer (RFC 8767 §4 suggests 30 s). */
  staleTtl: number;
  metrics: DnsMetrics;
  /** Injectable clock (ms) for tests. */
  now?: () => number;
}

interface Entry {
  /** The upstream answer, without OPT, question in lower case. */
  message: Buffer;
  ttlOffsets: number[];
  expiresAt: number;
  staleUntil: number;
}

/**
 * The cache of forwarded answers. A fresh entry answers at once with its TTLs aged; a miss is
 * passed on, and identical queries in flight share one upstream query. Positive answers live
 * for their lowest TTL (clamped to [minTtl, maxTtl]); NXDOMAIN and NODATA for
 * min(SOA TTL, SOA MINIMUM) capped by negativeTtl, and not at all without a SOA (RFC 2308 §5).
 * When the rest of the chain fails, an expired entry within the serve-stale window answers
 * with TTL staleTtl (RFC 8767).
 */
export class CacheHandler implements DnsHandler {
  readonly name = 'cache';
  readonly #opts: CacheOptions;
  readonly #lru: LRUCache<string, Entry> | undefined;
  readonly #inflight = new Map<string, Promise<Outcome>>();
  readonly #now: () => number;

  constructor(opts: CacheOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#lru = opts.maxEntries > 0 ? new LRUCache<string, Entry>({ max: opts.maxEntries }) : undefined;
  }

  get size(): number {
    return this.#lru?.size ?? 0;
  }

  handle(q: Query, next: Next): Outcome | Promise<Outcome> {
    const lru = this.#lru;
    if (!lru) return next();
    const now = this.#now();
    const entry = lru.get(q.key);
    if (entry && now < entry.expiresAt) {
      this.#opts.metrics.cache('hit');
      return { kind: 'answer', message: aged(entry, Math.floor((entry.expiresAt - now) / 1000)), by: this.name };
    }
    const pending = this.#inflight.get(q.key);
    if (pending) {
      this.#opts.metrics.cache('coalesced');
      return pending;
    }
    this.#opts.metrics.cache('miss');
    const filling = this.#fill(q, next, lru).finally(() => this.#inflight.delete(q.key));
    this.#inflight.set(q.key, filling);
    return filling;
  }

  async #fill(q: Query, next: Next, lru: LRUCache<string, Entry>): Promise<Outcome> {
    const out = await next();
    if (out.kind === 'answer') {
      this.#store(q.key, out.message, lru);
      return out;
    }
    const stale = lru.get(q.key);
    const now = this.#now();
    if (stale && now < stale.staleUntil) {
      this.#opts.metrics.cache('stale');
      return { kind: 'answer', message: aged(stale, this.#opts.staleTtl), by: this.name };
    }
    return out;
  }

  #store(key: string, message: Buffer, lru: LRUCache<string, Entry>): void {
    const info = inspectResponse(message);
    if (!info) return;
    let ttl: number;
    if (info.rcode === RCODE.NOERROR && info.answerCount > 0) {
      ttl = Math.min(Math.max(info.minTtl ?? 0, this.#opts.minTtl), this.#opts.maxTtl);
    } else if (info.rcode === RCODE.NXDOMAIN || (info.rcode === RCODE.NOERROR && info.answerCount === 0)) {
      if (!info.soa) return;
      ttl = Math.min(info.soa.ttl, info.soa.minimum, this.#opts.negativeTtl);
    } else {
      return; // SERVFAIL, REFUSED, ...: not cached
    }
    if (ttl <= 0) return;
    const now = this.#now();
    const staleMs = this.#opts.serveStale * 1000;
    lru.set(
      key,
      {
        message: Buffer.from(message),
        ttlOffsets: info.ttlOffsets,
        expiresAt: now + ttl * 1000,
        staleUntil: now + ttl * 1000 + staleMs,
      },
      { ttl: ttl * 1000 + staleMs },
    );
  }
}

/** A copy of the entry's message with every TTL set to `ttl` (as CoreDNS's cache does). */
function aged(entry: Entry, ttl: number): Buffer {
  const out = Buffer.from(entry.message);
  for (const off of entry.ttlOffsets) out.writeUInt32BE(ttl, off);
  return out;
}
