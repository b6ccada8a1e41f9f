import { Gauge, type Registry as MetricsRegistry } from 'prom-client';
import { AdminServer } from '../admin/server.ts';
import { summarizeServices } from '../admin/views.ts';
import type { Config } from '../config/schema.ts';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { createMetricsRegistry } from '../metrics.ts';
import { ServiceRegistry } from '../registry/registry.ts';
import { FileSource } from '../sources/file-source.ts';
import { KubernetesSource } from '../sources/kubernetes-source.ts';
import type { RegistrySource } from '../sources/source.ts';
import { VERSION } from '../version.ts';
import type { AgentModule } from './module.ts';
import { createModules, type ModuleContext } from './modules.ts';

export type AgentState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface AgentOptions {
  config: Config;
  logger: Logger;
  /** Defaults to the file or Kubernetes source named by config.source.kind. */
  source?: RegistrySource;
  /** Defaults to the modules of src/agent/modules.ts. */
  modules?: AgentModule[];
}

/**
 * `meshlet agent`: the per-node sidecar. Start order: admin endpoint (so probes answer while
 * starting), registry source (first complete state), then modules. Stop runs the other way,
 * bounded by shutdown.gracePeriodMs, and always ends with each module's host cleanup.
 */
export class Agent {
  readonly config: Config;
  readonly registry: ServiceRegistry;
  readonly metrics: MetricsRegistry;
  readonly admin: AdminServer;
  readonly source: RegistrySource;
  #modules: AgentModule[] | undefined;
  readonly #moduleContext: ModuleContext;
  readonly #log: Logger;
  readonly #startedAt = Date.now();
  #state: AgentState = 'new';
  #started = new Set<string>();

  constructor(opts: AgentOptions) {
    this.config = opts.config;
    this.#log = opts.logger.child({ module: 'agent', node: opts.config.node.name });
    this.metrics = createMetricsRegistry();
    this.registry = new ServiceRegistry({ coalesceMs: opts.config.registry.coalesceMs, logger: opts.logger });
    this.source = opts.source ?? createSource(opts.config, opts.logger);
    this.#modules = opts.modules;
    this.#moduleContext = { config: opts.config, registry: this.registry, metrics: this.metrics, logger: opts.logger };
    this.#registerMetrics();
    this.admin = new AdminServer({
      address: opts.config.admin.address,
      port: opts.config.admin.port,
      metrics: this.metrics,
      healthy: () => this.#state !== 'stopped',
      notReadyReasons: () => this.notReadyReasons(),
      views: {
        status: () => this.status(),
        registry: () => this.registry.snapshot(),
        services: () => summarizeServices(this.registry),
        nodes: () => [...this.registry.nodes()].sort((a, b) => a.name.localeCompare(b.name)),
        config: () => this.config,
      },
      logger: opts.logger,
    });
  }

  get state(): AgentState {
    return this.#state;
  }

  /** The data-plane modules; empty until start() has loaded the enabled ones. */
  get modules(): readonly AgentModule[] {
    return this.#modules ?? [];
  }

  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`agent cannot start from state ${this.#state}`);
    this.#state = 'starting';
    try {
      await this.admin.start();
      this.#modules ??= await createModules(this.#moduleContext);
      // Modules the source depends on (the apiserver cache) first, then the source, then the rest.
      for (const module of this.modules.filter((m) => m.beforeSource)) await this.#startModule(module);
      await this.source.start(this.registry);
      this.registry.flush();
      for (const module of this.modules.filter((m) => !m.beforeSource)) await this.#startModule(module);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.#state = 'running';
    this.#log.info({ version: VERSION, admin: this.admin.url, modules: this.modules.map((m) => m.name) }, 'agent running');
  }

  async #startModule(module: AgentModule): Promise<void> {
    try {
      await module.cleanup?.(); // whatever a crashed predecessor left on the host
      await module.start();
    } catch (err) {
      throw new MeshletError(ErrorCodes.MODULE_START, `module ${module.name} failed to start: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    this.#started.add(module.name);
  }

  /** Drains and stops everything; safe to call twice and from any state. */
  async stop(): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    this.#state = 'stopping';
    const grace = this.config.shutdown.gracePeriodMs;
    this.#log.info({ graceMs: grace }, 'agent stopping');
    const stopModule = async (module: AgentModule) => {
      if (this.#started.has(module.name)) await withTimeout(module.stop(), grace, `stop ${module.name}`, this.#log);
      await module
        .cleanup?.()
        .catch((err: unknown) => this.#log.error({ err: errorMessage(err), module: module.name }, 'cleanup failed'));
    };
    // The reverse of start: the data plane, then the source, then what the source read through.
    for (const module of [...this.modules].reverse().filter((m) => !m.beforeSource)) await stopModule(module);
    await this.source.stop();
    for (const module of [...this.modules].reverse().filter((m) => m.beforeSource)) await stopModule(module);
    this.registry.close();
    await this.admin.stop();
    this.#state = 'stopped';
    this.#log.info('agent stopped');
  }

  notReadyReasons(): string[] {
    const reasons: string[] = [];
    if (this.#state !== 'running') reasons.push(`agent is ${this.#state}`);
    if (!this.source.status().synced) reasons.push(`source ${this.source.kind} has not synced`);
    for (const module of this.modules) {
      if (this.#state === 'running' && module.ready && !module.ready()) reasons.push(`module ${module.name} is not ready`);
    }
    return reasons;
  }

  status(): Record<string, unknown> {
    const notReady = this.notReadyReasons();
    return {
      node: this.config.node.name,
      version: VERSION,
      state: this.#state,
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 1000),
      ready: notReady.length === 0,
      notReady,
      source: this.source.status(),
      registry: { version: this.registry.version, synced: this.registry.synced, ...this.registry.counts() },
      modules: this.modules.map((m) => ({ name: m.name, started: this.#started.has(m.name), ...m.status?.() })),
    };
  }

  #registerMetrics(): void {
    const registry = this.registry;
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.metrics],
        collect() {
          this.set(read());
        },
      });
    gauge('meshlet_registry_services', 'Services in the registry.', () => registry.counts().services);
    gauge('meshlet_registry_endpoint_slices', 'EndpointSlices in the registry.', () => registry.counts().endpointSlices);
    gauge('meshlet_registry_endpoints', 'Endpoints in the registry.', () => registry.counts().endpoints);
    gauge('meshlet_registry_nodes', 'Nodes in the registry.', () => registry.counts().nodes);
    gauge('meshlet_registry_version', 'Updates delivered to subscribers since start.', () => registry.version);
    gauge('meshlet_source_synced', '1 once the registry source has delivered a complete state.', () =>
      this.source.status().synced ? 1 : 0,
    );
  }
}

function createSource(config: Config, logger: Logger): RegistrySource {
  if (config.source.kind === 'file') {
    const { path, watch, debounceMs } = config.source.file;
    return new FileSource({ path, watch, debounceMs, logger });
  }
  const { kubeconfig, context, initialSyncTimeoutMs } = config.source.kubernetes;
  return new KubernetesSource({ kubeconfig, context, initialSyncTimeoutMs, logger });
}

async function withTimeout(work: Promise<void>, ms: number, what: string, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      log.warn({ ms }, `${what} did not finish within the grace period; moving on`);
      resolve();
    }, ms);
  });
  try {
    await Promise.race([work.catch((err: unknown) => log.error({ err: errorMessage(err) }, `${what} failed`)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
