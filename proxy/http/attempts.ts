import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCodes } from '../../src/errors.ts';
import type { ProxyEndpoint } from '../balance/picker.ts';
import { recordConnectFailure } from '../connect/connect-endpoint.ts';
import type { RouteContext } from '../route.ts';
import { isIdempotent } from './headers.ts';

/** Errors raised by the dial step: nothing reached the endpoint, so any body-less request may be retried. */
const CONNECT_ERRORS: ReadonlySet<unknown> = new Set<unknown>([ErrorCodes.PROXY_CONNECT, ErrorCodes.PROXY_TIMEOUT]);
/** A pooled keep-alive connection that died under the request: safe to replay idempotent requests. */
const RESET_ERRORS: ReadonlySet<unknown> = new Set<unknown>(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED']);
const TIMEOUT_ERRORS: ReadonlySet<unknown> = new Set<unknown>(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** What to do after an attempt failed before any response byte. */
export type AfterFailure =
  /** Try again: `previous` is the endpoint to fall back on when the picker has no other one. */
  { retry: true; previous: ProxyEndpoint | undefined } | { retry: false; status: 502 | 504; message: string; code: unknown };

/**
 * The balance-and-retry bookkeeping of one proxied HTTP/1.1 request, the same for the lean
 * server path (lean-server.ts) and the node:http one (http-proxy.ts): which endpoints were
 * tried, how many attempts were made, the in-flight count each picked endpoint carries (least
 * request), and which failures are worth another attempt.
 */
export class RequestAttempts {
  /** Endpoints tried, made on the first retry; until then only `#firstId` (the first attempt allocates no Set). */
  #tried: Set<string> | undefined;
  #firstId: string | undefined;
  #count = 0;

  /**
   * The endpoint for the next attempt, counted and marked in flight (`stats.active`, which the
   * caller releases once): a pick that avoids those tried, else `previous`. Undefined when there
   * is none (counted as "no endpoint" when it is the first attempt).
   */
  next(
    route: RouteContext,
    clientIp: string,
    headers: IncomingHttpHeaders | undefined,
    previous: ProxyEndpoint | undefined,
  ): ProxyEndpoint | undefined {
    const tried = this.#tried;
    const request =
      headers === undefined
        ? tried === undefined
          ? { clientIp }
          : { clientIp, exclude: tried }
        : tried === undefined
          ? { clientIp, headers }
          : { clientIp, headers, exclude: tried };
    const endpoint = route.picker.pick(request) ?? previous;
    if (endpoint === undefined) {
      if (this.#count === 0) route.metrics.noEndpoint.inc();
      return undefined;
    }
    if (this.#count === 0) this.#firstId = endpoint.id;
    else this.#tried?.add(endpoint.id);
    this.#count++;
    endpoint.stats.active++;
    return endpoint;
  }

  /**
   * After an attempt on `endpoint` failed before any response byte: a failed connect is counted
   * (outlier ejection) and retried elsewhere; a reset keep-alive connection is retried, on the
   * same endpoint too, for idempotent methods; both within `httpRetries` and only when the
   * request can be sent again (`replayable`: no body, client still there). Otherwise the status
   * to answer: 504 for a timeout, else 502.
   */
  afterFailure(
    route: RouteContext,
    endpoint: ProxyEndpoint | undefined,
    err: Error,
    method: string,
    replayable: boolean,
  ): AfterFailure {
    const code = (err as { code?: unknown }).code;
    const connectFailed = CONNECT_ERRORS.has(code);
    if (connectFailed && endpoint !== undefined) recordConnectFailure(route, endpoint, err);
    const retry =
      replayable &&
      this.#count <= route.settings.httpRetries &&
      (connectFailed || (RESET_ERRORS.has(code) && isIdempotent(method)));
    if (retry) {
      if (this.#tried === undefined && this.#firstId !== undefined) this.#tried = new Set([this.#firstId]);
      // A reset keep-alive connection may be retried on the same endpoint; a failed connect may not.
      return { retry: true, previous: connectFailed ? undefined : endpoint };
    }
    return TIMEOUT_ERRORS.has(code)
      ? { retry: false, status: 504, message: 'upstream timed out', code }
      : { retry: false, status: 502, message: 'upstream connection failed', code };
  }
}
