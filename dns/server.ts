import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP, createServer as netServer, type Server, type Socket as TcpSocket } from 'node:net';
import { ErrorCodes, MeshletError } from '../src/errors.ts';
import type { Logger } from '../src/log.ts';
import { type DnsHandler, type Outcome, runChain } from './chain.ts';
import type { FastAnswer } from './cluster/zone.ts';
import type { AnsweredBy, DnsMetrics } from './metrics.ts';
import { RCODE } from './wire/constants.ts';
import { parseQuery, type Query, type QueryRejection } from './wire/query.ts';
import { finalize, headerOnlyReply, rcodeReply } from './wire/respond.ts';

export interface DnsServerOptions {
  address: string;
  /** 0 picks a free port (the same for UDP and TCP). */
  port: number;
  /** The precomputed cluster answers, looked up before the chain runs (see dns/README.md). */
  fast: (key: string) => FastAnswer | undefined;
  /**
   * The cache's fast path, looked up next: the whole reply from a fresh cached answer, or
   * undefined (then the chain runs: cluster, cache, forward).
   */
  cached?: (q: Query) => Buffer | undefined;
  handlers: readonly DnsHandler[];
  maxUdpSize: number;
  tcpIdleTimeoutMs: number;
  maxTcpConnections: number;
  metrics: DnsMetrics;
  logger: Logger;
}

type Send = (reply: Buffer) => void;

/**
 * The DNS listeners, UDP and TCP on one address and port. The UDP hot path is: read the
 * question bytes into a lower-case key, find a pre-encoded answer, copy it with the client's
 * ID, flags and case, send; then the same for a fresh cached answer of a forwarded name (TTLs
 * aged). Everything else goes through the handler chain.
 */
export class DnsServer {
  readonly #opts: DnsServerOptions;
  readonly #log: Logger;
  #udp: Socket | undefined;
  #tcp: Server | undefined;
  #port = 0;
  readonly #connections = new Set<TcpSocket>();

  constructor(opts: DnsServerOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
  }

  get port(): number {
    return this.#port;
  }

  get listening(): boolean {
    return this.#udp !== undefined && this.#tcp !== undefined;
  }

  async start(): Promise<void> {
    const { address, port } = this.#opts;
    // With port 0, TCP picks the port and UDP takes the same one; retry if UDP finds it taken.
    for (let attempt = 0; ; attempt++) {
      const tcp = await this.#listenTcp(address, port);
      const chosen = (tcp.address() as { port: number }).port;
      try {
        this.#udp = await this.#listenUdp(address, chosen);
        this.#tcp = tcp;
        this.#port = chosen;
        break;
      } catch (err) {
        await new Promise<void>((resolve) => tcp.close(() => resolve()));
        if (port !== 0 || attempt >= 10) {
          throw new MeshletError(ErrorCodes.DNS_BIND, `cannot bind DNS on ${address}:${chosen}/udp: ${String(err)}`, {
            cause: err,
          });
        }
      }
    }
    this.#log.info({ address, port: this.#port }, 'DNS server listening (UDP and TCP)');
  }

  async stop(): Promise<void> {
    const udp = this.#udp;
    const tcp = this.#tcp;
    this.#udp = undefined;
    this.#tcp = undefined;
    for (const c of this.#connections) c.destroy();
    await Promise.all([
      udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : undefined,
      tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined,
    ]);
  }

  #listenUdp(address: string, port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: isIP(address) === 6 ? 'udp6' : 'udp4', lookup: literalLookup });
      socket.once('error', reject);
      socket.bind(port, address, () => {
        socket.off('error', reject);
        socket.on('error', (err) => this.#log.warn({ err }, 'DNS UDP socket error'));
        try {
          socket.setRecvBufferSize(4 * 1024 * 1024); // absorb bursts; the kernel caps it at rmem_max
        } catch {}
        socket.on('message', (msg, rinfo) => this.#onUdp(socket, msg, rinfo));
        resolve(socket);
      });
    });
  }

  #listenTcp(address: string, port: number): Promise<Server> {
    return new Promise((resolve, reject) => {
      const server = netServer((socket) => this.#onTcp(socket));
      server.maxConnections = this.#opts.maxTcpConnections;
      server.once('error', (err) =>
        reject(new MeshletError(ErrorCodes.DNS_BIND, `cannot bind DNS on ${address}:${port}/tcp`, { cause: err })),
      );
      server.listen({ host: address, port, exclusive: true }, () => resolve(server));
    });
  }

  // ---- UDP: the hot path ------------------------------------------------------------------

  #onUdp(socket: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    const q = parseQuery(msg, false);
    if (typeof q === 'string') {
      this.#reject(q, msg, (reply) => socket.send(reply, rinfo.port, rinfo.address));
      return;
    }
    if (q.ednsVersion === 0) {
      const fast = this.#opts.fast(q.key);
      if (fast) {
        socket.send(finalize(q, fast.message, this.#opts.maxUdpSize, fast.withOpt), rinfo.port, rinfo.address);
        this.#opts.metrics.answered(q.qtype, RCODE.NOERROR, 'cluster');
        return;
      }
      const cached = this.#opts.cached?.(q);
      if (cached) {
        socket.send(cached, rinfo.port, rinfo.address);
        this.#opts.metrics.answered(q.qtype, (cached[3] as number) & 0x0f, 'cache');
        return;
      }
    }
    this.#serve(q, (reply) => {
      // An answer that was still on its way when the server stopped is dropped, not sent.
      if (this.#udp === socket) socket.send(reply, rinfo.port, rinfo.address);
    });
  }

  // ---- TCP (RFC 7766: length-prefixed, pipelined, idle timeout) -----------------------------

  #onTcp(socket: TcpSocket): void {
    this.#connections.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.#opts.tcpIdleTimeoutMs, () => socket.destroy());
    socket.on('close', () => this.#connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    const send: Send = (reply) => {
      if (socket.destroyed) return;
      const frame = Buffer.allocUnsafe(reply.length + 2);
      frame.writeUInt16BE(reply.length, 0);
      reply.copy(frame, 2);
      socket.write(frame);
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (length === 0) {
          this.#opts.metrics.malformed('tcp-framing');
          socket.destroy();
          return;
        }
        if (buffered.length < 2 + length) break;
        const msg = Buffer.from(buffered.subarray(2, 2 + length));
        buffered = buffered.subarray(2 + length);
        const q = parseQuery(msg, true);
        if (typeof q === 'string') this.#reject(q, msg, send);
        else this.#serve(q, send);
      }
    });
  }

  // ---- shared ---------------------------------------------------------------------------------

  #serve(q: Query, send: Send): void {
    if (q.ednsVersion > 0) {
      // RFC 6891 §6.1.3: an unknown EDNS version gets BADVERS, with our OPT at version 0.
      this.#opts.metrics.malformed('badvers');
      send(rcodeReply(q, RCODE.BADVERS, this.#opts.maxUdpSize));
      this.#opts.metrics.answered(q.qtype, RCODE.BADVERS, 'server');
      return;
    }
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = runChain(this.#opts.handlers, q);
    } catch (err) {
      outcome = this.#bug(err);
    }
    if (outcome instanceof Promise) {
      outcome.then(
        (o) => this.#reply(q, o, send),
        (err: unknown) => this.#reply(q, this.#bug(err), send),
      );
    } else {
      this.#reply(q, outcome, send);
    }
  }

  #reply(q: Query, outcome: Outcome, send: Send): void {
    const max = this.#opts.maxUdpSize;
    if (outcome.kind === 'answer') {
      const reply = outcome.final ? outcome.message : finalize(q, outcome.message, max);
      send(reply);
      this.#opts.metrics.answered(q.qtype, (reply[3] as number) & 0x0f, byLabel(outcome.by));
    } else {
      if (outcome.rcode === RCODE.SERVFAIL) this.#log.debug({ name: q.name, qtype: q.qtype, reason: outcome.reason }, 'SERVFAIL');
      send(rcodeReply(q, outcome.rcode, max));
      this.#opts.metrics.answered(q.qtype, outcome.rcode, byLabel(outcome.by));
    }
  }

  #reject(why: QueryRejection, msg: Buffer, send: Send): void {
    switch (why) {
      case 'drop-short':
        this.#opts.metrics.malformed('short');
        return;
      case 'drop-response':
        this.#opts.metrics.malformed('response');
        return;
      case 'formerr':
        this.#opts.metrics.malformed('formerr');
        send(headerOnlyReply(msg, RCODE.FORMERR));
        return;
      case 'notimp':
        this.#opts.metrics.malformed('notimp');
        send(headerOnlyReply(msg, RCODE.NOTIMP));
        return;
    }
  }

  #bug(err: unknown): Outcome {
    this.#log.error({ err }, 'DNS handler threw; answering SERVFAIL');
    return { kind: 'fail', rcode: RCODE.SERVFAIL, by: 'server', reason: 'internal error' };
  }
}

/**
 * The address lookup of the UDP socket. Every reply goes to the IP literal the query came from,
 * and dgram resolves even a literal through dns.lookup(), which answers on the next tick: one
 * deferral and a few allocations per reply. A literal is answered at once; anything else goes
 * to dns.lookup() as before. The last literal is remembered, so a busy client's replies skip
 * isIP()'s regular expression.
 */
function literalLookup(
  hostname: string,
  options: LookupOneOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  if (hostname !== lastLiteral.address) {
    const family = isIP(hostname);
    if (family === 0) {
      dnsLookup(hostname, options, callback);
      return;
    }
    lastLiteral = { address: hostname, family };
  }
  callback(null, hostname, lastLiteral.family);
}
let lastLiteral = { address: '', family: 0 };

function byLabel(by: string): AnsweredBy {
  return by === 'cluster' || by === 'cache' || by === 'forward' ? by : 'server';
}
