import { HEADER_SIZE, OPT_SIZE } from './constants.ts';
import type { Query } from './query.ts';

/**
 * Turning a handler's message into the bytes sent to one client: the client's ID, RD and CD
 * bits and question case (RFC 1035 §7.3; spec §2.1 "case-insensitive" while echoing the case),
 * an OPT record only if the client sent one (RFC 6891 §7), and TC with an empty answer when the
 * message exceeds what the client accepts over UDP (RFC 1035 §4.2.1, RFC 6891 §6.2.5).
 *
 * Handlers build messages with flags QR/AA/RA and the rcode set, a lower-case question of the
 * same length as the client's, and no OPT. Every buffer allocated here is written in full
 * (dns-packet CVE-2021-23386 leaked memory from Buffer.allocUnsafe).
 */

/** The largest message this client gets over this transport. */
export function sizeLimit(q: Query, maxUdpSize: number): number {
  return q.tcp ? 65535 : Math.min(q.udpSize, maxUdpSize);
}

/** Appends meshlet's OPT record (version 0, no options) to a handler message. */
export function withOpt(message: Buffer, maxUdpSize: number): Buffer {
  const out = Buffer.allocUnsafe(message.length + OPT_SIZE);
  message.copy(out);
  writeOpt(out, message.length, maxUdpSize, 0);
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  return out;
}

/**
 * The reply to `q` from a handler message. `optVariant` is the same message with meshlet's OPT
 * already appended (the fast path keeps both), saving one copy.
 */
export function finalize(q: Query, message: Buffer, maxUdpSize: number, optVariant?: Buffer): Buffer {
  const size = message.length + (q.edns ? OPT_SIZE : 0);
  if (size > sizeLimit(q, maxUdpSize)) return truncated(q, message, maxUdpSize);
  const out = Buffer.allocUnsafe(size);
  if (q.edns) {
    if (optVariant) optVariant.copy(out);
    else {
      message.copy(out);
      writeOpt(out, message.length, maxUdpSize, 0);
      out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
    }
    if (q.dnssecOk) out[size - 4] = 0x80; // RFC 3225 §3: the DO bit is copied to the response
  } else {
    message.copy(out);
  }
  patchHeader(out, q);
  q.raw.copy(out, HEADER_SIZE, HEADER_SIZE, q.questionEnd - 4);
  return out;
}

/** TC=1, the question and OPT only: the client retries over TCP. */
export function truncated(q: Query, message: Buffer, maxUdpSize: number): Buffer {
  const out = headerAndQuestion(q, (message[3] as number) & 0x0f, maxUdpSize);
  out[2] = ((out[2] as number) & ~0x04) | ((message[2] as number) & 0x04) | 0x02;
  return out;
}

/** An answer with no records and this rcode (SERVFAIL, REFUSED, BADVERS, ...). */
export function rcodeReply(q: Query, rcode: number, maxUdpSize: number): Buffer {
  return headerAndQuestion(q, rcode, maxUdpSize);
}

/**
 * A negative answer (NXDOMAIN or NODATA) with the zone's SOA in AUTHORITY (RFC 2308 §2).
 * `soaTail` is the SOA record with a 2-byte owner placeholder, patched to point at the zone
 * apex inside the question name, which ends `zoneWireLength` bytes before its end.
 */
export function negativeReply(q: Query, rcode: number, soaTail: Buffer, zoneWireLength: number, maxUdpSize: number): Buffer {
  const qEnd = q.questionEnd;
  const size = qEnd + soaTail.length + (q.edns ? OPT_SIZE : 0);
  const out = Buffer.allocUnsafe(size);
  q.raw.copy(out, 0, 0, qEnd);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(1, 8);
  out.writeUInt16BE(q.edns ? 1 : 0, 10);
  out[2] = 0x84;
  out[3] = rcode;
  patchHeader(out, q);
  soaTail.copy(out, qEnd);
  out.writeUInt16BE(0xc000 | (qEnd - 4 - zoneWireLength), qEnd);
  if (q.edns) writeOpt(out, qEnd + soaTail.length, maxUdpSize, q.dnssecOk ? 0x8000 : 0);
  return out;
}

/** FORMERR or NOTIMP when only the header could be read: ID and opcode echoed, no records. */
export function headerOnlyReply(raw: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  raw.copy(out, 0, 0, 2);
  const opcodeBits = (raw[2] as number) & 0x78;
  // RFC 8906 §8.1.4: no AA/RA/RD for an unknown opcode; a FORMERR keeps RD.
  out[2] = 0x80 | opcodeBits | (opcodeBits === 0 ? (raw[2] as number) & 0x01 : 0);
  out[3] = rcode & 0x0f;
  return out;
}

function headerAndQuestion(q: Query, rcode: number, maxUdpSize: number): Buffer {
  const qEnd = q.questionEnd;
  const size = qEnd + (q.edns ? OPT_SIZE : 0);
  const out = Buffer.allocUnsafe(size);
  q.raw.copy(out, 0, 0, qEnd);
  out.writeUInt16BE(1, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(q.edns ? 1 : 0, 10);
  out[2] = 0x80;
  out[3] = rcode & 0x0f;
  patchHeader(out, q);
  if (q.edns) {
    writeOpt(out, qEnd, maxUdpSize, q.dnssecOk ? 0x8000 : 0);
    out[qEnd + 5] = rcode >> 4; // extended rcode bits, e.g. BADVERS = 16 (RFC 6891 §6.1.3)
  }
  return out;
}

/** ID from the query; QR=1, opcode 0, AA as the handler set it, TC=0, RD echoed; RA=1, Z=AD=0, CD echoed. */
function patchHeader(out: Buffer, q: Query): void {
  out.writeUInt16BE(q.id, 0);
  out[2] = 0x80 | ((out[2] as number) & 0x04) | ((q.flags >> 8) & 0x01);
  out[3] = 0x80 | (q.flags & 0x10) | ((out[3] as number) & 0x0f);
}

function writeOpt(out: Buffer, at: number, udpSize: number, flags: number): void {
  out[at] = 0; // root owner
  out.writeUInt16BE(41, at + 1);
  out.writeUInt16BE(udpSize, at + 3);
  out[at + 5] = 0; // extended rcode
  out[at + 6] = 0; // version 0
  out.writeUInt16BE(flags, at + 7);
  out.writeUInt16BE(0, at + 9); // no options
}
