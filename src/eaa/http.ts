import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';

/**
 * HTTP details shared by the EAA's listeners: bodies read under a size limit, responses with
 * OpenNESS's headers, and gorilla/mux's routing rules (clean paths, StrictSlash, 404 vs 405).
 */

export const JSON_TYPE = 'application/json; charset=UTF-8';

export class BodyTooLarge extends Error {
  override readonly name = 'BodyTooLarge';
}

/** The request body as UTF-8 text; rejects with BodyTooLarge past `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    return Promise.reject(new BodyTooLarge(`request body over ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyTooLarge(`request body over ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Header value safe for the wire: printable ASCII, one line, bounded. */
function headerSafe(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 300);
}

/**
 * A handler's answer: OpenNESS's JSON content type, an empty body on errors. meshlet adds the
 * reason in `X-Meshlet-Error` so bodies stay as OpenNESS clients expect.
 */
export function send(res: ServerResponse, status: number, body = '', error?: { code: string; message: string }): void {
  if (res.headersSent) return;
  const headers: Record<string, string | number> = { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body) };
  if (error) headers['X-Meshlet-Error'] = headerSafe(`${error.code}: ${error.message}`);
  res.writeHead(status, headers);
  res.end(body);
}

/** gorilla/mux's answer for an unknown path. */
export function notFound(res: ServerResponse): void {
  if (res.headersSent) return;
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  res.end('404 page not found\n');
}

export function redirect(res: ServerResponse, location: string): void {
  res.writeHead(301, { Location: location, 'Content-Length': 0 });
  res.end();
}

/** Go's path.Clean, keeping a trailing slash (gorilla/mux cleanPath). */
export function cleanPath(p: string): string {
  if (p === '') return '/';
  const rooted = p.startsWith('/') ? p : `/${p}`;
  const out: string[] = [];
  for (const seg of rooted.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  let clean = `/${out.join('/')}`;
  if (rooted.endsWith('/') && clean !== '/') clean += '/';
  return clean;
}

export interface Route<H> {
  /** Segments; `{name}` matches one non-empty segment. */
  pattern: string[];
  methods: Partial<Record<string, H>>;
}

export type RouteMatch<H> =
  | { kind: 'ok'; handler: H; params: Record<string, string> }
  | { kind: 'redirect'; location: string }
  | { kind: 'method' }
  | { kind: 'none' };

/**
 * Matches a request path as gorilla/mux with StrictSlash(true): on the decoded path; an unclean
 * path or one with an extra trailing slash redirects (301); a known path with another method
 * is 405.
 */
export function matchRoute<H>(routes: readonly Route<H>[], method: string, rawUrl: string): RouteMatch<H> {
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return { kind: 'none' };
  }
  const clean = cleanPath(path);
  if (clean !== path) return { kind: 'redirect', location: clean + (q < 0 ? '' : rawUrl.slice(q)) };
  const trailing = path.length > 1 && path.endsWith('/');
  const segs = (trailing ? path.slice(0, -1) : path).split('/').slice(1);
  let methodMismatch = false;
  for (const route of routes) {
    if (route.pattern.length !== segs.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segs.length && ok; i++) {
      const want = route.pattern[i] as string;
      const got = segs[i] as string;
      if (want.startsWith('{')) {
        if (got === '') ok = false;
        else params[want.slice(1, -1)] = got;
      } else if (want !== got) ok = false;
    }
    if (!ok) continue;
    if (trailing) return { kind: 'redirect', location: path.slice(0, -1) + (q < 0 ? '' : rawUrl.slice(q)) };
    const handler = route.methods[method];
    if (handler !== undefined) return { kind: 'ok', handler, params };
    methodMismatch = true;
  }
  return methodMismatch ? { kind: 'method' } : { kind: 'none' };
}

/** The Subject CN of the verified client certificate ('' when none). */
export function peerCommonName(req: IncomingMessage): string {
  const sock = req.socket as TLSSocket;
  if (typeof sock.getPeerCertificate !== 'function') return '';
  const cn = sock.getPeerCertificate()?.subject?.CN as string | string[] | undefined;
  return Array.isArray(cn) ? (cn[0] ?? '') : (cn ?? '');
}
