import { randomFillSync } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { ErrorCodes, MeshletError } from '../../src/errors.ts';
import { HEADER_SIZE } from '../wire/constants.ts';
import type { Upstream } from './upstreams.ts';

interface Pending {
  upstream: Upstream;
  /** The socket the query left from: the reply must come back to it. */
  socket: Socket;
  /** The question bytes sent (lower case), which the reply must echo. */
  question: Buffer;
  resolve: (reply: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Upstream queries over UDP and over TCP (one connection per query, used after a truncated UDP
 * reply). Each UDP query leaves from a socket of its own, bound to a port the kernel picks at
 * random, and is closed with its answer: an off-path attacker must guess the port as well as
 * the random ID (RFC 5452 §9.2, the Kaminsky attack; CVE-2008-1447). Replies are matched by ID,
 * socket, source address and port, and question (CVE-2023-28452, dnsmasq CVE-2020-25684/25685).
 */
export class UpstreamTransport {
  readonly #pending = new Map<number, Pending>();
  readonly #ids = new Uint16Array(512);
  #idIndex = this.#ids.length;
  #closed = false;

  /** Sends `query` (its ID is replaced) and resolves with the matching reply. */
  udp(upstream: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.#closed) return Promise.reject(new MeshletError(ErrorCodes.DNS_UPSTREAM, 'transport closed'));
    const id = this.#freeId();
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    const socket = createSocket(upstream.family === 6 ? 'udp6' : 'udp4');
    socket.unref();
    return new Promise<Buffer>((resolve, reject) => {
      const settle = (err: Error | undefined, reply?: Buffer) => {
        const p = this.#pending.get(id);
        if (p?.socket !== socket) return;
        clearTimeout(p.timer);
        this.#pending.delete(id);
        socket.close();
        if (err) reject(err);
        else resolve(reply as Buffer);
      };
      const timer = setTimeout(
        () => settle(new MeshletError(ErrorCodes.DNS_UPSTREAM, `timeout after ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#pending.set(id, {
        upstream,
        socket,
        question: questionOf(out),
        resolve: (reply) => settle(undefined, reply),
        reject: (err) => settle(err),
        timer,
      });
      socket.on('message', (msg, rinfo) => this.#onReply(msg, rinfo, socket));
      // ICMP errors (port unreachable) and bind failures: this upstream failed now, not at the timeout.
      socket.on('error', (err) =>
        settle(new MeshletError(ErrorCodes.DNS_UPSTREAM, `udp to ${upstream.label} failed: ${err.message}`, { cause: err })),
      );
      socket.send(out, upstream.port, upstream.host, (err) => {
        if (err)
          settle(new MeshletError(ErrorCodes.DNS_UPSTREAM, `send to ${upstream.label} failed: ${err.message}`, { cause: err }));
      });
    });
  }

  /** One query over a fresh TCP connection (RFC 7766), length-prefixed. */
  tcp(upstream: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
    const id = this.#freeId();
    const out = Buffer.alloc(query.length + 2);
    out.writeUInt16BE(query.length, 0);
    query.copy(out, 2);
    out.writeUInt16BE(id, 2);
    const question = questionOf(out.subarray(2));
    return new Promise<Buffer>((resolve, reject) => {
      const socket = connect({ host: upstream.host, port: upstream.port });
      let buffered: Buffer = Buffer.alloc(0);
      const fail = (message: string, cause?: unknown) => {
        socket.destroy();
        reject(new MeshletError(ErrorCodes.DNS_UPSTREAM, message, { cause }));
      };
      socket.setTimeout(timeoutMs, () => fail(`tcp timeout after ${timeoutMs} ms`));
      socket.on('error', (err) => fail(`tcp to ${upstream.label} failed: ${err.message}`, err));
      socket.on('connect', () => socket.write(out));
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 2) return;
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) return;
        const reply = buffered.subarray(2, 2 + length);
        socket.destroy();
        if (reply.length < HEADER_SIZE || reply.readUInt16BE(0) !== id || !sameQuestion(reply, question)) {
          reject(new MeshletError(ErrorCodes.DNS_UPSTREAM, `tcp reply from ${upstream.label} does not match the query`));
        } else {
          resolve(Buffer.from(reply));
        }
      });
      socket.on('end', () => fail(`tcp connection to ${upstream.label} closed before a reply`));
    });
  }

  close(): void {
    this.#closed = true;
    for (const p of [...this.#pending.values()]) p.reject(new MeshletError(ErrorCodes.DNS_UPSTREAM, 'transport closed'));
  }

  /** Sockets open for queries in flight (one each). */
  get openSockets(): number {
    return this.#pending.size;
  }

  #onReply(msg: Buffer, rinfo: RemoteInfo, socket: Socket): void {
    if (msg.length < HEADER_SIZE || ((msg[2] as number) & 0x80) === 0) return;
    const p = this.#pending.get(msg.readUInt16BE(0));
    if (!p || p.socket !== socket) return;
    if (rinfo.address !== p.upstream.host || rinfo.port !== p.upstream.port || !sameQuestion(msg, p.question)) return;
    p.resolve(msg);
  }

  /** A random ID not in flight (a pool refilled from the CSPRNG, so IDs are not guessable). */
  #freeId(): number {
    for (;;) {
      if (this.#idIndex >= this.#ids.length) {
        randomFillSync(this.#ids);
        this.#idIndex = 0;
      }
      const id = this.#ids[this.#idIndex++] as number;
      if (!this.#pending.has(id)) return id;
    }
  }
}

/** The question section of a query meshlet built (name, type, class; no compression). */
function questionOf(query: Buffer): Buffer {
  let off = HEADER_SIZE;
  while (off < query.length && query[off] !== 0) off += (query[off] as number) + 1;
  return Buffer.from(query.subarray(HEADER_SIZE, off + 5));
}

/** True if the reply's question equals ours, ignoring ASCII case. */
function sameQuestion(reply: Buffer, question: Buffer): boolean {
  if (reply.readUInt16BE(4) !== 1 || reply.length < HEADER_SIZE + question.length) return false;
  for (let i = 0; i < question.length; i++) {
    let c = reply[HEADER_SIZE + i] as number;
    if (i < question.length - 4 && c >= 0x41 && c <= 0x5a) c |= 0x20; // the name only, not type and class
    if (c !== question[i]) return false;
  }
  return true;
}
