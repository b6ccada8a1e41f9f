import type { Socket } from 'node:net';
import type { Dialer, DialTarget } from '../connect/dialer.ts';
import { HTTPParser, type NativeParser, type StreamHandle } from './llhttp.ts';

/**
 * The lean upstream client of the common case (a request without a body, not an upgrade):
 * keep-alive sockets to one endpoint, the request head written as one string, the response
 * framed by llhttp (node's own native parser, the one node:http uses) and handed over as raw
 * header pairs and body chunks. Measured 1.3–1.4× the throughput of undici `Pool.dispatch`
 * for this case (docs/decisions/proxy-http.md); requests with a body still go through undici.
 *
 * Error codes follow undici's, so the exchange's retry rules apply unchanged: a connection
 * that fails before any response byte is `UND_ERR_SOCKET`, timeouts `UND_ERR_HEADERS_TIMEOUT`
 * / `UND_ERR_BODY_TIMEOUT`; dial errors come from the Dialer as they are.
 */

/** What a request on the pool reports back (the exchange implements it). */
export interface H1Handler {
  /** Response head; return true when the response has no body to read (HEAD). */
  onH1Head(status: number, statusMessage: string, rawHeaders: string[]): boolean;
  /** A body chunk; return false to pause the upstream socket until `resume` is called. */
  onH1Body(chunk: Buffer): boolean;
  /** End of one upstream read while the response goes on; false pauses like onH1Body. */
  onH1Flush(): boolean;
  onH1End(trailers: string[] | undefined): void;
  onH1Error(err: Error): void;
}

export interface H1PoolOptions {
  /** Most sockets open at once; further requests wait for a free one. */
  connections: number;
  connectTimeoutMs: number;
  /** Idle keep-alive sockets are closed after this long (below the usual 5 s server timeout). */
  idleTimeoutMs: number;
}

export class H1Error extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** One in-flight request as seen by the pool; `abort` drops it (the client went away). */
export interface H1Request {
  abort(): void;
  resume(): void;
}

interface Pending {
  head: string;
  handler: H1Handler;
  timeoutMs: number;
  request: PendingRequest;
}

class PendingRequest implements H1Request {
  conn: H1Conn | undefined;
  aborted = false;
  readonly pool: H1Pool;
  constructor(pool: H1Pool) {
    this.pool = pool;
  }
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    if (this.conn !== undefined) this.conn.abort();
    else this.pool.dropQueued(this);
  }
  resume(): void {
    this.conn?.resume();
  }
}

const NO_BODY = 1;

class H1Conn {
  readonly socket: Socket;
  readonly #pool: H1Pool;
  readonly #parser: NativeParser;
  #current: Pending | undefined;
  /** Response bytes seen for the current request (a failure before any is retryable). */
  #started = false;
  #keepAlive = false;
  #informational = false;
  #headSeen = false;
  #headers: string[] = [];
  #timeoutMs = 0;
  #closed = false;
  /** Inside parser.execute: the parser must not be freed under its own callbacks. */
  #executing = false;
  /** Set when llhttp reads the socket itself (`consume`): no JS Buffer or stream event per read. */
  #handle: StreamHandle | undefined;
  /** Response bytes arrived while no request was out: the connection is unusable. */
  #unsolicited = false;

  constructor(pool: H1Pool, socket: Socket) {
    this.#pool = pool;
    this.socket = socket;
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
    parser[HTTPParser.kOnHeaders] = (headers: string[]) => {
      for (const h of headers) this.#headers.push(h);
    };
    parser[HTTPParser.kOnHeadersComplete] = this.#onHeadersComplete.bind(this);
    parser[HTTPParser.kOnBody] = (chunk: Buffer) => {
      const current = this.#current;
      if (current !== undefined && !this.#informational && !current.handler.onH1Body(chunk)) this.#pause();
    };
    parser[HTTPParser.kOnMessageComplete] = this.#onMessageComplete.bind(this);
    this.#parser = parser;
    const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
    if (handle?.isStreamBase === true && handle._consumed !== true) {
      parser[HTTPParser.kOnMessageBegin] = () => {
        if (this.#current === undefined) this.#unsolicited = true;
        else this.#started = true;
      };
      parser[HTTPParser.kOnExecute] = (ret: number | Error) => {
        // Reads no longer pass through the JS stream, which is what re-arms the socket timeout
        // (the body timeout between chunks): re-armed here, as node:http's server does.
        (socket as unknown as { _unrefTimer(): void })._unrefTimer();
        if (this.#unsolicited) this.#close();
        this.#executed(ret);
      };
      parser.consume(handle);
      this.#handle = handle;
    }
    // With consume this sees no data, but keeps the stream flowing so 'end' is emitted.
    socket.on('data', (data: Buffer) => {
      if (this.#current === undefined) {
        // Bytes nobody asked for (an idle keep-alive socket): the connection is unusable.
        this.#close();
        return;
      }
      this.#started = true;
      this.#executing = true;
      const ret = parser.execute(data);
      this.#executing = false;
      this.#executed(ret);
    });
    socket.on('end', () => {
      // A close-delimited body ends here; otherwise the connection died under the request.
      if (this.#current !== undefined && this.#started) {
        this.#executing = true;
        parser.finish();
        this.#executing = false;
      }
      this.#fail(new H1Error('UND_ERR_SOCKET', 'upstream closed the connection'));
      if (this.#closed) this.#freeParser();
    });
    socket.on('error', (err: Error) => this.#fail(new H1Error('UND_ERR_SOCKET', err.message)));
    socket.on('close', () => this.#fail(new H1Error('UND_ERR_SOCKET', 'upstream connection closed')));
    socket.on('timeout', () => {
      if (this.#current === undefined) this.#fail(new H1Error('UND_ERR_SOCKET', 'idle'));
      else
        this.#fail(
          new H1Error(
            this.#headSeen ? 'UND_ERR_BODY_TIMEOUT' : 'UND_ERR_HEADERS_TIMEOUT',
            `no response within ${this.#timeoutMs} ms`,
          ),
        );
    });
  }

  /** After llhttp ran over one read (from the JS stream or, consumed, from the socket itself). */
  #executed(ret: number | Error): void {
    if (this.#closed) {
      this.#freeParser();
      return;
    }
    if (ret instanceof Error) {
      this.#fail(new H1Error('UND_ERR_SOCKET', `invalid HTTP response: ${ret.message}`));
      return;
    }
    const current = this.#current;
    if (current !== undefined && !current.handler.onH1Flush()) this.#pause();
  }

  #pause(): void {
    const handle = this.#handle;
    if (handle === undefined) this.socket.pause();
    else if (handle.reading === true) {
      handle.reading = false;
      handle.readStop();
    }
  }

  resume(): void {
    const handle = this.#handle;
    if (handle === undefined) this.socket.resume();
    else if (handle.reading !== true && !this.#closed) {
      handle.reading = true;
      handle.readStart();
    }
  }

  send(p: Pending): void {
    this.#current = p;
    p.request.conn = this;
    this.#started = false;
    this.#headSeen = false;
    this.#informational = false;
    this.#headers = [];
    if (this.#timeoutMs !== p.timeoutMs) {
      this.#timeoutMs = p.timeoutMs;
      this.socket.setTimeout(p.timeoutMs);
    }
    this.socket.write(p.head, 'latin1');
  }

  abort(): void {
    this.#current = undefined;
    this.#close();
  }

  #onHeadersComplete(
    _major: number,
    _minor: number,
    headers: string[] | undefined,
    _method: unknown,
    _url: unknown,
    status: number,
    statusMessage: string,
    _upgrade: boolean,
    keepAlive: boolean,
  ): number {
    const all = headers === undefined ? this.#headers : this.#headers.length > 0 ? this.#headers.concat(headers) : headers;
    this.#headers = [];
    const current = this.#current;
    if (current === undefined) return NO_BODY;
    if (status < 200 && status !== 101) {
      // 1xx informational (100 Continue, 103 Early Hints): not forwarded; the final response follows.
      this.#informational = true;
      return 0;
    }
    if (status === 101) {
      this.#fail(new H1Error('UND_ERR_SOCKET', 'unexpected 101 Switching Protocols'));
      return NO_BODY;
    }
    this.#informational = false;
    this.#headSeen = true;
    this.#keepAlive = keepAlive;
    return current.handler.onH1Head(status, statusMessage, all) ? NO_BODY : 0;
  }

  #onMessageComplete(): void {
    const current = this.#current;
    if (current === undefined) return;
    if (this.#informational) {
      this.#informational = false;
      return;
    }
    const trailers = this.#headers.length > 0 ? this.#headers : undefined;
    this.#headers = [];
    this.#current = undefined;
    current.request.conn = undefined;
    if (this.#keepAlive && !this.#closed) this.#pool.release(this);
    else this.#close();
    current.handler.onH1End(trailers);
  }

  #fail(err: H1Error): void {
    const current = this.#current;
    this.#current = undefined;
    this.#close();
    if (current !== undefined) {
      current.request.conn = undefined;
      if (!current.request.aborted) current.handler.onH1Error(err);
    }
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.destroy();
    if (!this.#executing) this.#freeParser();
    this.#pool.forget(this);
  }

  #parserFreed = false;
  /**
   * Once, and never from inside one of the parser's own callbacks. A consuming parser is
   * unhooked now and freed on the next turn: the native read callback touches it after
   * kOnExecute returns.
   */
  #freeParser(): void {
    if (this.#parserFreed) return;
    this.#parserFreed = true;
    const parser = this.#parser;
    if (this.#handle === undefined) {
      parser.close();
      return;
    }
    parser.unconsume();
    setImmediate(() => parser.close());
  }

  /** Back in the idle list: the idle timeout replaces the request timeout. */
  idle(timeoutMs: number): void {
    this.#timeoutMs = timeoutMs;
    this.socket.setTimeout(timeoutMs);
  }

  get closed(): boolean {
    return this.#closed;
  }

  destroy(): void {
    this.#fail(new H1Error('UND_ERR_CLOSED', 'pool destroyed'));
  }
}

/** Keep-alive HTTP/1.1 connections to one endpoint, dialed through the Dialer. */
export class H1Pool {
  readonly #target: DialTarget;
  readonly #dialer: Dialer;
  readonly #opts: H1PoolOptions;
  readonly #hostHeader: string;
  readonly #idle: H1Conn[] = [];
  readonly #all = new Set<H1Conn>();
  readonly #queue: Pending[] = [];
  #connecting = 0;
  #closing = false;
  #onDrained: (() => void) | undefined;

  constructor(target: DialTarget, dialer: Dialer, opts: H1PoolOptions) {
    this.#target = target;
    this.#dialer = dialer;
    this.#opts = opts;
    const host = target.address.includes(':') ? `[${target.address}]` : target.address;
    this.#hostHeader = `${host}:${target.port}`;
  }

  /** `host` for requests that came without one (HTTP/1.0 clients): HTTP/1.1 requires it. */
  get hostHeader(): string {
    return this.#hostHeader;
  }

  /** Sends `head` (request line + headers + blank line, no body) and reports to `handler`. */
  request(head: string, timeoutMs: number, handler: H1Handler): H1Request {
    const request = new PendingRequest(this);
    const pending: Pending = { head, handler, timeoutMs, request };
    if (this.#closing) {
      queueMicrotask(() => handler.onH1Error(new H1Error('UND_ERR_CLOSED', 'pool closed')));
      return request;
    }
    const conn = this.#idle.pop();
    if (conn !== undefined) conn.send(pending);
    else {
      this.#queue.push(pending);
      if (this.#all.size + this.#connecting < this.#opts.connections) this.#connect();
    }
    return request;
  }

  dropQueued(request: PendingRequest): void {
    const i = this.#queue.findIndex((p) => p.request === request);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  #connect(): void {
    this.#connecting++;
    this.#dialer.connect(this.#target, { timeoutMs: this.#opts.connectTimeoutMs, allowHalfOpen: false }).then(
      (stream) => {
        this.#connecting--;
        const conn = new H1Conn(this, stream as Socket);
        this.#all.add(conn);
        if (this.#closing && this.#queue.length === 0) conn.destroy();
        else this.release(conn);
      },
      (err: Error) => {
        this.#connecting--;
        // The dial failed: the request that asked for this connection fails with it (it is
        // retried elsewhere by the exchange); the others wait for a connection in use.
        const pending = this.#queue.shift();
        if (pending !== undefined) pending.handler.onH1Error(err);
        if (this.#queue.length > 0 && this.#all.size + this.#connecting === 0) this.#connect();
        this.#checkDrained();
      },
    );
  }

  /** A connection is free: next queued request, or the idle list. */
  release(conn: H1Conn): void {
    const next = this.#queue.shift();
    if (next !== undefined) {
      conn.send(next);
      return;
    }
    if (this.#closing) {
      conn.destroy();
      return;
    }
    conn.idle(this.#opts.idleTimeoutMs);
    this.#idle.push(conn);
  }

  forget(conn: H1Conn): void {
    this.#all.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    if (this.#queue.length > 0 && !this.#closing && this.#all.size + this.#connecting < this.#opts.connections) this.#connect();
    this.#checkDrained();
  }

  get connections(): number {
    return this.#all.size;
  }

  /** Graceful: idle sockets close now, busy ones after their response, queued requests still run. */
  close(): Promise<void> {
    this.#closing = true;
    for (const conn of [...this.#idle]) conn.destroy();
    return new Promise<void>((resolve) => {
      this.#onDrained = resolve;
      this.#checkDrained();
    });
  }

  destroy(): void {
    this.#closing = true;
    const queued = this.#queue.splice(0);
    for (const conn of [...this.#all]) conn.destroy();
    for (const p of queued) p.handler.onH1Error(new H1Error('UND_ERR_CLOSED', 'pool destroyed'));
    this.#checkDrained();
  }

  #checkDrained(): void {
    if (!this.#closing || this.#onDrained === undefined) return;
    if (this.#all.size === 0 && this.#connecting === 0 && this.#queue.length === 0) {
      const done = this.#onDrained;
      this.#onDrained = undefined;
      done();
    }
  }
}
