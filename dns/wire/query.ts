import { CLASSIC_UDP_SIZE, HEADER_SIZE, QTYPE } from './constants.ts';
import { skipName } from './names.ts';

/**
 * A client query, as far as meshlet reads it: the header, the one question and the OPT record.
 * Only what the hot path needs is computed eagerly; the dotted name is built on first use.
 */
export class Query {
  /** The datagram or TCP message as received. */
  readonly raw: Buffer;
  readonly tcp: boolean;
  readonly id: number;
  /** Header bytes 2–3 as received (QR, opcode, AA, TC, RD / RA, Z, AD, CD, rcode). */
  readonly flags: number;
  readonly qtype: number;
  readonly qclass: number;
  /** Offset just past QCLASS. */
  readonly questionEnd: number;
  /** Lower-case question (name, type, class) as latin1 text: the lookup key of the fast path and the cache. */
  readonly key: string;
  readonly edns: boolean;
  readonly ednsVersion: number;
  /** Largest UDP answer the client accepts (512 without EDNS). */
  readonly udpSize: number;
  readonly dnssecOk: boolean;
  #name: string | undefined;

  constructor(raw: Buffer, tcp: boolean, questionEnd: number, key: string, opt: OptInfo | undefined) {
    this.raw = raw;
    this.tcp = tcp;
    this.id = raw.readUInt16BE(0);
    this.flags = raw.readUInt16BE(2);
    this.qtype = raw.readUInt16BE(questionEnd - 4);
    this.qclass = raw.readUInt16BE(questionEnd - 2);
    this.questionEnd = questionEnd;
    this.key = key;
    this.edns = opt !== undefined;
    this.ednsVersion = opt?.version ?? 0;
    this.udpSize = opt ? Math.max(CLASSIC_UDP_SIZE, opt.udpSize) : CLASSIC_UDP_SIZE;
    this.dnssecOk = opt?.dnssecOk ?? false;
  }

  /** Lower-case dotted name without the trailing dot ('' is the root). */
  get name(): string {
    if (this.#name === undefined) this.#name = dottedFromKey(this.key);
    return this.#name;
  }
}

interface OptInfo {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

/** Why a message gets no normal answer: dropped silently, or a header-only FORMERR / NOTIMP. */
export type QueryRejection = 'drop-short' | 'drop-response' | 'formerr' | 'notimp';

// One scratch buffer for lower-casing: queries are parsed synchronously, one at a time.
const scratch = Buffer.alloc(260);

/**
 * Parses a client query. Never throws: anything malformed comes back as a rejection.
 * Rules: shorter than a header → drop (c-ares CVE-2023-32067); QR=1 → drop, never answer a
 * response (trailofbits/audit-kubernetes#51); opcode ≠ QUERY → NOTIMP (RFC 8906 §8.1.4);
 * QDCOUNT ≠ 1, ANCOUNT > 1, NSCOUNT > 1, ARCOUNT > 2, a bad name, truncated records or two
 * OPT records → FORMERR (RFC 9619, RFC 6891 §6.1.1, miekg/dns acceptfunc.go).
 */
export function parseQuery(msg: Buffer, tcp: boolean): Query | QueryRejection {
  if (msg.length < HEADER_SIZE) return 'drop-short';
  const b2 = msg[2] as number;
  if (b2 & 0x80) return 'drop-response';
  if ((b2 & 0x78) !== 0) return 'notimp';
  if (msg.readUInt16BE(4) !== 1) return 'formerr';
  const an = msg.readUInt16BE(6);
  const ns = msg.readUInt16BE(8);
  const ar = msg.readUInt16BE(10);
  if (an > 1 || ns > 1 || ar > 2) return 'formerr';

  // The question name: plain labels only (a pointer in the first name can only point into the header).
  let off = HEADER_SIZE;
  let n = 0;
  for (;;) {
    if (off >= msg.length) return 'formerr';
    const len = msg[off] as number;
    if (len === 0) break;
    if (len > 63 || off + 1 + len > msg.length || n + len + 1 > 254) return 'formerr';
    scratch[n++] = len;
    for (let i = 1; i <= len; i++) {
      const c = msg[off + i] as number;
      scratch[n++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    off += len + 1;
  }
  scratch[n++] = 0;
  off++;
  if (off + 4 > msg.length) return 'formerr';
  msg.copy(scratch, n, off, off + 4);
  const questionEnd = off + 4;
  const key = scratch.toString('latin1', 0, n + 4);

  // Records after the question: skip answer/authority, find at most one OPT in additional.
  let opt: OptInfo | undefined;
  off = questionEnd;
  for (let i = 0; i < an + ns + ar; i++) {
    const nameStart = off;
    off = skipName(msg, off);
    if (off < 0 || off + 10 > msg.length) return 'formerr';
    const type = msg.readUInt16BE(off);
    const rdlen = msg.readUInt16BE(off + 8);
    if (off + 10 + rdlen > msg.length) return 'formerr';
    if (type === QTYPE.OPT) {
      if (i < an + ns || opt !== undefined || msg[nameStart] !== 0) return 'formerr';
      opt = {
        udpSize: msg.readUInt16BE(off + 2),
        version: msg[off + 5] as number,
        dnssecOk: ((msg[off + 6] as number) & 0x80) !== 0,
      };
    }
    off += 10 + rdlen;
  }
  return new Query(msg, tcp, questionEnd, key, opt);
}

/** Dotted text of a lower-case key (wire name + type + class as latin1). */
export function dottedFromKey(key: string): string {
  const labels: string[] = [];
  let i = 0;
  for (;;) {
    const len = key.charCodeAt(i);
    if (!(len > 0) || i + 1 + len > key.length) break;
    labels.push(key.slice(i + 1, i + 1 + len));
    i += len + 1;
  }
  return labels.join('.');
}

/** The lookup key of a question, as parseQuery computes it (the name lower-cased, type and class as is). */
export function questionKey(nameWire: Buffer, qtype: number, qclass: number): string {
  const out = Buffer.alloc(nameWire.length + 4);
  for (let i = 0; i < nameWire.length; i++) {
    const c = nameWire[i] as number;
    out[i] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
  }
  out.writeUInt16BE(qtype, nameWire.length);
  out.writeUInt16BE(qclass, nameWire.length + 2);
  return out.toString('latin1');
}
