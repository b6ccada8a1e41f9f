import { AdminServer } from '../admin/server.ts';
import type { Config } from '../config/schema.ts';
import { createLogger } from '../log.ts';
import { createMetricsRegistry } from '../metrics.ts';
import { VERSION } from '../version.ts';
import { onShutdownSignals } from './signals.ts';

/**
 * `meshlet controller`: the thin control plane. Its work (EdgeNode status, eviction guard)
 * arrives in its own issue; for now it serves its admin endpoint and shuts down cleanly.
 */
export async function runController(config: Config): Promise<void> {
  const logger = createLogger({ level: config.log.level });
  const admin = new AdminServer({
    address: config.admin.address,
    port: config.admin.port,
    metrics: createMetricsRegistry(),
    healthy: () => true,
    notReadyReasons: () => [],
    views: { status: () => ({ role: 'controller', version: VERSION }) },
    logger,
  });
  await admin.start();
  onShutdownSignals(() => admin.stop(), logger);
  logger.info({ version: VERSION, admin: admin.url }, 'controller running (no controllers yet)');
}
