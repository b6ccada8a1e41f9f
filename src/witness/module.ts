import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { Counter, Gauge, type Registry as MetricsRegistry } from 'prom-client';
import type { AgentModule } from '../agent/module.ts';
import type { CloudSignal } from '../apicache/reachability.ts';
import type { Config } from '../config/schema.ts';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import { createKubeConnection, type KubeConnection } from '../kube/connection.ts';
import { KubeStatusError, kubeRequest } from '../kube/http.ts';
import type { Logger } from '../log.ts';
import type { ServiceRegistry } from '../registry/registry.ts';
import { VERSION } from '../version.ts';
import { KeyRing, loadClusterKey } from './auth.ts';
import {
  type Ack,
  type CloudView,
  type Probe,
  type Report,
  readDatagram,
  reportLeaseName,
  type Sighting,
  signAck,
  signProbe,
  signReport,
} from './report.ts';

export interface WitnessOptions {
  config: Config;
  registry: ServiceRegistry;
  metrics: MetricsRegistry;
  logger: Logger;
  cloud?: CloudSignal;
  /** Tests: a ready key instead of witness.keyFile, a connection instead of the kubeconfig. */
  clusterKey?: Buffer;
  conn?: KubeConnection;
}

interface PeerState {
  node: string;
  address: string;
  lastHeard?: number;
  rttMs?: number;
  cloud?: CloudView;
  version?: string;
  probes: number;
  failures: number;
}

interface Pending {
  peer: string;
  sentAt: number;
  timer: NodeJS.Timeout;
}

/**
 * The agent as a witness: probes its peers' agents over the node network (UDP, HMAC-signed
 * probe and acknowledgement, a fresh nonce each time) and publishes what it saw as one Lease,
 * `witness-<node>` in witness.namespace, through the apiserver (the local cache when the
 * kubeconfig points there). The controller reads those reports to tell CutOff from Unreachable.
 */
export class WitnessModule implements AgentModule {
  readonly name = 'witness';
  readonly #opts: WitnessOptions;
  readonly #cfg: Config['witness'];
  readonly #self: string;
  readonly #log: Logger;
  readonly #peers = new Map<string, PeerState>();
  readonly #pending = new Map<string, Pending>();
  #ring: { key: string; targets: { node: string; address: string }[] } | undefined;
  #keys: KeyRing | undefined;
  #socket: Socket | undefined;
  #conn: KubeConnection | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #reportTimer: NodeJS.Timeout | undefined;
  #reporting = false;
  #lastReport: { at?: string; ok: boolean; error?: string; bytes: number } = { ok: false, bytes: 0 };
  #port = 0;
  readonly #m: {
    probes: Counter<'result'>;
    rejected: Counter<'reason'>;
    reports: Counter<'result'>;
    reportBytes: Gauge;
    peersHeard: Gauge;
    acks: Counter;
  };

  constructor(opts: WitnessOptions) {
    this.#opts = opts;
    this.#cfg = opts.config.witness;
    this.#self = opts.config.node.name;
    this.#log = opts.logger.child({ module: 'witness/module' });
    const registers = [opts.metrics];
    this.#m = {
      probes: new Counter({
        name: 'meshlet_witness_probes_total',
        help: 'Probes sent to peers, by result (ok, timeout, send-error).',
        labelNames: ['result'],
        registers,
      }),
      rejected: new Counter({
        name: 'meshlet_witness_rejected_total',
        help: 'Datagrams rejected: malformed, bad-signature, wrong-node, unexpected (no such probe outstanding).',
        labelNames: ['reason'],
        registers,
      }),
      acks: new Counter({ name: 'meshlet_witness_acks_sent_total', help: 'Acknowledgements sent to probing peers.', registers }),
      reports: new Counter({
        name: 'meshlet_witness_reports_total',
        help: 'Report writes, by result (ok, error).',
        labelNames: ['result'],
        registers,
      }),
      reportBytes: new Gauge({ name: 'meshlet_witness_report_bytes', help: 'Size of the last report body (bytes).', registers }),
      peersHeard: new Gauge({
        name: 'meshlet_witness_peers_heard',
        help: 'Witnessed peers heard within three probe intervals.',
        registers,
      }),
    };
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<void> {
    this.#keys = new KeyRing(this.#opts.clusterKey ?? loadClusterKey(this.#cfg.keyFile));
    const kubeconfig = this.#cfg.kubeconfig || this.#opts.config.source.kubernetes.kubeconfig;
    this.#conn = this.#opts.conn ?? createKubeConnection({ kubeconfig, context: this.#opts.config.source.kubernetes.context });
    const socket = createSocket({ type: this.#cfg.address.includes(':') ? 'udp6' : 'udp4' });
    socket.on('message', (buf, rinfo) => this.#onMessage(buf, rinfo));
    socket.on('error', (err) => this.#log.warn({ err: errorMessage(err) }, 'witness socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) =>
        reject(
          new MeshletError(
            ErrorCodes.WITNESS_BIND,
            `cannot bind ${this.#cfg.address}:${this.#cfg.port}/udp: ${errorMessage(err)}`,
          ),
        ),
      );
      socket.bind(this.#cfg.port, this.#cfg.address, () => resolve());
    });
    this.#socket = socket;
    this.#port = socket.address().port;
    this.#probeTimer = setInterval(() => this.#probeAll(), this.#cfg.probeIntervalMs);
    this.#reportTimer = setInterval(() => void this.#report(), this.#cfg.reportIntervalMs);
    this.#probeAll();
    this.#log.info({ port: this.#port, maxPeers: this.#cfg.maxPeers, namespace: this.#cfg.namespace }, 'witness started');
  }

  async stop(): Promise<void> {
    clearInterval(this.#probeTimer);
    clearInterval(this.#reportTimer);
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** The node's own view: Down while it can reach no apiserver (the EVE "DOWN", seen from the node). */
  #cloudView(): CloudView {
    const state = this.#opts.cloud?.state;
    if (!state) return { reachable: true, known: false, since: new Date(0).toISOString() };
    return { reachable: state.reachable, known: state.known, since: state.since.toISOString() };
  }

  status(): Record<string, unknown> {
    const view = this.#cloudView();
    const phase = view.known && !view.reachable ? 'Down' : 'Up';
    const now = Date.now();
    return {
      phase,
      ...(phase === 'Down' && { cloud: `unreachable: node Down since ${view.since}` }),
      port: this.#port,
      lastReport: this.#lastReport,
      peers: [...this.#peers.values()].map((p) => ({
        node: p.node,
        address: p.address,
        heardAgoMs: p.lastHeard === undefined ? null : now - p.lastHeard,
        rttMs: p.rttMs ?? null,
        cloud: p.cloud ?? null,
        probes: p.probes,
        failures: p.failures,
      })),
    };
  }

  /** Which peers this node witnesses: all, or the next maxPeers on a hash ring of node names. */
  #targets(): { node: string; address: string }[] {
    const all: { node: string; address: string }[] = [];
    if (this.#cfg.peers.length > 0) {
      for (const entry of this.#cfg.peers) {
        const eq = entry.indexOf('=');
        all.push({ node: entry.slice(0, eq), address: entry.slice(eq + 1) });
      }
    } else {
      for (const n of this.#opts.registry.nodes()) {
        const ip = n.addresses.find((a) => a.type === 'InternalIP')?.address;
        if (ip) all.push({ node: n.name, address: ip });
      }
    }
    // The ring (a hash per node, a sort) is recomputed only when the node list changed, not on
    // every probe round: with a thousand nodes that is most of a round's CPU.
    const key = all.map((n) => `${n.node}=${n.address}`).join(',');
    if (this.#ring?.key !== key) this.#ring = { key, targets: ringSuccessors(this.#self, all, this.#cfg.maxPeers) };
    return this.#ring.targets;
  }

  #probeAll(): void {
    const keys = this.#keys;
    const socket = this.#socket;
    if (!keys || !socket) return;
    const targets = this.#targets();
    const wanted = new Set(targets.map((t) => t.node));
    for (const name of this.#peers.keys()) if (!wanted.has(name)) this.#peers.delete(name);
    for (const target of targets) {
      let peer = this.#peers.get(target.node);
      if (!peer) {
        peer = { node: target.node, address: target.address, probes: 0, failures: 0 };
        this.#peers.set(target.node, peer);
      }
      peer.address = target.address;
      const nonce = randomBytes(16).toString('base64url');
      const probe: Omit<Probe, 'mac'> = { t: 'probe', from: this.#self, to: target.node, nonce, ts: Date.now() };
      const sentAt = Date.now();
      const timer = setTimeout(() => {
        if (this.#pending.delete(nonce)) {
          this.#m.probes.inc({ result: 'timeout' });
          const p = this.#peers.get(target.node);
          if (p) p.failures++;
        }
      }, this.#cfg.probeTimeoutMs);
      timer.unref();
      this.#pending.set(nonce, { peer: target.node, sentAt, timer });
      peer.probes++;
      socket.send(signProbe(keys, probe), this.#cfg.port || this.#port, target.address, (err) => {
        if (err && this.#pending.delete(nonce)) {
          clearTimeout(timer);
          this.#m.probes.inc({ result: 'send-error' });
        }
      });
    }
    const fresh = Date.now() - 3 * this.#cfg.probeIntervalMs;
    this.#m.peersHeard.set([...this.#peers.values()].filter((p) => (p.lastHeard ?? 0) >= fresh).length);
  }

  #onMessage(buf: Buffer, rinfo: RemoteInfo): void {
    const keys = this.#keys;
    if (!keys) return;
    const result = readDatagram(keys, this.#self, buf);
    if (!result.ok) {
      this.#m.rejected.inc({ reason: result.reason });
      this.#log.debug({ from: rinfo.address, reason: result.reason }, 'witness datagram rejected');
      return;
    }
    const msg = result.msg;
    if (msg.t === 'probe') {
      const ack: Omit<Ack, 'mac'> = {
        t: 'ack',
        from: this.#self,
        to: msg.from,
        nonce: msg.nonce,
        ts: Date.now(),
        cloud: this.#cloudView(),
        version: VERSION,
      };
      this.#socket?.send(signAck(keys, ack), rinfo.port, rinfo.address);
      this.#m.acks.inc();
      return;
    }
    const pending = this.#pending.get(msg.nonce);
    if (!pending || pending.peer !== msg.from) {
      this.#m.rejected.inc({ reason: 'unexpected' });
      return;
    }
    this.#pending.delete(msg.nonce);
    clearTimeout(pending.timer);
    this.#m.probes.inc({ result: 'ok' });
    const peer = this.#peers.get(msg.from);
    if (!peer) return;
    const now = Date.now();
    peer.lastHeard = now;
    peer.rttMs = now - pending.sentAt;
    peer.cloud = msg.cloud;
    peer.version = msg.version;
  }

  /** The report as it would be published now. */
  buildReport(now = Date.now()): Report {
    const peers: Sighting[] = [...this.#peers.values()]
      .sort((a, b) => (a.node < b.node ? -1 : 1))
      .map((p) => ({
        node: p.node,
        ...(p.lastHeard !== undefined && { lastHeard: new Date(p.lastHeard).toISOString() }),
        ...(p.rttMs !== undefined && { rttMs: p.rttMs }),
        ...(p.cloud && { cloud: p.cloud }),
        ...(p.version !== undefined && { version: p.version }),
      }));
    return { v: 1, node: this.#self, ts: new Date(now).toISOString(), agentVersion: VERSION, cloud: this.#cloudView(), peers };
  }

  async #report(): Promise<void> {
    const keys = this.#keys;
    const conn = this.#conn;
    if (!keys || !conn || this.#reporting) return;
    this.#reporting = true;
    const report = this.buildReport();
    const annotations = signReport(keys, report);
    const bytes = Object.values(annotations).reduce((n, v) => n + v.length, 0);
    this.#m.reportBytes.set(bytes);
    const name = reportLeaseName(this.#self);
    const ns = this.#cfg.namespace;
    const path = `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`;
    const spec = {
      holderIdentity: this.#self,
      leaseDurationSeconds: Math.max(1, Math.ceil((3 * this.#cfg.reportIntervalMs) / 1000)),
      renewTime: microTime(new Date()),
    };
    try {
      try {
        await kubeRequest(conn, 'PATCH', path, { metadata: { annotations }, spec }, { timeoutMs: this.#cfg.reportIntervalMs });
      } catch (err) {
        if (!(err instanceof KubeStatusError && err.status === 404)) throw err;
        await kubeRequest(
          conn,
          'POST',
          `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
          {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: {
              name,
              namespace: ns,
              labels: { 'app.kubernetes.io/managed-by': 'meshlet', 'meshlet.io/witness': this.#self },
              annotations,
            },
            spec,
          },
          { timeoutMs: this.#cfg.reportIntervalMs },
        );
      }
      this.#m.reports.inc({ result: 'ok' });
      this.#lastReport = { at: report.ts, ok: true, bytes };
    } catch (err) {
      this.#m.reports.inc({ result: 'error' });
      // Expected while the cloud is away (the cache refuses writes): the peers speak for us then.
      this.#log.debug({ err: errorMessage(err) }, 'witness report not written');
      this.#lastReport = { ...this.#lastReport, ok: false, error: errorMessage(err), bytes };
    } finally {
      this.#reporting = false;
    }
  }
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * The next `k` nodes after `self` on a ring ordered by sha256(name) (k = 0: all others). Each
 * node is then witnessed by about k peers, whatever the cluster size, and reports stay O(k).
 */
export function ringSuccessors<T extends { node: string }>(self: string, nodes: T[], k: number): T[] {
  const hash = (s: string) => createHash('sha256').update(s).digest('hex');
  const others = nodes.filter((n) => n.node !== self);
  if (k === 0 || others.length <= k) return others;
  const selfHash = hash(self);
  const ring = others.map((n) => ({ n, h: hash(n.node) })).sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0));
  const start = ring.findIndex((r) => r.h > selfHash);
  const out: T[] = [];
  for (let i = 0; i < k; i++) {
    const r = ring[((start === -1 ? 0 : start) + i) % ring.length];
    if (r) out.push(r.n);
  }
  return out;
}

export function createWitnessModule(ctx: {
  config: Config;
  registry: ServiceRegistry;
  metrics: MetricsRegistry;
  logger: Logger;
  cloud?: CloudSignal;
}): WitnessModule {
  return new WitnessModule(ctx);
}
