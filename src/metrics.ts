import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { VERSION } from './version.ts';

/**
 * One Prometheus registry per agent (not prom-client's global one), so tests can run several
 * agents in one process and every module registers its metrics on the registry it is given.
 * Names follow `meshlet_<module>_<what>`, matching the module's folder and config key.
 */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: 'meshlet_build_info',
    help: 'Always 1; the labels tell the version and Node.js runtime.',
    labelNames: ['version', 'node'],
    registers: [registry],
  });
  info.set({ version: VERSION, node: process.version }, 1);
  return registry;
}
