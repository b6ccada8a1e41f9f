import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

/** Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and are never forwarded. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  // Answered by meshlet's own server (Node sends 100 Continue); undici refuses to send it.
  'expect',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Extra hop-by-hop names listed in the Connection header (RFC 9110 §7.6.1). */
export function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  // The usual values list no header: skip the split (every keep-alive response carries one).
  if (value.length <= 10) {
    const v = value.toLowerCase();
    if (v === 'keep-alive' || v === 'close') return undefined;
  }
  const tokens = new Set<string>();
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive') tokens.add(t);
  }
  return tokens.size > 0 ? tokens : undefined;
}

/**
 * The headers sent upstream, as a flat [name, value, ...] list in the client's order and case:
 * hop-by-hop ones dropped (kept for an upgrade), `x-forwarded-for` extended with the client
 * address, `x-forwarded-proto` added when absent.
 */
export function upstreamHeaders(req: IncomingMessage, keepUpgrade: boolean): string[] {
  return upstreamRawHeaders(req.rawHeaders, req.headers.connection, req.socket.remoteAddress ?? '', keepUpgrade);
}

/** `upstreamHeaders` from raw [name, value, ...] pairs (the lean server path has no IncomingMessage). */
export function upstreamRawHeaders(
  raw: readonly string[],
  connection: string | undefined,
  client: string,
  keepUpgrade: boolean,
): string[] {
  const extra = connectionTokens(connection);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let hasProto = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      continue;
    }
    if (lower === 'x-forwarded-proto') hasProto = true;
    if (keepUpgrade && (lower === 'connection' || lower === 'upgrade')) {
      out.push(name, value);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || extra?.has(lower)) continue;
    out.push(name, value);
  }
  out.push('x-forwarded-for', forwardedFor === undefined ? client : `${forwardedFor}, ${client}`);
  if (!hasProto) out.push('x-forwarded-proto', 'http');
  return out;
}

/** Response headers for the client: undici's object minus hop-by-hop ones. */
export function downstreamHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const extra = connectionTokens(typeof headers.connection === 'string' ? headers.connection : undefined);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || extra?.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * The request head for the lean path (h1-pool.ts): request line, the headers of
 * `upstreamHeaders` and the blank line, as one latin1 string. `host` is added when the client
 * sent none (an HTTP/1.0 client), as HTTP/1.1 requires it.
 */
export function requestHead(method: string, path: string, headers: readonly string[], host: string): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let hasHost = false;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i] as string;
    if (!hasHost && name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
    head += `${name}: ${headers[i + 1] as string}\r\n`;
  }
  if (!hasHost) head += `host: ${host}\r\n`;
  return `${head}\r\n`;
}

/** Response headers for the client from raw [name, value, ...] pairs, minus hop-by-hop ones. */
export function downstreamRawHeaders(raw: readonly string[]): string[] {
  let extra: Set<string> | undefined;
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      const tokens = lower === 'connection' ? connectionTokens(raw[i + 1]) : undefined;
      if (tokens !== undefined) {
        extra ??= new Set<string>();
        for (const t of tokens) extra.add(t);
      }
      continue;
    }
    out.push(name, raw[i + 1] as string);
  }
  if (extra === undefined) return out;
  const kept: string[] = [];
  for (let i = 0; i + 1 < out.length; i += 2) {
    if (!extra.has((out[i] as string).toLowerCase())) kept.push(out[i] as string, out[i + 1] as string);
  }
  return kept;
}

/** Whether the request carries a body (RFC 9112 §6.3): then it cannot be replayed on retry. */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** RFC 9110 §9.2.2: methods whose repetition has the same effect. */
export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}
