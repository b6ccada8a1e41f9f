import { performance } from 'node:perf_hooks';
import type { Logger } from '../../src/log.ts';
import type { DnsHandler, Outcome } from '../chain.ts';
import type { DnsMetrics } from '../metrics.ts';
import { HEADER_SIZE, RCODE } from '../wire/constants.ts';
import { inspectResponse } from '../wire/message.ts';
import type { Query } from '../wire/query.ts';
import type { UpstreamTransport } from './transport.ts';
import type { Upstream } from './upstreams.ts';

export interface ForwardOptions {
  upstreams: Upstream[];
  transport: UpstreamTransport;
  timeoutMs: number;
  maxConcurrent: number;
  /** EDNS buffer size advertised to upstreams. */
  udpSize: number;
  metrics: DnsMetrics;
  logger: Logger;
}

/**
 * The last handler: asks the upstream resolvers. Upstreams are tried in order, healthy ones
 * first (two consecutive failures make one unhealthy until it answers again); a timeout, a
 * network error, a malformed reply, SERVFAIL or REFUSED moves on to the next. A truncated UDP
 * reply is retried over TCP at the same upstream. When every upstream fails, the last one's
 * verdict (SERVFAIL, or the REFUSED it answered) is the result; the cache in front may still
 * answer from stale data.
 */
export class ForwardHandler implements DnsHandler {
  readonly name = 'forward';
  readonly #opts: ForwardOptions;
  readonly #log: Logger;
  #inflight = 0;

  constructor(opts: ForwardOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
  }

  get upstreams(): readonly Upstream[] {
    return this.#opts.upstreams;
  }

  async handle(q: Query): Promise<Outcome> {
    if (this.#opts.upstreams.length === 0) {
      return { kind: 'fail', rcode: RCODE.SERVFAIL, by: this.name, reason: 'no upstream resolvers configured' };
    }
    if (this.#inflight >= this.#opts.maxConcurrent) {
      return { kind: 'fail', rcode: RCODE.REFUSED, by: this.name, reason: 'too many upstream queries in flight' };
    }
    this.#inflight++;
    try {
      return await this.#forward(q);
    } finally {
      this.#inflight--;
    }
  }

  async #forward(q: Query): Promise<Outcome> {
    const query = upstreamQuery(q, this.#opts.udpSize);
    let reason = 'every upstream failed';
    let rcode: number = RCODE.SERVFAIL;
    for (const upstream of this.#order()) {
      const started = performance.now();
      let transport: 'udp' | 'tcp' = 'udp';
      try {
        let reply = await this.#opts.transport.udp(upstream, query, this.#opts.timeoutMs);
        if (((reply[2] as number) & 0x02) !== 0) {
          transport = 'tcp'; // RFC 7766 §5: truncated over UDP, ask again over TCP
          reply = await this.#opts.transport.tcp(upstream, query, this.#opts.timeoutMs);
        }
        const info = inspectResponse(reply);
        if (!info) throw new Error('malformed reply');
        if (info.rcode === RCODE.SERVFAIL || info.rcode === RCODE.REFUSED) {
          this.#observe(upstream, transport, info.rcode === RCODE.SERVFAIL ? 'servfail' : 'refused', started);
          reason = `${upstream.label} answered ${info.rcode === RCODE.SERVFAIL ? 'SERVFAIL' : 'REFUSED'}`;
          rcode = info.rcode;
          continue;
        }
        upstream.failures = 0;
        this.#observe(upstream, transport, 'ok', started);
        // Keep the message without the upstream's OPT (the server adds meshlet's own per client).
        let message = reply;
        if (info.optStart >= 0) {
          message = Buffer.from(reply.subarray(0, info.optStart));
          message.writeUInt16BE(info.optIndex, 10);
        }
        message[2] = (message[2] as number) & ~0x04; // not authoritative: this is forwarded data
        return { kind: 'answer', message, by: this.name };
      } catch (err) {
        upstream.failures++;
        const timeout = err instanceof Error && err.message.includes('timeout');
        this.#observe(upstream, transport, timeout ? 'timeout' : 'error', started);
        reason = `${upstream.label}: ${err instanceof Error ? err.message : String(err)}`;
        rcode = RCODE.SERVFAIL;
        this.#log.debug({ upstream: upstream.label, transport, err: reason }, 'upstream attempt failed');
      }
    }
    // The last upstream's verdict: SERVFAIL after a timeout or error, else what it answered.
    return { kind: 'fail', rcode, by: this.name, reason };
  }

  #order(): Upstream[] {
    const all = this.#opts.upstreams;
    return [...all.filter((u) => u.healthy), ...all.filter((u) => !u.healthy)];
  }

  #observe(upstream: Upstream, transport: 'udp' | 'tcp', outcome: string, started: number): void {
    this.#opts.metrics.upstream(upstream.label, transport, outcome, (performance.now() - started) / 1000);
  }
}

/** The query sent upstream: RD, the client's CD, the lower-case question, and meshlet's OPT. */
function upstreamQuery(q: Query, udpSize: number): Buffer {
  const question = Buffer.from(q.key, 'latin1');
  const out = Buffer.alloc(HEADER_SIZE + question.length + 11);
  out.writeUInt16BE(0x0100 | (q.flags & 0x0010), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, 10);
  question.copy(out, HEADER_SIZE);
  const opt = HEADER_SIZE + question.length;
  out.writeUInt16BE(41, opt + 1);
  out.writeUInt16BE(udpSize, opt + 3);
  return out;
}
