/**
 * Domain names on the wire (RFC 1035 §3.1, §4.1.4), written to survive hostile input
 * (RFC 9267): labels ≤ 63 octets, names ≤ 255 octets, compression pointers only backwards and
 * with a bounded number of hops, so a loop or a forward pointer can never spin or overrun.
 */

const MAX_NAME = 255;
const MAX_LABEL = 63;
/** miekg/dns caps pointer hops the same way (`maxCompressionPointers`). */
const MAX_POINTERS = 126;

/** Dotted name (no trailing dot; '' is the root) → uncompressed wire form. Throws on an invalid name. */
export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed === '') return Buffer.from([0]);
  const labels = trimmed.split('.');
  const out = Buffer.alloc(trimmed.length + 2);
  let off = 0;
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length === 0 || bytes.length > MAX_LABEL) throw new Error(`invalid label in name ${JSON.stringify(name)}`);
    out[off++] = bytes.length;
    bytes.copy(out, off);
    off += bytes.length;
  }
  out[off++] = 0;
  if (off > MAX_NAME) throw new Error(`name longer than 255 octets: ${name}`);
  return out;
}

/** True if `name` can be encoded (used to skip registry data that is not a valid DNS name). */
export function isEncodableName(name: string): boolean {
  try {
    encodeName(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * The offset just past the name at `off`, or -1 if it is malformed. A pointer ends a name, so
 * skipping never follows pointers and cannot loop.
 */
export function skipName(buf: Buffer, off: number): number {
  let len = 0;
  for (;;) {
    if (off >= buf.length) return -1;
    const b = buf[off] as number;
    if (b === 0) return off + 1;
    if ((b & 0xc0) === 0xc0) return off + 2 <= buf.length ? off + 2 : -1;
    if (b & 0xc0) return -1; // 0x40 and 0x80 label types are reserved
    len += b + 1;
    if (len > MAX_NAME) return -1;
    off += b + 1;
  }
}

/** Reads a possibly compressed name as lower-case dotted text; undefined if malformed. */
export function readName(buf: Buffer, start: number): { name: string; end: number } | undefined {
  let off = start;
  let end = -1;
  let hops = 0;
  let len = 0;
  let lowest = start; // a pointer must point before everything read so far
  const labels: string[] = [];
  for (;;) {
    if (off >= buf.length) return undefined;
    const b = buf[off] as number;
    if (b === 0) {
      if (end < 0) end = off + 1;
      break;
    }
    if ((b & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length || ++hops > MAX_POINTERS) return undefined;
      const target = ((b & 0x3f) << 8) | (buf[off + 1] as number);
      if (target >= lowest) return undefined;
      if (end < 0) end = off + 2;
      lowest = target;
      off = target;
      continue;
    }
    if (b & 0xc0) return undefined;
    len += b + 1;
    if (len > MAX_NAME || off + 1 + b > buf.length) return undefined;
    labels.push(buf.toString('latin1', off + 1, off + 1 + b).toLowerCase());
    off += b + 1;
  }
  return { name: labels.join('.'), end };
}

/** Reverse-DNS owner name of an IP (RFC 1035 §3.5, RFC 3596 §2.5), without the trailing dot. */
export function reverseName(ip: string): string | undefined {
  if (ip.includes(':')) {
    const nibbles = expandIPv6(ip);
    if (!nibbles) return undefined;
    return `${[...nibbles].reverse().join('.')}.ip6.arpa`;
  }
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  return `${parts.reverse().join('.')}.in-addr.arpa`;
}

/** 32 hex nibbles of an IPv6 address, or undefined. */
export function expandIPv6(ip: string): string | undefined {
  const bytes = ipv6Bytes(ip);
  return bytes ? bytes.toString('hex') : undefined;
}

export function ipv4Bytes(ip: string): Buffer | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const n = Number(parts[i]);
    if (!Number.isInteger(n) || n < 0 || n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

export function ipv6Bytes(ip: string): Buffer | undefined {
  let text = ip;
  let tail: Buffer | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    tail = ipv4Bytes(text.slice(lastColon + 1));
    if (!tail) return undefined;
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === '' ? [] : s.split(':'));
  const head = parse(halves[0] ?? '');
  const rest = halves.length === 2 ? parse(halves[1] ?? '') : [];
  const missing = 8 - head.length - rest.length;
  if ((halves.length === 2 && missing < 1) || (halves.length === 1 && missing !== 0)) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  const out = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i] ?? '';
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  }
  if (tail) tail.copy(out, 12);
  return out;
}
