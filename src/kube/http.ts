import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { KubeConnection } from './connection.ts';

/** An apiserver answer that was not 2xx, with the Status object's reason when there is one. */
export class KubeStatusError extends MeshletError {
  readonly status: number;
  readonly reason: string;

  constructor(status: number, reason: string, message: string) {
    super(ErrorCodes.KUBE_STATUS, message);
    this.status = status;
    this.reason = reason;
  }
}

/**
 * GET a path on the apiserver and return the response stream once a 2xx status arrives.
 * Non-2xx answers become KubeStatusError with the apiserver's own message.
 */
export async function kubeGet(
  conn: KubeConnection,
  path: string,
  signal: AbortSignal,
  timeoutMs = 30_000,
): Promise<IncomingMessage> {
  const url = new URL(path, conn.server);
  const options = await conn.requestOptions();
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(
      url,
      { ...options, method: 'GET', signal, headers: { ...options.headers, accept: 'application/json' } },
      resolve,
    );
    // Only the wait for response headers is bounded here; a watch stream then runs as long as it lasts.
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    req.on('error', (err) =>
      reject(
        new MeshletError(ErrorCodes.KUBE_UNREACHABLE, `GET ${url.pathname}${url.search}: ${errorMessage(err)}`, { cause: err }),
      ),
    );
    req.end();
  });
  res.socket?.setTimeout(0);
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return res;
  const body = await readBody(res).catch(() => '');
  let reason = '';
  let message = body.slice(0, 500);
  try {
    const parsed = JSON.parse(body) as { reason?: string; message?: string };
    reason = parsed.reason ?? '';
    message = parsed.message ?? message;
  } catch {}
  throw new KubeStatusError(status, reason, `GET ${url.pathname}${url.search}: ${status} ${reason} ${message}`.trim());
}

/**
 * One non-streaming request (GET/POST/PUT/PATCH/DELETE) with a JSON body; resolves with the
 * parsed JSON answer. Non-2xx answers become KubeStatusError (409 Conflict, 404 NotFound, ...).
 * PATCH takes its content type from `patchType` (merge by default).
 */
export async function kubeRequest<T = unknown>(
  conn: KubeConnection,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  opts: { timeoutMs?: number; patchType?: 'merge' | 'strategic' | 'json' | 'apply'; signal?: AbortSignal } = {},
): Promise<T> {
  const url = new URL(path, conn.server);
  const options = await conn.requestOptions();
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const contentType =
    method !== 'PATCH'
      ? 'application/json'
      : {
          merge: 'application/merge-patch+json',
          strategic: 'application/strategic-merge-patch+json',
          json: 'application/json-patch+json',
          apply: 'application/apply-patch+yaml',
        }[opts.patchType ?? 'merge'];
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      url,
      {
        ...options,
        method,
        ...(opts.signal && { signal: opts.signal }),
        headers: {
          ...options.headers,
          accept: 'application/json',
          ...(payload && { 'content-type': contentType, 'content-length': payload.length }),
        },
      },
      (res) => {
        readBody(res).then((text) => resolve({ status: res.statusCode ?? 0, text }), reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    req.on('error', (err) =>
      reject(new MeshletError(ErrorCodes.KUBE_UNREACHABLE, `${method} ${url.pathname}: ${errorMessage(err)}`, { cause: err })),
    );
    req.end(payload);
  });
  if (status >= 200 && status < 300) return (text ? JSON.parse(text) : {}) as T;
  let reason = '';
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { reason?: string; message?: string };
    reason = parsed.reason ?? '';
    message = parsed.message ?? message;
  } catch {}
  throw new KubeStatusError(status, reason, `${method} ${url.pathname}: ${status} ${reason} ${message}`.trim());
}

export async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
