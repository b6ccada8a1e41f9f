import { Counter, Gauge, type Registry } from 'prom-client';

/** Metric names follow `meshlet_apicache_*` (README: metrics). */
export interface ApicacheMetricsSources {
  cloudReachable(): number;
  upstreams(): { url: string; healthy: boolean }[];
  cache(): { resource: string; objects: number; bytes: number }[];
  diskOk(): number;
  watches(): { upstream: number; held: number };
}

export class ApicacheMetrics {
  readonly requests: Counter<'verb' | 'served'>;
  readonly diskErrors: Counter;
  readonly corruptFiles: Counter;
  readonly overflow: Counter;
  readonly watchResumes: Counter<'result'>;

  constructor(registry: Registry, src: ApicacheMetricsSources) {
    new Gauge({
      name: 'meshlet_apicache_cloud_reachable',
      help: '1 while at least one apiserver upstream is healthy (the cloud is reachable), else 0.',
      registers: [registry],
      collect() {
        this.set(src.cloudReachable());
      },
    });
    new Gauge({
      name: 'meshlet_apicache_upstream_healthy',
      help: '1 if the apiserver upstream passes its health checks, else 0.',
      labelNames: ['upstream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const u of src.upstreams()) this.set({ upstream: u.url }, u.healthy ? 1 : 0);
      },
    });
    new Gauge({
      name: 'meshlet_apicache_cached_objects',
      help: 'Objects held in the apiserver cache, per resource.',
      labelNames: ['resource'],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of src.cache()) this.set({ resource: r.resource }, r.objects);
      },
    });
    new Gauge({
      name: 'meshlet_apicache_cached_bytes',
      help: 'JSON bytes held in the apiserver cache (memory), all resources.',
      registers: [registry],
      collect() {
        this.set(src.cache().reduce((n, r) => n + r.bytes, 0));
      },
    });
    new Gauge({
      name: 'meshlet_apicache_disk_ok',
      help: '1 while the cache is persisted to disk; 0 in memory-only mode after a write error (e.g. disk full).',
      registers: [registry],
      collect() {
        this.set(src.diskOk());
      },
    });
    new Gauge({
      name: 'meshlet_apicache_watches',
      help: 'Client watches open through the edge server: streaming from an apiserver, or held open from the cache.',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const w = src.watches();
        this.set({ state: 'upstream' }, w.upstream);
        this.set({ state: 'held' }, w.held);
      },
    });
    this.requests = new Counter({
      name: 'meshlet_apicache_requests_total',
      help: 'Requests to the edge server by verb and by what served them (upstream, cache, local, error).',
      labelNames: ['verb', 'served'],
      registers: [registry],
    });
    this.diskErrors = new Counter({
      name: 'meshlet_apicache_disk_errors_total',
      help: 'Failed writes of the persistent cache (each switches to memory-only mode until a retry succeeds).',
      registers: [registry],
    });
    this.corruptFiles = new Counter({
      name: 'meshlet_apicache_corrupt_files_total',
      help: 'Cache snapshot files or journal tails found corrupt at load and discarded.',
      registers: [registry],
    });
    this.overflow = new Counter({
      name: 'meshlet_apicache_overflow_total',
      help: 'Objects or lists not cached because apicache.maxCacheBytes was reached.',
      registers: [registry],
    });
    this.watchResumes = new Counter({
      name: 'meshlet_apicache_watch_resumes_total',
      help: 'Held watches resumed upstream after an outage, by result (resumed, expired = told to re-list, failed).',
      labelNames: ['result'],
      registers: [registry],
    });
  }
}
