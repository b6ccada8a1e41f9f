import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../log.ts';
import { JSON_TYPE } from './http.ts';

/**
 * Consumers' notification WebSockets (GET /notifications, docs/eaa.md §WebSocket): one socket per
 * app CN, which must equal the `Host` header; a new socket for the same CN closes the old one
 * with 1012. Server → client text frames only; nothing is queued for a consumer without a
 * socket (OpenNESS drops those notifications too).
 */

export const REPLACED_CODE = 1012;
export const REPLACED_REASON = 'New connection request, closing this connection';

export type SendResult = 'delivered' | 'no_socket' | 'dropped';

export class ConsumerHub {
  private readonly sockets = new Map<string, WebSocket>();
  private readonly wss: WebSocketServer;
  private readonly log: Logger;
  private readonly maxBuffered: number;
  private readonly onConnect: (cn: string) => void;

  constructor(opts: { logger: Logger; maxBufferedBytes: number; onConnect?: (cn: string) => void }) {
    this.log = opts.logger;
    this.maxBuffered = opts.maxBufferedBytes;
    this.onConnect = opts.onConnect ?? (() => {});
    // The server never reads what consumers send; a small maxPayload bounds what they can make it buffer.
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: 64 << 10 });
  }

  get size(): number {
    return this.sockets.size;
  }

  /**
   * An upgrade request for /notifications from an app with certificate CN `cn`, checked as
   * OpenNESS does: Host must equal the CN (401), an Origin must name the Host (403).
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, cn: string): void {
    const host = req.headers.host ?? '';
    if (cn === '' || host !== cn) {
      this.log.debug({ cn, host }, 'notification socket refused: Host is not the certificate CN');
      reject(socket, 401, 'Unauthorized');
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, host)) {
      reject(socket, 403, 'Forbidden');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(cn, ws));
  }

  private attach(cn: string, ws: WebSocket): void {
    const old = this.sockets.get(cn);
    if (old) {
      old.close(REPLACED_CODE, REPLACED_REASON);
      setTimeout(() => old.terminate(), 1000).unref();
    }
    this.sockets.set(cn, ws);
    ws.on('close', () => {
      if (this.sockets.get(cn) === ws) this.sockets.delete(cn);
    });
    ws.on('error', (err) => this.log.debug({ err, cn }, 'notification socket error'));
    this.log.debug({ cn }, 'consumer connected');
    this.onConnect(cn);
  }

  /** Queues one notification frame for `cn`'s socket, if it has one that is keeping up. */
  send(cn: string, frame: string): SendResult {
    const ws = this.sockets.get(cn);
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return 'no_socket';
    if (ws.bufferedAmount > this.maxBuffered) return 'dropped';
    let frames = this.queued.get(ws);
    if (frames === undefined) {
      frames = [];
      this.queued.set(ws, frames);
    }
    if (frames.length === 0) {
      this.due.push(ws);
      if (this.due.length === 1) process.nextTick(this.flush);
    }
    frames.push(frame);
    return 'delivered';
  }

  /**
   * Text frames queued during the current tick, per socket. They are written when the tick's
   * work is done as one Buffer: the notifications handled together (an HTTP/2 read often
   * carries several) leave in one TLS record and one syscall, and no per-frame objects of
   * `ws`'s sender (header Buffer, payload copy, write request) are made. `ws` still does the
   * handshake, reading, pings and close; frames are whole, so its control frames interleave
   * with these only between frames.
   */
  private readonly queued = new WeakMap<WebSocket, string[]>();
  /**
   * The sockets with frames queued this tick. The per-socket arrays are kept and emptied, not
   * made anew: a Map cleared every tick reallocated its table each time, and at 10,000
   * notifications/s those tables outlived scavenges.
   */
  private readonly due: WebSocket[] = [];
  private readonly flush = (): void => {
    for (const ws of this.due) {
      const frames = this.queued.get(ws);
      if (frames === undefined || frames.length === 0) continue;
      // A socket closed meanwhile gets nothing after its close frame.
      const sock = socketOf(ws);
      if (ws.readyState === WebSocket.OPEN && sock !== undefined && !sock.destroyed) sock.write(encodeTextFrames(frames));
      frames.length = 0;
    }
    this.due.length = 0;
  };

  connected(cn: string): boolean {
    return this.sockets.get(cn)?.readyState === WebSocket.OPEN;
  }

  /** Closes every socket (1001 going away) on shutdown. */
  close(): void {
    for (const ws of this.sockets.values()) {
      ws.close(1001, 'EAA shutting down');
      setTimeout(() => ws.terminate(), 1000).unref();
    }
    this.sockets.clear();
  }
}

/** The TLS socket under `ws` (it exposes none: `_socket` is where it keeps it). */
function socketOf(ws: WebSocket): Duplex | undefined {
  return (ws as unknown as { _socket?: Duplex })._socket;
}

/** Unmasked, final text frames (RFC 6455 §5.2: the server never masks), one after the other in one Buffer. */
export function encodeTextFrames(frames: readonly string[]): Buffer {
  let total = 0;
  const lengths = new Array<number>(frames.length);
  for (let i = 0; i < frames.length; i++) {
    const n = Buffer.byteLength(frames[i] as string);
    lengths[i] = n;
    total += n + (n < 126 ? 2 : n < 65536 ? 4 : 10);
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < frames.length; i++) {
    const n = lengths[i] as number;
    out[at++] = 0x81; // FIN + text
    if (n < 126) out[at++] = n;
    else if (n < 65536) {
      out[at++] = 126;
      out.writeUInt16BE(n, at);
      at += 2;
    } else {
      out[at++] = 127;
      out.writeBigUInt64BE(BigInt(n), at);
      at += 8;
    }
    at += out.write(frames[i] as string, at, 'utf8');
  }
  return out;
}

/** gorilla/websocket's default CheckOrigin: the Origin's host must equal Host (ASCII case-insensitive). */
function sameOrigin(origin: string, host: string): boolean {
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

function reject(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
}
