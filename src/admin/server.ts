import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry as MetricsRegistry } from 'prom-client';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { Logger } from '../log.ts';

/** A JSON view served under /debug/<name>. */
export type DebugView = () => unknown;

export interface AdminServerOptions {
  address: string;
  port: number;
  metrics: MetricsRegistry;
  /** Liveness: false only when the process should be restarted. */
  healthy: () => boolean;
  /** Readiness: the reasons it is not ready; empty when ready. */
  notReadyReasons: () => string[];
  views: Record<string, DebugView>;
  logger: Logger;
}

/**
 * The admin endpoint: /healthz, /readyz, /metrics and JSON debug views. Loopback by default;
 * it has no authentication, so it must not be exposed beyond the node.
 */
export class AdminServer {
  readonly #opts: AdminServerOptions;
  readonly #log: Logger;
  #server: Server | undefined;

  constructor(opts: AdminServerOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ module: 'admin' });
  }

  /** The bound address, once started (the port is the real one when configured as 0). */
  get address(): AddressInfo | undefined {
    const addr = this.#server?.address();
    return addr && typeof addr === 'object' ? addr : undefined;
  }

  get url(): string {
    const addr = this.address;
    if (!addr) return '';
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${host}:${addr.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        this.#log.error({ err: errorMessage(err), url: req.url }, 'admin request failed');
        if (!res.headersSent) sendJson(res, 500, { error: errorMessage(err) });
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new MeshletError(
            ErrorCodes.ADMIN_BIND,
            `cannot listen on ${this.#opts.address}:${this.#opts.port} for the admin endpoint: ${errorMessage(err)} (set admin.port)`,
            { cause: err },
          ),
        ),
      );
      server.listen(this.#opts.port, this.#opts.address, () => resolve());
    });
    this.#server = server;
    this.#log.info({ url: this.url }, 'admin endpoint listening');
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://admin').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { error: `method ${req.method} not allowed` });
      return;
    }
    if (path === '/healthz') {
      const healthy = this.#opts.healthy();
      sendText(res, healthy ? 200 : 503, healthy ? 'ok\n' : 'unhealthy\n');
      return;
    }
    if (path === '/readyz') {
      const reasons = this.#opts.notReadyReasons();
      if (reasons.length === 0) sendText(res, 200, 'ok\n');
      else sendText(res, 503, `not ready:\n${reasons.map((r) => `- ${r}`).join('\n')}\n`);
      return;
    }
    if (path === '/metrics') {
      const body = await this.#opts.metrics.metrics();
      res.writeHead(200, { 'content-type': this.#opts.metrics.contentType });
      res.end(body);
      return;
    }
    if (path === '/debug' || path === '/debug/') {
      sendJson(res, 200, { views: Object.keys(this.#opts.views).map((name) => `/debug/${name}`) });
      return;
    }
    const view = path.startsWith('/debug/') ? this.#opts.views[path.slice('/debug/'.length)] : undefined;
    if (view) {
      sendJson(res, 200, view());
      return;
    }
    sendJson(res, 404, {
      error: `no such path ${path}`,
      paths: ['/healthz', '/readyz', '/metrics', ...Object.keys(this.#opts.views).map((n) => `/debug/${n}`)],
    });
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
