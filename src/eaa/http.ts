import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { BufferedRequest } from './buffered-request.ts';
import type { H1Response } from './h1.ts';
import type { H2Response } from './h2.ts';

/**
 * HTTP details shared by the EAA's listeners: bodies read under a size limit, responses with
 * OpenNESS's headers, and gorilla/mux's routing rules (clean paths, StrictSlash, 404 vs 405).
 */

export const JSON_TYPE = 'application/json; charset=UTF-8';

/**
 * A request as the API's handlers see it: read with its body by h1.ts (HTTP/1.1) or h2.ts (HTTP/2), or
 * node:http's, for connections handed to it (an upgrade, Expect, HTTP/1.0).
 */
export type Req = BufferedRequest | IncomingMessage;
export type Res = H1Response | H2Response | ServerResponse;

export class BodyTooLarge extends Error {
  override readonly name = 'BodyTooLarge';
}

/** The request body as UTF-8 text; rejects with BodyTooLarge past `limit` bytes. */
export function readBody(req: Req, limit: number): Promise<string> {
  if (req instanceof BufferedRequest) {
    // Read with the head already, under the same limit (eaa.maxBodyBytes).
    if (req.body === undefined || req.bodyBytes > limit) {
      return Promise.reject(new BodyTooLarge(`request body over ${Math.min(limit, req.bodyLimit)} bytes`));
    }
    return Promise.resolve(req.body);
  }
  // node:http's IncomingMessage (a connection handed over): its body is the stream itself.
  const r = req;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    r.resume();
    return Promise.reject(new BodyTooLarge(`request body over ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    // One chunk is the usual case (a notification is a few hundred bytes): no concat then.
    let first: Buffer | undefined;
    let rest: Buffer[] | undefined;
    let size = 0;
    r.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        r.removeAllListeners('data');
        r.resume();
        reject(new BodyTooLarge(`request body over ${limit} bytes`));
        return;
      }
      if (first === undefined) first = c;
      else if (rest === undefined) rest = [first, c];
      else rest.push(c);
    });
    r.on('end', () => resolve(rest !== undefined ? Buffer.concat(rest).toString('utf8') : (first?.toString('utf8') ?? '')));
    r.on('error', reject);
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
export function send(res: Res, status: number, body = '', error?: { code: string; message: string }): void {
  if (res.headersSent) return;
  const w = res as ServerResponse; // same calls on both protocols; the union's overloads do not unify
  if (body === '' && error === undefined) {
    // The hot path (202 for every notification): one shared header object, nothing to measure.
    w.writeHead(status, EMPTY_HEADERS);
    w.end();
    return;
  }
  const headers: OutgoingHttpHeaders = { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body) };
  if (error) headers['X-Meshlet-Error'] = headerSafe(`${error.code}: ${error.message}`);
  w.writeHead(status, headers);
  w.end(body);
}

/** Read only by writeHead, never changed. */
const EMPTY_HEADERS: OutgoingHttpHeaders = Object.freeze({ 'Content-Type': JSON_TYPE, 'Content-Length': 0 });

/** gorilla/mux's answer for an unknown path. */
export function notFound(res: Res): void {
  if (res.headersSent) return;
  const w = res as ServerResponse;
  w.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  w.end('404 page not found\n');
}

export function redirect(res: Res, location: string): void {
  const w = res as ServerResponse;
  w.writeHead(301, { Location: location, 'Content-Length': 0 });
  w.end();
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

/**
 * The TLS connection a request came on: the socket itself for HTTP/1.1, the session's socket for
 * HTTP/2 (`req.socket` there is a proxy made per stream).
 */
function tlsSocketOf(req: Req): TLSSocket | undefined {
  const sock = req.socket;
  return sock !== undefined && typeof (sock as TLSSocket).getPeerCertificate === 'function' ? (sock as TLSSocket) : undefined;
}

/**
 * CN per TLS connection. getPeerCertificate() builds a fresh object from the certificate on every
 * call, which was the largest single cost of a POST /notifications; the certificate cannot change
 * within a connection because the listeners refuse renegotiation (SSL_OP_NO_RENEGOTIATION).
 */
const commonNames = new WeakMap<TLSSocket, string>();

/** The Subject CN of the verified client certificate ('' when none). */
export function peerCommonName(req: Req): string {
  const sock = tlsSocketOf(req);
  if (sock === undefined) return '';
  let cn = commonNames.get(sock);
  if (cn === undefined) {
    const v = sock.getPeerCertificate()?.subject?.CN as string | string[] | undefined;
    cn = Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
    // Only once the handshake is done (it always is when a request arrives) is the answer final.
    if (sock.authorized) commonNames.set(sock, cn);
  }
  return cn;
}
