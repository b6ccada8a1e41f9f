import { type ClientHttp2Session, connect } from 'node:http2';
import type { ProxyEndpoint } from '../balance/picker.ts';
import type { Dialer } from '../connect/dialer.ts';

interface Entry {
  /** Opened on first use, not when retained: an endpoint nobody calls costs no connection. */
  session: Promise<ClientHttp2Session> | undefined;
  refs: number;
}

/**
 * One multiplexed HTTP/2 (cleartext) session per endpoint, shared by every route that uses it,
 * opened through the Dialer (so a tunnel dialer serves h2c too). Routes `retain` and `release`
 * endpoints as they are rebuilt; a session nobody uses is closed gracefully (GOAWAY: streams in
 * flight finish), and a session that dies is reopened on the next request.
 */
export class H2Sessions {
  readonly #entries = new Map<string, Entry>();
  readonly #dialer: Dialer;
  readonly #connectTimeoutMs: number;

  constructor(dialer: Dialer, connectTimeoutMs: number) {
    this.#dialer = dialer;
    this.#connectTimeoutMs = connectTimeoutMs;
  }

  get size(): number {
    return this.#entries.size;
  }

  retain(endpoints: readonly ProxyEndpoint[]): void {
    for (const ep of endpoints) {
      const entry = this.#entries.get(ep.id);
      if (entry !== undefined) entry.refs++;
      else this.#entries.set(ep.id, { session: undefined, refs: 1 });
    }
  }

  release(endpoints: readonly ProxyEndpoint[]): void {
    for (const ep of endpoints) {
      const entry = this.#entries.get(ep.id);
      if (entry === undefined || --entry.refs > 0) continue;
      this.#entries.delete(ep.id);
      entry.session?.then(
        (s) => s.close(),
        () => {},
      );
    }
  }

  /** The endpoint's live session, reopened if the last one closed or failed to connect. */
  async get(ep: ProxyEndpoint): Promise<ClientHttp2Session> {
    let entry = this.#entries.get(ep.id);
    if (entry === undefined) {
      entry = { session: undefined, refs: 0 };
      this.#entries.set(ep.id, entry);
    }
    if (entry.session !== undefined) {
      try {
        const session = await entry.session;
        if (!session.closed && !session.destroyed) return session;
      } catch {
        // the last connect failed: try again below
      }
    }
    const opening = this.#open(ep);
    entry.session = opening;
    return opening;
  }

  async close(): Promise<void> {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(
      all.map((e) =>
        e.session?.then(
          (s) => s.close(),
          () => {},
        ),
      ),
    );
  }

  async #open(ep: ProxyEndpoint): Promise<ClientHttp2Session> {
    const socket = await this.#dialer.connect(ep, { timeoutMs: this.#connectTimeoutMs, allowHalfOpen: false });
    const authority = ep.address.includes(':') ? `http://[${ep.address}]:${ep.port}` : `http://${ep.address}:${ep.port}`;
    const session = connect(authority, { createConnection: () => socket });
    // A session error is seen by its streams; here it only must not become an uncaught exception.
    session.on('error', () => {});
    return session;
  }
}
