import type { Socket } from 'node:net';
import { Pool } from 'undici';
import type { ProxyEndpoint } from '../balance/picker.ts';
import type { Dialer } from '../connect/dialer.ts';
import { H1Pool } from './h1-pool.ts';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
}

/** Idle upstream sockets close after this long: below Node's and nginx's 5 s keep-alive timeout, so
 * we close idle sockets first and never send on a socket the server is closing. */
const IDLE_TIMEOUT_MS = 4_000;

interface Entry {
  /** undici, for requests with a body; created on the first such request. */
  pool: Pool | undefined;
  /** The lean path, for requests without a body (h1-pool.ts). */
  h1: H1Pool | undefined;
  /** Routes using this endpoint. */
  refs: number;
}

/**
 * Keep-alive connection pools, one undici Pool per endpoint, shared by every route that uses
 * the endpoint. Routes `retain` their endpoints when built and `release` the previous ones; a
 * pool nobody uses is closed gracefully (undici finishes the requests it already has), which
 * is why removing an endpoint never fails a request in flight. Connections are opened through
 * the Dialer, so a tunnel dialer later serves HTTP too.
 */
export class UpstreamPools {
  readonly #pools = new Map<string, Entry>();
  readonly #dialer: Dialer;
  readonly #opts: PoolOptions;

  constructor(dialer: Dialer, opts: PoolOptions) {
    this.#dialer = dialer;
    this.#opts = opts;
  }

  retain(endpoints: readonly ProxyEndpoint[]): void {
    for (const ep of endpoints) {
      const entry = this.#pools.get(ep.id);
      if (entry !== undefined) entry.refs++;
      else this.#pools.set(ep.id, { pool: undefined, h1: undefined, refs: 1 });
    }
  }

  release(endpoints: readonly ProxyEndpoint[]): void {
    for (const ep of endpoints) {
      const entry = this.#pools.get(ep.id);
      if (entry === undefined || --entry.refs > 0) continue;
      this.#pools.delete(ep.id);
      entry.pool?.close().catch(() => {});
      entry.h1?.close().catch(() => {});
    }
  }

  /** The undici pool of a retained endpoint (created on the fly when a request raced a release). */
  get(ep: ProxyEndpoint): Pool {
    const entry = this.#pools.get(ep.id);
    if (entry === undefined) {
      // The endpoint's route was replaced while this request was being balanced: serve it from
      // a pool that closes as soon as its requests are done.
      const pool = this.#create(ep);
      setImmediate(() => pool.close().catch(() => {}));
      return pool;
    }
    entry.pool ??= this.#create(ep);
    return entry.pool;
  }

  /** The lean-path pool of an endpoint, for requests without a body (same lifecycle as `get`). */
  h1(ep: ProxyEndpoint): H1Pool {
    const entry = this.#pools.get(ep.id);
    if (entry === undefined) {
      const pool = this.#createH1(ep);
      setImmediate(() => pool.close().catch(() => {}));
      return pool;
    }
    entry.h1 ??= this.#createH1(ep);
    return entry.h1;
  }

  /** Endpoints retained by at least one route. */
  get size(): number {
    return this.#pools.size;
  }

  /** Endpoints with a connection pool created (on their first request): what costs memory. */
  get open(): number {
    let n = 0;
    for (const entry of this.#pools.values()) if (entry.pool !== undefined || entry.h1 !== undefined) n++;
    return n;
  }

  async close(): Promise<void> {
    const entries = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(entries.flatMap((e) => [e.pool?.close().catch(() => {}), e.h1?.close().catch(() => {})]));
  }

  destroy(): void {
    for (const entry of this.#pools.values()) {
      entry.pool?.destroy().catch(() => {});
      entry.h1?.destroy();
    }
    this.#pools.clear();
  }

  #createH1(ep: ProxyEndpoint): H1Pool {
    return new H1Pool(ep, this.#dialer, {
      connections: this.#opts.connections,
      connectTimeoutMs: this.#opts.connectTimeoutMs,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
    });
  }

  #create(ep: ProxyEndpoint): Pool {
    const dialer = this.#dialer;
    const timeoutMs = this.#opts.connectTimeoutMs;
    const host = ep.address.includes(':') ? `[${ep.address}]` : ep.address;
    return new Pool(`http://${host}:${ep.port}`, {
      connections: this.#opts.connections,
      pipelining: 1,
      keepAliveTimeout: IDLE_TIMEOUT_MS,
      keepAliveMaxTimeout: IDLE_TIMEOUT_MS,
      connect: (_opts, callback) => {
        dialer.connect(ep, { timeoutMs, allowHalfOpen: false }).then(
          (socket) => callback(null, socket as Socket),
          (err: Error) => callback(err, null),
        );
      },
    });
  }
}
