import { HEADER_SIZE, QTYPE } from './constants.ts';
import { encodeName, ipv4Bytes, ipv6Bytes, readName, skipName } from './names.ts';

/**
 * meshlet's own small DNS encoder and decoder (see docs/decisions/dns-codec.md): the record
 * types a cluster zone and a forwarding cache need, written for the precompute and cold paths.
 * The hot path never comes here; it copies buffers built by this writer.
 */

/** A resource record in meshlet's terms. Names are dotted, without the trailing dot. */
export type RR =
  | { type: 'A' | 'AAAA'; name: string; ttl: number; address: string }
  | { type: 'CNAME' | 'PTR' | 'NS'; name: string; ttl: number; target: string }
  | { type: 'MX'; name: string; ttl: number; preference: number; target: string }
  | { type: 'SRV'; name: string; ttl: number; priority: number; weight: number; port: number; target: string }
  | {
      type: 'SOA';
      name: string;
      ttl: number;
      mname: string;
      rname: string;
      serial: number;
      refresh: number;
      retry: number;
      expire: number;
      minimum: number;
    }
  | { type: 'TXT'; name: string; ttl: number; text: string[] }
  /** Any other type, RDATA copied as is (only for types without embedded names, RFC 3597 §4). */
  | { type: 'RAW'; name: string; ttl: number; rtype: number; rclass: number; data: Buffer };

export type Section = 'answer' | 'authority' | 'additional';

const SECTION_INDEX: Record<Section, number> = { answer: 0, authority: 1, additional: 2 };

/** Builds one message with name compression (RFC 1035 §4.1.4). */
export class MessageWriter {
  #buf: Buffer;
  #off = HEADER_SIZE;
  #names = new Map<string, number>();
  #counts = [0, 0, 0, 0];
  #lastSection = 0;
  readonly #compress: boolean;

  /** `compress: false` writes every name in full (for records copied into other messages). */
  constructor(id: number, flags: number, sizeHint = 512, compress = true) {
    this.#compress = compress;
    this.#buf = Buffer.alloc(Math.max(sizeHint, 64));
    this.#buf.writeUInt16BE(id, 0);
    this.#buf.writeUInt16BE(flags, 2);
  }

  /** Writes the question; its name becomes the target of later compression pointers. */
  question(name: string, qtype: number, qclass: number): this {
    this.#writeName(name, true);
    this.#u16(qtype);
    this.#u16(qclass);
    this.#counts[0] = 1;
    return this;
  }

  /** Appends a record; sections must come in order (answer, authority, additional). */
  record(section: Section, rr: RR): this {
    const index = SECTION_INDEX[section];
    if (index < this.#lastSection) throw new Error('records must be written section by section');
    this.#lastSection = index;
    this.#writeName(rr.name, true);
    this.#u16(rrType(rr));
    this.#u16(rr.type === 'RAW' ? rr.rclass : 1);
    this.#u32(rr.ttl);
    const lengthAt = this.#off;
    this.#u16(0);
    this.#rdata(rr);
    this.#buf.writeUInt16BE(this.#off - lengthAt - 2, lengthAt);
    this.#counts[index + 1] = (this.#counts[index + 1] as number) + 1;
    return this;
  }

  /** The message so far, as a fresh buffer of exactly its length. */
  finish(): Buffer {
    for (let i = 0; i < 4; i++) this.#buf.writeUInt16BE(this.#counts[i] as number, 4 + i * 2);
    return Buffer.from(this.#buf.subarray(0, this.#off));
  }

  #rdata(rr: RR): void {
    switch (rr.type) {
      case 'A':
      case 'AAAA': {
        const bytes = rr.type === 'A' ? ipv4Bytes(rr.address) : ipv6Bytes(rr.address);
        if (!bytes) throw new Error(`invalid ${rr.type} address ${rr.address}`);
        this.#bytes(bytes);
        return;
      }
      case 'CNAME':
      case 'PTR':
      case 'NS':
        this.#writeName(rr.target, true);
        return;
      case 'MX':
        this.#u16(rr.preference);
        this.#writeName(rr.target, true);
        return;
      case 'SRV':
        this.#u16(rr.priority);
        this.#u16(rr.weight);
        this.#u16(rr.port);
        this.#writeName(rr.target, false); // RFC 2782: the target is never compressed
        return;
      case 'SOA':
        this.#writeName(rr.mname, true);
        this.#writeName(rr.rname, true);
        for (const n of [rr.serial, rr.refresh, rr.retry, rr.expire, rr.minimum]) this.#u32(n);
        return;
      case 'TXT':
        for (const s of rr.text) {
          const bytes = Buffer.from(s, 'utf8');
          if (bytes.length > 255) throw new Error('TXT string longer than 255 octets');
          this.#ensure(bytes.length + 1);
          this.#buf[this.#off++] = bytes.length;
          this.#bytes(bytes);
        }
        return;
      case 'RAW':
        this.#bytes(rr.data);
        return;
    }
  }

  #writeName(name: string, compress: boolean): void {
    const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
    encodeName(trimmed); // validates lengths; throws on an invalid name
    const labels = trimmed === '' ? [] : trimmed.split('.');
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase();
      const at = this.#names.get(suffix);
      if (compress && this.#compress && at !== undefined) {
        this.#u16(0xc000 | at);
        return;
      }
      if (this.#off < 0x3fff && !this.#names.has(suffix)) this.#names.set(suffix, this.#off);
      const bytes = Buffer.from(labels[i] as string, 'latin1');
      this.#ensure(bytes.length + 1);
      this.#buf[this.#off++] = bytes.length;
      this.#bytes(bytes);
    }
    this.#ensure(1);
    this.#buf[this.#off++] = 0;
  }

  #u16(n: number): void {
    this.#ensure(2);
    this.#buf.writeUInt16BE(n, this.#off);
    this.#off += 2;
  }

  #u32(n: number): void {
    this.#ensure(4);
    this.#buf.writeUInt32BE(n >>> 0, this.#off);
    this.#off += 4;
  }

  #bytes(b: Buffer): void {
    this.#ensure(b.length);
    b.copy(this.#buf, this.#off);
    this.#off += b.length;
  }

  #ensure(n: number): void {
    if (this.#off + n <= this.#buf.length) return;
    const bigger = Buffer.alloc(Math.max(this.#buf.length * 2, this.#off + n));
    this.#buf.copy(bigger);
    this.#buf = bigger;
  }
}

function rrType(rr: RR): number {
  return rr.type === 'RAW' ? rr.rtype : QTYPE[rr.type];
}

/** What the cache and the forwarder need to know about a response, found in one walk. */
export interface ResponseInfo {
  id: number;
  rcode: number;
  truncated: boolean;
  /** Offset just past the question. */
  questionEnd: number;
  answerCount: number;
  /** Offsets of the TTL field of every record but OPT (answer, authority, additional). */
  ttlOffsets: number[];
  /** Lowest TTL of those records; undefined when there are none. */
  minTtl: number | undefined;
  /** The first SOA of the authority section: its TTL and MINIMUM (RFC 2308 §5). */
  soa: { ttl: number; minimum: number } | undefined;
  /** Where the OPT record starts, and its index in the additional section; -1 when absent. */
  optStart: number;
  optIndex: number;
}

/** Walks a response without decoding RDATA; undefined if it is malformed. Never throws. */
export function inspectResponse(buf: Buffer): ResponseInfo | undefined {
  if (buf.length < HEADER_SIZE) return undefined;
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  if (qd !== 1) return undefined;
  let off = skipName(buf, HEADER_SIZE);
  if (off < 0 || off + 4 > buf.length) return undefined;
  off += 4;
  const info: ResponseInfo = {
    id: buf.readUInt16BE(0),
    rcode: (buf[3] as number) & 0x0f,
    truncated: ((buf[2] as number) & 0x02) !== 0,
    questionEnd: off,
    answerCount: an,
    ttlOffsets: [],
    minTtl: undefined,
    soa: undefined,
    optStart: -1,
    optIndex: -1,
  };
  for (let i = 0; i < an + ns + ar; i++) {
    const start = off;
    off = skipName(buf, off);
    if (off < 0 || off + 10 > buf.length) return undefined;
    const type = buf.readUInt16BE(off);
    const ttl = buf.readUInt32BE(off + 4);
    const rdlen = buf.readUInt16BE(off + 8);
    if (off + 10 + rdlen > buf.length) return undefined;
    if (type === QTYPE.OPT) {
      if (i < an + ns || info.optStart >= 0) return undefined;
      info.optStart = start;
      info.optIndex = i - an - ns;
    } else {
      info.ttlOffsets.push(off + 4);
      const clamped = Math.min(ttl, 0x7fffffff); // RFC 2181 §8: a TTL with the top bit set means 0
      info.minTtl = info.minTtl === undefined ? clamped : Math.min(info.minTtl, clamped);
      if (type === QTYPE.SOA && i >= an && i < an + ns && info.soa === undefined && rdlen >= 22) {
        info.soa = { ttl: clamped, minimum: buf.readUInt32BE(off + 10 + rdlen - 4) };
      }
    }
    off += 10 + rdlen;
  }
  return info;
}

/** A decoded message, for the cold paths (CNAME chasing) and tests. */
export interface DecodedMessage {
  id: number;
  flags: number;
  rcode: number;
  question: { name: string; qtype: number; qclass: number } | undefined;
  answer: RR[];
  authority: RR[];
  additional: RR[];
}

/** Decodes a message fully (names decompressed); undefined if malformed. Never throws. */
export function decodeMessage(buf: Buffer): DecodedMessage | undefined {
  try {
    if (buf.length < HEADER_SIZE) return undefined;
    const counts = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)] as const;
    const out: DecodedMessage = {
      id: buf.readUInt16BE(0),
      flags: buf.readUInt16BE(2),
      rcode: (buf[3] as number) & 0x0f,
      question: undefined,
      answer: [],
      authority: [],
      additional: [],
    };
    let off = HEADER_SIZE;
    for (let i = 0; i < counts[0]; i++) {
      const name = readName(buf, off);
      if (!name || name.end + 4 > buf.length) return undefined;
      if (i === 0) out.question = { name: name.name, qtype: buf.readUInt16BE(name.end), qclass: buf.readUInt16BE(name.end + 2) };
      off = name.end + 4;
    }
    const sections = [out.answer, out.authority, out.additional];
    for (let s = 0; s < 3; s++) {
      for (let i = 0; i < (counts[s + 1] as number); i++) {
        const owner = readName(buf, off);
        if (!owner || owner.end + 10 > buf.length) return undefined;
        const p = owner.end;
        const type = buf.readUInt16BE(p);
        const rclass = buf.readUInt16BE(p + 2);
        const ttl = buf.readUInt32BE(p + 4);
        const rdlen = buf.readUInt16BE(p + 8);
        const rd = p + 10;
        if (rd + rdlen > buf.length) return undefined;
        const rr = decodeRdata(buf, owner.name, type, rclass, ttl, rd, rdlen);
        if (!rr) return undefined;
        (sections[s] as RR[]).push(rr);
        off = rd + rdlen;
      }
    }
    return out;
  } catch {
    return undefined;
  }
}

function decodeRdata(
  buf: Buffer,
  name: string,
  type: number,
  rclass: number,
  ttl: number,
  rd: number,
  len: number,
): RR | undefined {
  const nameAt = (at: number) => readName(buf, at);
  switch (rclass === 1 ? type : -1) {
    case QTYPE.A:
      return len === 4 ? { type: 'A', name, ttl, address: [...buf.subarray(rd, rd + 4)].join('.') } : undefined;
    case QTYPE.AAAA: {
      if (len !== 16) return undefined;
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(rd + i).toString(16));
      return { type: 'AAAA', name, ttl, address: groups.join(':') };
    }
    case QTYPE.CNAME:
    case QTYPE.PTR:
    case QTYPE.NS: {
      const target = nameAt(rd);
      if (!target) return undefined;
      const t = type === QTYPE.CNAME ? 'CNAME' : type === QTYPE.PTR ? 'PTR' : 'NS';
      return { type: t, name, ttl, target: target.name };
    }
    case QTYPE.MX: {
      const target = nameAt(rd + 2);
      return target ? { type: 'MX', name, ttl, preference: buf.readUInt16BE(rd), target: target.name } : undefined;
    }
    case QTYPE.SRV: {
      const target = nameAt(rd + 6);
      if (!target) return undefined;
      const [priority, weight, port] = [buf.readUInt16BE(rd), buf.readUInt16BE(rd + 2), buf.readUInt16BE(rd + 4)];
      return { type: 'SRV', name, ttl, priority, weight, port, target: target.name };
    }
    case QTYPE.SOA: {
      const mname = nameAt(rd);
      const rname = mname && nameAt(mname.end);
      if (!mname || !rname || rname.end + 20 > rd + len) return undefined;
      const n = (i: number) => buf.readUInt32BE(rname.end + i * 4);
      return {
        type: 'SOA',
        name,
        ttl,
        mname: mname.name,
        rname: rname.name,
        serial: n(0),
        refresh: n(1),
        retry: n(2),
        expire: n(3),
        minimum: n(4),
      };
    }
    case QTYPE.TXT: {
      const text: string[] = [];
      for (let i = rd; i < rd + len; ) {
        const l = buf[i] as number;
        if (i + 1 + l > rd + len) return undefined;
        text.push(buf.toString('utf8', i + 1, i + 1 + l));
        i += 1 + l;
      }
      return { type: 'TXT', name, ttl, text };
    }
    default:
      return { type: 'RAW', name, ttl, rtype: type, rclass, data: Buffer.from(buf.subarray(rd, rd + len)) };
  }
}
