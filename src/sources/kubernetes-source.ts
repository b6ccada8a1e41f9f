import { createKubeConnection, type KubeConnection } from '../kube/connection.ts';
import {
  destinationRuleFromKube,
  endpointSliceFromKube,
  type KubeDestinationRule,
  type KubeEndpointSlice,
  type KubeNode,
  type KubeService,
  nodeFromKube,
  serviceFromKube,
} from '../kube/convert.ts';
import { KubeStatusError, kubeGet, readBody } from '../kube/http.ts';
import { type Delay, type KubeObject, Reflector, type ReflectorHandlers } from '../kube/reflector.ts';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import type { ServiceRegistry } from '../registry/registry.ts';
import { type DestinationRule, type EndpointSlice, type Node, objectKey, type Service } from '../registry/types.ts';
import type { RegistrySource, SourceStatus } from './source.ts';

export interface KubernetesSourceOptions {
  kubeconfig: string;
  context: string;
  /** How long start() waits for the first complete state before letting the agent go on. */
  initialSyncTimeoutMs: number;
  logger?: Logger;
  /** For tests: a ready connection instead of one loaded from a kubeconfig. */
  connection?: KubeConnection;
  delay?: Delay;
  watchTimeoutSeconds?: number;
  /** How often (ms) to look for the Istio DestinationRule CRD while it is not installed. */
  crdRecheckMs?: number;
}

/** API versions of Istio's DestinationRule, newest first. */
const DESTINATION_RULE_APIS = ['/apis/networking.istio.io/v1', '/apis/networking.istio.io/v1beta1'];

/**
 * Services, EndpointSlices (not the legacy Endpoints) and Nodes from the apiserver, each kept
 * by its own reflector (list + watch, relist on 410, backoff). Pointed at the node's apiserver
 * cache, the same code keeps working while the cloud is unreachable.
 */
export class KubernetesSource implements RegistrySource {
  readonly kind = 'kubernetes';
  readonly #opts: KubernetesSourceOptions;
  readonly #log: Logger;
  #conn: KubeConnection | undefined;
  #reflectors: Reflector<KubeService | KubeEndpointSlice | KubeNode>[] = [];
  #rules: Reflector<KubeDestinationRule> | undefined;
  #crdTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #lastSyncAt: string | undefined;

  constructor(opts: KubernetesSourceOptions) {
    this.#opts = opts;
    this.#log = (opts.logger ?? silentLogger()).child({ module: 'sources/kubernetes' });
  }

  async start(registry: ServiceRegistry): Promise<void> {
    const conn = this.#opts.connection ?? createKubeConnection(this.#opts);
    this.#conn = conn;
    const common = {
      conn,
      logger: this.#opts.logger ?? silentLogger(),
      ...(this.#opts.delay !== undefined && { delay: this.#opts.delay }),
      ...(this.#opts.watchTimeoutSeconds !== undefined && { watchTimeoutSeconds: this.#opts.watchTimeoutSeconds }),
    };
    const services = registryHandlers<KubeService, Service>(serviceFromKube, {
      replace: (all) => registry.replaceServices(all),
      upsert: (svc) => registry.upsertService(svc),
      delete: (key) => registry.deleteService(key),
    });
    const slices = registryHandlers<KubeEndpointSlice, EndpointSlice>(endpointSliceFromKube, {
      replace: (all) => registry.replaceEndpointSlices(all),
      upsert: (slice) => registry.upsertEndpointSlice(slice),
      delete: (key) => registry.deleteEndpointSlice(key),
    });
    const nodes = registryHandlers<KubeNode, Node>(nodeFromKube, {
      replace: (all) => registry.replaceNodes(all),
      upsert: (node) => registry.upsertNode(node),
      delete: (_key, name) => registry.deleteNode(name),
    });
    this.#reflectors = [
      new Reflector<KubeService>({ ...common, path: '/api/v1/services', handlers: services }),
      new Reflector<KubeEndpointSlice>({ ...common, path: '/apis/discovery.k8s.io/v1/endpointslices', handlers: slices }),
      new Reflector<KubeNode>({ ...common, path: '/api/v1/nodes', handlers: nodes }),
    ] as Reflector<KubeService | KubeEndpointSlice | KubeNode>[];
    for (const reflector of this.#reflectors) reflector.start();
    this.#watchDestinationRules(conn, registry, common).catch(() => {});

    const allSynced = Promise.all(this.#reflectors.map((r) => r.synced)).then(() => {
      this.#lastSyncAt = new Date().toISOString();
      registry.markSynced();
      this.#log.info({ apiserver: conn.description }, 'kubernetes source synced');
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.#opts.initialSyncTimeoutMs);
    });
    const late = await Promise.race([allSynced.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      // The agent goes on (DNS forwarding and local work need no apiserver); /readyz says why it is not ready.
      this.#log.warn(
        { apiserver: conn.description, waitedMs: this.#opts.initialSyncTimeoutMs },
        'apiserver not synced yet; continuing',
      );
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#crdTimer);
    await Promise.all([...this.#reflectors.map((r) => r.stop()), this.#rules?.stop()]);
  }

  /**
   * Istio DestinationRules are optional: watched when the CRD is installed, looked for again
   * every `crdRecheckMs` while it is not (installing Istio's CRDs later needs no restart).
   */
  async #watchDestinationRules(
    conn: KubeConnection,
    registry: ServiceRegistry,
    common: Omit<ConstructorParameters<typeof Reflector<KubeDestinationRule>>[0], 'path' | 'handlers'>,
  ): Promise<void> {
    if (this.#stopped) return;
    let path: string | undefined;
    for (const api of DESTINATION_RULE_APIS) {
      try {
        const res = await kubeGet(conn, api, AbortSignal.timeout(10_000));
        const list = JSON.parse(await readBody(res)) as { resources?: { name?: string }[] };
        if (list.resources?.some((r) => r.name === 'destinationrules')) {
          path = `${api}/destinationrules`;
          break;
        }
      } catch (err) {
        if (!(err instanceof KubeStatusError && err.status === 404))
          this.#log.debug({ err: String(err) }, 'looking for DestinationRules failed');
      }
    }
    if (this.#stopped) return;
    if (path === undefined) {
      this.#crdTimer = setTimeout(
        () => this.#watchDestinationRules(conn, registry, common).catch(() => {}),
        this.#opts.crdRecheckMs ?? 60_000,
      );
      this.#crdTimer.unref();
      return;
    }
    const handlers = registryHandlers<KubeDestinationRule, DestinationRule>(destinationRuleFromKube, {
      replace: (all) => registry.replaceDestinationRules(all),
      upsert: (rule) => registry.upsertDestinationRule(rule),
      delete: (key) => registry.deleteDestinationRule(key),
    });
    this.#rules = new Reflector<KubeDestinationRule>({ ...common, path, handlers });
    this.#rules.start();
    this.#log.info({ path }, 'watching Istio DestinationRules');
  }

  status(): SourceStatus {
    const reflectors = [...this.#reflectors, ...(this.#rules ? [this.#rules] : [])].map((r) => r.status());
    const lastError = reflectors.find((r) => r.lastError)?.lastError;
    return {
      kind: this.kind,
      synced: this.#reflectors.length > 0 && this.#reflectors.every((r) => r.status().synced),
      ...(this.#lastSyncAt !== undefined && { lastSyncAt: this.#lastSyncAt }),
      ...(lastError !== undefined && { lastError }),
      detail: { apiserver: this.#conn?.description ?? '', reflectors },
    };
  }
}

interface RegistryWrites<T> {
  replace(all: T[]): void;
  upsert(item: T): void;
  /** `namespace/name`, and the bare name for cluster-scoped objects. */
  delete(key: string, name: string): void;
}

/**
 * Reflector callbacks for one kind: convert each object and write it to the registry. An object
 * that no longer converts (an EndpointSlice that lost its service label) is deleted, so it stops
 * counting for whatever it belonged to.
 */
function registryHandlers<K extends KubeObject, T>(
  convert: (obj: K) => T | undefined,
  writes: RegistryWrites<T>,
): ReflectorHandlers<K> {
  const remove = (obj: K) => {
    const name = obj.metadata?.name ?? '';
    writes.delete(objectKey(obj.metadata?.namespace ?? '', name), name);
  };
  return {
    replace: (items) => writes.replace(items.map(convert).filter((x): x is T => x !== undefined)),
    upsert: (item) => {
      const converted = convert(item);
      if (converted !== undefined) writes.upsert(converted);
      else remove(item);
    },
    delete: remove,
  };
}
