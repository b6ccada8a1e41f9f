import type { Socket } from 'node:net';
import { Pool } from 'undici';
import type { ProxyEndpoint } from '../balance/picker.ts';
import type { Dialer } from '../connect/dialer.ts';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
}

interface Entry {
  pool: Pool;
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
      else this.#pools.set(ep.id, { pool: this.#create(ep), refs: 1 });
    }
  }

  release(endpoints: readonly ProxyEndpoint[]): void {
    for (const ep of endpoints) {
      const entry = this.#pools.get(ep.id);
      if (entry === undefined || --entry.refs > 0) continue;
      this.#pools.delete(ep.id);
      entry.pool.close().catch(() => {});
    }
  }

  /** The pool of a retained endpoint (created on the fly when a request raced a release). */
  get(ep: ProxyEndpoint): Pool {
    let entry = this.#pools.get(ep.id);
    if (entry === undefined) {
      // The endpoint's route was replaced while this request was being balanced: serve it from
      // a pool that closes as soon as its requests are done.
      const pool = this.#create(ep);
      setImmediate(() => pool.close().catch(() => {}));
      entry = { pool, refs: 0 };
    }
    return entry.pool;
  }

  get size(): number {
    return this.#pools.size;
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()].map((e) => e.pool);
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => {})));
  }

  destroy(): void {
    for (const entry of this.#pools.values()) entry.pool.destroy().catch(() => {});
    this.#pools.clear();
  }

  #create(ep: ProxyEndpoint): Pool {
    const dialer = this.#dialer;
    const timeoutMs = this.#opts.connectTimeoutMs;
    const host = ep.address.includes(':') ? `[${ep.address}]` : ep.address;
    return new Pool(`http://${host}:${ep.port}`, {
      connections: this.#opts.connections,
      pipelining: 1,
      // Below Node's default server keepAliveTimeout (5 s), so we close idle sockets first and
      // never send on a socket the server is closing.
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 4_000,
      connect: (_opts, callback) => {
        dialer.connect(ep, { timeoutMs, allowHalfOpen: false }).then(
          (socket) => callback(null, socket as Socket),
          (err: Error) => callback(err, null),
        );
      },
    });
  }
}
