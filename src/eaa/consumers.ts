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

  /** Writes one notification frame to `cn`'s socket, if it has one that is keeping up. */
  send(cn: string, frame: string): SendResult {
    const ws = this.sockets.get(cn);
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return 'no_socket';
    if (ws.bufferedAmount > this.maxBuffered) return 'dropped';
    this.cork(ws);
    ws.send(frame);
    return 'delivered';
  }

  /**
   * Holds `ws`'s writes until the current tick's work is done, so the frames of the notifications
   * handled together (an HTTP/2 read often carries several) leave in one TLS record and one
   * syscall instead of one each. Nothing waits on a timer: the writes go out right after the
   * current callback and its promise jobs.
   */
  private cork(ws: WebSocket): void {
    // `ws` exposes no cork(); its socket is the TLS socket the frames are written to.
    const sock = (ws as unknown as { _socket?: Duplex })._socket;
    if (sock === undefined || this.corked.has(sock)) return;
    sock.cork();
    this.corked.add(sock);
    if (this.corked.size === 1) process.nextTick(this.uncorkAll);
  }

  private readonly corked = new Set<Duplex>();
  private readonly uncorkAll = (): void => {
    for (const sock of this.corked) sock.uncork();
    this.corked.clear();
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
