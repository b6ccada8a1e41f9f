import type { Config } from '../config/schema.ts';
import { startController } from '../controller/run.ts';
import { createLogger } from '../log.ts';
import { onShutdownSignals } from './signals.ts';

/**
 * `meshlet controller`: the thin control plane (src/controller/, docs/node-status.md): EdgeNode
 * phases from the cloud's and the witnesses' view, eviction guard for CutOff nodes, optional
 * out-of-service failover, leader election, and the admin endpoint.
 */
export async function runController(config: Config): Promise<void> {
  const logger = createLogger({ level: config.log.level });
  const handle = await startController(config, logger);
  onShutdownSignals(() => handle.stop(), logger);
}
