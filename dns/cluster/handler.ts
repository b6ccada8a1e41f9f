import type { DnsHandler, Next, Outcome } from '../chain.ts';
import { CLASS_IN, QTYPE, RCODE } from '../wire/constants.ts';
import { decodeMessage, MessageWriter, type RR } from '../wire/message.ts';
import { parseQuery, type Query } from '../wire/query.ts';
import { negativeReply } from '../wire/respond.ts';
import type { ClusterZone } from './zone.ts';

/**
 * The cluster zone handler. Inside `<domain>` it always answers: the precomputed record, NODATA
 * for a name that exists without that type, NXDOMAIN for a name that does not exist (spec §2.4.1;
 * dns-rules §0: every wrong search-suffix expansion must be NXDOMAIN so the client's search walk
 * goes on). It also answers PTR for service and endpoint IPs. Every other name is passed on,
 * including unknown reverse names (CoreDNS `fallthrough in-addr.arpa ip6.arpa`).
 */
/** CNAME links followed inside the zone (ExternalName → ExternalName …), as resolvers cap chains. */
const MAX_CHASE = 8;

export class ClusterHandler implements DnsHandler {
  readonly name = 'cluster';
  readonly #zone: ClusterZone;
  readonly #maxUdpSize: number;

  constructor(zone: ClusterZone, maxUdpSize: number) {
    this.#zone = zone;
    this.#maxUdpSize = maxUdpSize;
  }

  handle(q: Query, next: Next): Outcome | Promise<Outcome> {
    return this.#resolve(q, next, 0);
  }

  #resolve(q: Query, next: Next, depth: number): Outcome | Promise<Outcome> {
    const fast = this.#zone.fast(q.key);
    if (fast) return { kind: 'answer', message: fast.message, by: this.name };
    const name = q.name;
    if (!this.#zone.contains(name)) return next();
    if (q.qclass !== CLASS_IN) return { kind: 'fail', rcode: RCODE.REFUSED, by: this.name, reason: 'only class IN is served' };
    if (q.qtype === QTYPE.AXFR || q.qtype === QTYPE.IXFR) {
      return { kind: 'fail', rcode: RCODE.REFUSED, by: this.name, reason: 'zone transfers are not offered' };
    }
    const records = this.#zone.lookup(name);
    if (!records) return this.#negative(q, RCODE.NXDOMAIN);
    if (records.cname) return this.#chase(q, records.cname, next, depth);
    return this.#negative(q, RCODE.NOERROR); // NODATA (RFC 2308 §2.2)
  }

  #negative(q: Query, rcode: number): Outcome {
    const z = this.#zone;
    // Built for this very query (ID, case, OPT), so the server sends it as is.
    return {
      kind: 'answer',
      message: negativeReply(q, rcode, z.soaTail, z.zoneWireLength, this.#maxUdpSize),
      by: this.name,
      final: true,
    };
  }

  /**
   * ExternalName (spec §2.5): "an A/AAAA query returns the CNAME plus the resolved target
   * records". A target outside the zone is resolved by the rest of the chain (cache, forward),
   * one inside it (an ExternalName naming another service) by the zone itself, up to
   * MAX_CHASE links (a loop of ExternalNames ends there, with the CNAMEs so far); if that fails
   * the client still gets the CNAME and follows it itself.
   */
  async #chase(q: Query, target: string, next: Next, depth: number): Promise<Outcome> {
    const answer: RR[] = [{ type: 'CNAME', name: q.name, ttl: this.#zone.ttl, target }];
    let rcode: number = RCODE.NOERROR;
    const sub = parseQuery(new MessageWriter(0, 0x0100).question(target, q.qtype, CLASS_IN).finish(), true);
    if (typeof sub !== 'string') {
      const inZone = this.#zone.contains(target);
      const out = !inZone ? await next(sub) : depth < MAX_CHASE ? await this.#resolve(sub, next, depth + 1) : undefined;
      if (out?.kind === 'answer') {
        const decoded = decodeMessage(out.message);
        if (decoded && (decoded.rcode === RCODE.NOERROR || decoded.rcode === RCODE.NXDOMAIN)) {
          rcode = decoded.rcode; // RFC 6604 §3: the rcode belongs to the last name of the chain
          answer.push(...decoded.answer);
        }
      }
    }
    const w = new MessageWriter(0, 0x8480 | rcode).question(q.name, q.qtype, CLASS_IN);
    for (const rr of answer) w.record('answer', rr);
    return { kind: 'answer', message: w.finish(), by: this.name };
  }
}
