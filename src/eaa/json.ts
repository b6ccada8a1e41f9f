/**
 * A JSON reader and writer that behave like Go's encoding/json as the OpenNESS EAA uses it
 * (docs/eaa.md §JSON): the first value of a body is decoded and the rest ignored
 * (json.Decoder.Decode); raw fields (`payload`, `info`, json.RawMessage) keep their exact text
 * and come back compacted with <, >, & escaped; object keys match struct fields exactly first,
 * then case-insensitively.
 *
 * Values keep their source span so a raw field can be re-emitted byte for byte, numbers included
 * (JSON.parse would turn 1.0 into 1 and lose big integers).
 */

export type JsonNode =
  | { kind: 'null'; start: number; end: number }
  | { kind: 'bool'; value: boolean; start: number; end: number }
  | { kind: 'number'; start: number; end: number }
  | { kind: 'string'; value: string; start: number; end: number }
  | { kind: 'array'; items: JsonNode[]; start: number; end: number }
  | { kind: 'object'; entries: [string, JsonNode][]; start: number; end: number };

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
}

/** Deeper nesting is refused (Go's decoder stops at 10000; a bounded stack is what matters). */
export const MAX_DEPTH = 512;

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Decodes the first JSON value of `src`; whatever follows it is ignored, as json.Decoder does. */
export function decodeFirst(src: string): JsonNode {
  let pos = 0;
  // A loop, not a sticky regex: exec() allocated a match array at every token.
  const skip = () => {
    for (;;) {
      const c = src.charCodeAt(pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      pos++;
    }
  };
  const fail = (what: string): never => {
    throw new JsonSyntaxError(pos >= src.length ? 'unexpected end of JSON input' : `${what} at offset ${pos}`);
  };
  const str = (): string => {
    pos++; // opening quote
    let out = '';
    let run = pos;
    for (;;) {
      if (pos >= src.length) fail('unterminated string');
      const c = src.charCodeAt(pos);
      if (c === 0x22) {
        out += src.slice(run, pos);
        pos++;
        return out.toWellFormed();
      }
      if (c < 0x20) fail('invalid control character in string');
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += src.slice(run, pos);
      const e = src[pos + 1];
      if (e === 'u') {
        const hex = src.slice(pos + 2, pos + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('invalid \\u escape in string');
        out += String.fromCharCode(Number.parseInt(hex, 16));
        pos += 6;
      } else {
        const v = e === undefined ? undefined : ESCAPES[e];
        if (v === undefined) fail('invalid escape in string');
        out += v;
        pos += 2;
      }
      run = pos;
    }
  };
  const value = (depth: number): JsonNode => {
    if (depth > MAX_DEPTH) fail('nesting too deep');
    skip();
    const start = pos;
    const c = src[pos];
    if (c === '{') {
      pos++;
      const entries: [string, JsonNode][] = [];
      skip();
      if (src[pos] === '}') {
        pos++;
        return { kind: 'object', entries, start, end: pos };
      }
      for (;;) {
        skip();
        if (src[pos] !== '"') fail('expected object key');
        const key = str();
        skip();
        if (src[pos] !== ':') fail("expected ':' after object key");
        pos++;
        entries.push([key, value(depth + 1)]);
        skip();
        if (src[pos] === ',') {
          pos++;
          continue;
        }
        if (src[pos] === '}') {
          pos++;
          return { kind: 'object', entries, start, end: pos };
        }
        fail("expected ',' or '}' in object");
      }
    }
    if (c === '[') {
      pos++;
      const items: JsonNode[] = [];
      skip();
      if (src[pos] === ']') {
        pos++;
        return { kind: 'array', items, start, end: pos };
      }
      for (;;) {
        items.push(value(depth + 1));
        skip();
        if (src[pos] === ',') {
          pos++;
          continue;
        }
        if (src[pos] === ']') {
          pos++;
          return { kind: 'array', items, start, end: pos };
        }
        fail("expected ',' or ']' in array");
      }
    }
    if (c === '"') {
      const s = str();
      return { kind: 'string', value: s, start, end: pos };
    }
    for (const [lit, node] of LITERALS) {
      if (src.startsWith(lit, pos)) {
        pos += lit.length;
        return { ...node, start, end: pos } as JsonNode;
      }
    }
    NUMBER.lastIndex = pos;
    if (NUMBER.test(src) && NUMBER.lastIndex > pos) {
      pos = NUMBER.lastIndex;
      return { kind: 'number', start, end: pos };
    }
    return fail('invalid character');
  };
  return value(0);
}

const LITERALS: [string, { kind: 'null' } | { kind: 'bool'; value: boolean }][] = [
  ['null', { kind: 'null' }],
  ['true', { kind: 'bool', value: true }],
  ['false', { kind: 'bool', value: false }],
];

/**
 * The raw text of a value as Go's json.Marshal re-emits a json.RawMessage: insignificant
 * whitespace removed, and <, >, &, U+2028, U+2029 inside strings written as \u escapes.
 */
export function compactRaw(src: string, node: JsonNode): string {
  let out = '';
  let inString = false;
  let run = node.start;
  for (let i = node.start; i < node.end; i++) {
    const c = src[i] as string;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      else if (HTML_ESCAPE[c] !== undefined) {
        out += src.slice(run, i) + HTML_ESCAPE[c];
        run = i + 1;
      }
    } else if (c === '"') inString = true;
    else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      out += src.slice(run, i);
      run = i + 1;
    }
  }
  return out + src.slice(run, node.end);
}

const HTML_ESCAPE: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/** A string as Go (1.16, the OpenNESS toolchain) marshals it: HTML-safe, \b and \f as \u escapes. */
export function goString(s: string): string {
  return JSON.stringify(s).replace(/\\(.)|[<>&\u2028\u2029]/g, (m, esc: string | undefined) => {
    if (esc === undefined) return HTML_ESCAPE[m] ?? m;
    if (esc === 'b') return '\\u0008';
    if (esc === 'f') return '\\u000c';
    return m;
  });
}

/** A type error while mapping JSON onto a Go struct: Go's decoder fails the whole body. */
export class JsonTypeError extends Error {
  override readonly name = 'JsonTypeError';
}

/**
 * The struct-field view of an object node: for each field name, the node Go would decode into it
 * (exact key match first, then case-insensitive; the last matching key wins, as Go assigns in order).
 */
export function structFields(node: JsonNode, fields: readonly string[], what: string): Map<string, JsonNode> {
  if (node.kind !== 'object') throw new JsonTypeError(`cannot decode ${node.kind} into ${what}`);
  const out = new Map<string, JsonNode>();
  for (const [key, value] of node.entries) {
    const field = fields.includes(key) ? key : fields.find((f) => f.toLowerCase() === key.toLowerCase());
    if (field !== undefined) out.set(field, value);
  }
  return out;
}

/** A Go string field: a JSON string, or null for "" (Go leaves the zero value). */
export function stringField(node: JsonNode | undefined, what: string): string {
  if (node === undefined || node.kind === 'null') return '';
  if (node.kind !== 'string') throw new JsonTypeError(`cannot decode ${node.kind} into string field ${what}`);
  return node.value;
}
