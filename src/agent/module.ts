/**
 * The shape of every part of the agent (DNS, proxy, apiserver cache, EAA, ...): started in
 * order, stopped in reverse. A module reads the registry and its own config slice, nothing else.
 */
export interface AgentModule {
  readonly name: string;
  /**
   * Start before the registry source (and stop after it): for a module the source itself
   * depends on, such as the apiserver cache the Kubernetes source may read through.
   */
  readonly beforeSource?: boolean;
  start(): Promise<void>;
  /** Stops accepting new work and drains existing work; must resolve even if draining is cut short. */
  stop(): Promise<void>;
  /** Removes anything the module installed on the host (rules, addresses); also run after a crash. */
  cleanup?(): Promise<void>;
  /** False while the module cannot serve; /readyz reports it. Default: ready once started. */
  ready?(): boolean;
  /** A small JSON view for /debug/status. */
  status?(): Record<string, unknown>;
}
