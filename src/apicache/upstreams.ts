import { EventEmitter } from 'node:events';
import { Agent, type AgentOptions, request as httpsRequest, type RequestOptions } from 'node:https';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { CloudReachability } from './reachability.ts';

/**
 * The apiservers behind the edge server. Each upstream has two keep-alive agents: one with the
 * proxy's own client credentials (impersonated requests, health checks) and one without a
 * client certificate (requests that carry the client's own bearer token, and anonymous ones).
 *
 * Health: an active probe (GET /readyz, `healthCheckTimeoutMs`) every `healthCheckIntervalMs`;
 * `unhealthyThreshold` failures in a row mark an upstream down, `healthyThreshold` successes
 * mark it up. Passive: a proxied request that cannot connect (or times out) marks its upstream
 * down at once. The cloud is reachable while at least one upstream is up.
 */

export interface UpstreamCredentials {
  /** TLS options with the proxy's identity: ca, cert, key (and headers for token auth). */
  proxy: RequestOptions;
  /** TLS options without a client identity: ca only. */
  anonymous: RequestOptions;
}

export class Upstream {
  readonly url: URL;
  readonly proxyAgent: Agent;
  readonly anonAgent: Agent;
  healthy: boolean;
  successes = 0;
  failures = 0;
  lastError = '';
  lastChange = new Date();

  constructor(url: URL, creds: UpstreamCredentials) {
    this.url = url;
    this.healthy = true;
    const common = { keepAlive: true, maxSockets: 256, maxFreeSockets: 16, timeout: 0 };
    this.proxyAgent = new Agent({ ...common, ...pickTls(creds.proxy) });
    this.anonAgent = new Agent({ ...common, ...pickTls(creds.anonymous) });
  }
}

function pickTls(o: RequestOptions): AgentOptions {
  const out: AgentOptions = {};
  if (o.ca !== undefined) out.ca = o.ca;
  if (o.cert !== undefined) out.cert = o.cert;
  if (o.key !== undefined) out.key = o.key;
  if (o.rejectUnauthorized !== undefined) out.rejectUnauthorized = o.rejectUnauthorized;
  if (o.servername !== undefined) out.servername = o.servername;
  return out;
}

export interface UpstreamPoolOptions {
  urls: URL[];
  credentials: UpstreamCredentials;
  lbMode: 'priority' | 'round-robin';
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
  cloud: CloudReachability;
  logger: Logger;
}

export class UpstreamPool extends EventEmitter<{ down: [Upstream]; up: [Upstream] }> {
  readonly upstreams: Upstream[];
  readonly #opts: UpstreamPoolOptions;
  readonly #log: Logger;
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(opts: UpstreamPoolOptions) {
    super();
    this.#opts = opts;
    this.#log = opts.logger.child({ module: 'apicache/upstreams' });
    this.upstreams = opts.urls.map((u) => new Upstream(u, opts.credentials));
  }

  get reachable(): boolean {
    return this.upstreams.some((u) => u.healthy);
  }

  get proxyHeaders(): Record<string, string> {
    const h = this.#opts.credentials.proxy.headers;
    const out: Record<string, string> = {};
    if (h && typeof h === 'object' && !Array.isArray(h)) {
      for (const [k, v] of Object.entries(h)) if (typeof v === 'string') out[k.toLowerCase()] = v;
    }
    return out;
  }

  /** Probes every upstream once (so the first state is measured, not assumed), then on the interval. */
  async start(): Promise<void> {
    await Promise.all(this.upstreams.map((u) => this.#probe(u, true)));
    this.#publish();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const u of this.upstreams) {
      u.proxyAgent.destroy();
      u.anonAgent.destroy();
    }
  }

  /** A healthy upstream, skipping `exclude` (already tried), or undefined. */
  pick(exclude: ReadonlySet<Upstream> = new Set()): Upstream | undefined {
    const candidates = this.upstreams.filter((u) => u.healthy && !exclude.has(u));
    if (candidates.length === 0) return undefined;
    if (this.#opts.lbMode === 'priority') return candidates[0];
    this.#next = (this.#next + 1) % candidates.length;
    return candidates[this.#next];
  }

  /** Passive detection: a proxied request could not connect or timed out. */
  reportFailure(u: Upstream, err: unknown): void {
    u.lastError = errorMessage(err);
    u.successes = 0;
    if (!u.healthy) return;
    this.#log.warn({ upstream: u.url.origin, err: u.lastError }, 'apiserver failed a proxied request; marked down');
    this.#setHealth(u, false);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(async () => {
      await Promise.all(this.upstreams.map((u) => this.#probe(u, false)));
      this.#schedule();
    }, this.#opts.intervalMs);
    this.#timer.unref();
  }

  async #probe(u: Upstream, initial: boolean): Promise<void> {
    const ok = await this.#readyz(u);
    if (this.#stopped) return;
    if (ok) {
      u.successes++;
      u.failures = 0;
      if (!u.healthy && (initial || u.successes >= this.#opts.healthyThreshold)) {
        this.#log.info({ upstream: u.url.origin }, 'apiserver is ready again; marked up');
        this.#setHealth(u, true);
      }
    } else {
      u.failures++;
      u.successes = 0;
      if (u.healthy && (initial || u.failures >= this.#opts.unhealthyThreshold)) {
        this.#log.warn({ upstream: u.url.origin, err: u.lastError }, 'apiserver failed its health checks; marked down');
        this.#setHealth(u, false);
      }
    }
  }

  #setHealth(u: Upstream, healthy: boolean): void {
    u.healthy = healthy;
    u.lastChange = new Date();
    if (!healthy) {
      // Pooled connections to a dead server would stall the next requests; drop them.
      for (const a of [u.proxyAgent, u.anonAgent]) {
        for (const list of Object.values(a.freeSockets)) for (const s of list ?? []) s.destroy();
      }
    }
    this.emit(healthy ? 'up' : 'down', u);
    this.#publish();
  }

  #publish(): void {
    this.#opts.cloud.set(
      this.reachable,
      this.upstreams.filter((u) => u.healthy).map((u) => u.url.origin),
    );
  }

  #readyz(u: Upstream): Promise<boolean> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (ok: boolean, err?: string) => {
        if (done) return;
        done = true;
        if (err) u.lastError = err;
        resolve(ok);
      };
      const req = httpsRequest(
        new URL('/readyz', u.url),
        { agent: u.proxyAgent, method: 'GET', headers: this.proxyHeaders },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            if (body.length < 1000) body += c;
          });
          res.on('end', () =>
            finish(
              res.statusCode === 200,
              res.statusCode === 200 ? undefined : `readyz ${res.statusCode}: ${body.trim().slice(0, 200)}`,
            ),
          );
          res.on('error', (e) => finish(false, e.message));
        },
      );
      const timer = setTimeout(() => {
        req.destroy(new Error(`no answer to /readyz within ${this.#opts.timeoutMs} ms`));
      }, this.#opts.timeoutMs);
      req.on('close', () => clearTimeout(timer));
      req.on('error', (e) => finish(false, e.message));
      req.end();
    });
  }
}
