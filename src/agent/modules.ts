import type { Registry as MetricsRegistry } from 'prom-client';
import { createDnsModule } from '../../dns/module.ts';
import { createProxyModule } from '../../proxy/module.ts';
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
}

/**
 * The agent's data-plane modules, in start order (stopped in reverse). Each capability adds
 * one line here; a module reads the registry and its config slice and nothing else.
 */
export function createModules(_ctx: ModuleContext): AgentModule[] {
  const modules: AgentModule[] = [];
  if (_ctx.config.dns.enabled) modules.push(createDnsModule(_ctx));
  if (_ctx.config.proxy.enabled) modules.push(createProxyModule(_ctx));
  return modules;
}
