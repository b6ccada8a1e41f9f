import { LRUCache } from 'lru-cache';
import type { DnsHandler, Next, Outcome } from '../chain.ts';
import type { DnsMetrics } from '../metrics.ts';
import { RCODE } from '../wire/constants.ts';
import { inspectResponse } from '../wire/message.ts';
import type { Query } from '../wire/query.ts';
import { finalize, withOpt } from '../wire/respond.ts';

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
  /**
   * RFC 8767's client response timer (ms): when an expired entry may be served stale and the
   * upstream has not answered within this time, the client gets the stale answer at once while
   * the refresh goes on. 0 waits for the upstream to answer or fail, however long that takes.
   */
  staleAnswerTimeoutMs?: number;
  /**
   * RFC 8767's failure recheck timer (s): after a refresh of an entry failed, its stale answer
   * is served without asking upstream again for this long, so a dead upstream is not hit (and
   * waited for) on every query. 0 asks every time.
   */
  staleRecheck?: number;
  metrics: DnsMetrics;
  /** meshlet's EDNS buffer size (the OPT appended to answers, and the cap on UDP answers). */
  maxUdpSize: number;
  /**
   * Whether a fresh answer for this name may be served before the chain runs (the server's
   * fast path). False for names an earlier handler might answer itself later on (reverse
   * names, which the cluster zone claims once a service gets that IP).
   */
  fastEligible?: (q: Query) => boolean;
  /** Injectable clock (ms) for tests. */
  now?: () => number;
}

interface Entry {
  /** The upstream answer, without OPT, question in lower case. */
  readonly message: Buffer;
  /** The same with meshlet's OPT appended (for EDNS clients: one copy per hit, not two). */
  readonly withOpt: Buffer;
  /** Where each record's TTL sits (same offsets in both buffers and in every reply). */
  readonly ttlOffsets: readonly number[];
  /** Each record's TTL as received (top bit set counts as 0, RFC 2181 §8). */
  readonly ttls: Uint32Array;
  readonly storedAt: number;
  readonly expiresAt: number;
  readonly staleUntil: number;
  readonly fast: boolean;
  /** Until when a stale answer is given without asking upstream (after a failed refresh). */
  recheckAt: number;
}

/**
 * The cache of forwarded answers. A fresh entry answers at once with its TTLs aged; a miss is
 * passed on, and identical queries in flight share one upstream query. Positive answers live
 * for their lowest TTL (clamped to [minTtl, maxTtl]); NXDOMAIN and NODATA for
 * min(SOA TTL, SOA MINIMUM) capped by negativeTtl, and not at all without a SOA (RFC 2308 §5).
 * When the rest of the chain fails, or is slower than staleAnswerTimeoutMs, an expired entry
 * within the serve-stale window answers with TTL staleTtl; after a failed refresh it answers
 * without asking upstream for staleRecheck seconds (RFC 8767's three timers).
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
    // The LRU's own TTL only evicts entries past the serve-stale window (expiry and staleness are
    // decided here, from Entry's times), so a clock read per second is exact enough. At the
    // default of 1 ms, lru-cache arms a timer per millisecond of lookups to forget its clock.
    this.#lru = opts.maxEntries > 0 ? new LRUCache<string, Entry>({ max: opts.maxEntries, ttlResolution: 1000 }) : undefined;
  }

  get size(): number {
    return this.#lru?.size ?? 0;
  }

  /**
   * The server's fast path (before the chain): the whole UDP/TCP reply to `q` from a fresh
   * entry (client's ID, flags, question case, OPT, TC when too large, TTLs aged), or undefined
   * when there is none, it has expired (the chain then forwards, and serves stale if that
   * fails) or the name is not eligible. Counts the hit.
   */
  reply(q: Query): Buffer | undefined {
    const entry = this.#lru?.get(cacheKey(q));
    if (!entry?.fast) return undefined;
    const now = this.#now();
    if (now >= entry.expiresAt) return undefined;
    const max = this.#opts.maxUdpSize;
    const out = finalize(q, entry.message, max, entry.withOpt);
    if (((out[2] as number) & 0x02) === 0) ageTtls(out, entry, now);
    this.#opts.metrics.cache('hit');
    return out;
  }

  handle(q: Query, next: Next): Outcome | Promise<Outcome> {
    const lru = this.#lru;
    if (!lru) return next();
    const key = cacheKey(q);
    const now = this.#now();
    const entry = lru.get(key);
    if (entry && now < entry.expiresAt) {
      this.#opts.metrics.cache('hit');
      const message = Buffer.from(entry.message);
      ageTtls(message, entry, now);
      return { kind: 'answer', message, by: this.name };
    }
    const stale = entry && now < entry.staleUntil ? entry : undefined;
    if (stale && now < stale.recheckAt) return this.#staleAnswer(stale);
    let resolving = this.#inflight.get(key);
    if (resolving) {
      this.#opts.metrics.cache('coalesced');
    } else {
      this.#opts.metrics.cache('miss');
      resolving = this.#refresh(q, key, next, lru).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, resolving);
    }
    // After a failure, whatever stale entry is still in the window answers (RFC 8767).
    const answered = resolving.then((out) => {
      if (out.kind === 'answer') return out;
      const late = lru.get(key);
      return late && this.#now() < late.staleUntil ? this.#staleAnswer(late) : out;
    });
    const wait = this.#opts.staleAnswerTimeoutMs ?? 0;
    if (!stale || wait <= 0) return answered;
    // RFC 8767 §5: do not keep the client waiting on a slow upstream when a stale answer exists;
    // the refresh goes on and fills the cache when it answers.
    return new Promise<Outcome>((resolve, reject) => {
      const timer = setTimeout(() => resolve(this.#staleAnswer(stale)), wait);
      answered.then(
        (out) => {
          clearTimeout(timer);
          resolve(out);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /** Asks the rest of the chain; stores an answer, and marks a failed refresh for the recheck timer. */
  async #refresh(q: Query, key: string, next: Next, lru: LRUCache<string, Entry>): Promise<Outcome> {
    const out = await next();
    if (out.kind === 'answer') {
      this.#store(q, key, out.message, lru);
      return out;
    }
    const entry = lru.get(key);
    if (entry) entry.recheckAt = this.#now() + (this.#opts.staleRecheck ?? 0) * 1000;
    return out;
  }

  /** An expired entry as a stale answer: every TTL is staleTtl (RFC 8767 §4). */
  #staleAnswer(entry: Entry): Outcome {
    this.#opts.metrics.cache('stale');
    const message = Buffer.from(entry.message);
    for (const off of entry.ttlOffsets) message.writeUInt32BE(this.#opts.staleTtl, off);
    return { kind: 'answer', message, by: this.name };
  }

  #store(q: Query, key: string, message: Buffer, lru: LRUCache<string, Entry>): void {
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
    const copy = Buffer.from(message);
    const ttls = new Uint32Array(info.ttlOffsets.length);
    info.ttlOffsets.forEach((off, i) => {
      ttls[i] = Math.min(copy.readUInt32BE(off), 0x7fffffff);
    });
    lru.set(
      key,
      {
        message: copy,
        withOpt: withOpt(copy, this.#opts.maxUdpSize),
        ttlOffsets: info.ttlOffsets,
        ttls,
        storedAt: now,
        expiresAt: now + ttl * 1000,
        staleUntil: now + ttl * 1000 + staleMs,
        fast: this.#opts.fastEligible?.(q) ?? true,
        recheckAt: 0,
      },
      { ttl: ttl * 1000 + staleMs },
    );
  }
}

/**
 * The cache key: the question key, plus the CD bit, which is passed upstream and may change
 * the answer (RFC 4035 §3.2.2: checking disabled gets data a validator would have refused).
 * DO is not sent upstream, so it does not change the cached answer (the reply's OPT carries
 * the client's DO bit back).
 */
function cacheKey(q: Query): string {
  return (q.flags & 0x0010) === 0 ? q.key : `${q.key}\x01`;
}

/**
 * Ages the TTLs of a reply built from `entry` in place (RFC 1035 §7.4: a cached TTL counts
 * down; never below 0): each record's TTL less the whole seconds since it was stored, and never
 * above the entry's remaining lifetime (which the minTtl/maxTtl clamps and, for negative
 * answers, min(SOA TTL, MINIMUM, negativeTtl) set, RFC 2308 §5).
 */
function ageTtls(out: Buffer, entry: Entry, now: number): void {
  const elapsed = Math.floor((now - entry.storedAt) / 1000);
  const remaining = Math.floor((entry.expiresAt - now) / 1000);
  const offsets = entry.ttlOffsets;
  for (let i = 0; i < offsets.length; i++) {
    const aged = (entry.ttls[i] as number) - elapsed;
    out.writeUInt32BE(aged < 0 ? 0 : aged < remaining ? aged : remaining, offsets[i] as number);
  }
}
