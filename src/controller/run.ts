import { hostname } from 'node:os';
import { AdminServer } from '../admin/server.ts';
import type { Config } from '../config/schema.ts';
import { createKubeConnection, type KubeConnection } from '../kube/connection.ts';
import type { Logger } from '../log.ts';
import { createMetricsRegistry } from '../metrics.ts';
import { VERSION } from '../version.ts';
import { KeyRing, loadClusterKey } from '../witness/auth.ts';
import { EdgeNodeController } from './controller.ts';
import { installCrd } from './crd.ts';
import { LeaderElector } from './leader.ts';

export interface ControllerHandle {
  readonly controller: EdgeNodeController;
  readonly elector: LeaderElector | undefined;
  readonly admin: AdminServer;
  stop(): Promise<void>;
}

/**
 * `meshlet controller`: admin endpoint, optional CRD install, leader election, EdgeNode controller.
 * Every replica watches; only the leader writes.
 */
export async function startController(
  config: Config,
  logger: Logger,
  opts: { conn?: KubeConnection; clusterKey?: Buffer } = {},
): Promise<ControllerHandle> {
  const log = logger.child({ module: 'controller/run' });
  const metrics = createMetricsRegistry();
  const kubeconfig = config.controller.kubeconfig || config.source.kubernetes.kubeconfig;
  const conn = opts.conn ?? createKubeConnection({ kubeconfig, context: config.source.kubernetes.context });
  const keys = new KeyRing(opts.clusterKey ?? loadClusterKey(config.witness.keyFile));
  if (config.controller.installCrd) await installCrd(conn);
  const le = config.controller.leaderElection;
  const elector = le.enabled
    ? new LeaderElector({
        conn,
        identity: le.identity || process.env.MESHLET_POD_NAME || `${hostname()}-${process.pid}`,
        namespace: le.leaseNamespace,
        name: le.leaseName,
        leaseDurationMs: le.leaseDurationMs,
        renewDeadlineMs: le.renewDeadlineMs,
        retryPeriodMs: le.retryPeriodMs,
        logger,
        metrics,
      })
    : undefined;
  const controller = new EdgeNodeController({
    conn,
    config,
    keys,
    logger,
    metrics,
    isLeader: () => elector?.isLeader ?? true,
  });
  const admin = new AdminServer({
    address: config.admin.address,
    port: config.admin.port,
    metrics,
    healthy: () => true,
    notReadyReasons: () => [],
    views: {
      status: () => ({ role: 'controller', version: VERSION, identity: elector?.identity ?? null, ...controller.status() }),
      edgenodes: () => controller.views(),
    },
    logger,
  });
  await admin.start();
  controller.start();
  elector?.start();
  log.info({ version: VERSION, admin: admin.url, server: conn.server.origin, leaderElection: le.enabled }, 'controller running');
  let stopped = false;
  return {
    controller,
    elector,
    admin,
    async stop() {
      if (stopped) return;
      stopped = true;
      await elector?.stop();
      await controller.stop();
      await admin.stop();
    },
  };
}
