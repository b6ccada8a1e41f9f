import { isIP } from 'node:net';
import type { AgentModule } from '../agent/module.ts';
import type { ModuleContext } from '../agent/modules.ts';
import { ConsumerHub } from './consumers.ts';
import { EaaCore } from './core.ts';
import { EaaMetrics } from './metrics.ts';
import { type PeerInfo, PeerMesh } from './peers.ts';
import { type CertificateAuthority, issueCertificate, loadOrCreateCa } from './pki.ts';
import { NotificationRouter } from './router.ts';
import { EaaServer, PEER_NAMESPACE } from './server.ts';
import { FileRecordStore, MemoryRecordStore, type RecordStore } from './store.ts';

/** Tombstones older than this are dropped; every peer has pulled them long before. */
const TOMBSTONE_TTL_MS = 7 * 86_400_000;

export interface EaaModule extends AgentModule {
  readonly core: EaaCore;
  /** Set once started. */
  readonly server: EaaServer | undefined;
  readonly peers: PeerMesh | undefined;
  readonly ca: CertificateAuthority | undefined;
  readonly hub: ConsumerHub;
}

/**
 * The 'eaa' agent module: the OpenNESS EAA API for this node's apps, state replicated to every
 * other node's agent, notifications routed locally first (docs/eaa.md).
 */
export function createEaaModule(ctx: ModuleContext): EaaModule {
  const cfg = ctx.config.eaa;
  const node = ctx.config.node.name;
  const child = (file: string) => ctx.logger.child({ module: `eaa/${file}` });
  const log = child('module');
  const store: RecordStore =
    cfg.stateFile === '' ? new MemoryRecordStore() : new FileRecordStore({ path: cfg.stateFile, logger: child('store') });
  let peers: PeerMesh | undefined;
  let server: EaaServer | undefined;
  let ca: CertificateAuthority | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  const core = new EaaCore({ node, store, logger: child('core'), onLocalWrite: (rec) => peers?.push(rec) });
  const hub = new ConsumerHub({
    logger: child('consumers'),
    maxBufferedBytes: cfg.maxSocketBufferBytes,
    onConnect: (cn) => void core.rehome(cn),
  });
  const metrics = new EaaMetrics(ctx.metrics, {
    counts: () => core.counts(),
    websocketClients: () => hub.size,
    peerQueue: () => peers?.status() ?? [],
  });
  const router = new NotificationRouter({
    core,
    hub,
    metrics,
    logger: child('router'),
    forward: (to, env) => peers?.forward(to, env),
  });

  const peerList = (): PeerInfo[] => {
    if (cfg.peers.length > 0) {
      return cfg.peers.map((p) => {
        const i = p.indexOf('=');
        return { name: p.slice(0, i), url: p.slice(i + 1) };
      });
    }
    const out: PeerInfo[] = [];
    for (const n of ctx.registry.nodes()) {
      const ip = n.addresses.find((a) => a.type === 'InternalIP')?.address;
      if (n.name === node || ip === undefined) continue;
      out.push({ name: n.name, url: `https://${isIP(ip) === 6 ? `[${ip}]` : ip}:${cfg.peerPort}` });
    }
    return out;
  };

  return {
    name: 'eaa',
    core,
    hub,
    get server() {
      return server;
    },
    get peers() {
      return peers;
    },
    get ca() {
      return ca;
    },
    async start() {
      await store.load();
      ca = await loadOrCreateCa({ ...cfg.ca, logger: log });
      const ips = isIP(cfg.address) ? [cfg.address] : [];
      const serverCert = await issueCertificate(ca, {
        commonName: cfg.serverNames[0] ?? 'eaa.openness',
        dnsNames: cfg.serverNames,
        ipAddresses: ips,
      });
      const peerAddress = cfg.peerAddress === '' ? cfg.address : cfg.peerAddress;
      const identity = await issueCertificate(ca, {
        commonName: `${PEER_NAMESPACE}:${node}`,
        ipAddresses: isIP(peerAddress) && peerAddress !== '0.0.0.0' && peerAddress !== '::' ? [peerAddress] : [],
      });
      peers = new PeerMesh({
        node,
        address: peerAddress,
        port: cfg.peerPort,
        identity,
        caPem: ca.certPem,
        peers: peerList,
        syncIntervalMs: cfg.syncIntervalMs,
        timeoutMs: cfg.peerTimeoutMs,
        queueLimit: cfg.peerQueueLimit,
        core,
        router: () => router,
        metrics,
        logger: child('peers'),
      });
      server = new EaaServer({
        address: cfg.address,
        port: cfg.port,
        authPort: cfg.authPort,
        authEnabled: cfg.authEnabled,
        errorStatus: cfg.errorStatus,
        maxBodyBytes: cfg.maxBodyBytes,
        maxNotificationsPerSecond: cfg.maxNotificationsPerSecond,
        certTtlMs: cfg.ca.certTtlMs,
        ca,
        serverCert,
        core,
        hub,
        router,
        metrics,
        logger: child('server'),
      });
      await peers.start();
      await server.start();
      expiryTimer = setInterval(() => store.expire(Date.now() - TOMBSTONE_TTL_MS), 3_600_000);
      expiryTimer.unref();
    },
    async stop() {
      if (expiryTimer) clearInterval(expiryTimer);
      hub.close();
      await server?.stop();
      await peers?.stop();
      await store.flush().catch((err: unknown) => log.error({ err }, 'EAA state not saved at shutdown'));
    },
    ready: () => server?.listening === true && peers?.listening === true,
    status: () => ({
      port: server?.port ?? 0,
      authPort: server?.authPort ?? 0,
      peerPort: peers?.port ?? 0,
      ...core.counts(),
      websocketClients: hub.size,
      peers: peers?.status() ?? [],
    }),
  };
}
