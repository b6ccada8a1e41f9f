import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { QTYPE, RCODE } from './wire/constants.ts';

/**
 * meshlet_dns_* metrics. The per-query counters are plain array increments on the hot path and
 * reach prom-client only when /metrics is scraped (prom-client's `collect` hook), so a query
 * costs no label hashing.
 */

const TYPE_LABELS = [...Object.keys(QTYPE), 'OTHER'];
const RCODE_LABELS = [...Object.keys(RCODE), 'OTHER'];
const TYPE_SLOT = new Map<number, number>(Object.values(QTYPE).map((v, i) => [v, i]));
const RCODE_SLOT = new Map<number, number>(Object.values(RCODE).map((v, i) => [v, i]));
export const ANSWERED_BY = ['cluster', 'cache', 'forward', 'server'] as const;
export type AnsweredBy = (typeof ANSWERED_BY)[number];
export type MalformedReason = 'short' | 'response' | 'formerr' | 'notimp' | 'badvers' | 'tcp-framing';
export const CACHE_RESULTS = ['hit', 'miss', 'stale', 'coalesced'] as const;
export type CacheResult = (typeof CACHE_RESULTS)[number];

export class DnsMetrics {
  readonly #queries = new Float64Array(TYPE_LABELS.length * RCODE_LABELS.length);
  readonly #flushedQueries = new Float64Array(this.#queries.length);
  readonly #answered = new Float64Array(ANSWERED_BY.length);
  readonly #flushedAnswered = new Float64Array(ANSWERED_BY.length);
  readonly #malformed: Counter<'reason'>;
  readonly #cache = new Float64Array(CACHE_RESULTS.length);
  readonly #flushedCache = new Float64Array(CACHE_RESULTS.length);
  readonly #upstream: Histogram<'upstream' | 'transport' | 'outcome'>;

  constructor(registry: Registry, readNames: () => number, readCacheSize: () => number) {
    const self = this;
    new Counter({
      name: 'meshlet_dns_queries_total',
      help: 'DNS queries answered, by query type and response code.',
      labelNames: ['type', 'rcode'],
      registers: [registry],
      collect() {
        self.#flush(self.#queries, self.#flushedQueries, (i, n) =>
          this.inc(
            {
              type: TYPE_LABELS[Math.floor(i / RCODE_LABELS.length)] ?? 'OTHER',
              rcode: RCODE_LABELS[i % RCODE_LABELS.length] ?? 'OTHER',
            },
            n,
          ),
        );
      },
    });
    new Counter({
      name: 'meshlet_dns_answers_total',
      help: 'DNS answers by what produced them: cluster zone, cache, forward (upstream), or the server itself (errors).',
      labelNames: ['by'],
      registers: [registry],
      collect() {
        self.#flush(self.#answered, self.#flushedAnswered, (i, n) => this.inc({ by: ANSWERED_BY[i] ?? 'server' }, n));
      },
    });
    this.#malformed = new Counter({
      name: 'meshlet_dns_malformed_total',
      help: 'Malformed or unsupported messages from clients, by reason (dropped or answered FORMERR/NOTIMP/BADVERS).',
      labelNames: ['reason'],
      registers: [registry],
    });
    new Counter({
      name: 'meshlet_dns_cache_lookups_total',
      help: 'Cache lookups for forwarded names: hit, miss, stale (served past expiry, RFC 8767), coalesced (joined a query in flight).',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        self.#flush(self.#cache, self.#flushedCache, (i, n) => this.inc({ result: CACHE_RESULTS[i] ?? 'miss' }, n));
      },
    });
    this.#upstream = new Histogram({
      name: 'meshlet_dns_upstream_duration_seconds',
      help: 'Time for one upstream attempt, by upstream, transport and outcome (ok, servfail, timeout, error).',
      labelNames: ['upstream', 'transport', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    new Gauge({
      name: 'meshlet_dns_cluster_names',
      help: 'Names in the cluster zone (services, endpoints, SRV and PTR names).',
      registers: [registry],
      collect() {
        this.set(readNames());
      },
    });
    new Gauge({
      name: 'meshlet_dns_cache_entries',
      help: 'Forwarded answers in the cache (fresh and stale).',
      registers: [registry],
      collect() {
        this.set(readCacheSize());
      },
    });
  }

  /** Hot path: one answered query. */
  answered(qtype: number, rcode: number, by: AnsweredBy): void {
    const t = TYPE_SLOT.get(qtype) ?? TYPE_LABELS.length - 1;
    const r = RCODE_SLOT.get(rcode) ?? RCODE_LABELS.length - 1;
    const q = t * RCODE_LABELS.length + r;
    this.#queries[q] = (this.#queries[q] ?? 0) + 1;
    const b = ANSWERED_BY.indexOf(by);
    this.#answered[b] = (this.#answered[b] ?? 0) + 1;
  }

  malformed(reason: MalformedReason): void {
    this.#malformed.inc({ reason });
  }

  /** Hot path (cache hits): an array increment, flushed on scrape. */
  cache(result: CacheResult): void {
    const i = CACHE_RESULTS.indexOf(result);
    this.#cache[i] = (this.#cache[i] ?? 0) + 1;
  }

  upstream(upstream: string, transport: 'udp' | 'tcp', outcome: string, seconds: number): void {
    this.#upstream.observe({ upstream, transport, outcome }, seconds);
  }

  #flush(counts: Float64Array, flushed: Float64Array, inc: (i: number, n: number) => void): void {
    for (let i = 0; i < counts.length; i++) {
      const delta = (counts[i] as number) - (flushed[i] as number);
      if (delta > 0) {
        inc(i, delta);
        flushed[i] = counts[i] as number;
      }
    }
  }
}
