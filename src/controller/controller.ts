import { Counter, Gauge, type Registry as MetricsRegistry } from 'prom-client';
import type { Config } from '../config/schema.ts';
import { errorMessage } from '../errors.ts';
import type { KubeConnection } from '../kube/connection.ts';
import { KubeStatusError, kubeRequest } from '../kube/http.ts';
import { Reflector } from '../kube/reflector.ts';
import type { Logger } from '../log.ts';
import type { KeyRing } from '../witness/auth.ts';
import { microTime } from '../witness/module.ts';
import { REPORT_LEASE_PREFIX, type Report, readReport } from '../witness/report.ts';
import {
  type Condition,
  decidePhase,
  mergeConditions,
  PHASES,
  type Phase,
  type PhaseDecision,
  wantsOutOfService,
  wantsProtection,
} from './phase.ts';

export const EDGENODES_PATH = '/apis/meshlet.io/v1alpha1/edgenodes';
/** On a node Lease: the renewTime the controller wrote on the node's behalf (so it is not mistaken for kubelet). */
export const DELEGATED_RENEW_ANNOTATION = 'meshlet.io/delegated-renew-time';
/** On a Node: the out-of-service taint is the controller's, and it removes it when the node is heard again. */
export const OUT_OF_SERVICE_ANNOTATION = 'meshlet.io/out-of-service';
export const OUT_OF_SERVICE_TAINT = 'node.kubernetes.io/out-of-service';
export const CUTOFF_READY_REASON = 'MeshletCutOff';

interface Meta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  annotations?: Record<string, string>;
}
interface KubeNode {
  metadata?: Meta;
  spec?: { taints?: { key: string; value?: string; effect: string; timeAdded?: string }[] };
  status?: { conditions?: { type: string; status: string; reason?: string }[] };
}
interface KubeLease {
  metadata?: Meta;
  spec?: { holderIdentity?: string; renewTime?: string };
}
export interface EdgeNodeStatus {
  phase?: Phase;
  phaseSince?: string;
  cloudLastHeard?: string;
  peersLastHeard?: string;
  peers?: { node: string; lastHeard?: string; reachable: boolean }[];
  cloud?: { reachable: boolean; since: string };
  agentVersion?: string;
  conditions?: Condition[];
}
interface EdgeNode {
  metadata?: Meta;
  status?: EdgeNodeStatus;
}

interface StoredReport {
  report: Report;
  observedAt: number;
}

/** One fresh report as it concerns one node: the reporter's own view (peer undefined) or its sighting of that node. */
interface ReportSighting extends StoredReport {
  reporter: string;
  peer: Report['peers'][number] | undefined;
}

export interface EdgeNodeControllerOptions {
  conn: KubeConnection;
  config: Config;
  keys: KeyRing;
  logger: Logger;
  metrics: MetricsRegistry;
  isLeader: () => boolean;
}

export interface NodeView {
  node: string;
  phase: Phase;
  since: string;
  reason: string;
  message: string;
  protected: boolean;
  outOfService: boolean;
}

/**
 * Watches Nodes, node Leases, witness reports and EdgeNodes (on every replica, so a new leader
 * starts warm), decides each node's phase every syncIntervalMs, and, while leading, writes the
 * EdgeNode status and acts: renews a CutOff node's Lease (and Ready) on its behalf, and taints a
 * long-Unreachable node out-of-service when enabled. All state it needs after a restart is in
 * those objects (EdgeNode status, the delegated-renewal annotation, the taint annotation).
 */
export class EdgeNodeController {
  readonly #o: EdgeNodeControllerOptions;
  readonly #cfg: Config['controller'];
  readonly #log: Logger;
  readonly #nodes = new Map<string, KubeNode>();
  readonly #cloudHeard = new Map<string, { renewTime: string; at: number }>();
  readonly #reports = new Map<string, StoredReport>();
  readonly #reportRv = new Map<string, string>();
  readonly #edgeNodes = new Map<string, EdgeNode>();
  readonly #decided = new Map<string, { phase: Phase; since: number }>();
  readonly #written = new Map<string, { sig: string; at: number }>();
  readonly #delegated = new Map<string, number>();
  readonly #views = new Map<string, NodeView>();
  readonly #reflectors: Reflector<{ metadata?: Meta }>[] = [];
  #timer: NodeJS.Timeout | undefined;
  #syncing = false;
  #wasLeader = false;
  readonly #m: {
    phase: Gauge<'phase'>;
    transitions: Counter<'from' | 'to'>;
    reports: Counter<'result'>;
    rejected: Counter<'reason'>;
    renewals: Counter;
    readyRestores: Counter;
    outOfService: Counter<'action'>;
    writes: Counter<'kind' | 'result'>;
  };

  constructor(o: EdgeNodeControllerOptions) {
    this.#o = o;
    this.#cfg = o.config.controller;
    this.#log = o.logger.child({ module: 'controller/controller' });
    const registers = [o.metrics];
    this.#m = {
      phase: new Gauge({ name: 'meshlet_controller_nodes', help: 'EdgeNodes by phase.', labelNames: ['phase'], registers }),
      transitions: new Counter({
        name: 'meshlet_controller_phase_transitions_total',
        help: 'Phase changes decided while leading.',
        labelNames: ['from', 'to'],
        registers,
      }),
      reports: new Counter({
        name: 'meshlet_controller_reports_total',
        help: 'Witness reports read, by result (accepted, rejected).',
        labelNames: ['result'],
        registers,
      }),
      rejected: new Counter({
        name: 'meshlet_controller_reports_rejected_total',
        help: 'Witness reports rejected: malformed, bad-signature (not signed by the node it names), wrong-node, future.',
        labelNames: ['reason'],
        registers,
      }),
      renewals: new Counter({
        name: 'meshlet_controller_delegated_renewals_total',
        help: 'Node Lease renewals written on behalf of CutOff nodes.',
        registers,
      }),
      readyRestores: new Counter({
        name: 'meshlet_controller_ready_restores_total',
        help: 'Ready conditions set back to True on behalf of CutOff nodes.',
        registers,
      }),
      outOfService: new Counter({
        name: 'meshlet_controller_out_of_service_total',
        help: 'out-of-service taints added or removed.',
        labelNames: ['action'],
        registers,
      }),
      writes: new Counter({
        name: 'meshlet_controller_writes_total',
        help: 'apiserver writes, by kind and result.',
        labelNames: ['kind', 'result'],
        registers,
      }),
    };
  }

  start(): void {
    const { conn, logger } = this.#o;
    const common = { conn, logger, watchTimeoutSeconds: 300, backoffMaxMs: 5_000 };
    const nodeReflector = new Reflector<KubeNode>({
      ...common,
      path: '/api/v1/nodes',
      handlers: {
        replace: (items) => {
          this.#nodes.clear();
          for (const n of items) if (n.metadata?.name) this.#nodes.set(n.metadata.name, n);
        },
        upsert: (n) => {
          if (n.metadata?.name) this.#nodes.set(n.metadata.name, n);
        },
        delete: (n) => {
          const name = n.metadata?.name ?? '';
          this.#nodes.delete(name);
          this.#forget(name);
        },
      },
    });
    const leaseReflector = new Reflector<KubeLease>({
      ...common,
      path: '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases',
      handlers: {
        replace: (items) => {
          for (const l of items) this.#onNodeLease(l, true);
        },
        upsert: (l) => this.#onNodeLease(l, false),
        // A node's Lease disappears with its Node, whose own deletion cleans up.
        delete: () => {},
      },
    });
    const reportReflector = new Reflector<KubeLease>({
      ...common,
      path: `/apis/coordination.k8s.io/v1/namespaces/${this.#o.config.witness.namespace}/leases`,
      handlers: {
        replace: (items) => {
          for (const l of items) this.#onReport(l, true);
        },
        upsert: (l) => this.#onReport(l, false),
        delete: (l) => {
          const name = l.metadata?.name ?? '';
          this.#reportRv.delete(name);
          if (name.startsWith(REPORT_LEASE_PREFIX)) this.#reports.delete(name.slice(REPORT_LEASE_PREFIX.length));
        },
      },
    });
    const edgeNodeReflector = new Reflector<EdgeNode>({
      ...common,
      path: EDGENODES_PATH,
      handlers: {
        replace: (items) => {
          this.#edgeNodes.clear();
          for (const e of items) if (e.metadata?.name) this.#edgeNodes.set(e.metadata.name, e);
        },
        upsert: (e) => {
          if (e.metadata?.name) this.#edgeNodes.set(e.metadata.name, e);
        },
        delete: (e) => this.#edgeNodes.delete(e.metadata?.name ?? ''),
      },
    });
    this.#reflectors.push(nodeReflector, leaseReflector, reportReflector, edgeNodeReflector);
    for (const r of this.#reflectors) r.start();
    this.#timer = setInterval(() => void this.sync(), this.#cfg.syncIntervalMs);
  }

  /** Resolves when every watched collection has been listed once. */
  async synced(): Promise<void> {
    await Promise.all(this.#reflectors.map((r) => r.synced));
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#reflectors.map((r) => r.stop()));
  }

  views(): NodeView[] {
    return [...this.#views.values()].sort((a, b) => (a.node < b.node ? -1 : 1));
  }

  status(): Record<string, unknown> {
    return {
      leader: this.#o.isLeader(),
      reflectors: this.#reflectors.map((r) => r.status()),
      nodes: this.views(),
    };
  }

  #forget(name: string): void {
    this.#cloudHeard.delete(name);
    this.#decided.delete(name);
    this.#written.delete(name);
    this.#delegated.delete(name);
    this.#views.delete(name);
  }

  #onNodeLease(lease: KubeLease, relist: boolean): void {
    const name = lease.metadata?.name;
    if (!name) return;
    const renewTime = lease.spec?.renewTime;
    if (!renewTime) return;
    // Our own renewal on the node's behalf is not the cloud hearing the node.
    if (lease.metadata?.annotations?.[DELEGATED_RENEW_ANNOTATION] === renewTime) return;
    if (this.#cloudHeard.get(name)?.renewTime === renewTime) return;
    const now = Date.now();
    // Watched changes are dated when seen (no clock comparison with the node); a first list by the renewal itself.
    const at = relist ? Math.min(now, Date.parse(renewTime) || 0) : now;
    this.#cloudHeard.set(name, { renewTime, at });
  }

  #onReport(lease: KubeLease, relist: boolean): void {
    const name = lease.metadata?.name ?? '';
    if (!name.startsWith(REPORT_LEASE_PREFIX)) return;
    const rv = lease.metadata?.resourceVersion ?? '';
    if (this.#reportRv.get(name) === rv) return;
    this.#reportRv.set(name, rv);
    const now = Date.now();
    const result = readReport(this.#o.keys, name, lease.metadata?.annotations, { now, maxSkewMs: this.#cfg.maxClockSkewMs });
    if (!result.ok) {
      this.#m.reports.inc({ result: 'rejected' });
      this.#m.rejected.inc({ reason: result.reason });
      this.#log.warn({ lease: name, reason: result.reason }, 'witness report rejected');
      return;
    }
    this.#m.reports.inc({ result: 'accepted' });
    const ts = Date.parse(result.report.ts);
    this.#reports.set(result.report.node, { report: result.report, observedAt: relist ? Math.min(now, ts) : now });
  }

  /** One decision round over every Node; writes and acts only while leading. */
  async sync(): Promise<void> {
    if (this.#syncing) return;
    this.#syncing = true;
    try {
      const leader = this.#o.isLeader();
      if (leader && !this.#wasLeader) {
        // A new leader trusts what is stored, not what it decided while following.
        this.#decided.clear();
        this.#written.clear();
      }
      this.#wasLeader = leader;
      const counts = new Map<Phase, number>(PHASES.map((p) => [p, 0]));
      const sightings = this.#sightingsBySubject(Date.now());
      for (const name of [...this.#nodes.keys()].sort()) {
        try {
          const view = await this.#reconcile(name, leader, sightings);
          counts.set(view.phase, (counts.get(view.phase) ?? 0) + 1);
        } catch (err) {
          this.#log.warn({ node: name, err: errorMessage(err) }, 'reconcile failed');
        }
      }
      for (const [phase, n] of counts) this.#m.phase.set({ phase }, n);
    } finally {
      this.#syncing = false;
    }
  }

  /**
   * The fresh reports, indexed once per sync by the node they speak about (the reporter itself,
   * and each peer it saw), so each node's reconcile reads only its own: nodes × peers per
   * report, not nodes × reports × peers.
   */
  #sightingsBySubject(now: number): Map<string, ReportSighting[]> {
    const index = new Map<string, ReportSighting[]>();
    const add = (subject: string, s: ReportSighting) => {
      const list = index.get(subject);
      if (list) list.push(s);
      else index.set(subject, [s]);
    };
    for (const [reporter, { report, observedAt }] of this.#reports) {
      if (now - observedAt > this.#cfg.reportMaxAgeMs) continue;
      add(reporter, { reporter, report, observedAt, peer: undefined });
      for (const peer of report.peers) if (peer.node !== reporter) add(peer.node, { reporter, report, observedAt, peer });
    }
    return index;
  }

  async #reconcile(name: string, leader: boolean, sightings: Map<string, ReportSighting[]>): Promise<NodeView> {
    const now = Date.now();
    const cfg = this.#cfg;
    const node = this.#nodes.get(name);
    const edge = this.#edgeNodes.get(name);
    const ready = node?.status?.conditions?.find((c) => c.type === 'Ready');
    const stored = edge?.status;
    const cloudLastHeard = this.#cloudHeard.get(name)?.at ?? parseTime(stored?.cloudLastHeard);

    // What the witnesses say, converted to our clock: lastHeard = observedAt - (report.ts - sighting.lastHeard).
    const peers: { node: string; lastHeard?: number }[] = [];
    let selfView: { reachable: boolean; known: boolean; since: number; observedAt: number } | undefined;
    let agentVersion: { version: string; at: number } | undefined;
    for (const { reporter, report, observedAt, peer } of sightings.get(name) ?? []) {
      const ts = Date.parse(report.ts);
      const local = (iso: string) => observedAt - (ts - Date.parse(iso));
      if (reporter === name) {
        if (!selfView || observedAt > selfView.observedAt) {
          selfView = { ...report.cloud, since: local(report.cloud.since), observedAt };
        }
        if (!agentVersion || observedAt > agentVersion.at) agentVersion = { version: report.agentVersion, at: observedAt };
        continue;
      }
      const s = peer;
      if (!s) continue;
      const heard = s.lastHeard !== undefined ? local(s.lastHeard) : undefined;
      peers.push({ node: reporter, ...(heard !== undefined && { lastHeard: heard }) });
      if (heard !== undefined && s.cloud && (!selfView || heard > selfView.observedAt)) {
        selfView = { ...s.cloud, since: local(s.cloud.since), observedAt: heard };
      }
      if (heard !== undefined && s.version && (!agentVersion || heard > agentVersion.at))
        agentVersion = { version: s.version, at: heard };
    }
    peers.sort((a, b) => (a.node < b.node ? -1 : 1));

    const current =
      this.#decided.get(name) ??
      (stored?.phase && stored.phaseSince ? { phase: stored.phase, since: parseTime(stored.phaseSince) ?? now } : undefined);
    const decision = decidePhase(
      {
        now,
        ...(ready &&
          (ready.status === 'True' || ready.status === 'False' || ready.status === 'Unknown') && { nodeReady: ready.status }),
        ...(ready?.reason !== undefined && { nodeReadyReason: ready.reason }),
        ...(cloudLastHeard !== undefined && { cloudLastHeard }),
        peers,
        ...(selfView && { selfView }),
        ...(current && { current }),
      },
      cfg,
    );
    const protect = wantsProtection(decision, cfg.protectCutOff);
    const outOfService = wantsOutOfService(decision, now, cfg.outOfService);
    const tainted = node?.spec?.taints?.some((t) => t.key === OUT_OF_SERVICE_TAINT) ?? false;

    if (leader) {
      if (current && current.phase !== decision.phase) {
        this.#m.transitions.inc({ from: current.phase, to: decision.phase });
        this.#log.info({ node: name, from: current.phase, to: decision.phase, reason: decision.reason }, decision.message);
      }
      this.#decided.set(name, { phase: decision.phase, since: decision.since });
      if (protect && node) await this.#protect(name, node, now);
      if (node) await this.#outOfService(name, node, decision, outOfService, tainted, now);
      await this.#writeStatus(name, node, edge, decision, {
        now,
        cloudLastHeard,
        peers,
        selfView,
        agentVersion: agentVersion?.version,
        protect,
        outOfService: outOfService || (tainted && decision.phase === 'Unreachable'),
      });
    }
    const view: NodeView = {
      node: name,
      phase: decision.phase,
      since: new Date(decision.since).toISOString(),
      reason: decision.reason,
      message: decision.message,
      protected: protect,
      outOfService: tainted,
    };
    this.#views.set(name, view);
    return view;
  }

  async #writeStatus(
    name: string,
    node: KubeNode | undefined,
    edge: EdgeNode | undefined,
    d: PhaseDecision,
    x: {
      now: number;
      cloudLastHeard: number | undefined;
      peers: { node: string; lastHeard?: number }[];
      selfView: { reachable: boolean; known: boolean; since: number } | undefined;
      agentVersion: string | undefined;
      protect: boolean;
      outOfService: boolean;
    },
  ): Promise<void> {
    const cfg = this.#cfg;
    const iso = (t: number) => new Date(t).toISOString();
    const conditions = mergeConditions(
      edge?.status?.conditions,
      [
        d.cloudHeard
          ? { type: 'CloudHeard', status: 'True', reason: 'LeaseRenewed', message: 'kubelet renews the node Lease' }
          : { type: 'CloudHeard', status: 'False', reason: 'LeaseExpired', message: 'the node Lease is not renewed by kubelet' },
        x.peers.length === 0
          ? { type: 'PeersHeard', status: 'Unknown', reason: 'NoWitnesses', message: 'no witness reports about this node' }
          : d.peersHeard
            ? {
                type: 'PeersHeard',
                status: 'True',
                reason: 'WitnessesHearNode',
                message: `heard by ${d.hearingPeers.join(', ')}`,
              }
            : { type: 'PeersHeard', status: 'False', reason: 'WitnessesLostNode', message: 'no witness heard the node recently' },
        !x.selfView?.known
          ? { type: 'NodeReachesCloud', status: 'Unknown', reason: 'NoNodeView', message: "the node's own view is unknown" }
          : x.selfView.reachable
            ? { type: 'NodeReachesCloud', status: 'True', reason: 'ApiserverReachable', message: 'the node reaches an apiserver' }
            : {
                type: 'NodeReachesCloud',
                status: 'False',
                reason: 'NoApiserverReachable',
                message: `the node has reached no apiserver since ${iso(x.selfView.since)}`,
              },
        x.protect
          ? {
              type: 'EvictionGuard',
              status: 'True',
              reason: 'LeaseRenewedForNode',
              message: 'the controller renews the node Lease on its behalf',
            }
          : { type: 'EvictionGuard', status: 'False', reason: 'NotNeeded', message: 'the node is not CutOff' },
        x.outOfService
          ? { type: 'OutOfService', status: 'True', reason: 'UnreachableTooLong', message: `tainted ${OUT_OF_SERVICE_TAINT}` }
          : { type: 'OutOfService', status: 'False', reason: 'NotTainted', message: 'no out-of-service taint by meshlet' },
      ],
      x.now,
    );
    const status: EdgeNodeStatus = {
      phase: d.phase,
      phaseSince: iso(d.since),
      ...(x.cloudLastHeard !== undefined && { cloudLastHeard: iso(x.cloudLastHeard) }),
      ...(d.peersLastHeard !== undefined && { peersLastHeard: iso(d.peersLastHeard) }),
      peers: x.peers.map((p) => ({
        node: p.node,
        ...(p.lastHeard !== undefined && { lastHeard: iso(p.lastHeard) }),
        reachable: d.hearingPeers.includes(p.node),
      })),
      ...(x.selfView?.known && { cloud: { reachable: x.selfView.reachable, since: iso(x.selfView.since) } }),
      ...(x.agentVersion !== undefined && { agentVersion: x.agentVersion }),
      conditions,
    };
    const sig = signatureOf(status);
    const last = this.#written.get(name) ?? (edge?.status ? { sig: signatureOf(edge.status), at: 0 } : undefined);
    if (edge && last && last.sig === sig && x.now - last.at < cfg.statusRefreshMs) return;
    if (!edge) await this.#create(name, node);
    try {
      await kubeRequest(this.#o.conn, 'PATCH', `${EDGENODES_PATH}/${name}/status`, { status });
      this.#m.writes.inc({ kind: 'edgenode-status', result: 'ok' });
      this.#written.set(name, { sig, at: x.now });
    } catch (err) {
      this.#m.writes.inc({ kind: 'edgenode-status', result: 'error' });
      throw err;
    }
  }

  async #create(name: string, node: KubeNode | undefined): Promise<void> {
    const uid = node?.metadata?.uid;
    try {
      await kubeRequest(this.#o.conn, 'POST', EDGENODES_PATH, {
        apiVersion: 'meshlet.io/v1alpha1',
        kind: 'EdgeNode',
        metadata: {
          name,
          labels: { 'app.kubernetes.io/managed-by': 'meshlet' },
          // Removed with its Node by the garbage collector.
          ...(uid && { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid }] }),
        },
        spec: { nodeName: name },
      });
      this.#m.writes.inc({ kind: 'edgenode-create', result: 'ok' });
    } catch (err) {
      if (err instanceof KubeStatusError && err.status === 409) return;
      this.#m.writes.inc({ kind: 'edgenode-create', result: 'error' });
      throw err;
    }
  }

  /** Speaks for a CutOff node: renews its Lease (marked as ours) and keeps its Ready condition True. */
  async #protect(name: string, node: KubeNode, now: number): Promise<void> {
    const last = this.#delegated.get(name) ?? 0;
    if (now - last >= this.#cfg.renewIntervalMs) {
      const t = microTime(new Date(now));
      await kubeRequest(this.#o.conn, 'PATCH', `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`, {
        metadata: { annotations: { [DELEGATED_RENEW_ANNOTATION]: t } },
        spec: { renewTime: t },
      });
      this.#delegated.set(name, now);
      this.#m.renewals.inc();
    }
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready && ready.status !== 'True') {
      const t = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
      await kubeRequest(
        this.#o.conn,
        'PATCH',
        `/api/v1/nodes/${name}/status`,
        {
          status: {
            conditions: [
              {
                type: 'Ready',
                status: 'True',
                reason: CUTOFF_READY_REASON,
                message: 'meshlet: the node is cut off from the cloud but alive (its peers hear it)',
                lastHeartbeatTime: t,
                lastTransitionTime: t,
              },
            ],
          },
        },
        { patchType: 'strategic' },
      );
      this.#m.readyRestores.inc();
      this.#log.info({ node: name, was: ready.status }, 'set Ready back to True for a CutOff node');
    }
  }

  async #outOfService(
    name: string,
    node: KubeNode,
    d: PhaseDecision,
    want: boolean,
    tainted: boolean,
    now: number,
  ): Promise<void> {
    const ours = node.metadata?.annotations?.[OUT_OF_SERVICE_ANNOTATION] === 'controller';
    const taints = node.spec?.taints ?? [];
    if (want && !tainted) {
      await kubeRequest(this.#o.conn, 'PATCH', `/api/v1/nodes/${name}`, {
        metadata: { resourceVersion: node.metadata?.resourceVersion, annotations: { [OUT_OF_SERVICE_ANNOTATION]: 'controller' } },
        spec: {
          taints: [
            ...taints,
            {
              key: OUT_OF_SERVICE_TAINT,
              value: 'nodeshutdown',
              effect: 'NoExecute',
              timeAdded: new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z'),
            },
          ],
        },
      });
      this.#m.outOfService.inc({ action: 'added' });
      this.#log.warn(
        { node: name, unreachableSince: new Date(d.since).toISOString() },
        `tainted ${OUT_OF_SERVICE_TAINT}: workloads fail over`,
      );
    } else if (!want && tainted && ours && d.phase !== 'Unreachable') {
      await kubeRequest(this.#o.conn, 'PATCH', `/api/v1/nodes/${name}`, {
        metadata: { resourceVersion: node.metadata?.resourceVersion, annotations: { [OUT_OF_SERVICE_ANNOTATION]: null } },
        spec: { taints: taints.filter((t) => t.key !== OUT_OF_SERVICE_TAINT) },
      });
      this.#m.outOfService.inc({ action: 'removed' });
      this.#log.info({ node: name, phase: d.phase }, `removed ${OUT_OF_SERVICE_TAINT}: the node is heard again`);
    }
  }
}

function parseTime(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
}

function signatureOf(s: EdgeNodeStatus): string {
  return JSON.stringify({
    phase: s.phase,
    since: s.phaseSince,
    c: s.conditions?.map((c) => [c.type, c.status, c.reason]),
    p: s.peers?.map((p) => [p.node, p.reachable]),
    cloud: s.cloud,
    v: s.agentVersion,
  });
}
