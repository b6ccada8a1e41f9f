import { errorMessage } from '../../src/errors.ts';
import type { RouteContext } from '../route.ts';
import type { RouteMode } from './detect.ts';

/** A bound socket of one kind (TCP server, HTTP server, UDP socket), as stack.ts builds it. */
export interface BoundServer {
  /** Binds; resolves with the bound port. */
  listen(address: string, port: number): Promise<number>;
  /** Stops accepting; resolves when open connections have ended or `graceMs` passed (then they are cut). */
  close(graceMs: number): Promise<void>;
  /** Open connections (TCP, HTTP) or flows (UDP). */
  connections(): number;
}

export type ListenerState = 'starting' | 'listening' | 'failed' | 'closed';

/**
 * One service port's listener. It holds the current route context, which the registry
 * subscription swaps on every change (`route = ...`): connections read it when they arrive.
 */
export class ServiceListener {
  route: RouteContext;
  readonly mode: RouteMode;
  readonly address: string;
  /** The port asked for: the service port, or 0 for an OS-chosen one. */
  readonly wantedPort: number;
  port = 0;
  state: ListenerState = 'starting';
  error: string | undefined;
  readonly #server: BoundServer;

  constructor(
    route: RouteContext,
    address: string,
    wantedPort: number,
    makeServer: (getRoute: () => RouteContext) => BoundServer,
  ) {
    this.route = route;
    this.mode = route.mode;
    this.address = address;
    this.wantedPort = wantedPort;
    this.#server = makeServer(() => this.route);
  }

  /** Binds; a failure (e.g. the port is taken) leaves the listener 'failed' and is retried later. */
  async open(): Promise<boolean> {
    try {
      // An OS-chosen port is kept once known, so a retry or restart of the socket keeps it.
      this.port = await this.#server.listen(this.address, this.port || this.wantedPort);
      this.state = 'listening';
      this.error = undefined;
      return true;
    } catch (err) {
      this.state = 'failed';
      this.error = errorMessage(err);
      return false;
    }
  }

  async close(graceMs: number): Promise<void> {
    const wasOpen = this.state === 'listening';
    this.state = 'closed';
    if (wasOpen) await this.#server.close(graceMs);
  }

  status(): Record<string, unknown> {
    return {
      route: this.route.key,
      mode: this.mode,
      address: `${this.address}:${this.port || this.wantedPort}`,
      state: this.state,
      endpoints: this.route.endpoints.length,
      policy: this.route.policy.lb,
      connections: this.state === 'listening' ? this.#server.connections() : 0,
      ...(this.error !== undefined && { error: this.error }),
    };
  }
}
