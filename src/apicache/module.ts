import { readFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import type { Registry as MetricsRegistry } from 'prom-client';
import type { AgentModule } from '../agent/module.ts';
import type { Config } from '../config/schema.ts';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import { createKubeConnection } from '../kube/connection.ts';
import type { Logger } from '../log.ts';
import { AccessGrants, DiscoveryCache } from './grants.ts';
import { ApicacheMetrics } from './metrics.ts';
import { Persister } from './persist.ts';
import { CloudReachability } from './reachability.ts';
import { EdgeServer } from './server.ts';
import { CacheStore } from './store.ts';
import { UpstreamPool } from './upstreams.ts';

export type ApicacheSettings = Config['apicache'];

export interface ApicacheModuleOptions {
  config: Config;
  metrics: MetricsRegistry;
  logger: Logger;
  /** The agent-wide reachability signal this module drives (ModuleContext.cloud). */
  cloud?: CloudReachability;
  /** Tests: -1 opens the plain-HTTP listener on a free port. */
  plainHttpPortOverride?: number;
}

/**
 * The apiserver caching proxy as an agent module (issue 6; design in docs/apicache.md).
 * start(): load the persisted cache (corrupt files skipped), probe the upstreams once, listen.
 * Ready once listening: offline it serves from the cache, which is the point.
 */
export class ApicacheModule implements AgentModule {
  readonly name = 'apicache';
  /** The agent's own Kubernetes source may read through this cache: it starts first. */
  readonly beforeSource = true;
  readonly cloud: CloudReachability;
  readonly #settings: ApicacheSettings;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #registry: MetricsRegistry;
  readonly #plainPort: number;
  #pool: UpstreamPool | undefined;
  #store: CacheStore | undefined;
  #persister: Persister | undefined;
  #server: EdgeServer | undefined;
  #started = false;

  constructor(opts: ApicacheModuleOptions) {
    this.#config = opts.config;
    this.#settings = opts.config.apicache;
    this.#log = opts.logger.child({ module: 'apicache/module' });
    this.#registry = opts.metrics;
    this.cloud = opts.cloud ?? new CloudReachability();
    this.#plainPort = opts.plainHttpPortOverride ?? this.#settings.plainHttpPort;
  }

  /** The edge server's HTTPS port (useful with port 0). */
  get port(): number {
    return this.#server?.httpsPort ?? 0;
  }

  get plainHttpPort(): number {
    return this.#server?.httpPort ?? 0;
  }

  async start(): Promise<void> {
    const s = this.#settings;
    if (!s.tlsCertFile || !s.tlsKeyFile) {
      throw new MeshletError(ErrorCodes.APICACHE_CONFIG, 'apicache.tlsCertFile and apicache.tlsKeyFile are required');
    }
    let cert: Buffer;
    let key: Buffer;
    try {
      cert = readFileSync(s.tlsCertFile);
      key = readFileSync(s.tlsKeyFile);
    } catch (err) {
      throw new MeshletError(ErrorCodes.APICACHE_CONFIG, `cannot read the edge server's certificate: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    const conn = createKubeConnection({
      kubeconfig: s.kubeconfig || this.#config.source.kubernetes.kubeconfig,
      context: s.context || (s.kubeconfig ? '' : this.#config.source.kubernetes.context),
    });
    const proxyOptions: RequestOptions = await conn.requestOptions();
    const urls = (s.upstreams.length > 0 ? s.upstreams : [conn.server.toString()]).map((u) => new URL(u));
    for (const u of urls) {
      const host = u.hostname.replace(/^\[|\]$/g, '');
      if (host === s.address && Number(u.port || 443) === s.port && s.port !== 0) {
        throw new MeshletError(
          ErrorCodes.APICACHE_CONFIG,
          `apicache upstream ${u.origin} is the edge server itself: point apicache.kubeconfig at the real apiserver`,
        );
      }
    }
    let clientCa: Buffer | string | (Buffer | string)[] | undefined = proxyOptions.ca as Buffer | string | undefined;
    if (s.clientCaFile) {
      try {
        clientCa = readFileSync(s.clientCaFile);
      } catch (err) {
        throw new MeshletError(ErrorCodes.APICACHE_CONFIG, `cannot read apicache.clientCaFile: ${errorMessage(err)}`, {
          cause: err,
        });
      }
    }
    const anonymous: RequestOptions = {};
    if (proxyOptions.ca !== undefined) anonymous.ca = proxyOptions.ca;
    if (proxyOptions.rejectUnauthorized !== undefined) anonymous.rejectUnauthorized = proxyOptions.rejectUnauthorized;

    let metrics: ApicacheMetrics | undefined;
    const persister = new Persister({
      dir: s.cacheDir,
      logger: this.#log,
      onCorrupt: (n) => metrics?.corruptFiles.inc(n),
      onDiskError: () => metrics?.diskErrors.inc(),
    });
    this.#persister = persister;
    const store = new CacheStore({
      persister,
      logger: this.#log,
      maxBytes: s.maxCacheBytes,
      onOverflow: () => metrics?.overflow.inc(),
    });
    this.#store = store;
    const grants = new AccessGrants(persister);
    const discovery = new DiscoveryCache(persister);
    const pool = new UpstreamPool({
      urls,
      credentials: { proxy: proxyOptions, anonymous },
      lbMode: s.lbMode,
      intervalMs: s.healthCheckIntervalMs,
      timeoutMs: s.healthCheckTimeoutMs,
      unhealthyThreshold: s.unhealthyThreshold,
      healthyThreshold: s.healthyThreshold,
      cloud: this.cloud,
      logger: this.#log,
    });
    this.#pool = pool;
    metrics = new ApicacheMetrics(this.#registry, {
      cloudReachable: () => (pool.reachable ? 1 : 0),
      upstreams: () => pool.upstreams.map((u) => ({ url: u.url.origin, healthy: u.healthy })),
      cache: () => store.stats(),
      diskOk: () => (persister.ok ? 1 : 0),
      watches: () => this.#server?.watchCounts() ?? { upstream: 0, held: 0 },
    });

    // Restore what the last run persisted (a corrupt file is counted, logged and skipped).
    const loaded = persister.load();
    let restored = 0;
    for (const [name, c] of loaded) {
      if (name === 'grants') grants.restore(c.entries);
      else if (name === 'discovery') discovery.restore(c.entries);
      else if (store.restore(name, c.header, c.entries)) restored++;
    }
    this.#log.info({ dir: s.cacheDir, resources: restored, bytes: store.bytes }, 'apiserver cache loaded');

    this.cloud.on('change', (st) =>
      this.#log[st.reachable ? 'info' : 'warn'](
        { healthy: st.healthy },
        st.reachable ? 'cloud reachable' : 'cloud UNREACHABLE: serving from the cache',
      ),
    );
    await pool.start();
    const server = new EdgeServer({
      address: s.address,
      port: s.port,
      plainHttpPort: this.#plainPort,
      tls: { cert, key, clientCa },
      resources: new Set(s.resources),
      pool,
      store,
      grants,
      discovery,
      metrics,
      logger: this.#log,
      watch: { offlineBookmarkIntervalMs: s.offlineBookmarkIntervalMs, resumeJitterMs: s.resumeJitterMs },
      impersonation: s.impersonation,
      acknowledgeNodeLeaseOffline: s.acknowledgeNodeLeaseOffline,
    });
    this.#server = server;
    await server.start();
    this.#started = true;
  }

  async stop(): Promise<void> {
    this.#started = false;
    await this.#server?.stop();
    this.#pool?.stop();
    this.#persister?.stop();
  }

  ready(): boolean {
    return this.#started;
  }

  status(): Record<string, unknown> {
    const pool = this.#pool;
    return {
      cloud: this.cloud.state.known ? (this.cloud.reachable ? 'reachable' : 'unreachable') : 'unknown',
      cloudSince: this.cloud.state.since.toISOString(),
      listen: this.#server ? `${this.#settings.address}:${this.#server.httpsPort}` : undefined,
      upstreams: pool?.upstreams.map((u) => ({
        url: u.url.origin,
        healthy: u.healthy,
        since: u.lastChange.toISOString(),
        ...(u.lastError && { lastError: u.lastError }),
      })),
      cache: {
        bytes: this.#store?.bytes ?? 0,
        // What those bytes take in memory: the slabs they are packed in, dead bytes until compacted included.
        slabBytes: this.#store?.slabBytes ?? 0,
        maxBytes: this.#settings.maxCacheBytes,
        resources: this.#store?.stats() ?? [],
      },
      disk: this.#persister?.status(),
      watches: this.#server?.watchCounts(),
    };
  }
}

export function createApicacheModule(ctx: {
  config: Config;
  metrics: MetricsRegistry;
  logger: Logger;
  cloud?: CloudReachability;
}): ApicacheModule {
  return new ApicacheModule({
    config: ctx.config,
    metrics: ctx.metrics,
    logger: ctx.logger,
    ...(ctx.cloud !== undefined && { cloud: ctx.cloud }),
  });
}
