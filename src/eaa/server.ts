import { constants } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ConsumerHub } from './consumers.ts';
import type { EaaCore } from './core.ts';
import { H1Connection } from './h1.ts';
import { H2Connection } from './h2.ts';
import {
  BodyTooLarge,
  matchRoute,
  notFound,
  peerCommonName,
  type Req,
  type Res,
  type Route,
  type RouteMatch,
  readBody,
  redirect,
  send,
} from './http.ts';
import { JsonSyntaxError, JsonTypeError } from './json.ts';
import type { EaaMetrics } from './metrics.ts';
import {
  decodeAuthIdentity,
  decodeDescriptorList,
  decodeNotification,
  decodeService,
  encodeAuthCredentials,
  encodeServiceList,
  encodeSubscriptionList,
  type Urn,
  urnFromCommonName,
} from './model.ts';
import { type CertificateAuthority, CsrError, signCsr } from './pki.ts';
import type { NotificationRouter } from './router.ts';

/**
 * The app-facing EAA listeners (docs/eaa.md §API): the mutual-TLS API with OpenNESS's 11 routes,
 * and the plain-HTTP POST /auth that turns a CSR into a certificate. Status codes, bodies and
 * headers follow OpenNESS; meshlet adds only X-Meshlet-Error on errors, 413 and 429.
 */

/** CN namespace reserved for agents talking to each other; apps cannot get it from /auth. */
export const PEER_NAMESPACE = 'meshlet-peer';

export interface EaaServerOptions {
  address: string;
  port: number;
  authPort: number;
  authEnabled: boolean;
  errorStatus: 'openness' | 'http';
  maxBodyBytes: number;
  maxNotificationsPerSecond: number;
  certTtlMs: number;
  ca: CertificateAuthority;
  serverCert: { certPem: string; keyPem: string };
  core: EaaCore;
  hub: ConsumerHub;
  router: NotificationRouter;
  metrics: EaaMetrics;
  logger: Logger;
}

interface Call {
  req: Req;
  res: Res;
  cn: string;
  params: Record<string, string>;
}

type Handler = (call: Call) => Promise<void> | void;

class Refused extends Error {
  override readonly name = 'Refused';
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class EaaServer {
  private readonly o: EaaServerOptions;
  private readonly log: Logger;
  private readonly api: TlsServer;
  /** node:http for the HTTP/1.1 connections H1Connection hands over; it listens on nothing. */
  private readonly http1: ReturnType<typeof createHttpServer>;
  private auth: ReturnType<typeof createHttpServer> | undefined;
  /** Open API connections, both protocols: TLS servers have no closeAllConnections(). */
  private readonly connections = new Set<TLSSocket>();
  private readonly routes: Route<Handler>[];
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(opts: EaaServerOptions) {
    this.o = opts;
    this.log = opts.logger;
    this.routes = [
      { pattern: ['services'], methods: { GET: this.getServices, POST: this.register, DELETE: this.deregister } },
      { pattern: ['subscriptions'], methods: { GET: this.getSubscriptions, DELETE: this.unsubscribeAll } },
      { pattern: ['subscriptions', '{ns}'], methods: { POST: this.subscribe, DELETE: this.unsubscribe } },
      { pattern: ['subscriptions', '{ns}', '{id}'], methods: { POST: this.subscribe, DELETE: this.unsubscribe } },
      { pattern: ['notifications'], methods: { GET: this.notSocket, POST: this.notify } },
    ];
    // HTTP/2 and HTTP/1.1 on one TLS port, chosen by ALPN, as Go's net/http serves the OpenNESS
    // EAA: a client that offers h2 multiplexes its requests on one connection (far cheaper per
    // notification, docs/decisions/eaa-transport.md); clients without ALPN and WebSockets (an
    // HTTP/1.1 upgrade) get HTTP/1.1. Client certificates work the same on both. Both protocols
    // are read off the TLS socket by meshlet (H2Connection, H1Connection): node:http2's streams
    // cost the h2 tail (docs/eaa.md §6.3).
    this.api = createTlsServer({
      key: opts.serverCert.keyPem,
      cert: opts.serverCert.certPem,
      ca: [opts.ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      // Go's TLS server never renegotiates either; it also lets the CN be cached per connection.
      secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
      // In our order of preference: h2 when the client offers it.
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    // HTTP/1.1 connections are read by llhttp directly (H1Connection); node:http gets those that
    // need more than it does (a WebSocket upgrade, Expect, HTTP/1.0), from the request on.
    this.http1 = createHttpServer((req, res) => void this.dispatch(req, res));
    this.http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    const serve = (req: Req, res: Res) => void this.dispatch(req, res);
    this.api.on('secureConnection', (sock: TLSSocket) => {
      this.connections.add(sock);
      sock.once('close', () => this.connections.delete(sock));
      if (sock.alpnProtocol === 'h2') new H2Connection(sock, { maxBodyBytes: opts.maxBodyBytes, serve });
      else new H1Connection(sock, { maxBodyBytes: opts.maxBodyBytes, serve, handOff: (s) => this.http1.emit('connection', s) });
    });
    this.api.on('tlsClientError', (err) => this.log.debug({ err }, 'TLS handshake refused'));
  }

  get port(): number {
    return (this.api.address() as AddressInfo | null)?.port ?? 0;
  }

  get authPort(): number {
    return (this.auth?.address() as AddressInfo | null | undefined)?.port ?? 0;
  }

  get listening(): boolean {
    return this.api.listening && (this.auth === undefined || this.auth.listening);
  }

  async start(): Promise<void> {
    await listen(this.api, this.o.address, this.o.port);
    if (this.o.authEnabled) {
      this.auth = createHttpServer((req, res) => void this.authRequest(req, res));
      await listen(this.auth, this.o.address, this.o.authPort);
    }
    this.log.info({ address: this.o.address, port: this.port, authPort: this.authPort }, 'EAA API listening');
  }

  async stop(): Promise<void> {
    if (this.api.listening) {
      await new Promise<void>((resolve) => {
        this.api.close(() => resolve());
        for (const sock of this.connections) sock.destroy();
      });
    }
    const auth = this.auth;
    if (auth?.listening) {
      await new Promise<void>((resolve) => {
        auth.close(() => resolve());
        auth.closeAllConnections();
      });
    }
  }

  // ---- dispatch -------------------------------------------------------------------------------

  /**
   * matchRoute() answers by method and path: apps send the same few requests again and again.
   * The query is not part of the key (a client that numbers its requests in it would otherwise
   * miss every time); a redirect, whose Location carries the query, is not kept.
   */
  private readonly matches = new Map<string, RouteMatch<Handler>>();

  private match(method: string, url: string): RouteMatch<Handler> {
    const q = url.indexOf('?');
    const key = `${method} ${q < 0 ? url : url.slice(0, q)}`;
    let m = this.matches.get(key);
    if (m === undefined) {
      m = matchRoute(this.routes, method, url);
      if (m.kind === 'redirect') return m;
      if (this.matches.size >= 1024) this.matches.clear(); // made-up paths must not grow it
      this.matches.set(key, m);
    }
    return m;
  }

  private async dispatch(req: Req, res: Res): Promise<void> {
    const m = this.match(req.method ?? '', req.url ?? '/');
    let route = 'unknown';
    try {
      if (m.kind === 'none') return notFound(res);
      if (m.kind === 'redirect') return redirect(res, m.location);
      if (m.kind === 'method') return send(res, 405);
      route = `${req.method} ${m.handler.name}`;
      await m.handler.call(this, { req, res, cn: peerCommonName(req), params: m.params });
    } catch (err) {
      this.fail(res, err);
    } finally {
      this.o.metrics.request(route, res.statusCode);
    }
  }

  private fail(res: Res, err: unknown): void {
    if (err instanceof Refused) send(res, err.status, '', { code: err.code, message: err.message });
    else if (err instanceof BodyTooLarge) send(res, 413, '', { code: ErrorCodes.EAA_BAD_REQUEST, message: err.message });
    else if (err instanceof JsonSyntaxError || err instanceof JsonTypeError || err instanceof CsrError) {
      const status = this.o.errorStatus === 'http' ? 400 : 500;
      const code = err instanceof CsrError ? ErrorCodes.EAA_BAD_CSR : ErrorCodes.EAA_BAD_REQUEST;
      send(res, status, '', { code, message: err.message });
    } else {
      this.log.error({ err }, 'EAA request failed');
      send(res, 500, '', { code: ErrorCodes.EAA_BAD_REQUEST, message: `internal error: ${errorMessage(err)}` });
    }
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const m = matchRoute(this.routes, req.method ?? '', req.url ?? '/');
    if (m.kind !== 'ok' || m.handler !== this.notSocket) {
      socket.end(
        'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n\r\n404 page not found\n',
      );
      return;
    }
    this.o.hub.upgrade(req, socket, head, peerCommonName(req));
  }

  private body(call: Call): Promise<string> {
    return readBody(call.req, this.o.maxBodyBytes);
  }

  /** The producer's URN from its certificate; `status` when the CN is not `namespace:id`. */
  private producer(cn: string, status: number): Urn {
    const urn = urnFromCommonName(cn);
    if (urn === undefined) throw new Refused(status, ErrorCodes.EAA_BAD_REQUEST, 'Cannot translate Common Name to URN');
    return urn;
  }

  // ---- handlers (OpenNESS pkg/eaa/api_eaa.go, one per route) ----------------------------------

  private async register(c: Call): Promise<void> {
    const body = await this.body(c);
    const urn = this.producer(c.cn, 500);
    await this.o.core.register(c.cn, decodeService(body, urn));
    send(c.res, 200);
  }

  private async deregister(c: Call): Promise<void> {
    this.producer(c.cn, 500);
    if (!(await this.o.core.deregister(c.cn))) {
      throw new Refused(404, ErrorCodes.EAA_BAD_REQUEST, 'the caller has no registered service');
    }
    send(c.res, 204);
  }

  private getServices(c: Call): void {
    send(c.res, 200, encodeServiceList(this.o.core.services()));
  }

  private getSubscriptions(c: Call): void {
    send(c.res, 200, encodeSubscriptionList(this.o.core.subscriptionsOf(c.cn)));
  }

  private target(c: Call): Urn {
    return { namespace: c.params.ns ?? '', id: c.params.id ?? '' };
  }

  private async subscribe(c: Call): Promise<void> {
    const list = decodeDescriptorList(await this.body(c));
    await this.o.core.subscribe(c.cn, this.target(c), list);
    send(c.res, 201);
  }

  private async unsubscribe(c: Call): Promise<void> {
    const list = decodeDescriptorList(await this.body(c));
    await this.o.core.unsubscribe(c.cn, this.target(c), list);
    send(c.res, 204);
  }

  private async unsubscribeAll(c: Call): Promise<void> {
    await this.o.core.unsubscribeAll(c.cn);
    send(c.res, 204);
  }

  private async notify(c: Call): Promise<void> {
    let n: ReturnType<typeof decodeNotification>;
    try {
      n = decodeNotification(await this.body(c));
      const urn = this.producer(c.cn, 401);
      if (!this.o.core.isRegistered(c.cn)) throw new Refused(500, ErrorCodes.EAA_BAD_REQUEST, 'Producer is not registered');
      if (!this.take(c.cn)) {
        this.o.metrics.outcome('rate_limited');
        throw new Refused(429, ErrorCodes.EAA_BAD_REQUEST, `over ${this.o.maxNotificationsPerSecond} notifications/s`);
      }
      send(c.res, 202);
      this.o.router.publish(urn, n);
    } catch (err) {
      if (!(err instanceof Refused && err.status === 429)) this.o.metrics.outcome('rejected');
      throw err;
    }
  }

  /** GET /notifications without an upgrade: after the Host check, gorilla's 400. */
  private notSocket(c: Call): void {
    // Go's r.Host: the Host header, or on HTTP/2 the :authority pseudo-header.
    const host = c.req.headers.host ?? c.req.headers[':authority'];
    if (c.cn === '' || host !== c.cn) {
      send(c.res, 401);
      return;
    }
    const w = c.res as ServerResponse;
    w.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    w.end('Bad Request\n');
  }

  /** Per-producer token bucket, burst = one second's worth. */
  private take(cn: string): boolean {
    const rate = this.o.maxNotificationsPerSecond;
    if (rate === 0) return true;
    const now = performance.now();
    let b = this.buckets.get(cn);
    if (!b) {
      if (this.buckets.size > 100_000) this.buckets.clear();
      b = { tokens: rate, at: now };
      this.buckets.set(cn, b);
    }
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) * rate) / 1000);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  // ---- POST /auth (OpenNESS ≤ 20.09, plain HTTP) ----------------------------------------------

  private async authRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const m = matchRoute([{ pattern: ['auth'], methods: { POST: true } }], req.method ?? '', req.url ?? '/');
    try {
      if (m.kind === 'none') return notFound(res);
      if (m.kind === 'redirect') return redirect(res, m.location);
      if (m.kind === 'method') return send(res, 405);
      const { csr } = decodeAuthIdentity(await readBody(req, this.o.maxBodyBytes));
      const { cn, certPem } = await signCsr(this.o.ca, csr, { ttlMs: this.o.certTtlMs, refuseCn: refusedCommonName });
      this.log.info({ cn, remote: req.socket.remoteAddress }, 'issued an app certificate');
      send(res, 200, encodeAuthCredentials(cn, certPem, [this.o.ca.certPem], [this.o.ca.certPem]));
    } catch (err) {
      this.fail(res, err);
    } finally {
      this.o.metrics.request('POST auth', res.statusCode);
    }
  }
}

/** Apps may ask for any CN (as in OpenNESS) except the agents' own namespace. */
function refusedCommonName(cn: string): string | undefined {
  return cn === PEER_NAMESPACE || cn.startsWith(`${PEER_NAMESPACE}:`)
    ? `the CN namespace "${PEER_NAMESPACE}" is reserved for meshlet agents`
    : undefined;
}

export function listen(server: Server, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) =>
      reject(new MeshletError(ErrorCodes.EAA_BIND, `cannot listen on ${address}:${port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(port, address, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
