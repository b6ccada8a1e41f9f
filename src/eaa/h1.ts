import { type IncomingHttpHeaders, type OutgoingHttpHeaders, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { HeadPieces, HTTPParser, METHODS, type NativeParser, rebuiltRequestHead } from '../../proxy/http/llhttp.ts';
import { httpDate } from '../http-date.ts';
import { BufferedRequest } from './buffered-request.ts';

/**
 * HTTP/1.1 on the EAA's TLS port without node:http's objects per request: llhttp (the parser
 * node:http itself drives) reads the connection, each request is handed to the API's handlers
 * with its body already read, and the answer is written as the same bytes node:http writes
 * (test/eaa/h1.test.ts pins them). At 10,000 notifications/s node:http's IncomingMessage,
 * ServerResponse, their streams, header objects and ticks were about half of what the agent
 * allocated per notification, and with them the collections that set its latency tail.
 *
 * What this path does not do itself goes to node:http for the rest of the connection, at a
 * request boundary, after the answers owed: an upgrade (the consumers' WebSocket), `Expect`,
 * HTTP/1.0, an unknown method. Pipelined requests are answered in order.
 */

/** llhttp's return from onHeadersComplete: go on, or stop before the body (as for an upgrade). */
const PROCEED = 0;
const STOP = 2;
/** Requests parsed behind the one being answered before the socket stops being read. */
const MAX_QUEUED = 16;
/** node:http's keepAliveTimeout and headersTimeout. */
const IDLE_TIMEOUT_MS = 5_000;
const HEADERS_TIMEOUT_MS = 60_000;

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';
const TIMED_OUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';
const HEADERS_TOO_LARGE = 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n';
const KEEP_ALIVE = 'Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n';
const CLOSE = 'Connection: close\r\n';

/** Names whose first value is kept when repeated (node:http keeps the first of these, among others); other repeats are joined with ", ". */
const FIRST_WINS = new Set(['host', 'content-length', 'content-type', 'authorization', 'user-agent', 'origin']);

/** The answer to a request read here, with the calls the handlers make of a ServerResponse. */
export class H1Response {
  statusCode = 200;
  headersSent = false;
  readonly #conn: H1Connection;
  readonly #keepAlive: boolean;
  #head = '';
  #hasLength = false;

  constructor(conn: H1Connection, keepAlive: boolean) {
    this.#conn = conn;
    this.#keepAlive = keepAlive;
  }

  writeHead(status: number, headers: OutgoingHttpHeaders): this {
    if (this.headersSent) return this;
    this.headersSent = true;
    this.statusCode = status;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    for (const name in headers) {
      const v = headers[name];
      if (v === undefined) continue;
      if (name.length === 14 && name.toLowerCase() === 'content-length') this.#hasLength = true;
      if (Array.isArray(v)) for (const one of v) head += `${name}: ${one}\r\n`;
      else head += `${name}: ${v}\r\n`;
    }
    this.#head = head;
    return this;
  }

  end(body?: string): void {
    if (!this.headersSent) this.writeHead(this.statusCode, {});
    let out = `${this.#head}Date: ${httpDate()}\r\n${this.#keepAlive ? KEEP_ALIVE : CLOSE}`;
    if (body === undefined || body === '') {
      // Without a length a keep-alive client would wait for more (node:http adds the same).
      if (!this.#hasLength && this.statusCode !== 204 && this.statusCode !== 304) out += 'Content-Length: 0\r\n';
      out += '\r\n';
    } else if (this.#hasLength) out += `\r\n${body}`;
    else out += `Transfer-Encoding: chunked\r\n\r\n${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    this.#conn.answered(this, out, this.#keepAlive);
  }
}

export interface H1Options {
  maxBodyBytes: number;
  /** The API's handlers. */
  serve(req: BufferedRequest, res: H1Response): void;
  /** Gives the socket, its unread bytes put back, to node:http for the rest of its life. */
  handOff(socket: Socket): void;
  /** Tests only: node:http's keepAliveTimeout (5 s) and headersTimeout (60 s) otherwise. */
  idleTimeoutMs?: number;
  requestTimeoutMs?: number;
}

interface Parsed {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  keepAlive: boolean;
  chunks: Buffer[];
  size: number;
  tooLarge: boolean;
}

/** One HTTP/1.1 connection of the API port, from its TLS handshake on. */
export class H1Connection {
  readonly socket: TLSSocket;
  readonly #o: H1Options;
  readonly #parser: NativeParser;
  readonly #onData = (data: Buffer) => this.#executed(this.#parser.execute(data), data);
  readonly #onEnd = () => this.#ended();
  readonly #onClose = () => this.#finish();
  readonly #onError = () => this.socket.destroy();
  readonly #onTimeout = () => this.#timedOut();
  readonly #head = new HeadPieces();
  /** The request being read, from its headers to its last body byte. */
  #reading: Parsed | undefined;
  /** From a request's first byte to its last (head included, which #reading is not). */
  #inMessage = false;
  #messageSince = 0;
  readonly #idleMs: number;
  readonly #requestMs: number;
  readonly #queue: Parsed[] = [];
  #active: H1Response | undefined;
  #handoff: Buffer | undefined;
  #bad: string | undefined;
  #closeAfter = false;
  #paused = false;
  #done = false;

  constructor(socket: TLSSocket, opts: H1Options) {
    this.socket = socket;
    this.#o = opts;
    this.#idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.#requestMs = opts.requestTimeoutMs ?? HEADERS_TIMEOUT_MS;
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
    parser[HTTPParser.kOnMessageBegin] = () => {
      this.#inMessage = true;
      this.#messageSince = performance.now();
    };
    parser[HTTPParser.kOnHeaders] = (headers: string[], url: string) => this.#head.add(headers, url);
    parser[HTTPParser.kOnHeadersComplete] = this.#headersComplete.bind(this);
    parser[HTTPParser.kOnBody] = (chunk: Buffer) => this.#body(chunk);
    parser[HTTPParser.kOnMessageComplete] = () => this.#messageComplete();
    this.#parser = parser;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('error', this.#onError);
    socket.on('timeout', this.#onTimeout);
    socket.setTimeout(this.#idleMs);
  }

  #headersComplete(
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
    const { headers: raw, url } = this.#head.take(rawHeaders, rawUrl);
    const name = METHODS[method] ?? '';
    const headers: IncomingHttpHeaders = {};
    let expect = false;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const key = (raw[i] as string).toLowerCase();
      const value = raw[i + 1] as string;
      if (key === 'expect') expect = true;
      const prev = headers[key];
      if (prev === undefined) headers[key] = value;
      else if (!FIRST_WINS.has(key)) headers[key] = `${prev as string}, ${value}`;
    }
    if (name === '' || major !== 1 || minor !== 1 || upgrade || expect) {
      this.#handoff = rebuiltRequestHead(name, url, major, minor, raw);
      return STOP;
    }
    this.#reading = { method: name, url, headers, keepAlive, chunks: [], size: 0, tooLarge: false };
    return PROCEED;
  }

  #body(chunk: Buffer): void {
    const r = this.#reading;
    if (r === undefined || r.tooLarge) return;
    r.size += chunk.length;
    // Over the limit the body is read and dropped, so the connection can go on (as readBody does).
    if (r.size > this.#o.maxBodyBytes) {
      r.tooLarge = true;
      r.chunks.length = 0;
    } else r.chunks.push(chunk);
  }

  #messageComplete(): void {
    const r = this.#reading;
    this.#reading = undefined;
    this.#inMessage = false;
    if (r !== undefined) this.#queue.push(r);
  }

  /** After llhttp ran over one read. */
  #executed(ret: number | Error, data: Buffer): void {
    if (this.#done) return;
    if (ret instanceof Error) {
      this.#bad = (ret as Error & { code?: string }).code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : BAD_REQUEST;
      this.#pause();
    } else if (this.#handoff !== undefined) {
      if (ret < data.length) this.#handoff = Buffer.concat([this.#handoff, data.subarray(ret)]);
      this.#pause();
    } else if (this.#overdue()) {
      // A request trickling in (a byte now and then keeps the socket from idling): node:http's 408.
      this.#bad = TIMED_OUT;
      this.#pause();
    } else if (this.#queue.length > MAX_QUEUED) this.#pause();
    this.#pump();
  }

  /** Next step once nothing is being answered: the next request, the error, the hand-off or the close. */
  #pump(): void {
    while (this.#active === undefined && !this.#done) {
      const next = this.#queue.shift();
      if (next === undefined) break;
      const res = new H1Response(this, next.keepAlive);
      this.#active = res;
      let body: string | undefined;
      if (!next.tooLarge)
        body =
          next.chunks.length === 1 ? (next.chunks[0] as Buffer).toString('utf8') : Buffer.concat(next.chunks).toString('utf8');
      this.#o.serve(
        new BufferedRequest(next.method, next.url, next.headers, this.socket, body, next.size, this.#o.maxBodyBytes),
        res,
      );
      // A handler that answers later (it awaits) ends this loop; answered() pumps again.
    }
    if (this.#active !== undefined || this.#done || this.#queue.length > 0) return;
    if (this.#bad !== undefined) {
      const bytes = this.#bad;
      this.#leave();
      this.socket.end(bytes);
    } else if (this.#handoff !== undefined) {
      const bytes = this.#handoff;
      this.#leave();
      this.socket.unshift(bytes);
      this.#o.handOff(this.socket);
      this.socket.resume();
    } else if (this.#closeAfter) {
      this.#leave();
      this.socket.end();
    } else this.#resume();
  }

  /** An H1Response is complete: its bytes go out, and the next request is served. */
  answered(res: H1Response, bytes: string, keepAlive: boolean): void {
    if (this.#active !== res || this.#done) return;
    this.#active = undefined;
    this.socket.write(bytes);
    if (!keepAlive) {
      this.#queue.length = 0;
      this.#closeAfter = true;
    }
    this.#pump();
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.socket.pause();
  }

  #resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.socket.resume();
  }

  #ended(): void {
    if (this.#done) return;
    // An unfinished request at the end of the stream is a bad one (node:http answers it 400).
    if (this.#parser.finish() instanceof Error) this.#bad = BAD_REQUEST;
    this.#closeAfter = true;
    this.#pump();
  }

  #overdue(): boolean {
    return this.#inMessage && performance.now() - this.#messageSince > this.#requestMs;
  }

  /** Idle between requests: closed; silent halfway through one for too long: closed too. */
  #timedOut(): void {
    if ((this.#active === undefined && this.#queue.length === 0 && !this.#inMessage) || this.#overdue()) this.socket.destroy();
    else this.socket.setTimeout(this.#idleMs);
  }

  /** This connection leaves this path (ends, or goes to node:http): listeners and parser go. */
  #leave(): void {
    this.#done = true;
    const socket = this.socket;
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onClose);
    socket.off('error', this.#onError);
    socket.off('timeout', this.#onTimeout);
    socket.setTimeout(0);
    // Until node:http takes it (or while it ends), a socket error must not go unhandled.
    socket.on('error', ignore);
    this.#freeParser();
  }

  #finish(): void {
    this.#active = undefined;
    this.#queue.length = 0;
    if (!this.#done) this.#leave();
  }

  /** Freed on the next turn: this may run inside one of the parser's own callbacks. */
  #freeParser(): void {
    const parser = this.#parser;
    setImmediate(() => parser.close());
  }
}

function ignore(): void {}
