import { huffmanDecode, huffmanEncode, huffmanLength } from './huffman.ts';

/**
 * HPACK (RFC 7541), the header compression of HTTP/2: a decoder for the header blocks a peer
 * sends, with its dynamic table, and an encoder for the blocks meshlet sends.
 *
 * Why meshlet has its own: node:http2 hands every header value to JavaScript as an external
 * string and keeps each stream's objects reachable through a weak handle until a full
 * collection, so a busy HTTP/2 server's mark-compacts grow with its request rate
 * (docs/eaa.md §6.3). The EAA's HTTP/2 connection (src/eaa/h2.ts) reads frames itself with this.
 *
 * Header names and values are octets; they are handled as latin1 strings (one char per byte),
 * as the HTTP/1.1 paths do.
 */

export type HeaderField = readonly [name: string, value: string];

/** A header block that cannot be decoded: an HTTP/2 connection error of type COMPRESSION_ERROR. */
export class HpackError extends Error {
  override readonly name = 'HpackError';
}

/** RFC 7541 Appendix A: the static table, index 1..61 (index 0 is unused). */
const STATIC: readonly HeaderField[] = [
  ['', ''],
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC.length - 1;

/** RFC 7541 §4.1: an entry's size is its name and value octets plus 32. */
const ENTRY_OVERHEAD = 32;

/** The largest integer accepted in a block: no index, length or size meshlet allows comes near it. */
const MAX_INT = 2 ** 31 - 1;

export interface DecodedBlock {
  headers: HeaderField[];
  /**
   * The block decoded past maxListSize (RFC 9113 §6.5.2 SETTINGS_MAX_HEADER_LIST_SIZE, counted as
   * in §4.1: octets + 32 per field): `headers` stops short, the dynamic table is still in step,
   * and the stream gets a 431 or a reset instead of the connection an error (RFC 9113 §10.5.1).
   */
  tooLarge: boolean;
}

export class HpackDecoder {
  /** The most the peer may let the table grow to: our SETTINGS_HEADER_TABLE_SIZE. */
  readonly #settingsMax: number;
  /** The table's size limit now (the peer lowers it, up to #settingsMax, with a size update). */
  #max: number;
  #size = 0;
  /** Dynamic table, oldest first: dynamic index 1 (absolute 62) is the last entry. */
  #entries: HeaderField[] = [];

  constructor(tableSize = 4096) {
    this.#settingsMax = tableSize;
    this.#max = tableSize;
  }

  /** The dynamic table's current size in RFC 7541 octets (for tests and debugging). */
  get tableSize(): number {
    return this.#size;
  }

  /**
   * Decodes one complete header block (HEADERS plus any CONTINUATION fragments, joined).
   * Throws HpackError when the block is not valid HPACK; the connection must then end, as the
   * dynamic table can no longer be trusted.
   */
  decode(bytes: Uint8Array, maxListSize = Number.POSITIVE_INFINITY): DecodedBlock {
    const block = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headers: HeaderField[] = [];
    let listSize = 0;
    let tooLarge = false;
    let fieldSeen = false;
    let p = 0;
    const int = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let value = (block[p++] as number) & mask;
      if (value < mask) return value;
      for (let shift = 0; ; shift += 7) {
        if (p >= block.length) throw new HpackError('integer runs past the end of the block');
        const b = block[p++] as number;
        value += (b & 0x7f) * 2 ** shift;
        if (value > MAX_INT) throw new HpackError('integer too large');
        if ((b & 0x80) === 0) return value;
      }
    };
    const str = (): string => {
      if (p >= block.length) throw new HpackError('string literal missing');
      const huffman = ((block[p] as number) & 0x80) !== 0;
      const len = int(7);
      if (len > block.length - p) throw new HpackError('string literal runs past the end of the block');
      const start = p;
      p += len;
      if (!huffman) return block.toString('latin1', start, p);
      const s = huffmanDecode(block, start, len);
      if (s === 'eos-in-string' || s === 'padding-too-long' || s === 'padding-not-ones' || s === 'bad-code') {
        throw new HpackError(`Huffman string: ${s}`);
      }
      return s;
    };
    const emit = (field: HeaderField) => {
      fieldSeen = true;
      if (tooLarge) return;
      listSize += field[0].length + field[1].length + ENTRY_OVERHEAD;
      if (listSize > maxListSize) tooLarge = true;
      else headers.push(field);
    };

    while (p < block.length) {
      const b = block[p] as number;
      if (b & 0x80) {
        // §6.1 indexed header field.
        emit(this.#field(int(7)));
      } else if (b & 0x40) {
        // §6.2.1 literal with incremental indexing.
        const index = int(6);
        const name = index === 0 ? str() : (this.#field(index)[0] as string);
        const field: HeaderField = [name, str()];
        this.#add(field);
        emit(field);
      } else if (b & 0x20) {
        // §6.3 dynamic table size update: only before the block's first field (§4.2).
        if (fieldSeen) throw new HpackError('dynamic table size update after a header field');
        const size = int(5);
        if (size > this.#settingsMax) throw new HpackError(`table size ${size} above the ${this.#settingsMax} allowed`);
        this.#max = size;
        this.#evict(0);
      } else {
        // §6.2.2 without indexing (0000xxxx), §6.2.3 never indexed (0001xxxx).
        const index = int(4);
        const name = index === 0 ? str() : (this.#field(index)[0] as string);
        emit([name, str()]);
      }
    }
    return { headers, tooLarge };
  }

  #field(index: number): HeaderField {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_COUNT) return STATIC[index] as HeaderField;
    const entry = this.#entries[this.#entries.length - (index - STATIC_COUNT)];
    if (entry === undefined) throw new HpackError(`index ${index} beyond the table`);
    return entry;
  }

  #add(field: HeaderField): void {
    const size = field[0].length + field[1].length + ENTRY_OVERHEAD;
    // §4.4: an entry larger than the table empties it and is not added.
    this.#evict(size);
    if (size <= this.#max) {
      this.#entries.push(field);
      this.#size += size;
    }
  }

  /** Drops the oldest entries until `room` more octets fit. */
  #evict(room: number): void {
    let drop = 0;
    while (this.#size + room > this.#max && drop < this.#entries.length) {
      const [name, value] = this.#entries[drop++] as HeaderField;
      this.#size -= name.length + value.length + ENTRY_OVERHEAD;
    }
    if (drop > 0) this.#entries.splice(0, drop);
  }
}

/** Static-table index of each name (its first entry), for the encoder. */
const STATIC_NAME = new Map<string, number>();
/** Static-table index of each full field, by name then value, for the encoder. */
const STATIC_FIELD = new Map<string, Map<string, number>>();
for (let i = STATIC_COUNT; i >= 1; i--) {
  const [name, value] = STATIC[i] as HeaderField;
  STATIC_NAME.set(name, i);
  const byValue = STATIC_FIELD.get(name) ?? new Map<string, number>();
  byValue.set(value, i);
  STATIC_FIELD.set(name, byValue);
}

/**
 * Encodes a header list with no dynamic table (so the peer's table never needs a size update):
 * fields of the static table by index, other names from it by index, values literal without
 * indexing, Huffman-coded when that is shorter. Names must already be lower case.
 */
export function encodeHeaders(fields: readonly HeaderField[]): Buffer {
  // Upper bound: per field 1 + 5 + 5 bytes of prefixes and lengths, and the octets themselves.
  let bound = 0;
  for (const [name, value] of fields) bound += 11 + name.length + value.length;
  const out = Buffer.allocUnsafe(bound);
  let p = 0;
  const int = (value: number, prefixBits: number, flags: number) => {
    const mask = (1 << prefixBits) - 1;
    if (value < mask) {
      out[p++] = flags | value;
      return;
    }
    out[p++] = flags | mask;
    let rest = value - mask;
    while (rest >= 0x80) {
      out[p++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    out[p++] = rest;
  };
  const str = (s: string) => {
    const h = huffmanLength(s);
    if (h < s.length) {
      int(h, 7, 0x80);
      p = huffmanEncode(s, out, p);
    } else {
      int(s.length, 7, 0);
      p += out.write(s, p, 'latin1');
    }
  };
  for (const field of fields) {
    const [name, value] = field;
    const full = STATIC_FIELD.get(name)?.get(value);
    if (full !== undefined) {
      int(full, 7, 0x80);
      continue;
    }
    const nameIndex = STATIC_NAME.get(name);
    if (nameIndex !== undefined) int(nameIndex, 4, 0x00);
    else {
      out[p++] = 0x00;
      str(name);
    }
    str(value);
  }
  return out.subarray(0, p);
}
