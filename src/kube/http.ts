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

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const PATCH_TYPES = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

/**
 * Sends one request and resolves with the response once a 2xx status arrives; any other status
 * becomes a KubeStatusError carrying the apiserver's own reason and message. Only the wait for
 * the response headers is bounded by `timeoutMs`: a watch stream then runs as long as it lasts.
 */
async function send(
  conn: KubeConnection,
  method: Method,
  path: string,
  opts: { payload?: Buffer; contentType?: string; signal?: AbortSignal; timeoutMs: number },
): Promise<IncomingMessage> {
  const url = new URL(path, conn.server);
  const what = `${method} ${url.pathname}${url.search}`;
  const options = await conn.requestOptions();
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const { payload, contentType, signal, timeoutMs } = opts;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(
      url,
      {
        ...options,
        method,
        ...(signal && { signal }),
        headers: {
          ...options.headers,
          accept: 'application/json',
          ...(payload && { 'content-type': contentType ?? 'application/json', 'content-length': payload.length }),
        },
      },
      resolve,
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    req.on('error', (err) =>
      reject(new MeshletError(ErrorCodes.KUBE_UNREACHABLE, `${what}: ${errorMessage(err)}`, { cause: err })),
    );
    req.end(payload);
  });
  res.socket?.setTimeout(0);
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return res;
  const text = await readBody(res).catch(() => '');
  let reason = '';
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { reason?: string; message?: string };
    reason = parsed.reason ?? '';
    message = parsed.message ?? message;
  } catch {}
  throw new KubeStatusError(status, reason, `${what}: ${status} ${reason} ${message}`.trim());
}

/** GET a path and return the response stream (lists, watches) once a 2xx status arrives. */
export function kubeGet(conn: KubeConnection, path: string, signal: AbortSignal, timeoutMs = 30_000): Promise<IncomingMessage> {
  return send(conn, 'GET', path, { signal, timeoutMs });
}

/**
 * One non-streaming request with a JSON body; resolves with the parsed JSON answer. Non-2xx
 * answers become KubeStatusError (409 Conflict, 404 NotFound, ...). PATCH takes its content type
 * from `patchType` (merge by default).
 */
export async function kubeRequest<T = unknown>(
  conn: KubeConnection,
  method: Method,
  path: string,
  body?: unknown,
  opts: { timeoutMs?: number; patchType?: keyof typeof PATCH_TYPES; signal?: AbortSignal } = {},
): Promise<T> {
  const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const res = await send(conn, method, path, {
    ...(payload && { payload }),
    ...(method === 'PATCH' && { contentType: PATCH_TYPES[opts.patchType ?? 'merge'] }),
    ...(opts.signal && { signal: opts.signal }),
    timeoutMs: opts.timeoutMs ?? 10_000,
  });
  const text = await readBody(res);
  return (text ? JSON.parse(text) : {}) as T;
}

export async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
