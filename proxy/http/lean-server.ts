import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { errorMessage } from '../../src/errors.ts';
import { httpDate } from '../../src/http-date.ts';
import type { ProxyEndpoint } from '../balance/picker.ts';
import type { RouteContext } from '../route.ts';
import { RequestAttempts } from './attempts.ts';
import type { H1Handler, H1Request } from './h1-pool.ts';
import { downstreamRawHeaders, requestHead, upstreamRawHeaders } from './headers.ts';
import { HeadPieces, HTTPParser, METHODS, type NativeParser, rebuiltRequestHead, type StreamHandle } from './llhttp.ts';
import type { UpstreamPools } from './upstream-pools.ts';

/**
 * The lean server path of the common case: the client connection is parsed by llhttp directly
 * (the native `HTTPParser` node:http itself uses, without IncomingMessage / ServerResponse per
 * request), each HTTP/1.1 request without a body is forwarded on the endpoint's `H1Pool` with
 * only the header changes a proxy must make, and the response is framed straight onto the
 * socket. Measured in docs/decisions/proxy-http.md.
 *
 * Anything unusual hands the connection to the node:http server for the rest of its life, at
 * the request boundary and after the responses already under way are written: a request with
 * a body or `Expect`, an upgrade (WebSocket, h2c upgrade), CONNECT, an uncommon method, HTTP/1.0,
 * a request without Host. The handed-off request's head is rebuilt from the parsed head (same
 * method, target, version and header lines) and put back in front of the unread bytes.
 *
 * Pipelined requests are answered in order by serving them one at a time (a queue per
 * connection, bounded: reading pauses past MAX_QUEUED). A parse error answers 400 after the
 * responses before it and closes the connection, as node:http's clientError path does.
 */

/** llhttp method numbers that take the lean path (when the request has no body). */
const LEAN_METHODS = new Set(
  ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST', 'PUT', 'PATCH'].map((m) => METHODS.indexOf(m)).filter((i) => i >= 0),
);

/** onHeadersComplete return values understood by llhttp: go on, or stop here as for an upgrade. */
const PROCEED = 0;
const STOP = 2;

/** Parsed requests waiting behind the one in flight before the socket stops being read. */
const MAX_QUEUED = 16;
/** Idle keep-alive client connections close after this long (node:http's keepAliveTimeout). */
const IDLE_TIMEOUT_MS = 5_000;

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';
/** Below this, a response part is copied into one buffer and written once (one syscall, no writev). */
const COPY_LIMIT = 16 * 1024;

interface LeanRequest {
  method: string;
  url: string;
  /** Request head without Host handling (Host is required on this path). */
  head: string;
  keepAlive: boolean;
  /** Only built for header/cookie hashing. */
  headers: IncomingHttpHeaders | undefined;
}

/** A connection on the lean path; `fallback` hands the socket to the node:http server. */
export class LeanConnection {
  readonly socket: Socket;
  readonly #getRoute: () => RouteContext;
  readonly #pools: UpstreamPools;
  readonly #fallback: (socket: Socket) => void;
  readonly #parser: NativeParser;
  readonly #clientIp: string;
  readonly #onData = (data: Buffer) => this.#read(data);
  readonly #onEnd = () => this.#clientEnded();
  readonly #onClose = () => this.#closed();
  readonly #onTimeout = () => {
    if (this.#active === undefined && this.#queue.length === 0) this.socket.destroy();
  };
  readonly #onError = () => this.socket.destroy();
  readonly #head = new HeadPieces();
  readonly #queue: LeanRequest[] = [];
  #active: LeanExchange | undefined;
  /** The rebuilt head of a request node:http must serve, and the bytes read after it. */
  #handoff: Buffer | undefined;
  #bad = false;
  /** The client asked to close, or half-closed: end after the responses owed. */
  #closeAfter = false;
  #paused = false;
  /** Set when llhttp reads the socket itself (`consume`, as node:http does): no JS Buffer per read. */
  #handle: StreamHandle | undefined;
  #done = false;
  #parserFreed = false;

  constructor(socket: Socket, getRoute: () => RouteContext, pools: UpstreamPools, fallback: (socket: Socket) => void) {
    this.socket = socket;
    this.#getRoute = getRoute;
    this.#pools = pools;
    this.#fallback = fallback;
    this.#clientIp = socket.remoteAddress ?? '';
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
    parser[HTTPParser.kOnHeaders] = (headers: string[], url: string) => this.#head.add(headers, url);
    parser[HTTPParser.kOnHeadersComplete] = this.#onHeadersComplete.bind(this);
    parser[HTTPParser.kOnBody] = () => {};
    parser[HTTPParser.kOnMessageComplete] = () => {};
    this.#parser = parser;
    const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
    if (handle?.isStreamBase === true && handle._consumed !== true) {
      parser[HTTPParser.kOnExecute] = (ret: number | Error) => {
        // Reads bypass the JS stream, which is what re-arms the socket's idle timeout.
        (socket as unknown as { _unrefTimer(): void })._unrefTimer();
        this.#executed(ret, undefined);
      };
      parser.consume(handle);
      this.#handle = handle;
    }
    // Also with consume: keeps the stream flowing so 'end' is seen (the data goes to llhttp).
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('error', this.#onError);
    socket.on('timeout', this.#onTimeout);
    socket.setTimeout(IDLE_TIMEOUT_MS);
  }

  get route(): RouteContext {
    return this.#getRoute();
  }

  get pools(): UpstreamPools {
    return this.#pools;
  }

  get clientIp(): string {
    return this.#clientIp;
  }

  /** No request in flight or queued: closed on server shutdown. */
  closeIfIdle(): void {
    if (this.#active === undefined && this.#queue.length === 0 && this.#handoff === undefined) this.socket.destroy();
  }

  #read(data: Buffer): void {
    const ret = this.#parser.execute(data);
    this.#executed(ret, data);
  }

  /** After llhttp ran over one read: `data` is undefined when it read the socket itself. */
  #executed(ret: number | Error, data: Buffer | undefined): void {
    if (this.#done) return;
    if (ret instanceof Error) {
      this.#bad = true;
      this.#route400(ret);
      this.#pause();
    } else if (this.#handoff !== undefined) {
      const read = data ?? this.#parser.getCurrentBuffer();
      if (ret < read.length) this.#handoff = Buffer.concat([this.#handoff, read.subarray(ret)]);
      this.#pause();
    } else if (this.#queue.length > MAX_QUEUED) this.#pause();
    this.#pump();
  }

  #route400(err: Error): void {
    const route = this.#getRoute();
    route.log.debug({ err: err.message, client: this.#clientIp }, 'unparsable HTTP request');
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    const handle = this.#handle;
    if (handle === undefined) this.socket.pause();
    else if (handle.reading === true) {
      handle.reading = false;
      handle.readStop();
    }
  }

  #resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    const handle = this.#handle;
    if (handle === undefined) this.socket.resume();
    else if (handle.reading !== true && !this.socket.destroyed) {
      handle.reading = true;
      handle.readStart();
    }
  }

  #onHeadersComplete(
    major: number,
    minor: number,
    rawHeaders: string[] | undefined,
    method: number,
    rawUrl: string | undefined,
    _status: unknown,
    _statusMessage: unknown,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    const { headers, url } = this.#head.take(rawHeaders, rawUrl);
    const name = METHODS[method];
    if (name === undefined) {
      this.#bad = true;
      return STOP;
    }
    if (major !== 1 || minor !== 1 || upgrade || !LEAN_METHODS.has(method))
      return this.#handOff(name, url, major, minor, headers);
    let hasHost = false;
    let connection: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const h = headers[i] as string;
      // Only the names that can disqualify a request are lowercased (by length first).
      switch (h.length) {
        case 4:
          if (h.toLowerCase() === 'host') hasHost = true;
          break;
        case 6:
          if (h.toLowerCase() === 'expect') return this.#handOff(name, url, major, minor, headers);
          break;
        case 10:
          if (h.toLowerCase() === 'connection')
            connection = connection === undefined ? headers[i + 1] : `${connection}, ${headers[i + 1]}`;
          break;
        case 14:
          if (h.toLowerCase() === 'content-length' && headers[i + 1] !== '0')
            return this.#handOff(name, url, major, minor, headers);
          break;
        case 17:
          if (h.toLowerCase() === 'transfer-encoding') return this.#handOff(name, url, major, minor, headers);
          break;
      }
    }
    if (!hasHost) return this.#handOff(name, url, major, minor, headers);
    const route = this.#getRoute();
    const head = requestHead(name, url, upstreamRawHeaders(headers, connection, this.#clientIp, false), '');
    const hashKey = route.policy.hashKey?.from;
    this.#queue.push({
      method: name,
      url,
      head,
      keepAlive,
      headers: hashKey === 'header' || hashKey === 'cookie' ? headerObject(headers) : undefined,
    });
    return PROCEED;
  }

  #handOff(method: string, url: string, major: number, minor: number, headers: readonly string[]): number {
    this.#handoff = rebuiltRequestHead(method, url, major, minor, headers);
    return STOP;
  }

  /** Next step once nothing is in flight: the next queued request, the 400, the hand-off, or the close. */
  #pump(): void {
    if (this.#active !== undefined || this.#done) return;
    const next = this.#queue.shift();
    if (next !== undefined) {
      const exchange = new LeanExchange(this, next);
      this.#active = exchange;
      exchange.start();
      return;
    }
    if (this.#bad) {
      const route = this.#getRoute();
      route.metrics.request(400);
      this.#finishLean();
      this.socket.end(BAD_REQUEST);
      return;
    }
    if (this.#handoff !== undefined) {
      const bytes = this.#handoff;
      // Reading resumes before node:http takes the socket (its parser then consumes it).
      this.#resume();
      this.#finishLean();
      this.socket.unshift(bytes);
      this.#fallback(this.socket);
      this.socket.resume();
      return;
    }
    if (this.#closeAfter) {
      this.#finishLean();
      this.socket.end();
      return;
    }
    this.#resume();
  }

  /** The exchange in flight finished (its response fully handed to the socket). */
  exchangeDone(exchange: LeanExchange, keepAlive: boolean): void {
    if (this.#active !== exchange) return;
    this.#active = undefined;
    if (!keepAlive) {
      this.#queue.length = 0;
      this.#closeAfter = true;
    }
    this.#pump();
  }

  #clientEnded(): void {
    if (this.#done) return;
    // An unfinished request at EOF is a bad one (node:http answers it 400 too).
    const ret = this.#parser.finish();
    if (ret instanceof Error) this.#bad = true;
    this.#closeAfter = true;
    this.#pump();
  }

  #closed(): void {
    const active = this.#active;
    this.#active = undefined;
    this.#queue.length = 0;
    active?.clientGone();
    if (!this.#done) this.#finishLean();
  }

  /** This connection leaves the lean path (closed, or handed to node:http): listeners and parser go. */
  #finishLean(): void {
    this.#done = true;
    const socket = this.socket;
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onClose);
    socket.off('error', this.#onError);
    socket.off('timeout', this.#onTimeout);
    socket.setTimeout(0);
    // A socket error before node:http takes over (or while ending) must not go unhandled.
    socket.on('error', () => {});
    this.#freeParser();
  }

  /**
   * Once. Unhooked from the socket now; freed on the next turn, as the parser may be inside one
   * of its own callbacks (the native read callback touches it after kOnExecute returns).
   */
  #freeParser(): void {
    if (this.#parserFreed) return;
    this.#parserFreed = true;
    const parser = this.#parser;
    if (this.#handle !== undefined) parser.unconsume();
    setImmediate(() => parser.close());
  }
}

/** Header object for header/cookie hash keys (lowercase names, repeated values joined). */
function headerObject(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    const prev = out[name];
    out[name] = prev === undefined ? value : `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return out;
}

/** How the response body is framed towards the client: none (HEAD, 204, 304), as upstream's content-length, or chunked. */
type Framing = 'none' | 'length' | 'chunked';

/**
 * One request of a lean connection: balanced, retried and timed out with the same rules as
 * ProxyExchange (http-proxy.ts), the response head and body written straight to the socket.
 */
class LeanExchange implements H1Handler {
  readonly #conn: LeanConnection;
  readonly #req: LeanRequest;
  readonly #route: RouteContext;
  readonly #attempts = new RequestAttempts();
  #endpoint: ProxyEndpoint | undefined;
  #h1: H1Request | undefined;
  /** The response head, held until the first body bytes so both leave in one write. */
  #head: string | undefined;
  #framing: Framing = 'none';
  #pending: Buffer | undefined;
  #responded = false;
  #finished = false;
  #gone = false;

  constructor(conn: LeanConnection, req: LeanRequest) {
    this.#conn = conn;
    this.#req = req;
    this.#route = conn.route;
  }

  start(): void {
    this.#dispatch(undefined);
  }

  clientGone(): void {
    this.#gone = true;
    this.#h1?.abort();
    this.#h1 = undefined;
    this.#finish();
  }

  #dispatch(previous: ProxyEndpoint | undefined): void {
    const route = this.#route;
    const endpoint = this.#attempts.next(route, this.#conn.clientIp, this.#req.headers, previous);
    if (endpoint === undefined) {
      this.#fail(503, 'no endpoint available');
      return;
    }
    this.#endpoint = endpoint;
    this.#finished = false;
    this.#h1 = this.#conn.pools.h1(endpoint).request(this.#req.head, route.settings.requestTimeoutMs, this);
  }

  onH1Head(status: number, statusMessage: string, rawHeaders: string[]): boolean {
    this.#responded = true;
    if (this.#endpoint !== undefined) this.#route.picker.success(this.#endpoint);
    const isHead = this.#req.method === 'HEAD';
    const noBody = isHead || status === 204 || status === 304;
    let upstreamChunked = false;
    let hasLength = false;
    let hasDate = false;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i] as string;
      if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') upstreamChunked = true;
    }
    const kept = downstreamRawHeaders(rawHeaders);
    let head = `HTTP/1.1 ${status} ${statusMessage}\r\n`;
    for (let i = 0; i + 1 < kept.length; i += 2) {
      const name = kept[i] as string;
      const value = kept[i + 1] as string;
      if (name.length === 14 && name.toLowerCase() === 'content-length') {
        // With transfer-encoding the length is not the body's (llhttp framed it by the chunks).
        if (upstreamChunked) continue;
        hasLength = true;
      } else if (name.length === 4 && name.toLowerCase() === 'date') hasDate = true;
      head += `${name}: ${value}\r\n`;
    }
    // RFC 9110 §6.6.1: a proxy with a clock adds Date when the upstream sent none.
    if (!hasDate) head += `date: ${httpDate()}\r\n`;
    if (noBody) {
      this.#framing = 'none';
      if (isHead && upstreamChunked) head += 'transfer-encoding: chunked\r\n';
    } else if (hasLength) this.#framing = 'length';
    else {
      // Chunked or close-delimited upstream: chunked towards the client keeps the connection.
      this.#framing = 'chunked';
      head += 'transfer-encoding: chunked\r\n';
    }
    if (!this.#req.keepAlive) head += 'connection: close\r\n';
    this.#head = `${head}\r\n`;
    this.#route.metrics.request(status);
    return isHead;
  }

  onH1Body(chunk: Buffer): boolean {
    if (this.#framing === 'none') return true;
    const previous = this.#pending;
    this.#pending = chunk;
    return previous === undefined || this.#write(previous, false, undefined);
  }

  onH1Flush(): boolean {
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending === undefined && this.#head === undefined) return true;
    return this.#write(pending, false, undefined);
  }

  onH1End(trailers: string[] | undefined): void {
    this.#h1 = undefined;
    this.#finish();
    const pending = this.#pending;
    this.#pending = undefined;
    this.#write(pending, true, trailers);
    this.#conn.exchangeDone(this, this.#req.keepAlive);
  }

  /** Writes the held head (if any), a body part and, at the end, the last chunk and trailers. */
  #write(body: Buffer | undefined, end: boolean, trailers: string[] | undefined): boolean {
    if (this.#gone) return true;
    const socket = this.#conn.socket;
    const head = this.#head ?? '';
    this.#head = undefined;
    const chunked = this.#framing === 'chunked';
    let prefix = head;
    let suffix = '';
    if (chunked) {
      if (body !== undefined && body.length > 0) {
        prefix += `${body.length.toString(16)}\r\n`;
        suffix = '\r\n';
      }
      if (end) suffix += `0\r\n${trailerLines(trailers)}\r\n`;
    }
    const bodyLength = body?.length ?? 0;
    let ok: boolean;
    if (bodyLength === 0) {
      if (prefix === '' && suffix === '') return true;
      ok = socket.write(prefix + suffix, 'latin1');
    } else if (bodyLength + prefix.length + suffix.length <= COPY_LIMIT) {
      const out = Buffer.allocUnsafe(prefix.length + bodyLength + suffix.length);
      let at = out.write(prefix, 0, 'latin1');
      at += (body as Buffer).copy(out, at);
      if (suffix !== '') out.write(suffix, at, 'latin1');
      ok = socket.write(out);
    } else {
      socket.cork();
      if (prefix !== '') socket.write(prefix, 'latin1');
      socket.write(body as Buffer);
      ok = suffix === '' ? socket.write(Buffer.alloc(0)) : socket.write(suffix, 'latin1');
      socket.uncork();
    }
    if (ok || end) return true;
    socket.once('drain', () => this.#h1?.resume());
    return false;
  }

  onH1Error(err: Error): void {
    this.#h1 = undefined;
    this.#pending = undefined;
    const endpoint = this.#endpoint;
    this.#finish();
    if (this.#gone) return;
    const route = this.#route;
    if (this.#responded) {
      // Mid-response failure: the status may be out; cutting the connection tells the client.
      route.log.debug({ endpoint: endpoint?.id, err: errorMessage(err) }, 'upstream failed mid-response');
      this.#conn.socket.destroy();
      return;
    }
    const next = this.#attempts.afterFailure(route, endpoint, err, this.#req.method, true);
    if (next.retry) {
      this.#dispatch(next.previous);
      return;
    }
    this.#fail(next.status, next.message);
    route.log.debug({ endpoint: endpoint?.id, err: errorMessage(err), code: next.code }, 'request failed');
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#endpoint !== undefined) this.#endpoint.stats.active--;
  }

  #fail(status: number, message: string): void {
    this.#route.metrics.request(status);
    if (this.#gone) return;
    const body = `${message}\n`;
    const keepAlive = this.#req.keepAlive;
    this.#conn.socket.write(
      `HTTP/1.1 ${status} ${status === 503 ? 'Service Unavailable' : status === 504 ? 'Gateway Timeout' : 'Bad Gateway'}\r\n` +
        `content-type: text/plain\r\ncontent-length: ${body.length}\r\nx-meshlet-error: ${message}\r\ndate: ${httpDate()}\r\n` +
        `${keepAlive ? '' : 'connection: close\r\n'}\r\n${body}`,
      'latin1',
    );
    this.#conn.exchangeDone(this, keepAlive);
  }
}

function trailerLines(trailers: string[] | undefined): string {
  if (trailers === undefined) return '';
  const kept = downstreamRawHeaders(trailers);
  let out = '';
  for (let i = 0; i + 1 < kept.length; i += 2) out += `${kept[i] as string}: ${kept[i + 1] as string}\r\n`;
  return out;
}
