import { EventEmitter } from 'node:events';
import { Gauge, type Registry as MetricsRegistry } from 'prom-client';
import { errorMessage } from '../errors.ts';
import type { KubeConnection } from '../kube/connection.ts';
import { KubeStatusError, kubeRequest } from '../kube/http.ts';
import type { Logger } from '../log.ts';
import { microTime } from '../witness/module.ts';

export interface LeaderElectionOptions {
  conn: KubeConnection;
  identity: string;
  namespace: string;
  name: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logger: Logger;
  metrics?: MetricsRegistry;
}

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/**
 * Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it: a
 * candidate takes the Lease when its holder has not renewed it for leaseDuration as observed
 * on the candidate's own clock (no clock comparison between replicas), every write is an
 * optimistic-concurrency update, and a leader that cannot renew within renewDeadline steps down.
 * Emits 'change' (isLeader). State lives only in the Lease.
 */
export class LeaderElector extends EventEmitter<{ change: [boolean] }> {
  readonly #o: LeaderElectionOptions;
  readonly #log: Logger;
  #leader = false;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #observed: { record: string; at: number } | undefined;
  #lastRenew = 0;
  #stopped = false;
  readonly #gauge: Gauge | undefined;

  constructor(o: LeaderElectionOptions) {
    super();
    this.#o = o;
    this.#log = o.logger.child({ module: 'controller/leader', identity: o.identity });
    this.#gauge = o.metrics
      ? new Gauge({ name: 'meshlet_controller_leader', help: '1 while this replica leads.', registers: [o.metrics] })
      : undefined;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  get identity(): string {
    return this.#o.identity;
  }

  start(): void {
    this.#stopped = false;
    void this.#tick();
  }

  /** Steps down and, when leading, releases the Lease so the other replica takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#leader) {
      this.#set(false);
      try {
        const lease = await this.#get();
        if (lease?.spec?.holderIdentity === this.#o.identity) {
          lease.spec.holderIdentity = '';
          lease.spec.leaseDurationSeconds = 1;
          await kubeRequest(this.#o.conn, 'PUT', this.#path(), lease, { timeoutMs: 2_000 });
        }
      } catch (err) {
        this.#log.warn({ err: errorMessage(err) }, 'could not release the leader lease');
      }
    }
  }

  #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases/${this.#o.name}`;
  }

  async #get(): Promise<Lease | undefined> {
    try {
      return await kubeRequest<Lease>(this.#o.conn, 'GET', this.#path(), undefined, { timeoutMs: this.#o.retryPeriodMs * 2 });
    } catch (err) {
      if (err instanceof KubeStatusError && err.status === 404) return undefined;
      throw err;
    }
  }

  #set(leader: boolean): void {
    if (leader === this.#leader || (leader && this.#stopped)) return;
    this.#leader = leader;
    this.#gauge?.set(leader ? 1 : 0);
    this.#log.info({ leader }, leader ? 'became the leader' : 'stopped leading');
    this.emit('change', leader);
  }

  async #tick(): Promise<void> {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    try {
      await this.#tryAcquireOrRenew();
    } catch (err) {
      this.#log.debug({ err: errorMessage(err) }, 'leader election attempt failed');
    } finally {
      this.#running = false;
      if (this.#leader && Date.now() - this.#lastRenew > this.#o.renewDeadlineMs) {
        this.#log.warn({ renewDeadlineMs: this.#o.renewDeadlineMs }, 'could not renew the leader lease in time');
        this.#set(false);
      }
      if (!this.#stopped) this.#timer = setTimeout(() => void this.#tick(), this.#o.retryPeriodMs);
    }
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const now = new Date();
    const me = this.#o.identity;
    const durationSeconds = Math.max(1, Math.ceil(this.#o.leaseDurationMs / 1000));
    const lease = await this.#get();
    if (!lease) {
      await kubeRequest(
        this.#o.conn,
        'POST',
        `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases`,
        {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.#o.name, namespace: this.#o.namespace },
          spec: {
            holderIdentity: me,
            leaseDurationSeconds: durationSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        },
        { timeoutMs: this.#o.retryPeriodMs * 2 },
      );
      this.#lastRenew = Date.now();
      this.#set(true);
      return;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const record = `${holder}|${spec.renewTime ?? ''}|${spec.leaseDurationSeconds ?? ''}`;
    if (!this.#observed || this.#observed.record !== record) this.#observed = { record, at: Date.now() };
    const heldDurationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder && holder !== me && Date.now() - this.#observed.at < heldDurationMs) {
      this.#set(false);
      return;
    }
    const taking = holder !== me;
    lease.spec = {
      holderIdentity: me,
      leaseDurationSeconds: durationSeconds,
      acquireTime: taking ? microTime(now) : (spec.acquireTime ?? microTime(now)),
      renewTime: microTime(now),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (taking && holder ? 1 : 0),
    };
    await kubeRequest(this.#o.conn, 'PUT', this.#path(), lease, { timeoutMs: this.#o.retryPeriodMs * 2 });
    if (taking) this.#log.info({ previous: holder || '(none)' }, 'took the leader lease');
    this.#lastRenew = Date.now();
    this.#set(true);
  }
}
