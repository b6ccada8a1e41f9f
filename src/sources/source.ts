import type { ServiceRegistry } from '../registry/registry.ts';

/** What a source reports about itself, for /readyz, /debug/source and `meshlet status`. */
export interface SourceStatus {
  kind: string;
  /** True once the first complete state has been written to the registry. */
  synced: boolean;
  /** When the registry last received a complete, valid state (ISO time). */
  lastSyncAt?: string;
  /** The last rejected input or failure, while it is still the latest event. */
  lastError?: string;
  /** Source-specific facts (file path, apiserver, resource versions). */
  detail: Record<string, unknown>;
}

/**
 * A writer of the registry. The file source (standalone) and the Kubernetes source sit behind
 * this one interface, so the agent starts either the same way.
 */
export interface RegistrySource {
  readonly kind: string;
  /** Writes the first complete state into the registry, then keeps it current until stop(). */
  start(registry: ServiceRegistry): Promise<void>;
  stop(): Promise<void>;
  status(): SourceStatus;
}
