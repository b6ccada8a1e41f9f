import { constants } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { Agent, request } from 'undici';
import { ErrorCodes, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { EaaCore } from './core.ts';
import { BodyTooLarge, notFound, peerCommonName, readBody, send } from './http.ts';
import type { EaaMetrics } from './metrics.ts';
import type { Envelope, NotificationRouter } from './router.ts';
import { listen, PEER_NAMESPACE } from './server.ts';
import { type EaaRecord, validRecord } from './store.ts';

/**
 * Agent-to-agent replication and notification forwarding (docs/eaa.md §Routing). Every agent
 * serves its records (GET) and accepts pushed records and forwarded notifications (POST) over
 * mutual TLS with certificates of the shared EAA CA whose CN is `meshlet-peer:<node>`.
 * - records: pushed to every peer on each local write, and pulled in full from every peer every
 *   `syncIntervalMs` (and at start), so a lost push or a restarted peer converges;
 * - notifications: one ordered queue per peer, sent in batches; a failed batch is retried with
 *   the same ids (the receiver drops repeats); past `queueLimit` the oldest are dropped.
 */

export interface PeerInfo {
  name: string;
  /** https://host:port of its peer API. */
  url: string;
}

const RECORDS = '/eaa/v1/records';
const NOTIFICATIONS = '/eaa/v1/notifications';
const BATCH = 512;
const MAX_PEER_BODY = 64 << 20;

interface Link {
  peer: PeerInfo;
  /** Wrapped so each queued send is its own object, even for the same envelope. */
  queue: { env: Envelope }[];
  sending: boolean;
  up: boolean;
  retryTimer: NodeJS.Timeout | undefined;
  failures: number;
}

export interface PeerMeshOptions {
  node: string;
  address: string;
  port: number;
  identity: { certPem: string; keyPem: string };
  caPem: string;
  peers: () => PeerInfo[];
  syncIntervalMs: number;
  timeoutMs: number;
  queueLimit: number;
  core: EaaCore;
  router: () => NotificationRouter;
  metrics: EaaMetrics;
  logger: Logger;
}

export class PeerMesh {
  private readonly o: PeerMeshOptions;
  private readonly log: Logger;
  private readonly server: Server;
  private readonly agent: Agent;
  private readonly links = new Map<string, Link>();
  private pendingRecords: EaaRecord[] = [];
  private pushScheduled = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(opts: PeerMeshOptions) {
    this.o = opts;
    this.log = opts.logger;
    this.server = createServer(
      {
        key: opts.identity.keyPem,
        cert: opts.identity.certPem,
        ca: [opts.caPem],
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        // peerCommonName() caches the CN per connection; without renegotiation it cannot change.
        secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
      },
      (req, res) => void this.handle(req, res),
    );
    this.agent = new Agent({
      connections: 4,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connect: {
        ca: [opts.caPem],
        cert: opts.identity.certPem,
        key: opts.identity.keyPem,
        timeout: opts.timeoutMs,
        // Peers are named by certificate CN, not by address (node addresses change, certs do not).
        checkServerIdentity: (_host: string, cert: PeerCertificate) =>
          String(cert.subject?.CN ?? '').startsWith(`${PEER_NAMESPACE}:`)
            ? undefined
            : new Error(`peer certificate CN ${String(cert.subject?.CN)} is not a meshlet agent`),
      },
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? 0;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  async start(): Promise<void> {
    await listen(this.server, this.o.address, this.o.port);
    this.log.info({ address: this.o.address, port: this.port }, 'EAA peer API listening');
    void this.syncAll();
    if (this.o.syncIntervalMs > 0) {
      this.syncTimer = setInterval(() => void this.syncAll(), this.o.syncIntervalMs);
      this.syncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    for (const l of this.links.values()) if (l.retryTimer) clearTimeout(l.retryTimer);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.agent.destroy().catch(() => {});
  }

  status(): { peer: string; queued: number; up: boolean }[] {
    return [...this.links.values()].map((l) => ({ peer: l.peer.name, queued: l.queue.length, up: l.up }));
  }

  // ---- outgoing -------------------------------------------------------------------------------

  /** A record written on this node: pushed to every peer soon (batched per event-loop turn). */
  push(rec: EaaRecord): void {
    this.pendingRecords.push(rec);
    if (this.pushScheduled) return;
    this.pushScheduled = true;
    setImmediate(() => {
      this.pushScheduled = false;
      const records = this.pendingRecords;
      this.pendingRecords = [];
      for (const link of this.currentLinks()) void this.pushTo(link, records);
    });
  }

  /** One notification for `node`'s subscribers, queued in order. */
  forward(node: string, env: Envelope): void {
    const link = this.currentLinks().find((l) => l.peer.name === node);
    if (!link) {
      this.o.metrics.outcome('dropped');
      this.log.warn({ node }, 'subscribers on a node that is not a known peer; notification dropped');
      return;
    }
    link.queue.push({ env });
    if (link.queue.length > this.o.queueLimit) {
      const over = link.queue.length - this.o.queueLimit;
      link.queue.splice(0, over);
      this.o.metrics.outcome('dropped', over);
    }
    if (!link.sending && link.retryTimer === undefined) void this.drain(link);
  }

  /** Pulls every peer's records (anti-entropy). */
  async syncAll(): Promise<void> {
    await Promise.all(this.currentLinks().map((l) => this.pull(l)));
  }

  private currentLinks(): Link[] {
    const peers = this.o.peers().filter((p) => p.name !== this.o.node);
    const names = new Set(peers.map((p) => p.name));
    for (const [name, l] of this.links) {
      if (!names.has(name) && l.queue.length === 0) this.links.delete(name);
    }
    for (const p of peers) {
      const l = this.links.get(p.name);
      if (l) l.peer = p;
      else this.links.set(p.name, { peer: p, queue: [], sending: false, up: false, retryTimer: undefined, failures: 0 });
    }
    return peers.map((p) => this.links.get(p.name) as Link);
  }

  private async call(link: Link, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const res = await request(new URL(path, link.peer.url), {
      method,
      dispatcher: this.agent,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`peer ${link.peer.name} answered ${res.statusCode}: ${text.slice(0, 200)}`);
    return text === '' ? undefined : JSON.parse(text);
  }

  private mark(link: Link, up: boolean, err?: unknown): void {
    if (up && !link.up) {
      this.log.info({ peer: link.peer.name }, 'EAA peer reachable');
      link.up = true;
      link.failures = 0;
      void this.pull(link); // it may have missed pushes while away
    } else if (!up && link.up) {
      this.log.warn({ peer: link.peer.name, err: errorMessage(err), code: ErrorCodes.EAA_PEER }, 'EAA peer unreachable');
      link.up = false;
    }
  }

  private async pull(link: Link): Promise<void> {
    try {
      const doc = (await this.call(link, 'GET', RECORDS)) as { records?: unknown };
      const records = Array.isArray(doc?.records) ? doc.records.filter(validRecord) : [];
      const changed = this.o.core.mergeRemote(records);
      this.o.metrics.peerSyncs.inc({ result: 'pulled' });
      if (changed > 0) this.log.debug({ peer: link.peer.name, changed }, 'merged peer records');
      if (!link.up) this.mark(link, true);
    } catch (err) {
      this.o.metrics.peerSyncs.inc({ result: 'failed' });
      this.mark(link, false, err);
    }
  }

  private async pushTo(link: Link, records: EaaRecord[]): Promise<void> {
    try {
      await this.call(link, 'POST', RECORDS, { node: this.o.node, records });
      this.o.metrics.peerSyncs.inc({ result: 'pushed' });
      this.mark(link, true);
    } catch (err) {
      // Not retried: the peer pulls everything on its next sync.
      this.o.metrics.peerSyncs.inc({ result: 'failed' });
      this.mark(link, false, err);
    }
  }

  private async drain(link: Link): Promise<void> {
    link.sending = true;
    try {
      while (link.queue.length > 0 && !this.stopped) {
        const batch = link.queue.slice(0, BATCH);
        try {
          await this.call(link, 'POST', NOTIFICATIONS, { node: this.o.node, notifications: batch.map((q) => q.env) });
        } catch (err) {
          this.mark(link, false, err);
          link.failures++;
          const delay = Math.min(5_000, 100 * 2 ** Math.min(link.failures, 6));
          link.retryTimer = setTimeout(() => {
            link.retryTimer = undefined;
            void this.drain(link);
          }, delay);
          link.retryTimer.unref();
          return;
        }
        // Only what was sent leaves the queue (overflow trimming may have shifted it meanwhile).
        const sent = new Set(batch);
        while (link.queue.length > 0 && sent.has(link.queue[0] as { env: Envelope })) link.queue.shift();
        this.mark(link, true);
      }
    } finally {
      link.sending = false;
    }
  }

  // ---- incoming -------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const cn = peerCommonName(req);
    if (!cn.startsWith(`${PEER_NAMESPACE}:`)) {
      return send(res, 403, '', { code: ErrorCodes.EAA_PEER, message: 'peer API is for meshlet agents only' });
    }
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (path === RECORDS && req.method === 'GET') {
        return send(res, 200, JSON.stringify({ node: this.o.node, records: this.o.core.records() }));
      }
      if (path === RECORDS && req.method === 'POST') {
        const doc = JSON.parse(await readBody(req, MAX_PEER_BODY)) as { records?: unknown };
        const records = Array.isArray(doc?.records) ? doc.records.filter(validRecord) : [];
        this.o.core.mergeRemote(records);
        return send(res, 200);
      }
      if (path === NOTIFICATIONS && req.method === 'POST') {
        const doc = JSON.parse(await readBody(req, MAX_PEER_BODY)) as { notifications?: unknown };
        const list = Array.isArray(doc?.notifications) ? doc.notifications : [];
        const router = this.o.router();
        for (const env of list) if (validEnvelope(env)) router.receive(env);
        return send(res, 200);
      }
      notFound(res);
    } catch (err) {
      const status = err instanceof BodyTooLarge ? 413 : err instanceof SyntaxError ? 400 : 500;
      send(res, status, '', { code: ErrorCodes.EAA_PEER, message: errorMessage(err) });
    }
  }
}

function validEnvelope(e: unknown): e is Envelope {
  const o = e as Envelope;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.id === 'string' &&
    typeof o.name === 'string' &&
    typeof o.version === 'string' &&
    typeof o.producer?.id === 'string' &&
    typeof o.producer.namespace === 'string' &&
    (o.payload === undefined || typeof o.payload === 'string')
  );
}
