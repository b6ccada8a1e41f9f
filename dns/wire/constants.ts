/** DNS numbers used by meshlet (RFC 1035, 3596, 2782, 6891, 9460). */

export const QTYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  SVCB: 64,
  HTTPS: 65,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended rcode (RFC 6891 §6.1.3): upper 8 bits travel in the OPT record. */
  BADVERS: 16,
} as const;

export const CLASS_IN = 1;
export const HEADER_SIZE = 12;
/** Size of the OPT record meshlet writes: root name, type, class, ttl, rdlength, no options. */
export const OPT_SIZE = 11;
/** Largest answer to a client that sent no EDNS (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_SIZE = 512;

const TYPE_NAMES: Record<number, string> = {};
for (const [name, value] of Object.entries(QTYPE)) TYPE_NAMES[value] = name;
const RCODE_NAMES: Record<number, string> = {};
for (const [name, value] of Object.entries(RCODE)) RCODE_NAMES[value] = name;

/** A bounded label for metrics and logs: known names, else 'OTHER'. */
export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? 'OTHER';
}

export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? 'OTHER';
}
