import type { Registry as MetricsRegistry } from 'prom-client';
import { createDnsModule } from '../../dns/module.ts';
import { HostNetworkModule, InterceptModule } from '../../proxy/iptables/module.ts';
import { createProxyModule } from '../../proxy/module.ts';
import { createApicacheModule } from '../apicache/module.ts';
import { CloudReachability } from '../apicache/reachability.ts';
import type { Config } from '../config/schema.ts';
import { createEaaModule } from '../eaa/module.ts';
import type { Logger } from '../log.ts';
import type { ServiceRegistry } from '../registry/registry.ts';
import type { AgentModule } from './module.ts';

/** What every module factory is given: its config slice comes from `config`, nothing else is shared. */
export interface ModuleContext {
  config: Config;
  registry: ServiceRegistry;
  metrics: MetricsRegistry;
  logger: Logger;
  /** Whether the control plane is reachable (driven by the apiserver cache; `known: false` without it). */
  cloud?: CloudReachability;
}

/**
 * The agent's data-plane modules, in start order (stopped in reverse). Each capability adds
 * one line here; a module reads the registry and its config slice and nothing else.
 */
export function createModules(ctx: ModuleContext): AgentModule[] {
  const modules: AgentModule[] = [];
  ctx.cloud ??= new CloudReachability();
  // The apiserver cache first: the others may read through it and follow ctx.cloud.
  if (ctx.config.apicache.enabled) modules.push(createApicacheModule(ctx));
  const intercepting = ctx.config.proxy.enabled && ctx.config.proxy.interception.mode === 'iptables';
  // The interface and its addresses first: DNS and the listeners bind them.
  if (intercepting) modules.push(new HostNetworkModule({ config: ctx.config, logger: ctx.logger }));
  if (ctx.config.dns.enabled) modules.push(createDnsModule(ctx));
  if (ctx.config.proxy.enabled) {
    const proxy = createProxyModule(ctx);
    modules.push(proxy);
    if (intercepting) modules.push(new InterceptModule({ config: ctx.config, proxy, logger: ctx.logger }));
  }
  if (ctx.config.eaa.enabled) modules.push(createEaaModule(ctx));
  return modules;
}
