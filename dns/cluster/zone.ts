import type { Logger } from '../../src/log.ts';
import type { RegistryUpdate, ServiceRegistry } from '../../src/registry/registry.ts';
import { CLASS_IN, QTYPE } from '../wire/constants.ts';
import { MessageWriter, type RR } from '../wire/message.ts';
import { encodeName } from '../wire/names.ts';
import { questionKey } from '../wire/query.ts';
import { withOpt } from '../wire/respond.ts';
import { type Contribution, emptyRecordSet, type RecordSet, serviceRecords } from './records.ts';

/** A precomputed positive answer: the message without and with meshlet's OPT record. */
export interface FastAnswer {
  readonly message: Buffer;
  readonly withOpt: Buffer;
}

export interface ClusterZoneOptions {
  /** The cluster domain, e.g. cluster.local. */
  domain: string;
  /** TTL of every record, and the SOA MINIMUM (negative TTL) of the zone. */
  ttl: number;
  /** Address published for ns.dns.<zone> (the DNS server's own address). */
  nsAddress: string;
  maxUdpSize: number;
  logger: Logger;
}

/** Query types answered from precomputed buffers; any other type takes the (still synchronous) slow path. */
const FAST_TYPES = [QTYPE.A, QTYPE.AAAA, QTYPE.SRV, QTYPE.PTR, QTYPE.CNAME, QTYPE.TXT, QTYPE.SOA, QTYPE.NS, QTYPE.ANY];
const APEX = '';
/** Flags of a cluster answer: QR, AA, RA (RD and CD are copied from each query). */
const AUTHORITATIVE = 0x8480;

/**
 * The cluster zone as data: every name the registry implies, its records, and a table of
 * pre-encoded answers keyed by the lower-case question, so the hot path only copies a buffer.
 * Rebuilt per changed service when the registry changes, never per query.
 */
export class ClusterZone {
  readonly domain: string;
  readonly #opts: ClusterZoneOptions;
  /** contributor ('ns/name', or '' for the apex) → its names. */
  #contributions = new Map<string, Contribution>();
  /** name → contributor → records. */
  #byName = new Map<string, Map<string, RecordSet>>();
  /** name → merged records. */
  #merged = new Map<string, RecordSet>();
  #fast = new Map<string, FastAnswer>();
  /** name → the fast keys it owns, to drop them when the name changes. */
  #fastKeysByName = new Map<string, string[]>();
  #serial = Math.floor(Date.now() / 1000);
  #soaTail: Buffer = Buffer.alloc(0);
  readonly #zoneWireLength: number;

  constructor(opts: ClusterZoneOptions) {
    this.#opts = opts;
    this.domain = opts.domain.toLowerCase().replace(/\.$/, '');
    this.#zoneWireLength = encodeName(this.domain).length;
    const apex = this.#setContribution(APEX, this.#apexContribution());
    this.#refreshSoa();
    for (const name of apex) this.#encode(name);
  }

  /** Number of names (including empty non-terminals). */
  get size(): number {
    return this.#merged.size;
  }

  /** TTL of the zone's records. */
  get ttl(): number {
    return this.#opts.ttl;
  }

  get serial(): number {
    return this.#serial;
  }

  /** The SOA record with a pointer placeholder as owner (see negativeReply). */
  get soaTail(): Buffer {
    return this.#soaTail;
  }

  get zoneWireLength(): number {
    return this.#zoneWireLength;
  }

  /** Number of precomputed answers (question keys) in the fast table. */
  get answers(): number {
    return this.#fast.size;
  }

  /** Hot path: the precomputed answer for a lower-case question key. */
  fast(key: string): FastAnswer | undefined {
    return this.#fast.get(key);
  }

  /** The records of a name, or undefined if the name does not exist. */
  lookup(name: string): RecordSet | undefined {
    return this.#merged.get(name);
  }

  /** True for the zone apex and every name below it. */
  contains(name: string): boolean {
    return name === this.domain || name.endsWith(`.${this.domain}`);
  }

  /** Builds the whole zone from the registry. */
  rebuild(registry: ServiceRegistry): void {
    const keys = new Set<string>(this.#contributions.keys());
    keys.delete(APEX);
    for (const service of registry.services()) keys.add(`${service.namespace}/${service.name}`);
    this.#applyServices(keys, registry);
  }

  /**
   * Applies one coalesced registry update: only the services it names are recomputed. That
   * holds after a reset too (a file reload, a relist): the registry diffs the new state against
   * the old and names every service that changed, so re-encoding the whole zone there would only
   * turn every answer buffer into garbage (1,000 services: ~5,000 names
   * re-encoded per reload for the one that changed).
   */
  apply(update: RegistryUpdate, registry: ServiceRegistry): void {
    if (update.services.size > 0) this.#applyServices(update.services, registry);
  }

  #applyServices(keys: Iterable<string>, registry: ServiceRegistry): void {
    const dirty = new Set<string>();
    for (const key of keys) {
      const service = registry.getServiceByKey(key);
      let next: Contribution = new Map();
      if (service) {
        try {
          next = serviceRecords(service, registry.endpointSlicesOf(service.namespace, service.name), this.domain);
        } catch (err) {
          this.#opts.logger.warn({ err, service: key }, 'service skipped: its DNS records could not be built');
        }
      }
      for (const name of this.#setContribution(key, next)) dirty.add(name);
    }
    if (dirty.size === 0) return;
    this.#serial = Math.max(this.#serial + 1, Math.floor(Date.now() / 1000));
    this.#refreshSoa();
    for (const name of dirty) this.#remerge(name);
    // SRV targets (and the addresses in their ADDITIONAL section) belong to the same service, so
    // they are among the dirty names already.
    dirty.add(this.domain); // the apex SOA carries the serial
    for (const name of dirty) this.#encode(name);
  }

  /** Replaces a contributor's names; returns every name whose records may have changed. */
  #setContribution(key: string, next: Contribution): Set<string> {
    const previous = this.#contributions.get(key);
    const touched = new Set<string>([...(previous?.keys() ?? []), ...next.keys()]);
    if (next.size === 0) this.#contributions.delete(key);
    else this.#contributions.set(key, next);
    for (const name of touched) {
      let contributors = this.#byName.get(name);
      const set = next.get(name);
      if (set) {
        if (!contributors) {
          contributors = new Map();
          this.#byName.set(name, contributors);
        }
        contributors.set(key, set);
      } else if (contributors) {
        contributors.delete(key);
        if (contributors.size === 0) this.#byName.delete(name);
      }
    }
    if (key === APEX) for (const name of touched) this.#remerge(name);
    return touched;
  }

  #remerge(name: string): void {
    const contributors = this.#byName.get(name);
    if (!contributors) {
      this.#merged.delete(name);
      return;
    }
    const merged = emptyRecordSet();
    for (const set of [...contributors.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, s]) => s)) {
      for (const ip of set.a) if (!merged.a.includes(ip)) merged.a.push(ip);
      for (const ip of set.aaaa) if (!merged.aaaa.includes(ip)) merged.aaaa.push(ip);
      for (const target of set.ptr) if (!merged.ptr.includes(target)) merged.ptr.push(target);
      merged.srv.push(...set.srv);
      merged.txt.push(...set.txt);
      merged.cname ??= set.cname;
    }
    this.#merged.set(name, merged);
  }

  #encode(name: string): void {
    for (const key of this.#fastKeysByName.get(name) ?? []) this.#fast.delete(key);
    this.#fastKeysByName.delete(name);
    const set = this.#merged.get(name);
    if (!set) return;
    const keys: string[] = [];
    let wire: Buffer;
    try {
      wire = encodeName(name);
    } catch {
      return;
    }
    for (const qtype of FAST_TYPES) {
      const records = this.#answerFor(name, set, qtype);
      if (!records) continue;
      const message = this.#build(name, qtype, records.answer, records.additional);
      const key = questionKey(wire, qtype, CLASS_IN);
      this.#fast.set(key, { message, withOpt: withOpt(message, this.#opts.maxUdpSize) });
      keys.push(key);
    }
    if (keys.length > 0) this.#fastKeysByName.set(name, keys);
  }

  /** The records answering (name, qtype), or undefined when that is not a positive answer. */
  #answerFor(name: string, set: RecordSet, qtype: number): { answer: RR[]; additional: RR[] } | undefined {
    const ttl = this.#opts.ttl;
    const answer: RR[] = [];
    const additional: RR[] = [];
    const want = (t: number) => qtype === t || qtype === QTYPE.ANY;
    if (set.cname) {
      // An ExternalName: only the CNAME itself is precomputed; other types chase it (see handler).
      return qtype === QTYPE.CNAME ? { answer: [{ type: 'CNAME', name, ttl, target: set.cname }], additional } : undefined;
    }
    if (want(QTYPE.A)) for (const address of set.a) answer.push({ type: 'A', name, ttl, address });
    if (want(QTYPE.AAAA)) for (const address of set.aaaa) answer.push({ type: 'AAAA', name, ttl, address });
    if (want(QTYPE.PTR)) for (const target of set.ptr) answer.push({ type: 'PTR', name, ttl, target });
    if (want(QTYPE.TXT) && set.txt.length > 0) answer.push({ type: 'TXT', name, ttl, text: set.txt });
    if (want(QTYPE.SRV)) {
      for (const s of set.srv) answer.push({ type: 'SRV', name, ttl, ...s });
      // §2.3.2/§2.4.2: ADDITIONAL may hold the targets' addresses.
      const targets = [...new Set(set.srv.map((s) => s.target))];
      for (const target of targets) {
        const t = this.#merged.get(target);
        for (const address of t?.a ?? []) additional.push({ type: 'A', name: target, ttl, address });
        for (const address of t?.aaaa ?? []) additional.push({ type: 'AAAA', name: target, ttl, address });
      }
    }
    if (name === this.domain) {
      if (want(QTYPE.SOA)) answer.push(this.#soa());
      if (want(QTYPE.NS)) {
        answer.push({ type: 'NS', name, ttl, target: `ns.dns.${this.domain}` });
        const ns = this.#merged.get(`ns.dns.${this.domain}`);
        for (const address of ns?.a ?? []) additional.push({ type: 'A', name: `ns.dns.${this.domain}`, ttl, address });
        for (const address of ns?.aaaa ?? []) additional.push({ type: 'AAAA', name: `ns.dns.${this.domain}`, ttl, address });
      }
    }
    return answer.length > 0 ? { answer, additional } : undefined;
  }

  #build(name: string, qtype: number, answer: RR[], additional: RR[]): Buffer {
    const w = new MessageWriter(0, AUTHORITATIVE).question(name, qtype, CLASS_IN);
    for (const rr of answer) w.record('answer', rr);
    for (const rr of additional) w.record('additional', rr);
    return w.finish();
  }

  /** Builds a positive answer for the slow path (e.g. a CNAME chase), same rules as the fast table. */
  buildAnswer(name: string, qtype: number, answer: RR[]): Buffer {
    return this.#build(name, qtype, answer, []);
  }

  #soa(): RR {
    const ttl = this.#opts.ttl;
    // CoreDNS plugin/backend_lookup.go: TTL min(ttl, 300), MINIMUM = ttl, serial = last change.
    return {
      type: 'SOA',
      name: this.domain,
      ttl: Math.min(ttl, 300),
      mname: `ns.dns.${this.domain}`,
      rname: `hostmaster.${this.domain}`,
      serial: this.#serial,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: ttl,
    };
  }

  #refreshSoa(): void {
    // The SOA record alone, its owner a 2-byte placeholder that negativeReply points at the apex.
    const w = new MessageWriter(0, 0, 128, false).record('answer', this.#soa());
    const whole = w.finish().subarray(12);
    const ownerLength = this.#zoneWireLength;
    const tail = Buffer.alloc(whole.length - ownerLength + 2);
    whole.copy(tail, 2, ownerLength);
    this.#soaTail = tail;
  }

  #apexContribution(): Contribution {
    const c: Contribution = new Map();
    const zone = this.domain;
    c.set(zone, emptyRecordSet());
    c.set(`svc.${zone}`, emptyRecordSet());
    c.set(`pod.${zone}`, emptyRecordSet()); // CoreDNS answers NODATA here (pods disabled)
    c.set(`dns.${zone}`, emptyRecordSet());
    const ns = emptyRecordSet();
    (this.#opts.nsAddress.includes(':') ? ns.aaaa : ns.a).push(this.#opts.nsAddress);
    c.set(`ns.dns.${zone}`, ns);
    const version = emptyRecordSet();
    version.txt.push('1.1.0'); // §2.2 schema version
    c.set(`dns-version.${zone}`, version);
    return c;
  }
}
