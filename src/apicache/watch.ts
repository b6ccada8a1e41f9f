import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { AccessGrants } from './grants.ts';
import type { ApicacheMetrics } from './metrics.ts';
import type { RequestInfo } from './request-info.ts';
import type { EdgeServer, Identity } from './server.ts';
import { failureStatus } from './status.ts';
import { type CacheStore, type ResourceMeta, type Scope, toCached } from './store.ts';
import type { Upstream, UpstreamPool } from './upstreams.ts';

/**
 * One client WATCH of a cached resource. The client's stream belongs to the proxy, not to one
 * upstream connection:
 *
 * - online, events stream from an apiserver; each is applied to the cache in order and written
 *   to the client as the same bytes (a line of the JSON watch stream), bookmarks included;
 * - when that apiserver is lost (connection error, or the health checks mark it down), the
 *   stream stays open: if another upstream is healthy the watch resumes there at once from the
 *   last resourceVersion delivered; if none is, it is **held** (no events; a BOOKMARK with the
 *   last RV every offlineBookmarkIntervalMs when the client allows bookmarks);
 * - when the cloud returns, each held watch resumes after a random delay (0..resumeJitterMs, so
 *   a node's watches do not hit the apiserver together) from the last RV it delivered; events
 *   that happened meanwhile then arrive as ordinary events. If that RV is too old (410), the
 *   client gets the ERROR event `410 Expired` that client-go answers with a re-list.
 *
 * A watch that starts offline is answered from the cache: with resourceVersion "" or "0" (or
 * sendInitialEvents) the cached state of its scope first, as ADDED events; then it is held.
 */

export interface WatchSettings {
  offlineBookmarkIntervalMs: number;
  resumeJitterMs: number;
}

export interface WatchSessionOptions {
  req: IncomingMessage;
  res: ServerResponse;
  info: RequestInfo;
  key: string;
  scope: Omit<Scope, 'rv'>;
  ident: Identity;
  server: EdgeServer;
  pool: UpstreamPool;
  store: CacheStore;
  grants: AccessGrants;
  metrics: ApicacheMetrics;
  settings: WatchSettings;
  logger: Logger;
}

export type WatchState = 'starting' | 'upstream' | 'held' | 'closed';

const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

export class WatchSession {
  readonly #o: WatchSessionOptions;
  readonly #log: Logger;
  state: WatchState = 'starting';
  readonly closed: Promise<void>;
  #resolveClosed: () => void = () => {};
  #rv: string;
  #upReq: ClientRequest | undefined;
  #upstream: Upstream | undefined;
  #bookmarkTimer: NodeJS.Timeout | undefined;
  #resumeTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  readonly #deadline: number | undefined;
  readonly #allowBookmarks: boolean;
  readonly #sendInitialEvents: boolean;
  /** Keys seen during a watch-list's initial events (online), to replace the scope at its end. */
  #initialKeys: string[] | undefined;
  #meta: ResourceMeta | undefined;
  readonly #onCloud: (s: { reachable: boolean }) => void;
  readonly #onDown: (u: Upstream) => void;

  constructor(o: WatchSessionOptions) {
    this.#o = o;
    this.#log = o.logger.child({ module: 'apicache/watch' });
    this.closed = new Promise((r) => {
      this.#resolveClosed = r;
    });
    const q = o.info.query;
    this.#rv = q.get('resourceVersion') ?? '';
    this.#allowBookmarks = q.get('allowWatchBookmarks') === 'true';
    this.#sendInitialEvents = q.get('sendInitialEvents') === 'true';
    const timeout = Number(q.get('timeoutSeconds') ?? '');
    this.#deadline = Number.isFinite(timeout) && timeout > 0 ? Date.now() + timeout * 1000 : undefined;
    this.#meta = o.store.resource(o.key)?.meta;
    this.#onCloud = (s) => {
      if (s.reachable && this.state === 'held') this.#scheduleResume();
    };
    this.#onDown = (u) => {
      if (u === this.#upstream && this.#upReq) this.#upReq.destroy(new Error(`apiserver ${u.url.origin} marked down`));
    };
    o.pool.on('down', this.#onDown);
    o.res.on('close', () => this.close());
  }

  start(): void {
    if (this.#deadline !== undefined) {
      this.#deadlineTimer = setTimeout(() => this.#end(), Math.max(0, this.#deadline - Date.now()));
    }
    if (this.#o.pool.reachable) this.#connect(true);
    else this.#startOffline();
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearInterval(this.#bookmarkTimer);
    clearTimeout(this.#resumeTimer);
    clearTimeout(this.#deadlineTimer);
    this.#cloudListener(false);
    this.#o.pool.off('down', this.#onDown);
    this.#upReq?.destroy();
    this.#upReq = undefined;
    if (!this.#o.res.writableEnded) this.#o.res.destroy();
    this.#resolveClosed();
  }

  #end(): void {
    if (this.state === 'closed') return;
    if (!this.#o.res.headersSent) this.#o.res.writeHead(200, { 'content-type': 'application/json' });
    this.#o.res.end();
    this.close();
  }

  #cloudListener(on: boolean): void {
    const cloud = this.#o.pool;
    // The pool publishes to CloudReachability; sessions follow the pool's own up/down events.
    if (on) cloud.on('up', this.#onUp);
    else cloud.off('up', this.#onUp);
  }

  readonly #onUp = (): void => this.#onCloud({ reachable: true });

  // --- upstream -------------------------------------------------------------------------------

  #connect(first: boolean): void {
    if (this.state === 'closed') return;
    const u = this.#o.pool.pick();
    if (!u) {
      if (first) {
        this.#startOffline();
        return;
      }
      this.#hold();
      return;
    }
    const q = new URLSearchParams(this.#o.info.query);
    if (!first) {
      q.set('resourceVersion', this.#rv);
      q.delete('sendInitialEvents');
      q.delete('resourceVersionMatch');
    }
    if (this.#deadline !== undefined)
      q.set('timeoutSeconds', String(Math.max(1, Math.ceil((this.#deadline - Date.now()) / 1000))));
    const path = `${this.#o.info.path}?${q.toString()}`;
    const headers = this.#o.server.upstreamHeaders(this.#o.req, u, this.#o.ident, true);
    const upReq = this.#o.server.upstreamRequest(u, 'GET', path, headers, this.#o.ident);
    this.#upReq = upReq;
    this.#upstream = u;
    upReq.on('response', (upRes) => this.#onResponse(upRes, upReq, u, first));
    upReq.on('error', (err) => {
      if (this.#upReq !== upReq) return;
      this.#upReq = undefined;
      if (this.state === 'closed') return;
      this.#o.pool.reportFailure(u, err);
      this.#lost(errorMessage(err), first && !this.#o.res.headersSent);
    });
    upReq.end();
  }

  #onResponse(upRes: IncomingMessage, upReq: ClientRequest, u: Upstream, first: boolean): void {
    const res = this.#o.res;
    const status = upRes.statusCode ?? 502;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      upRes.on('data', (c: Buffer) => chunks.push(c));
      upRes.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (!res.headersSent) {
          res.writeHead(status, { 'content-type': upRes.headers['content-type'] ?? 'application/json' });
          res.end(body);
          this.close();
          return;
        }
        // A resumed watch the apiserver refused (410 Expired above all): tell the client as the apiserver would.
        this.#o.metrics.watchResumes.inc({ result: status === 410 ? 'expired' : 'failed' });
        let statusObj: unknown;
        try {
          statusObj = JSON.parse(body);
        } catch {
          statusObj = failureStatus(status, body.slice(0, 300));
        }
        res.write(`${JSON.stringify({ type: 'ERROR', object: statusObj })}\n`);
        this.#end();
      });
      upRes.on('error', () => this.close());
      return;
    }
    if (first) this.#o.grants.grant(this.#o.ident.id, this.#o.key, this.#o.info.namespace, this.#o.scope.fieldSelector);
    else this.#o.metrics.watchResumes.inc({ result: 'resumed' });
    if (!res.headersSent) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
      res.flushHeaders();
    }
    if (first && this.#sendInitialEvents) this.#initialKeys = [];
    clearInterval(this.#bookmarkTimer);
    this.#bookmarkTimer = undefined;
    this.#cloudListener(false);
    this.state = 'upstream';
    this.#log.debug({ upstream: u.url.origin, path: this.#o.info.path, rv: this.#rv, resumed: !first }, 'watch streaming');
    let carry = '';
    upRes.setEncoding('utf8');
    upRes.on('data', (text: string) => {
      if (this.#upReq !== upReq) return;
      let start = 0;
      for (;;) {
        const nl = text.indexOf('\n', start);
        if (nl < 0) break;
        const line = carry + text.slice(start, nl);
        carry = '';
        start = nl + 1;
        if (line.trim() !== '') this.#event(line);
      }
      carry += text.slice(start);
      if (!res.writableNeedDrain) return;
      upRes.pause();
      res.once('drain', () => upRes.resume());
    });
    upRes.on('end', () => {
      if (this.#upReq !== upReq || this.state === 'closed') return;
      this.#upReq = undefined;
      // The apiserver ended the watch (its timeout): end the client's too, as the apiserver would.
      if (u.healthy) this.#end();
      else this.#lost('upstream ended', false);
    });
    upRes.on('aborted', () => {
      if (this.#upReq !== upReq) return;
      this.#upReq = undefined;
      this.#lost('upstream stream aborted', false);
    });
    upRes.on('error', (err) => {
      if (this.#upReq !== upReq) return;
      this.#upReq = undefined;
      this.#lost(errorMessage(err), false);
    });
  }

  /** One line of the upstream watch stream: applied to the cache, then written to the client. */
  #event(line: string): void {
    let ev: {
      type?: string;
      object?: { kind?: string; metadata?: { resourceVersion?: string; annotations?: Record<string, string> } };
    };
    try {
      ev = JSON.parse(line) as typeof ev;
    } catch {
      this.#log.warn({ path: this.#o.info.path }, 'undecodable watch event passed through uncached');
      this.#o.res.write(`${line}\n`);
      return;
    }
    const type = ev.type;
    const rv = ev.object?.metadata?.resourceVersion ?? '';
    if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED' || type === 'BOOKMARK') {
      if (!this.#meta && ev.object?.kind)
        this.#meta = { group: this.#o.info.group, version: this.#o.info.version, kind: ev.object.kind };
      let cached: ReturnType<typeof toCached>;
      if (type !== 'BOOKMARK') {
        const prefix = `{"type":"${type}","object":`;
        const objJson = line.startsWith(prefix) && line.endsWith('}') ? line.slice(prefix.length, -1) : JSON.stringify(ev.object);
        cached = toCached(objJson, this.#meta);
      }
      if (this.#initialKeys && cached && type === 'ADDED') this.#initialKeys.push(`${cached.namespace}/${cached.name}`);
      // Events of a watch-list's initial phase do not advance a scope: it is complete only at its end.
      const applyScope = this.#initialKeys ? undefined : this.#o.scope;
      this.#o.store.applyEvent(this.#o.key, this.#meta, type, cached, rv, applyScope);
      if (type === 'BOOKMARK' && this.#initialKeys && ev.object?.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true') {
        this.#finishInitialEvents(rv);
      }
      if (rv !== '') this.#rv = rv;
    }
    this.#o.res.write(`${line}\n`);
  }

  #finishInitialEvents(rv: string): void {
    const keys = new Set(this.#initialKeys);
    this.#initialKeys = undefined;
    const r = this.#o.store.resource(this.#o.key);
    if (!r || !this.#meta) return;
    const items = [];
    for (const o of r.objects.values()) if (keys.has(`${o.namespace}/${o.name}`)) items.push(o);
    this.#o.store.replaceScope(this.#o.key, this.#meta, { ...this.#o.scope, rv }, items);
  }

  #lost(why: string, beforeHeaders: boolean): void {
    if (this.state === 'closed') return;
    this.#initialKeys = undefined;
    if (beforeHeaders) {
      // Not a single byte sent yet: try another upstream, else answer from the cache.
      if (this.#o.pool.reachable) {
        this.#connect(true);
        return;
      }
      this.#startOffline();
      return;
    }
    this.#log.info({ path: this.#o.info.path, rv: this.#rv, why }, 'watch lost its apiserver; holding it open');
    if (this.#o.pool.reachable) {
      // Failover: another upstream is healthy; resume there now.
      this.state = 'held';
      this.#resumeTimer = setTimeout(() => {
        this.#resumeTimer = undefined;
        this.#connect(false);
      }, 50);
      return;
    }
    this.#hold();
  }

  // --- offline --------------------------------------------------------------------------------

  #startOffline(): void {
    const { store, grants, ident, key, scope, res } = this.#o;
    if (!grants.allows(ident.id, key, scope.namespace, scope.fieldSelector)) {
      this.#refuse(`${key} was never read by this client (${ident.id}) while online`);
      return;
    }
    const initial = this.#rv === '' || this.#rv === '0' || this.#sendInitialEvents;
    if (initial) {
      const list = store.list(key, scope);
      if (!list) {
        this.#refuse(`no complete list of ${key} covering this watch is cached`);
        return;
      }
      this.#meta = list.meta ?? this.#meta;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
      for (const o of list.items) res.write(`{"type":"ADDED","object":${o.json.toString('utf8')}}\n`);
      this.#rv = list.rv;
      if (this.#sendInitialEvents) res.write(`${this.#bookmark(true)}\n`);
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    }
    res.flushHeaders();
    this.#hold();
  }

  #refuse(message: string): void {
    const res = this.#o.res;
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify(failureStatus(503, `meshlet apicache: the cloud is unreachable, and ${message}`, 'ServiceUnavailable')),
    );
    this.close();
  }

  #hold(): void {
    if (this.state === 'closed') return;
    this.state = 'held';
    this.#cloudListener(true);
    if (this.#allowBookmarks && !this.#bookmarkTimer) {
      this.#bookmarkTimer = setInterval(() => {
        if (this.state === 'held') this.#o.res.write(`${this.#bookmark(false)}\n`);
      }, this.#o.settings.offlineBookmarkIntervalMs);
    }
    if (this.#o.pool.reachable) this.#scheduleResume();
  }

  #scheduleResume(): void {
    if (this.#resumeTimer !== undefined || this.state !== 'held') return;
    const delay = Math.floor(Math.random() * this.#o.settings.resumeJitterMs);
    this.#resumeTimer = setTimeout(() => {
      this.#resumeTimer = undefined;
      if (this.state !== 'held') return;
      if (!this.#o.pool.reachable) return;
      this.#connect(false);
    }, delay);
  }

  #bookmark(initialEnd: boolean): string {
    const meta = this.#meta;
    const apiVersion = meta ? (meta.group === '' ? meta.version : `${meta.group}/${meta.version}`) : this.#o.info.version;
    const md: Record<string, unknown> = { resourceVersion: this.#rv };
    if (initialEnd) md.annotations = { [INITIAL_EVENTS_END]: 'true' };
    return JSON.stringify({ type: 'BOOKMARK', object: { kind: meta?.kind ?? '', apiVersion, metadata: md } });
  }
}
