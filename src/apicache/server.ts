import { createHash } from 'node:crypto';
import {
  type ClientRequest,
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { coalescePool, type Piece } from './coalesce.ts';
import type { AccessGrants, DiscoveryCache } from './grants.ts';
import { DiscoveryCache as Discovery } from './grants.ts';
import { ListSplitter } from './list-splitter.ts';
import type { ApicacheMetrics } from './metrics.ts';
import { parseRequest, type RequestInfo, resourceKey } from './request-info.ts';
import { canonicalSelector, SelectorError } from './selectors.ts';
import { failureStatus } from './status.ts';
import { type CachedObject, type CacheStore, type ResourceMeta, type Scope, toCached } from './store.ts';
import type { Upstream, UpstreamPool } from './upstreams.ts';
import { WatchSession, type WatchSettings } from './watch.ts';

/**
 * The edge server: the HTTPS listener (and optional loopback plain-HTTP listener) that kubelet,
 * kube-proxy and local agents use as their apiserver.
 *
 * Online, every request goes to a healthy upstream, byte for byte; GET/LIST of cached resources
 * are teed into the cache as they stream (LIST items are split out of the byte stream, never
 * parsed as one document), and WATCHes of cached resources become WatchSessions that apply each
 * event to the cache and survive upstream loss. Offline, reads are answered from the cache
 * (selectors applied locally, each scope's own resourceVersion), watches are held open, and writes
 * fail with a 503 Status, except kubelet's renewal of its own node Lease, which is acknowledged.
 *
 * Identity (see docs/apicache.md "Credentials"): a verified client certificate is forwarded by
 * **impersonation** (the proxy's own credentials + Impersonate-User/Group of the certificate's
 * CN/O); a bearer token is **passed through** untouched on a connection without client
 * certificate; a request with neither goes upstream anonymous.
 */

export interface Identity {
  /** Key of the client's grants: `user:<CN>`, `token:<sha256 prefix>` or `anonymous`. */
  id: string;
  kind: 'impersonate' | 'token' | 'anonymous';
  user?: string;
  groups?: string[];
}

export interface EdgeServerOptions {
  address: string;
  port: number;
  /** 0 = off; -1 = any free port (tests). */
  plainHttpPort: number;
  tls: { cert: Buffer; key: Buffer; clientCa: Buffer | string | (Buffer | string)[] | undefined };
  resources: ReadonlySet<string>;
  pool: UpstreamPool;
  store: CacheStore;
  grants: AccessGrants;
  discovery: DiscoveryCache;
  metrics: ApicacheMetrics;
  logger: Logger;
  watch: WatchSettings;
  acknowledgeNodeLeaseOffline: boolean;
  /** How certificate clients are impersonated upstream (see impersonationHeaders). */
  impersonation: ImpersonationMode;
}

export type ImpersonationMode = 'legacy' | 'constrained';

/**
 * The Impersonate-* headers for a certificate client. `legacy`: user and groups as the
 * certificate says (the proxy's credentials may impersonate anyone: fine for tests and trusted
 * setups). `constrained` (Kubernetes >= 1.36, the chart's RBAC): a node is impersonated by name
 * only, because the apiserver grants `impersonate:associated-node` only when no group is asked
 * for and then gives the node its groups itself; an explicit `system:nodes` group falls back to
 * legacy impersonation, which the agent is rightly not allowed.
 */
export function impersonationHeaders(user: string, groups: readonly string[], mode: ImpersonationMode): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = { 'impersonate-user': user };
  const nodeByName = mode === 'constrained' && user.startsWith('system:node:');
  if (!nodeByName && groups.length > 0) h['impersonate-group'] = [...groups];
  return h;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

const MAX_BUFFERED_BODY = 16 << 20;
/** How long one slice of a LIST's deferred cache work may run before yielding to I/O. */
const SLICE_MS = 2;
/** Past this much of one LIST body held, the rest is split as it arrives (memory stays bounded). */
const MAX_HELD_BYTES = 64 << 20;
const EMPTY = Buffer.alloc(0);

interface PendingPages {
  key: string;
  scope: Omit<Scope, 'rv'>;
  items: CachedObject[];
  at: number;
}

export class EdgeServer {
  readonly #o: EdgeServerOptions;
  readonly #log: Logger;
  #https: Server | undefined;
  #http: Server | undefined;
  readonly #watches = new Set<WatchSession>();
  /** Aborters of in-flight proxied requests, per upstream (a dead upstream's are cut at once). */
  readonly #inflight = new Map<Upstream, Set<() => void>>();
  /** Paged LISTs (limit/continue) being assembled, by continue token. */
  readonly #pages = new Map<string, PendingPages>();

  constructor(o: EdgeServerOptions) {
    this.#o = o;
    this.#log = o.logger.child({ module: 'apicache/server' });
    o.pool.on('down', (u) => {
      for (const abort of this.#inflight.get(u) ?? []) abort();
    });
  }

  get httpsPort(): number {
    return (this.#https?.address() as AddressInfo | null)?.port ?? 0;
  }

  get httpPort(): number {
    return (this.#http?.address() as AddressInfo | null)?.port ?? 0;
  }

  watchCounts(): { upstream: number; held: number } {
    let upstream = 0;
    let held = 0;
    for (const w of this.#watches) {
      if (w.state === 'upstream') upstream++;
      else if (w.state === 'held') held++;
    }
    return { upstream, held };
  }

  async start(): Promise<void> {
    const https = createHttpsServer(
      {
        cert: this.#o.tls.cert,
        key: this.#o.tls.key,
        ...(this.#o.tls.clientCa !== undefined && { ca: this.#o.tls.clientCa }),
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => this.#handle(req, res, true),
    );
    this.#https = https;
    await listen(https, this.#o.port, this.#o.address);
    if (this.#o.plainHttpPort !== 0) {
      const http = createHttpServer((req, res) => this.#handle(req, res, false));
      this.#http = http;
      await listen(http, Math.max(0, this.#o.plainHttpPort), '127.0.0.1');
    }
    this.#log.info(
      { https: `${this.#o.address}:${this.httpsPort}`, ...(this.#http && { http: `127.0.0.1:${this.httpPort}` }) },
      'apiserver edge server listening',
    );
  }

  async stop(): Promise<void> {
    for (const w of this.#watches) w.close();
    await Promise.all(
      [this.#https, this.#http].map(
        (s) =>
          new Promise<void>((resolve) => {
            if (!s) return resolve();
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }

  // --- request dispatch ------------------------------------------------------------------------

  #handle(req: IncomingMessage, res: ServerResponse, secure: boolean): void {
    let info: RequestInfo;
    try {
      info = parseRequest(req.method ?? 'GET', req.url ?? '/');
    } catch {
      this.#status(res, 400, 'BadRequest', 'malformed request URL', 'other', 'local');
      return;
    }
    const ident = this.#identify(req, secure);
    if (typeof ident === 'string') {
      this.#status(res, 401, 'Unauthorized', ident, info.verb, 'local');
      return;
    }
    const key = info.resource !== undefined ? resourceKey(info.group, info.resource) : undefined;
    const cacheable =
      key !== undefined &&
      this.#o.resources.has(key) &&
      info.subresource === '' &&
      (info.verb === 'get' || info.verb === 'list' || info.verb === 'watch');
    const plainJson = !/;\s*as=/.test(req.headers.accept ?? '');
    if (this.#o.pool.reachable) {
      if (cacheable && plainJson && info.verb === 'watch' && key) {
        // Human (Table) watches are passed through untouched; offline they get JSON events from the cache.
        this.#watch(req, res, info, key, ident, true);
        return;
      }
      this.#forward(req, res, info, ident, cacheable && plainJson ? key : undefined, new Set());
      return;
    }
    this.#offline(req, res, info, key, cacheable, ident, 'the cloud is unreachable');
  }

  #identify(req: IncomingMessage, secure: boolean): Identity | string {
    if (secure) {
      const sock = req.socket as TLSSocket;
      const cert = sock.getPeerCertificate?.();
      if (cert && Object.keys(cert).length > 0) {
        if (!sock.authorized) return `client certificate not accepted: ${String(sock.authorizationError)}`;
        const cn = one(cert.subject?.CN);
        if (!cn) return 'client certificate has no common name';
        const o = cert.subject?.O;
        const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
        return { id: `user:${cn}`, kind: 'impersonate', user: cn, groups };
      }
    }
    const auth = req.headers.authorization;
    if (auth && /^bearer\s/i.test(auth)) {
      const digest = createHash('sha256').update(auth.slice(7).trim()).digest('hex').slice(0, 24);
      return { id: `token:${digest}`, kind: 'token' };
    }
    return { id: 'anonymous', kind: 'anonymous' };
  }

  /** Headers for an upstream request on behalf of ident (hop-by-hop removed, identity applied). */
  upstreamHeaders(req: IncomingMessage, u: Upstream, ident: Identity, json: boolean): OutgoingHttpHeaders {
    const h: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || HOP_BY_HOP.has(k) || k.startsWith('impersonate-')) continue;
      if (ident.kind === 'impersonate' && k === 'authorization') continue;
      h[k] = v;
    }
    h.host = u.url.host;
    if (req.headers['impersonate-user'] !== undefined && ident.kind !== 'impersonate') {
      // A token client impersonating someone (kubectl --as): the apiserver checks the token's right to.
      for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('impersonate-') && v !== undefined) h[k] = v;
    }
    if (ident.kind === 'impersonate') {
      Object.assign(
        h,
        this.#o.pool.proxyHeaders,
        impersonationHeaders(ident.user ?? '', ident.groups ?? [], this.#o.impersonation),
      );
    }
    if (json) {
      h.accept = 'application/json';
      delete h['accept-encoding'];
    }
    return h;
  }

  upstreamRequest(u: Upstream, method: string, path: string, headers: OutgoingHttpHeaders, ident: Identity): ClientRequest {
    return httpsRequest({
      protocol: 'https:',
      hostname: u.url.hostname.replace(/^\[|\]$/g, ''),
      port: u.url.port || 443,
      path,
      method,
      headers,
      agent: ident.kind === 'impersonate' ? u.proxyAgent : u.anonAgent,
    });
  }

  // --- online -----------------------------------------------------------------------------------

  #forward(
    req: IncomingMessage,
    res: ServerResponse,
    info: RequestInfo,
    ident: Identity,
    teeKey: string | undefined,
    tried: Set<Upstream>,
  ): void {
    const u = this.#o.pool.pick(tried);
    const key = info.resource !== undefined ? resourceKey(info.group, info.resource) : undefined;
    const cacheable = key !== undefined && this.#o.resources.has(key) && (info.verb === 'get' || info.verb === 'list');
    if (!u) {
      this.#offline(req, res, info, key, cacheable, ident, 'no apiserver is reachable');
      return;
    }
    tried.add(u);
    const hasBody = !(req.method === 'GET' || req.method === 'HEAD' || req.method === 'DELETE' || req.method === 'OPTIONS');
    const discovery = info.resource === undefined && info.verb === 'get' && Discovery.cacheable(info.path);
    const upReq = this.upstreamRequest(
      u,
      req.method ?? 'GET',
      req.url ?? '/',
      this.upstreamHeaders(req, u, ident, teeKey !== undefined),
      ident,
    );
    let responded = false;
    const inflight = this.#inflight.get(u) ?? new Set();
    this.#inflight.set(u, inflight);
    const abort = () => upReq.destroy(new MeshletError(ErrorCodes.APICACHE_UPSTREAM, `apiserver ${u.url.origin} marked down`));
    inflight.add(abort);
    const done = () => inflight.delete(abort);
    res.on('close', () => {
      done();
      if (!res.writableFinished) upReq.destroy();
    });
    upReq.on('response', (upRes) => {
      responded = true;
      const status = upRes.statusCode ?? 502;
      const headers = responseHeaders(upRes.headers);
      res.writeHead(status, upRes.statusMessage ?? '', headers);
      if (status >= 200 && status < 300 && key && this.#o.resources.has(key)) this.#grant(ident, key, info);
      let tee: ((chunk: Buffer) => void) | undefined;
      let finish: (() => void) | undefined;
      if (status === 200 && teeKey && info.verb === 'list') [tee, finish] = this.#listTee(teeKey, info);
      else if (status === 200 && ((teeKey && info.verb === 'get') || discovery)) {
        const chunks: Buffer[] = [];
        let size = 0;
        tee = (c) => {
          size += c.length;
          if (size <= MAX_BUFFERED_BODY) chunks.push(c);
        };
        finish = () => {
          if (size > MAX_BUFFERED_BODY) return;
          const body = Buffer.concat(chunks).toString('utf8');
          if (discovery)
            this.#o.discovery.set(
              Discovery.key(info.path, req.headers.accept ?? ''),
              headers['content-type']?.toString() ?? 'application/json',
              body,
            );
          else if (teeKey) this.#storeGet(teeKey, info, body);
        };
      } else if (status === 404 && teeKey && info.verb === 'get') {
        this.#o.store.forget(teeKey, info.namespace, info.name);
      }
      upRes.on('data', (chunk: Buffer) => {
        // The client's bytes go first; a tee only keeps a copy here (its work runs after the response).
        if (!res.write(chunk)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
        if (tee) {
          try {
            tee(chunk);
          } catch (err) {
            tee = undefined;
            finish = undefined;
            this.#log.warn({ err: errorMessage(err), path: info.path }, 'could not cache a response');
          }
        }
      });
      upRes.on('end', () => {
        done();
        res.end();
        try {
          finish?.();
        } catch (err) {
          this.#log.warn({ err: errorMessage(err), path: info.path }, 'could not cache a response');
        }
      });
      upRes.on('error', () => res.destroy());
      upRes.on('aborted', () => res.destroy());
    });
    upReq.on('error', (err) => {
      done();
      if (responded || res.headersSent) {
        res.destroy();
        return;
      }
      this.#o.pool.reportFailure(u, err);
      if (!hasBody) return this.#forward(req, res, info, ident, teeKey, tried);
      this.#status(res, 503, 'ServiceUnavailable', `apiserver ${u.url.origin} failed: ${errorMessage(err)}`, info.verb, 'error');
    });
    this.#o.metrics.requests.inc({ verb: info.verb, served: 'upstream' });
    if (hasBody) req.pipe(upReq);
    else upReq.end();
  }

  #grant(ident: Identity, key: string, info: RequestInfo): void {
    const fs = info.verb === 'get' ? `metadata.name=${info.name}` : canonicalSelector(info.query.get('fieldSelector'));
    this.#o.grants.grant(ident.id, key, info.namespace, fs);
  }

  #storeGet(key: string, info: RequestInfo, body: string): void {
    const meta = metaOf(info, body);
    const o = toCached(body, meta);
    if (o) this.#o.store.applyEvent(key, meta, 'MODIFIED', o, o.rv, undefined);
  }

  /**
   * The tee of a LIST. The client's bytes are never waited on: while the response streams, each
   * chunk is only copied into large buffers (the apiserver sends about one item per chunk: ~1,500
   * chunks for 1,000 pods); the cache work starts after the last byte was written, in slices of
   * about SLICE_MS that yield to I/O, so neither this response nor the next request waits for it.
   * Until that LIST is committed, later watch events and GET answers for the resource are queued
   * by the store (store.hold), so the LIST cannot overwrite what happened after it.
   *
   * Items are split out of those buffers; an item whose bytes are those of the same position in
   * the scope's last LIST is the cached object itself (one memcmp, no scan); any other is scanned
   * once for its metadata (meta-scan.ts). Pages of a paged LIST (limit/continue) are processed as
   * they stream (the next page's request may follow at once and must find this page's state) and
   * assembled across pages; the scope is replaced when the last page ends.
   */
  #listTee(key: string, info: RequestInfo): [(chunk: Buffer) => void, () => void] {
    const token = info.query.get('continue') ?? '';
    const paged = token !== '' || info.query.has('limit');
    let pending: PendingPages | undefined;
    if (token !== '') {
      pending = this.#pages.get(token);
      this.#pages.delete(token);
    } else {
      pending = {
        key,
        scope: {
          namespace: info.namespace,
          fieldSelector: canonicalSelector(info.query.get('fieldSelector')),
          labelSelector: canonicalSelector(info.query.get('labelSelector')),
        },
        items: [],
        at: Date.now(),
      };
    }
    const p = pending;
    let meta: ResourceMeta | undefined;
    const splitter = new ListSplitter(
      (item, predicted) => {
        if (!p) return;
        const want = predicted ? this.#o.store.expectedItem(key, p.scope, p.items.length) : undefined;
        if (want) {
          p.items.push(want);
          return;
        }
        meta ??= listMeta(info, splitter.head());
        const o = toCached(item, meta);
        if (o) p.items.push(o);
      },
      () => {
        if (!p) return undefined;
        const o = this.#o.store.expectedItem(key, p.scope, p.items.length);
        return o?.json.subarray(o.head);
      },
    );
    const commit = () => {
      const shell = splitter.end();
      if (!p || !shell || !splitter.ok) return;
      const md = (shell.metadata ?? {}) as { resourceVersion?: string; continue?: string };
      if (md.continue) {
        for (const [k, v] of this.#pages) if (Date.now() - v.at > 120_000) this.#pages.delete(k);
        if (this.#pages.size < 64) this.#pages.set(md.continue, p);
        return;
      }
      const kind = typeof shell.kind === 'string' ? shell.kind.replace(/List$/, '') : '';
      this.#o.store.replaceScope(
        key,
        { group: info.group, version: info.version, kind },
        { ...p.scope, rv: md.resourceVersion ?? '' },
        p.items,
        true,
      );
    };
    if (!p) return [() => {}, () => {}]; // a page of a list whose start we did not see
    if (paged) return [(chunk) => splitter.write(chunk), commit];

    const held: Buffer[] = [];
    /**
     * The coalescing pieces (coalesce.ts; owned[i] is held[i] whole), each given back as soon as it
     * was split and no item still points into it.
     */
    const owned: (Piece | undefined)[] = [];
    let given = 0;
    const giveBack = (upTo: number) => {
      for (; given < upTo; given++) {
        const piece = owned[given];
        owned[given] = undefined;
        if (piece) coalescePool.give(piece);
      }
    };
    let heldBytes = 0;
    let next = 0;
    /** Splits the next held buffer, then gives back the split ones unless an item continues past them. */
    const splitNext = () => {
      splitter.write(held[next] as Buffer);
      held[next++] = EMPTY;
      if (!splitter.midItem) giveBack(next);
    };
    let cur: Buffer | undefined;
    let used = 0;
    const onChunk = (chunk: Buffer) => {
      for (let off = 0; off < chunk.length; ) {
        if (cur === undefined) {
          const piece = coalescePool.take();
          owned.push(piece);
          cur = piece.buf;
        }
        const n = chunk.copy(cur, used, off);
        used += n;
        off += n;
        if (used === cur.length) {
          held.push(cur);
          heldBytes += cur.length;
          cur = undefined;
          used = 0;
          // A very large body is not kept whole: past MAX_HELD_BYTES its buffers are split as they fill.
          if (heldBytes > MAX_HELD_BYTES) {
            while (next < held.length) splitNext();
          }
        }
      }
    };
    const finish = () => {
      if (cur) held.push(cur.subarray(0, used));
      cur = undefined;
      const release = this.#o.store.hold(key);
      const step = () => {
        let done = true;
        try {
          const until = performance.now() + SLICE_MS;
          while (next < held.length) {
            splitNext();
            if (next < held.length && performance.now() > until) {
              done = false;
              setImmediate(step);
              return;
            }
          }
          commit();
        } catch (err) {
          this.#log.warn({ err: errorMessage(err), path: info.path }, 'could not cache a response');
        } finally {
          if (done) {
            release();
            giveBack(owned.length);
          }
        }
      };
      setImmediate(step);
    };
    return [onChunk, finish];
  }

  #watch(req: IncomingMessage, res: ServerResponse, info: RequestInfo, key: string, ident: Identity, online: boolean): void {
    let scope: Omit<Scope, 'rv'>;
    try {
      scope = {
        namespace: info.namespace,
        fieldSelector: canonicalSelector(info.query.get('fieldSelector')),
        labelSelector: canonicalSelector(info.query.get('labelSelector')),
      };
    } catch {
      this.#status(res, 400, 'BadRequest', 'bad selector', 'watch', 'local');
      return;
    }
    const session = new WatchSession({
      req,
      res,
      info,
      key,
      scope,
      ident,
      server: this,
      pool: this.#o.pool,
      store: this.#o.store,
      grants: this.#o.grants,
      metrics: this.#o.metrics,
      settings: this.#o.watch,
      logger: this.#log,
    });
    this.#watches.add(session);
    session.closed.then(() => this.#watches.delete(session));
    this.#o.metrics.requests.inc({ verb: 'watch', served: online ? 'upstream' : 'cache' });
    session.start();
  }

  // --- offline ---------------------------------------------------------------------------------

  #offline(
    req: IncomingMessage,
    res: ServerResponse,
    info: RequestInfo,
    key: string | undefined,
    cacheable: boolean,
    ident: Identity,
    why: string,
  ): void {
    if (info.resource === undefined && info.verb === 'get') {
      const doc =
        this.#o.discovery.get(Discovery.key(info.path, req.headers.accept ?? '')) ??
        this.#o.discovery.get(Discovery.key(info.path, 'application/json')) ??
        this.#o.discovery.get(Discovery.key(info.path, ''));
      if (doc) {
        this.#o.metrics.requests.inc({ verb: 'get', served: 'cache' });
        res.writeHead(200, { 'content-type': doc.contentType, 'cache-control': 'no-cache, private' });
        res.end(doc.body);
        return;
      }
      this.#status(res, 503, 'ServiceUnavailable', `${why}, and ${info.path} is not cached`, 'get', 'error');
      return;
    }
    if (cacheable && key) {
      if (info.verb === 'watch') {
        this.#watch(req, res, info, key, ident, false);
        return;
      }
      let fs: string;
      let ls: string;
      try {
        fs = canonicalSelector(info.query.get('fieldSelector'));
        ls = canonicalSelector(info.query.get('labelSelector'));
      } catch {
        this.#status(res, 400, 'BadRequest', 'bad selector', info.verb, 'local');
        return;
      }
      const grantFs = info.verb === 'get' ? `metadata.name=${info.name}` : fs;
      if (!this.#o.grants.allows(ident.id, key, info.namespace, grantFs)) {
        this.#status(
          res,
          503,
          'ServiceUnavailable',
          `${why}; ${key} was never read by this client (${ident.id}) while online, so it cannot be served from the cache`,
          info.verb,
          'error',
        );
        return;
      }
      if (info.verb === 'get') {
        const o = this.#o.store.get(key, info.namespace, info.name);
        if (o) {
          this.#o.metrics.requests.inc({ verb: 'get', served: 'cache' });
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(o.json);
          return;
        }
        if (this.#o.store.knowsNamespace(key, info.namespace)) {
          this.#status(res, 404, 'NotFound', `${info.resource} "${info.name}" not found`, 'get', 'cache', {
            name: info.name,
            group: info.group,
            kind: info.resource ?? '',
          });
          return;
        }
        this.#status(res, 503, 'ServiceUnavailable', `${why}, and ${key} ${info.name} is not cached`, 'get', 'error');
        return;
      }
      let result: ReturnType<CacheStore['list']>;
      try {
        result = this.#o.store.list(key, { namespace: info.namespace, fieldSelector: fs, labelSelector: ls });
      } catch (err) {
        if (err instanceof SelectorError) {
          this.#status(res, 400, 'BadRequest', err.message, 'list', 'local');
          return;
        }
        throw err;
      }
      if (!result) {
        this.#status(
          res,
          503,
          'ServiceUnavailable',
          `${why}, and no complete list of ${key} covering this request is cached`,
          'list',
          'error',
        );
        return;
      }
      this.#o.metrics.requests.inc({ verb: 'list', served: 'cache' });
      writeList(res, result.meta ?? { group: info.group, version: info.version, kind: '' }, result.rv, result.items);
      return;
    }
    if (this.#o.acknowledgeNodeLeaseOffline && this.#isOwnLeaseRenewal(info, ident)) {
      this.#ackLease(req, res, info);
      return;
    }
    const what = info.verb === 'other' ? `${req.method} ${info.path}` : `${info.verb} ${info.resource ?? info.path}`;
    this.#status(
      res,
      503,
      'ServiceUnavailable',
      `meshlet apicache: ${why}; ${what} needs the apiserver (writes are not queued offline)`,
      info.verb,
      'error',
    );
  }

  #isOwnLeaseRenewal(info: RequestInfo, ident: Identity): boolean {
    return (
      info.verb === 'update' &&
      info.group === 'coordination.k8s.io' &&
      info.resource === 'leases' &&
      info.namespace === 'kube-node-lease' &&
      info.subresource === '' &&
      ident.kind === 'impersonate' &&
      ident.user === `system:node:${info.name}`
    );
  }

  /** Offline: kubelet's node Lease renewal is answered locally (the body echoed) so the node does not flap. */
  #ackLease(req: IncomingMessage, res: ServerResponse, info: RequestInfo): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size < 1 << 16) chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let ok = false;
      try {
        const lease = JSON.parse(body) as { metadata?: { name?: string } };
        ok = lease.metadata?.name === info.name;
      } catch {}
      if (!ok) {
        return this.#status(
          res,
          503,
          'ServiceUnavailable',
          'the cloud is unreachable; only JSON Lease renewals are acknowledged offline',
          'update',
          'error',
        );
      }
      this.#o.metrics.requests.inc({ verb: 'update', served: 'local' });
      this.#log.debug({ lease: info.name }, 'node Lease renewal acknowledged locally while offline');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
  }

  #status(
    res: ServerResponse,
    code: number,
    reason: string,
    message: string,
    verb: string,
    served: string,
    details?: Record<string, string>,
  ): void {
    this.#o.metrics.requests.inc({ verb, served });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(failureStatus(code, message, reason, details)));
  }
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function responseHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

/** The resource's kind from the start of a List (`{"kind":"PodList",...`). */
function listMeta(info: RequestInfo, head: string): ResourceMeta {
  const m = /"kind"\s*:\s*"([^"]+?)(?:List)?"/.exec(head);
  return { group: info.group, version: info.version, kind: m?.[1] ?? '' };
}

function metaOf(info: RequestInfo, body: string): ResourceMeta | undefined {
  const m = /"kind"\s*:\s*"([^"]+)"/.exec(body.slice(0, 200));
  return m?.[1] ? { group: info.group, version: info.version, kind: m[1] } : undefined;
}

/** An offline LIST: the cached objects' JSON joined, written in ~256 KiB chunks. */
export function writeList(res: ServerResponse, meta: ResourceMeta, rv: string, items: readonly { json: Buffer }[]): void {
  const apiVersion = meta.group === '' ? meta.version : `${meta.group}/${meta.version}`;
  res.writeHead(200, { 'content-type': 'application/json' });
  const comma = Buffer.from(',');
  let parts: Buffer[] = [
    Buffer.from(
      `{"kind":${JSON.stringify(`${meta.kind}List`)},"apiVersion":${JSON.stringify(apiVersion)},"metadata":{"resourceVersion":${JSON.stringify(rv)}},"items":[`,
    ),
  ];
  let size = 0;
  for (let i = 0; i < items.length; i++) {
    if (i > 0) parts.push(comma);
    const json = (items[i] as { json: Buffer }).json;
    parts.push(json);
    size += json.length;
    if (size > 1 << 18) {
      res.write(Buffer.concat(parts));
      parts = [];
      size = 0;
    }
  }
  parts.push(Buffer.from(']}'));
  res.end(Buffer.concat(parts));
}

function listen(server: Server, port: number, host: string): Promise<void> {
  server.requestTimeout = 0; // watches last as long as they last
  server.headersTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new MeshletError(ErrorCodes.APICACHE_BIND, `cannot listen on ${host}:${port}: ${errorMessage(err)}`, { cause: err }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
}
