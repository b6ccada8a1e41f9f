import type { AgentModule } from '../src/agent/module.ts';
import type { ModuleContext } from '../src/agent/modules.ts';
import { CacheHandler } from './cache/handler.ts';
import { buildChain } from './chain.ts';
import { ClusterHandler } from './cluster/handler.ts';
import { ClusterZone } from './cluster/zone.ts';
import { ForwardHandler } from './forward/handler.ts';
import { UpstreamTransport } from './forward/transport.ts';
import { parseUpstream, readResolvConf, type Upstream } from './forward/upstreams.ts';
import { DnsMetrics } from './metrics.ts';
import { DnsServer } from './server.ts';

/**
 * The 'dns' agent module: the cluster zone kept in step with the registry, the handler chain
 * (cluster → cache → forward, dns/chain.ts) and the UDP/TCP server.
 */
export function createDnsModule(ctx: ModuleContext): AgentModule & { readonly server: DnsServer; readonly zone: ClusterZone } {
  const cfg = ctx.config.dns;
  const log = ctx.logger.child({ module: 'dns/module' });
  const zone = new ClusterZone({
    domain: ctx.config.cluster.domain,
    ttl: cfg.ttl,
    nsAddress: cfg.address,
    maxUdpSize: cfg.maxUdpSize,
    logger: ctx.logger.child({ module: 'dns/cluster' }),
  });
  let cache: CacheHandler | undefined;
  const metrics = new DnsMetrics(
    ctx.metrics,
    () => zone.size,
    () => cache?.size ?? 0,
  );
  cache = new CacheHandler({
    ...cfg.cache,
    maxUdpSize: cfg.maxUdpSize,
    metrics,
    // Before the chain only names the cluster zone can never claim: not the zone itself (an
    // ExternalName's target may be forwarded), not reverse names (a new service IP's PTR).
    fastEligible: (q) => !zone.contains(q.name) && !/(^|\.)(in-addr|ip6)\.arpa$/.test(q.name),
  });
  const cacheRef = cache;
  const transport = new UpstreamTransport();
  const forward = new ForwardHandler({
    upstreams: upstreamsFrom(cfg, log),
    transport,
    timeoutMs: cfg.timeoutMs,
    maxConcurrent: cfg.maxConcurrentForwards,
    udpSize: cfg.maxUdpSize,
    metrics,
    logger: ctx.logger.child({ module: 'dns/forward' }),
  });
  const handlers = buildChain({ cluster: new ClusterHandler(zone, cfg.maxUdpSize), cache, forward });
  const server = new DnsServer({
    address: cfg.address,
    port: cfg.port,
    fast: (key) => zone.fast(key),
    cached: (q) => cacheRef.reply(q),
    handlers,
    maxUdpSize: cfg.maxUdpSize,
    tcpIdleTimeoutMs: cfg.tcp.idleTimeoutMs,
    maxTcpConnections: cfg.tcp.maxConnections,
    metrics,
    logger: ctx.logger.child({ module: 'dns/server' }),
  });
  let unsubscribe: (() => void) | undefined;

  return {
    name: 'dns',
    server,
    zone,
    async start() {
      zone.rebuild(ctx.registry);
      unsubscribe = ctx.registry.subscribe((update, registry) => zone.apply(update, registry));
      await server.start();
      if (forward.upstreams.length === 0) log.warn('no upstream resolvers: names outside the cluster get SERVFAIL');
    },
    async stop() {
      unsubscribe?.();
      await server.stop();
      transport.close();
    },
    ready: () => server.listening,
    status: () => ({
      address: cfg.address,
      port: server.port,
      domain: zone.domain,
      names: zone.size,
      cacheEntries: cache?.size ?? 0,
      upstreams: forward.upstreams.map((u) => ({ upstream: u.label, healthy: u.healthy })),
    }),
  };
}

function upstreamsFrom(cfg: ModuleContext['config']['dns'], log: ModuleContext['logger']): Upstream[] {
  let texts = cfg.upstreams;
  if (texts.length === 0) {
    try {
      texts = readResolvConf(cfg.resolvConf);
    } catch (err) {
      log.warn({ err, path: cfg.resolvConf }, 'cannot read resolv.conf for upstream resolvers');
      texts = [];
    }
  }
  const out: Upstream[] = [];
  for (const text of texts) {
    const upstream = parseUpstream(text);
    if (!upstream) log.warn({ upstream: text }, 'ignoring an invalid upstream');
    // Forwarding to ourselves would loop (CoreDNS has a plugin, `loop`, for this).
    else if (upstream.host === cfg.address && upstream.port === cfg.port)
      log.warn({ upstream: text }, 'ignoring an upstream that is this server');
    else out.push(upstream);
  }
  return out;
}
