/**
 * The HPACK Huffman code (RFC 7541 §5.2, Appendix B), which HTTP/2 clients use for most header
 * names and values.
 *
 * The code in Appendix B is canonical: within one code length the codes count up in symbol
 * order, and each length starts where the previous one ended, shifted left. So the code lengths
 * alone define it, and they are all this file stores, one letter per byte value 0..255
 * ('a' = 5 bits ... 'z' = 30 bits). EOS (256) is the 30-bit code of all ones, the last one.
 */
const LENGTHS =
  'isxxxxxxxtzxxzxxxxxxxxzxxxxxxxxxbffhibdgffdgdbbbaaabbbbbbbcdkbhfibccccccccccccccccccccccdcdioijbkabababbbaccbbbabcbaabccccckgjixprpprrrsrssssststtrstssssqrsrsstrqprrssqsrrtqrssqqrqsrssprrrsrrsvvporsruvvvwwvtuoqvwwvwtqqvvxwwwptpqrqqsrruuttvsvwvvwwwwwxwwwwwv';

const EOS = 256;
const MAX_BITS = 30;

/** Per code length: the first code of that length, how many codes have it, where they start in SYMBOLS. */
const FIRST_CODE = new Uint32Array(MAX_BITS + 1);
const COUNT = new Uint16Array(MAX_BITS + 1);
const OFFSET = new Uint16Array(MAX_BITS + 1);
/** The symbols ordered by (code length, symbol): the canonical order. */
const SYMBOLS = new Uint16Array(257);
/** Encoding side: each byte's code and length. */
const CODE = new Uint32Array(256);
const CODE_BITS = new Uint8Array(256);

(function buildTables(): void {
  if (LENGTHS.length !== 256) throw new Error('HPACK Huffman table: 256 code lengths expected');
  const lengthOf = (sym: number) => (sym === EOS ? MAX_BITS : LENGTHS.charCodeAt(sym) - 97 + 5);
  const order = Array.from({ length: 257 }, (_, sym) => sym).sort((a, b) => lengthOf(a) - lengthOf(b) || a - b);
  let code = 0;
  let bits = lengthOf(order[0] as number);
  for (const [i, sym] of order.entries()) {
    const len = lengthOf(sym);
    if (i > 0) code = (code + 1) * 2 ** (len - bits);
    bits = len;
    if (COUNT[len] === 0) {
      FIRST_CODE[len] = code;
      OFFSET[len] = i;
    }
    COUNT[len] = (COUNT[len] as number) + 1;
    SYMBOLS[i] = sym;
    if (sym !== EOS) {
      CODE[sym] = code;
      CODE_BITS[sym] = len;
    }
  }
  // The last code (EOS) must be all ones: then the table is the complete, canonical code.
  if (code !== 2 ** MAX_BITS - 1) throw new Error('HPACK Huffman table: the code lengths do not make a complete code');
})();

/** Why a Huffman-coded string was refused (RFC 7541 §5.2): each one is a COMPRESSION_ERROR. */
export type HuffmanError = 'eos-in-string' | 'padding-too-long' | 'padding-not-ones' | 'bad-code';

/**
 * Decodes `len` bytes of `src` from `start` to a latin1 string (header octets, one char each), or
 * says why it cannot. Bit by bit through the canonical code: header strings are short, and this
 * keeps the table to the code lengths.
 */
export function huffmanDecode(src: Uint8Array, start: number, len: number): string | HuffmanError {
  let out = '';
  let code = 0;
  let bits = 0;
  const end = start + len;
  for (let i = start; i < end; i++) {
    const byte = src[i] as number;
    for (let b = 7; b >= 0; b--) {
      code = code * 2 + ((byte >> b) & 1);
      bits++;
      const n = code - (FIRST_CODE[bits] as number);
      if (n >= 0 && n < (COUNT[bits] as number)) {
        const sym = SYMBOLS[(OFFSET[bits] as number) + n] as number;
        if (sym === EOS) return 'eos-in-string';
        out += String.fromCharCode(sym);
        code = 0;
        bits = 0;
      } else if (bits >= MAX_BITS) {
        return 'bad-code';
      }
    }
  }
  // What is left must be the start of EOS (all ones) and shorter than a byte.
  if (bits > 7) return 'padding-too-long';
  if (code !== 2 ** bits - 1) return 'padding-not-ones';
  return out;
}

/** How many bytes the Huffman coding of `s` (latin1) takes. */
export function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += CODE_BITS[s.charCodeAt(i) & 0xff] as number;
  return Math.ceil(bits / 8);
}

/** Writes the Huffman coding of `s` (latin1) at `at`, padded with ones; returns the end offset. */
export function huffmanEncode(s: string, out: Uint8Array, at: number): number {
  let acc = 0; // pending bits, at most 7 + 30, kept in a double (exact below 2^53)
  let bits = 0;
  let pos = at;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    acc = acc * 2 ** (CODE_BITS[sym] as number) + (CODE[sym] as number);
    bits += CODE_BITS[sym] as number;
    while (bits >= 8) {
      bits -= 8;
      const byte = Math.floor(acc / 2 ** bits);
      out[pos++] = byte;
      acc -= byte * 2 ** bits;
    }
  }
  if (bits > 0) out[pos++] = acc * 2 ** (8 - bits) + (2 ** (8 - bits) - 1);
  return pos;
}
