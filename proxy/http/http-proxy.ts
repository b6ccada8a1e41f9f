import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { errorMessage } from '../../src/errors.ts';
import type { ProxyEndpoint } from '../balance/picker.ts';
import type { RouteContext } from '../route.ts';
import { RequestAttempts } from './attempts.ts';
import type { H1Handler, H1Request } from './h1-pool.ts';
import { downstreamHeaders, downstreamRawHeaders, hasBody, requestHead, upstreamHeaders } from './headers.ts';
import type { UpstreamPools } from './upstream-pools.ts';

/**
 * One proxied HTTP request: balanced per request, sent on the endpoint's pooled keep-alive
 * connections, streamed both ways with backpressure. A request without a body (the common
 * case) takes the lean path: its head written as one string on an `H1Pool` socket, the response
 * framed by llhttp (h1-pool.ts); a request with a body is streamed by undici `Pool.dispatch`.
 * Both measured in docs/decisions/proxy-http.md. Connection failures before a response are
 * retried on another endpoint for idempotent requests without a body.
 */
export class ProxyExchange implements Dispatcher.DispatchHandler, H1Handler {
  readonly #route: RouteContext;
  readonly #pools: UpstreamPools;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #headers: string[];
  readonly #replayable: boolean;
  readonly #attempts = new RequestAttempts();
  #endpoint: ProxyEndpoint | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #h1: H1Request | undefined;
  /** Lean path: the last body chunk, held so a small response goes out in one write with its end. */
  #pending: Buffer | undefined;
  #responded = false;
  #done = false;

  constructor(route: RouteContext, pools: UpstreamPools, req: IncomingMessage, res: ServerResponse) {
    this.#route = route;
    this.#pools = pools;
    this.#req = req;
    this.#res = res;
    this.#headers = upstreamHeaders(req, false);
    this.#replayable = !hasBody(req);
    res.once('close', () => {
      if (res.writableFinished) return;
      this.#controller?.abort(new Error('client went away'));
      this.#h1?.abort();
      // An aborted lean request reports nothing back: the endpoint's in-flight count (least
      // request) must come down here, once.
      this.#finish();
    });
  }

  start(): void {
    this.#dispatch(undefined);
  }

  #dispatch(previous: ProxyEndpoint | undefined): void {
    const route = this.#route;
    const endpoint = this.#attempts.next(route, this.#req.socket.remoteAddress ?? '', this.#req.headers, previous);
    if (endpoint === undefined) {
      this.#fail(503, 'no endpoint available');
      return;
    }
    this.#endpoint = endpoint;
    const timeout = route.settings.requestTimeoutMs;
    if (this.#replayable) {
      const pool = this.#pools.h1(endpoint);
      const req = this.#req;
      this.#h1 = pool.request(requestHead(req.method ?? 'GET', req.url ?? '/', this.#headers, pool.hostHeader), timeout, this);
      return;
    }
    this.#pools.get(endpoint).dispatch(
      {
        path: this.#req.url ?? '/',
        method: this.#req.method ?? 'GET',
        headers: this.#headers,
        body: this.#replayable ? null : this.#req,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      },
      this,
    );
  }

  onH1Head(statusCode: number, statusMessage: string, rawHeaders: string[]): boolean {
    this.#responded = true;
    if (this.#endpoint !== undefined) this.#route.picker.success(this.#endpoint);
    const res = this.#res;
    if (res.destroyed) {
      this.#h1?.abort();
      return true;
    }
    res.writeHead(statusCode, statusMessage, downstreamRawHeaders(rawHeaders));
    this.#route.metrics.request(statusCode);
    return this.#req.method === 'HEAD';
  }

  onH1Body(chunk: Buffer): boolean {
    const previous = this.#pending;
    this.#pending = chunk;
    return previous === undefined || this.#write(previous);
  }

  /** End of one read from upstream: the held chunk goes out (streamed responses stay streamed). */
  onH1Flush(): boolean {
    const pending = this.#pending;
    if (pending === undefined) return true;
    this.#pending = undefined;
    return this.#write(pending);
  }

  #write(chunk: Buffer): boolean {
    if (this.#res.write(chunk)) return true;
    this.#res.once('drain', () => this.#h1?.resume());
    return false;
  }

  onH1End(trailers: string[] | undefined): void {
    this.#finish();
    this.#h1 = undefined;
    const res = this.#res;
    if (trailers !== undefined) {
      const pairs = downstreamRawHeaders(trailers);
      const list: [string, string][] = [];
      for (let i = 0; i + 1 < pairs.length; i += 2) list.push([pairs[i] as string, pairs[i + 1] as string]);
      if (list.length > 0) res.addTrailers(list);
    }
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) res.end(pending);
    else res.end();
  }

  onH1Error(err: Error): void {
    this.#h1 = undefined;
    this.#pending = undefined;
    this.onResponseError(undefined, err);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    this.#responded = true;
    if (this.#endpoint !== undefined) this.#route.picker.success(this.#endpoint);
    const res = this.#res;
    if (res.destroyed) {
      controller.abort(new Error('client went away'));
      return;
    }
    res.writeHead(statusCode, statusMessage ?? '', downstreamHeaders(headers));
    this.#route.metrics.request(statusCode);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#finish();
    for (const _ in trailers) {
      this.#res.addTrailers(downstreamHeaders(trailers));
      break;
    }
    this.#res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    const endpoint = this.#endpoint;
    this.#finish();
    if (this.#responded) {
      // Mid-body failure: the status is already out; cutting the connection tells the client.
      this.#route.log.debug({ endpoint: endpoint?.id, err: errorMessage(err) }, 'upstream failed mid-response');
      this.#res.destroy();
      return;
    }
    const next = this.#attempts.afterFailure(
      this.#route,
      endpoint,
      err,
      this.#req.method ?? 'GET',
      this.#replayable && !this.#res.destroyed,
    );
    if (next.retry) {
      this.#done = false;
      this.#dispatch(next.previous);
      return;
    }
    this.#fail(next.status, next.message);
    this.#route.log.debug({ endpoint: endpoint?.id, err: errorMessage(err), code: next.code }, 'request failed');
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#endpoint !== undefined) this.#endpoint.stats.active--;
  }

  #fail(status: number, message: string): void {
    this.#route.metrics.request(status);
    const res = this.#res;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const body = `${message}\n`;
    res.writeHead(status, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
      'x-meshlet-error': message,
    });
    res.end(body);
  }
}
