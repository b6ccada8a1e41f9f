import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';

/**
 * One request with its body read, by the HTTP/1.1 (h1.ts) or the HTTP/2 (h2.ts) connection: `body` is
 * undefined when it was over `bodyLimit` and dropped.
 */
export class BufferedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly socket: TLSSocket;
  readonly body: string | undefined;
  /** The body's length in bytes, as read (so the limit check needs no second pass over it). */
  readonly bodyBytes: number;
  readonly bodyLimit: number;

  constructor(
    method: string,
    url: string,
    headers: IncomingHttpHeaders,
    socket: TLSSocket,
    body: string | undefined,
    bodyBytes: number,
    bodyLimit: number,
  ) {
    this.method = method;
    this.url = url;
    this.headers = headers;
    this.socket = socket;
    this.body = body;
    this.bodyBytes = bodyBytes;
    this.bodyLimit = bodyLimit;
  }
}
