import type { OutgoingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { encodeHeaders, type HeaderField, HpackDecoder, HpackError } from '../../proxy/http/hpack.ts';
import { httpDate } from '../http-date.ts';
import { BufferedRequest } from './buffered-request.ts';

/**
 * HTTP/2 (RFC 9113) on the API port, read off the TLS socket here rather than by node:http2.
 * node:http2 keeps every stream's objects alive through scavenges (its native handle is a weak
 * global handle, a root for the scavenger) and hands each header value over as an external
 * string; at 10,000 requests/s that made 20–30 ms mark-compacts the p99 (docs/eaa.md §6.3).
 * Here a connection is one socket, one HPACK decoder and a small object per stream.
 *
 * What a server of small JSON requests needs, and no more: SETTINGS, PING, GOAWAY, RST_STREAM,
 * WINDOW_UPDATE and flow control both ways, HEADERS + CONTINUATION (padding and priority
 * skipped), DATA, the stream states and their errors, trailers read and dropped. Requests reach
 * the same handlers as HTTP/1.1 ones, with their body read (BufferedRequest), and answer
 * through H2Response. No server push, no priorities (RFC 9113 deprecates the scheme).
 */

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const Frame = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

/** RFC 9113 §7 error codes. */
export const H2_ERROR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
const DEFAULT_MAX_FRAME = 16_384;
/** What we announce. A connection's streams in flight at once, as Go's server allows. */
const MAX_CONCURRENT_STREAMS = 250;
const MAX_HEADER_LIST_SIZE = 64 * 1024;
/** Our receive window per stream and for the connection: bodies are read whole, and replenished as read. */
const RECEIVE_WINDOW = 1 << 20;
/** A connection with no stream open for this long gets a GOAWAY and is closed. */
const IDLE_TIMEOUT_MS = 120_000;
/** Control frames a peer may make us answer (PING, SETTINGS) before we call it abuse, per second. */
const MAX_CONTROL_PER_SECOND = 10_000;

/** Connection-specific header fields, malformed in HTTP/2 (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

class ConnectionError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

type StreamState = 'open' | 'half-closed-remote' | 'closed';

export interface H2Stream {
  readonly id: number;
  state: StreamState;
  /** What we may still send on it (the peer's window for it). */
  sendWindow: number;
  /** What the peer may still send on it. */
  receiveWindow: number;
  headers: Record<string, string> | undefined;
  chunks: Buffer[];
  size: number;
  /** content-length, when the request declared one (checked against the DATA, §8.1.1). */
  declaredLength: number;
  tooLarge: boolean;
  /** Body bytes to send once the windows allow, and whether END_STREAM goes with the last. */
  pending: Buffer | undefined;
  /** Dispatched to the handlers; its answer may still be on its way. */
  served: boolean;
  /** Our side is done (the response's last frame was sent). */
  answered: boolean;
}

export interface H2Options {
  maxBodyBytes: number;
  serve(req: BufferedRequest, res: H2Response): void;
  /** Tests only. */
  idleTimeoutMs?: number;
}

/** The answer on one stream, with the calls the handlers make of a ServerResponse. */
export class H2Response {
  statusCode = 200;
  headersSent = false;
  readonly #conn: H2Connection;
  readonly #stream: H2Stream;
  #fields: HeaderField[] = [];

  constructor(conn: H2Connection, stream: H2Stream) {
    this.#conn = conn;
    this.#stream = stream;
  }

  writeHead(status: number, headers: OutgoingHttpHeaders): this {
    if (this.headersSent) return this;
    this.headersSent = true;
    this.statusCode = status;
    const fields: HeaderField[] = [[':status', String(status)]];
    for (const name in headers) {
      const v = headers[name];
      if (v === undefined) continue;
      // HTTP/2 field names are lower case (RFC 9113 §8.2.1); the handlers write them as for HTTP/1.1.
      const lower = name.toLowerCase();
      if (CONNECTION_SPECIFIC.has(lower)) continue;
      if (Array.isArray(v)) for (const one of v) fields.push([lower, one]);
      else fields.push([lower, String(v)]);
    }
    fields.push(['date', httpDate()]);
    this.#fields = fields;
    return this;
  }

  end(body?: string): void {
    if (!this.headersSent) this.writeHead(this.statusCode, {});
    this.#conn.respond(this.#stream, this.#fields, body === undefined || body === '' ? undefined : Buffer.from(body));
  }
}

/** One HTTP/2 connection of the API port, from its TLS handshake (ALPN h2) on. */
export class H2Connection {
  readonly socket: TLSSocket;
  readonly #o: H2Options;
  readonly #decoder = new HpackDecoder();
  readonly #streams = new OpenStreams();
  #buf: Buffer = EMPTY;
  #prefaceSeen = false;
  #settingsSeen = false;
  /** The highest stream id the peer opened: every lower idle one is closed (§5.1.1). */
  #lastStreamId = 0;
  /** A header block being read across CONTINUATION frames. */
  #continuing: { streamId: number; endStream: boolean; fragments: Buffer[]; size: number } | undefined;
  #peerInitialWindow = DEFAULT_WINDOW;
  #peerMaxFrame = DEFAULT_MAX_FRAME;
  #sendWindow = DEFAULT_WINDOW;
  #receiveWindow = RECEIVE_WINDOW;
  /** DATA bytes read since the connection's last WINDOW_UPDATE. */
  #unacked = 0;
  #goingAway = false;
  #closed = false;
  #controlCount = 0;
  #controlSecond = 0;
  readonly #idleMs: number;

  constructor(socket: TLSSocket, opts: H2Options) {
    this.socket = socket;
    this.#o = opts;
    this.#idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    socket.on('data', (d: Buffer) => this.#read(d));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#onClose());
    socket.on('end', () => this.#onEnd());
    socket.on('timeout', () => this.#onTimeout());
    socket.setTimeout(this.#idleMs);
    const settings = Buffer.alloc(24);
    settings.writeUInt16BE(SETTINGS_MAX_CONCURRENT_STREAMS, 0);
    settings.writeUInt32BE(MAX_CONCURRENT_STREAMS, 2);
    settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 6);
    settings.writeUInt32BE(RECEIVE_WINDOW, 8);
    settings.writeUInt16BE(SETTINGS_MAX_HEADER_LIST_SIZE, 12);
    settings.writeUInt32BE(MAX_HEADER_LIST_SIZE, 14);
    settings.writeUInt16BE(SETTINGS_ENABLE_PUSH, 18);
    settings.writeUInt32BE(0, 20);
    socket.write(
      Buffer.concat([
        frame(Frame.SETTINGS, 0, 0, settings),
        frame(Frame.WINDOW_UPDATE, 0, 0, uint32(RECEIVE_WINDOW - DEFAULT_WINDOW)),
      ]),
    );
  }

  // ---- reading ------------------------------------------------------------------------------

  #read(data: Buffer): void {
    if (this.#closed) return;
    this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data]);
    // The frames answered while reading one chunk (ACKs, window updates, resets) leave in one write.
    this.socket.cork();
    try {
      if (!this.#prefaceSeen) {
        const n = Math.min(this.#buf.length, PREFACE.length);
        if (!this.#buf.subarray(0, n).equals(PREFACE.subarray(0, n)))
          throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'bad preface');
        if (this.#buf.length < PREFACE.length) return;
        this.#prefaceSeen = true;
        this.#buf = this.#buf.subarray(PREFACE.length);
      }
      let p = 0;
      const buf = this.#buf;
      while (buf.length - p >= 9 && !this.#closed) {
        const length = buf.readUIntBE(p, 3);
        if (length > DEFAULT_MAX_FRAME) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `frame of ${length} bytes`);
        if (buf.length - p < 9 + length) break;
        const type = buf[p + 3] as number;
        const flags = buf[p + 4] as number;
        const streamId = buf.readUInt32BE(p + 5) & 0x7fffffff;
        const payload = buf.subarray(p + 9, p + 9 + length);
        p += 9 + length;
        this.#frame(type, flags, streamId, payload);
      }
      this.#buf = p === buf.length ? EMPTY : buf.subarray(p);
    } catch (err) {
      if (err instanceof ConnectionError) this.#fail(err.code, err.message);
      else if (err instanceof HpackError) this.#fail(H2_ERROR.COMPRESSION_ERROR, err.message);
      else throw err;
    } finally {
      this.socket.uncork();
    }
  }

  #frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.#settingsSeen && type !== Frame.SETTINGS)
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'the first frame must be SETTINGS');
    const c = this.#continuing;
    if (c !== undefined && (type !== Frame.CONTINUATION || streamId !== c.streamId)) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'a header block interrupted');
    }
    switch (type) {
      case Frame.DATA: {
        this.#data(flags, streamId, payload);
        return;
      }
      case Frame.HEADERS: {
        this.#headers(flags, streamId, payload);
        return;
      }
      case Frame.PRIORITY:
        if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.#reset(streamId, H2_ERROR.FRAME_SIZE_ERROR);
        return;
      case Frame.RST_STREAM: {
        this.#rstStream(streamId, payload);
        return;
      }
      case Frame.SETTINGS: {
        this.#settings(flags, streamId, payload);
        return;
      }
      case Frame.PUSH_PROMISE:
        throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      case Frame.PING:
        if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'PING of the wrong size');
        if ((flags & ACK) === 0) {
          this.#control();
          this.socket.write(frame(Frame.PING, ACK, 0, payload));
        }
        return;
      case Frame.GOAWAY:
        if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'GOAWAY on a stream');
        if (payload.length < 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'short GOAWAY');
        // The peer opens nothing more; what is in flight is answered, then the connection ends.
        this.#goingAway = true;
        this.#maybeEnd();
        return;
      case Frame.WINDOW_UPDATE: {
        this.#windowUpdate(streamId, payload);
        return;
      }
      case Frame.CONTINUATION: {
        this.#continuation(flags, streamId, payload);
        return;
      }
      default:
        return; // unknown frame types are ignored (§4.1)
    }
  }

  #headers(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let block = payload;
    if (flags & PADDED) {
      const pad = block[0];
      if (pad === undefined || pad >= block.length) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'padding past the frame');
      block = block.subarray(1, block.length - pad);
    }
    if (flags & PRIORITY_FLAG) {
      if (block.length < 5) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'short priority');
      if ((block.readUInt32BE(0) & 0x7fffffff) === streamId) this.#reset(streamId, H2_ERROR.PROTOCOL_ERROR);
      block = block.subarray(5);
    }
    const endStream = (flags & END_STREAM) !== 0;
    if (flags & END_HEADERS) this.#headerBlock(streamId, endStream, block);
    else this.#continuing = { streamId, endStream, fragments: [Buffer.from(block)], size: block.length };
  }

  #continuation(flags: number, streamId: number, payload: Buffer): void {
    const c = this.#continuing;
    if (c === undefined) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
    c.size += payload.length;
    // A block may not grow without bound while the stream stays half-read (CVE-2024-27316 and kin).
    if (c.size > MAX_HEADER_LIST_SIZE * 2) throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, 'header block too large');
    c.fragments.push(Buffer.from(payload));
    if (flags & END_HEADERS) {
      this.#continuing = undefined;
      this.#headerBlock(streamId, c.endStream, Buffer.concat(c.fragments));
    }
  }

  #headerBlock(streamId: number, endStream: boolean, block: Buffer): void {
    // Decoded whatever happens to the stream: the dynamic table must stay in step (§4.3).
    const { headers: fields, tooLarge } = this.#decoder.decode(block, MAX_HEADER_LIST_SIZE);
    const existing = this.#streams.get(streamId);
    if (existing !== undefined) {
      // Trailers: only on a stream still receiving, and they must end it (§8.1).
      if (existing.state !== 'open') throw new ConnectionError(H2_ERROR.STREAM_CLOSED, `HEADERS on closed stream ${streamId}`);
      if (!endStream) {
        this.#reset(streamId, H2_ERROR.PROTOCOL_ERROR);
        return;
      }
      this.#remoteDone(existing);
      return;
    }
    if (streamId % 2 === 0 || streamId <= this.#lastStreamId) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `stream ${streamId} cannot be opened`);
    }
    this.#lastStreamId = streamId;
    if (this.#goingAway) return;
    if (this.#streams.size >= MAX_CONCURRENT_STREAMS) {
      this.#reset(streamId, H2_ERROR.REFUSED_STREAM);
      return;
    }
    const stream: H2Stream = {
      id: streamId,
      state: 'open',
      sendWindow: this.#peerInitialWindow,
      receiveWindow: RECEIVE_WINDOW,
      headers: undefined,
      chunks: [],
      size: 0,
      declaredLength: -1,
      tooLarge: false,
      pending: undefined,
      served: false,
      answered: false,
    };
    this.#streams.add(stream);
    this.socket.setTimeout(0);
    if (tooLarge) {
      this.#answerBare(stream, '431');
      return;
    }
    const headers = requestHeaders(fields);
    if (headers === undefined) {
      this.#reset(streamId, H2_ERROR.PROTOCOL_ERROR);
      return;
    }
    stream.headers = headers;
    const declared = headers['content-length'];
    if (declared !== undefined) {
      if (!/^\d{1,15}$/.test(declared)) {
        this.#reset(streamId, H2_ERROR.PROTOCOL_ERROR);
        return;
      }
      stream.declaredLength = Number(declared);
    }
    if (endStream) this.#remoteDone(stream);
  }

  #data(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'DATA on stream 0');
    // Flow control counts the whole frame, padding included (§6.9.1).
    this.#receiveWindow -= payload.length;
    if (this.#receiveWindow < 0) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'connection window exceeded');
    let data = payload;
    if (flags & PADDED) {
      const pad = data[0];
      if (pad === undefined || pad >= data.length) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'padding past the frame');
      data = data.subarray(1, data.length - pad);
    }
    const stream = this.#streams.get(streamId);
    if (stream === undefined || stream.state !== 'open') {
      if (streamId > this.#lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      // A stream already closed (we reset or answered it; its frames may still be on the way):
      // the DATA is dropped and the connection window given back.
      this.#replenish(0, payload.length);
      return;
    }
    stream.receiveWindow -= payload.length;
    if (stream.receiveWindow < 0) {
      this.#replenish(0, payload.length);
      this.#reset(streamId, H2_ERROR.FLOW_CONTROL_ERROR);
      return;
    }
    stream.size += data.length;
    if (!stream.tooLarge && stream.size > this.#o.maxBodyBytes) {
      // Over the limit the body is dropped and the request served now (413, as readBody answers);
      // the answer then resets the stream with NO_ERROR, which stops the client sending.
      stream.tooLarge = true;
      stream.chunks = [];
      this.#serve(stream);
    } else if (!stream.tooLarge && data.length > 0) stream.chunks.push(Buffer.from(data));
    // Read whole and kept (or dropped): the windows are given back as soon as the bytes are; the
    // connection's always, also when the stream was just answered and closed (an early 413).
    if (payload.length > 0) this.#replenish(stream.state === 'open' ? streamId : 0, payload.length);
    if (flags & END_STREAM && this.#streams.get(streamId) !== undefined) {
      if (!stream.tooLarge && stream.declaredLength >= 0 && stream.declaredLength !== stream.size) {
        this.#reset(streamId, H2_ERROR.PROTOCOL_ERROR);
        return;
      }
      this.#remoteDone(stream);
    }
  }

  #rstStream(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'RST_STREAM of the wrong size');
    if (streamId > this.#lastStreamId)
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `RST_STREAM on idle stream ${streamId}`);
    const stream = this.#streams.get(streamId);
    this.#control(); // a flood of opened-and-reset streams (CVE-2023-44487) costs us handler work
    if (stream !== undefined) this.#close(stream);
  }

  #settings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & ACK) {
      if (payload.length !== 0) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS of the wrong size');
    this.#settingsSeen = true;
    this.#control();
    for (let i = 0; i < payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      if (id === SETTINGS_ENABLE_PUSH && value > 1) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'ENABLE_PUSH above 1');
      if (id === SETTINGS_INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE too large');
        // The change applies to every stream's window, up or down (§6.9.2).
        const delta = value - this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        for (const s of this.#streams.values()) {
          s.sendWindow += delta;
          if (s.sendWindow > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'a stream window overflowed');
        }
      }
      if (id === SETTINGS_MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME || value > 16_777_215)
          throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'MAX_FRAME_SIZE out of range');
        this.#peerMaxFrame = value;
      }
      // HEADER_TABLE_SIZE (1) needs nothing: our encoder uses no dynamic table, so any size suits it.
    }
    this.socket.write(frame(Frame.SETTINGS, ACK, 0, EMPTY));
    for (const s of this.#streams.values()) this.#flush(s);
  }

  #windowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of the wrong size');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.#sendWindow += increment;
      if (this.#sendWindow > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'connection window overflowed');
      for (const s of this.#streams.values()) this.#flush(s);
      return;
    }
    if (streamId > this.#lastStreamId)
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${streamId}`);
    const stream = this.#streams.get(streamId);
    if (stream === undefined) return; // closed: allowed, ignored (§6.9)
    if (increment === 0) {
      this.#reset(streamId, H2_ERROR.PROTOCOL_ERROR);
      return;
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) {
      this.#reset(streamId, H2_ERROR.FLOW_CONTROL_ERROR);
      return;
    }
    this.#flush(stream);
  }

  // ---- serving ------------------------------------------------------------------------------

  /** The peer's END_STREAM: the request is whole, and served unless it already was. */
  #remoteDone(stream: H2Stream): void {
    stream.state = 'half-closed-remote';
    if (!stream.served) this.#serve(stream);
    // Answered before the request ended (an early 413): nothing more to wait for.
    else if (stream.answered && stream.pending === undefined) this.#close(stream);
  }

  #serve(stream: H2Stream): void {
    stream.served = true;
    const h = stream.headers ?? {};
    let body: string | undefined;
    if (!stream.tooLarge) {
      body =
        stream.chunks.length === 0
          ? ''
          : stream.chunks.length === 1
            ? (stream.chunks[0] as Buffer).toString('utf8')
            : Buffer.concat(stream.chunks).toString('utf8');
    }
    stream.chunks = [];
    const req = new BufferedRequest(
      h[':method'] ?? '',
      h[':path'] ?? '/',
      h,
      this.socket,
      body,
      stream.size,
      this.#o.maxBodyBytes,
    );
    this.#o.serve(req, new H2Response(this, stream));
  }

  /** A response is complete: HEADERS, then DATA as the windows allow. */
  respond(stream: H2Stream, fields: readonly HeaderField[], body: Buffer | undefined): void {
    if (this.#closed || stream.answered || stream.state === 'closed') return;
    stream.answered = true;
    this.#writeHeaders(stream.id, encodeHeaders(fields), body === undefined);
    if (body === undefined) {
      this.#sent(stream);
      return;
    }
    stream.pending = body;
    this.#flush(stream);
  }

  /** An answer without the handlers (431): the stream is then reset with NO_ERROR, as §8.1 allows. */
  #answerBare(stream: H2Stream, status: string): void {
    stream.served = true;
    stream.answered = true;
    this.#writeHeaders(
      stream.id,
      encodeHeaders([
        [':status', status],
        ['date', httpDate()],
      ]),
      true,
    );
    this.#sent(stream);
  }

  #writeHeaders(streamId: number, block: Buffer, endStream: boolean): void {
    const max = this.#peerMaxFrame;
    const flags = endStream ? END_STREAM : 0;
    if (block.length <= max) {
      this.socket.write(frame(Frame.HEADERS, flags | END_HEADERS, streamId, block));
      return;
    }
    const parts: Buffer[] = [frame(Frame.HEADERS, flags, streamId, block.subarray(0, max))];
    for (let at = max; at < block.length; at += max) {
      const last = at + max >= block.length;
      parts.push(frame(Frame.CONTINUATION, last ? END_HEADERS : 0, streamId, block.subarray(at, at + max)));
    }
    this.socket.write(Buffer.concat(parts));
  }

  /** Sends what the windows allow of a stream's pending body. */
  #flush(stream: H2Stream): void {
    const body = stream.pending;
    if (body === undefined || this.#closed) return;
    let at = 0;
    const parts: Buffer[] = [];
    while (at < body.length) {
      const n = Math.min(body.length - at, this.#peerMaxFrame, stream.sendWindow, this.#sendWindow);
      if (n <= 0) break;
      const last = at + n === body.length;
      parts.push(frame(Frame.DATA, last ? END_STREAM : 0, stream.id, body.subarray(at, at + n)));
      stream.sendWindow -= n;
      this.#sendWindow -= n;
      at += n;
    }
    if (parts.length > 0) this.socket.write(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
    stream.pending = at === body.length ? undefined : body.subarray(at);
    if (stream.pending === undefined) this.#sent(stream);
  }

  /** Our side of a stream is done. If the peer is still sending, it is told to stop (NO_ERROR, §8.1). */
  #sent(stream: H2Stream): void {
    if (stream.state === 'open') this.#reset(stream.id, H2_ERROR.NO_ERROR);
    else this.#close(stream);
  }

  #close(stream: H2Stream): void {
    stream.state = 'closed';
    stream.pending = undefined;
    stream.chunks = [];
    this.#streams.delete(stream.id);
    if (this.#streams.size === 0) {
      this.socket.setTimeout(this.#idleMs);
      this.#maybeEnd();
    }
  }

  #reset(streamId: number, code: number): void {
    this.socket.write(frame(Frame.RST_STREAM, 0, streamId, uint32(code)));
    const stream = this.#streams.get(streamId);
    if (stream !== undefined) this.#close(stream);
  }

  /**
   * `n` bytes of DATA were read (kept or dropped): the windows are given back once half of one
   * is used, so a stream of small requests costs a WINDOW_UPDATE now and then, not one per DATA.
   */
  #replenish(streamId: number, n: number): void {
    this.#unacked += n;
    const out: Buffer[] = [];
    if (this.#unacked >= RECEIVE_WINDOW / 2) {
      out.push(frame(Frame.WINDOW_UPDATE, 0, 0, uint32(this.#unacked)));
      this.#receiveWindow += this.#unacked;
      this.#unacked = 0;
    }
    const stream = streamId === 0 ? undefined : this.#streams.get(streamId);
    if (stream !== undefined && stream.receiveWindow < RECEIVE_WINDOW / 2) {
      out.push(frame(Frame.WINDOW_UPDATE, 0, streamId, uint32(RECEIVE_WINDOW - stream.receiveWindow)));
      stream.receiveWindow = RECEIVE_WINDOW;
    }
    if (out.length > 0) this.socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
  }

  // ---- the connection -----------------------------------------------------------------------

  /** Counts frames the peer makes us answer; a flood of them is ENHANCE_YOUR_CALM. */
  #control(): void {
    const second = Math.floor(performance.now() / 1000);
    if (second !== this.#controlSecond) {
      this.#controlSecond = second;
      this.#controlCount = 0;
    }
    if (++this.#controlCount > MAX_CONTROL_PER_SECOND)
      throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, 'control frame flood');
  }

  /** A connection error: GOAWAY with the last stream we saw, then the end (§5.4.1). */
  #fail(code: number, message: string): void {
    if (this.#closed) return;
    const debug = Buffer.from(message.slice(0, 200), 'latin1');
    this.#goAway(code, debug);
    this.#closed = true;
    this.#streams.clear();
    this.socket.end();
  }

  #goAway(code: number, debug: Buffer = EMPTY): void {
    const payload = Buffer.alloc(8 + debug.length);
    payload.writeUInt32BE(this.#lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    debug.copy(payload, 8);
    this.socket.write(frame(Frame.GOAWAY, 0, 0, payload));
  }

  /** After the peer's GOAWAY or end of input: once nothing is in flight, the connection ends. */
  #maybeEnd(): void {
    if (!this.#goingAway || this.#closed || this.#streams.size > 0) return;
    this.#closed = true;
    this.#goAway(H2_ERROR.NO_ERROR);
    this.socket.end();
  }

  #onEnd(): void {
    this.#goingAway = true;
    // Streams still waiting for request bytes will get none: they go; answers in flight still leave.
    for (const s of this.#streams.values()) if (s.state === 'open') this.#close(s);
    this.#maybeEnd();
  }

  #onTimeout(): void {
    if (this.#streams.size > 0 || this.#closed) return;
    this.#closed = true;
    this.#goAway(H2_ERROR.NO_ERROR);
    this.socket.end();
  }

  #onClose(): void {
    this.#closed = true;
    this.#streams.clear();
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * The open streams of a connection: a handful at a time, come and gone at the request rate. An
 * array searched by id rather than a Map, whose backing table V8 reallocates as it grows and
 * shrinks around a few entries; each live table survived the scavenges and filled old space.
 */
class OpenStreams {
  readonly #list: H2Stream[] = [];

  get size(): number {
    return this.#list.length;
  }

  get(id: number): H2Stream | undefined {
    for (const s of this.#list) if (s.id === id) return s;
    return undefined;
  }

  add(stream: H2Stream): void {
    this.#list.push(stream);
  }

  delete(id: number): void {
    const list = this.#list;
    const i = list.findIndex((s) => s.id === id);
    if (i < 0) return;
    const last = list.pop() as H2Stream;
    if (i < list.length) list[i] = last;
  }

  /** A copy: what is done with each may close it. */
  values(): H2Stream[] {
    return this.#list.slice();
  }

  clear(): void {
    this.#list.length = 0;
  }
}

function uint32(n: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(n, 0);
  return out;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId, 5);
  payload.copy(out, 9);
  return out;
}

/**
 * A request's header list as the handlers see it (pseudo-headers kept, as node:http2 gives them),
 * or undefined when it is malformed (§8.3.1): a pseudo-header unknown, repeated or after a regular
 * field, one missing, an upper-case or connection-specific name, TE other than "trailers".
 */
function requestHeaders(fields: readonly HeaderField[]): Record<string, string> | undefined {
  const h: Record<string, string> = {};
  let regular = false;
  for (const [name, value] of fields) {
    if (name.startsWith(':')) {
      if (regular || h[name] !== undefined) return undefined;
      if (name !== ':method' && name !== ':path' && name !== ':scheme' && name !== ':authority') return undefined;
      h[name] = value;
      continue;
    }
    regular = true;
    if (name !== name.toLowerCase() || CONNECTION_SPECIFIC.has(name)) return undefined;
    if (name === 'te' && value !== 'trailers') return undefined;
    const prev = h[name];
    if (prev === undefined) h[name] = value;
    else h[name] = `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  const method = h[':method'];
  if (method === undefined) return undefined;
  if (method === 'CONNECT') return h[':authority'] === undefined ? undefined : h;
  if (h[':scheme'] === undefined || h[':path'] === undefined || h[':path'] === '') return undefined;
  return h;
}
