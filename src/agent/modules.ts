import type { Registry as MetricsRegistry } from 'prom-client';
import { CloudReachability } from '../apicache/reachability.ts';
import type { Config } from '../config/schema.ts';
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
 * one line here; a module reads the registry and its config slice and nothing else. Modules
 * are imported only when enabled: a disabled part costs no memory (the apiserver client and
 * the X.509 library alone are tens of MiB).
 */
export async function createModules(ctx: ModuleContext): Promise<AgentModule[]> {
  const modules: AgentModule[] = [];
  const { config } = ctx;
  ctx.cloud ??= new CloudReachability();
  // The apiserver cache first: the others may read through it and follow ctx.cloud.
  if (config.apicache.enabled) modules.push((await import('../apicache/module.ts')).createApicacheModule(ctx));
  const intercepting = config.proxy.enabled && config.proxy.interception.mode === 'iptables';
  const iptables = intercepting ? await import('../../proxy/iptables/module.ts') : undefined;
  // The interface and its addresses first: DNS and the listeners bind them.
  if (iptables) modules.push(new iptables.HostNetworkModule({ config, logger: ctx.logger }));
  if (config.dns.enabled) modules.push((await import('../../dns/module.ts')).createDnsModule(ctx));
  if (config.proxy.enabled) {
    // The EAA Service (eaa.openness) is node-local: this node's proxy sends it to this agent's EAA.
    const localSlices = config.eaa.enabled ? (await import('../eaa/local-service.ts')).eaaLocalSlices(config) : undefined;
    const proxy = (await import('../../proxy/module.ts')).createProxyModule({ ...ctx, localSlices });
    modules.push(proxy);
    if (iptables) modules.push(new iptables.InterceptModule({ config, proxy, logger: ctx.logger }));
  }
  if (config.eaa.enabled) modules.push((await import('../eaa/module.ts')).createEaaModule(ctx));
  if (config.witness.enabled) modules.push((await import('../witness/module.ts')).createWitnessModule(ctx));
  return modules;
}
