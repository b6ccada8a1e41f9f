/**
 * Reads what the cache indexes (metadata.name, namespace, resourceVersion, labels, and whether a
 * top-level "kind" is present) from one object's JSON bytes without parsing the object: a
 * targeted scan that decodes only those few strings and skips every other value. JSON.parse of
 * each LIST item built a whole object tree only to read four fields and then dropped it: CPU on
 * the pass-through path and young-generation garbage that grows the heap.
 *
 * The scan checks structure (one object, keys and colons and commas at the levels it reads,
 * balanced and matching brackets and terminated strings inside skipped values), not every
 * scalar's grammar. It is conservative: anything it does not handle (a key of interest with
 * escapes, very deep nesting) gives `undefined`, and the caller falls back to JSON.parse, so an
 * unusual object costs a parse, never a wrong entry.
 */

export interface ScannedMeta {
  name: string;
  namespace: string;
  resourceVersion: string;
  /** Where the metadata.labels object is in the buffer (`[start, end)`), or undefined without one. */
  labels: [number, number] | undefined;
  /** A top-level "kind" key is present (its value is not checked). */
  hasKind: boolean;
  /** Index of the object's opening brace and one past its closing brace in the buffer. */
  start: number;
  end: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MAX_DEPTH = 256;
/** Reused stack of open brackets for skipValue (the scan is synchronous, so one suffices). */
const stack = new Uint8Array(MAX_DEPTH);

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipWs(b: Buffer, i: number, end: number): number {
  while (i < end && isWs(b[i] as number)) i++;
  return i;
}

/**
 * Index of the quote closing the string whose opening quote is at `open`, or -1. Short strings
 * (most of an object's) are walked in JavaScript; a long one is jumped with Buffer.indexOf
 * (memchr), whose call costs more than walking a few dozen bytes.
 */
export function stringEnd(b: Buffer, open: number, end: number): number {
  let j = open + 1;
  const walk = Math.min(end, j + 64);
  for (; j < walk; j++) {
    const c = b[j] as number;
    if (c === QUOTE) return j;
    if (c === BACKSLASH) j++;
  }
  if (j >= end) return -1;
  for (;;) {
    const q = b.indexOf(QUOTE, j);
    if (q < 0 || q >= end) return -1;
    let n = 0;
    for (let k = q - 1; k >= j && b[k] === BACKSLASH; k--) n++;
    // j is never inside an escape here: the walk above stepped over any pair it began.
    if ((n & 1) === 0) return q;
    j = q + 1;
  }
}

/** Whether the string between quotes at open/close has an escape. */
function hasEscape(b: Buffer, open: number, close: number): boolean {
  for (let k = open + 1; k < close; k++) if (b[k] === BACKSLASH) return true;
  return false;
}

/** The string value whose quotes are at `open` and `close`. */
function decodeString(b: Buffer, open: number, close: number): string | undefined {
  if (!hasEscape(b, open, close)) return b.toString('utf8', open + 1, close);
  try {
    return JSON.parse(b.toString('utf8', open, close + 1)) as string;
  } catch {
    return undefined; // a bad escape: not valid JSON
  }
}

/** Whether the key between quotes at open/close is exactly `name` (ASCII). */
function keyIs(b: Buffer, open: number, close: number, name: string): boolean {
  if (close - open - 1 !== name.length) return false;
  for (let k = 0; k < name.length; k++) if (b[open + 1 + k] !== name.charCodeAt(k)) return false;
  return true;
}

/** Index just past the JSON value starting at i (not checked: scalar grammar), or -1. */
function skipValue(b: Buffer, i: number, end: number): number {
  const c = b[i];
  if (c === undefined || i >= end) return -1;
  if (c === QUOTE) {
    const q = stringEnd(b, i, end);
    return q < 0 ? -1 : q + 1;
  }
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let j = i; j < end; j++) {
      const d = b[j] as number;
      if (d === QUOTE) {
        const q = stringEnd(b, j, end);
        if (q < 0) return -1;
        j = q;
      } else if (d === 0x7b || d === 0x5b) {
        if (depth === MAX_DEPTH) return -1;
        stack[depth++] = d;
      } else if (d === 0x7d || d === 0x5d) {
        if (depth === 0 || stack[depth - 1] !== d - 2) return -1; // '{'+2 = '}', '['+2 = ']'
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  let j = i;
  while (j < end) {
    const d = b[j] as number;
    if (d === 0x2c || d === 0x7d || d === 0x5d || isWs(d)) break;
    if (d === QUOTE || d === 0x7b || d === 0x5b || d === 0x3a) return -1;
    j++;
  }
  return j === i ? -1 : j;
}

/**
 * Calls `onMember(keyOpen, keyClose, valueStart)` for each member of the object whose '{' is at
 * `open`; onMember returns the index just past the value (or -1 to fail). Returns the index just
 * past the closing brace, or -1.
 */
function members(b: Buffer, open: number, end: number, onMember: (ko: number, kc: number, v: number) => number): number {
  let i = skipWs(b, open + 1, end);
  if (b[i] === 0x7d) return i + 1;
  for (;;) {
    if (i >= end || b[i] !== QUOTE) return -1;
    const kc = stringEnd(b, i, end);
    if (kc < 0) return -1;
    let j = skipWs(b, kc + 1, end);
    if (b[j] !== 0x3a) return -1;
    j = skipWs(b, j + 1, end);
    if (j >= end) return -1;
    const after = onMember(i, kc, j);
    if (after < 0) return -1;
    i = skipWs(b, after, end);
    const c = b[i];
    if (c === 0x7d && i < end) return i + 1;
    if (c !== 0x2c || i >= end) return -1;
    i = skipWs(b, i + 1, end);
  }
}

/**
 * The indexed metadata of the single JSON object in `b[from, to)` (whitespace around it allowed),
 * or undefined when it is not such an object with a string metadata.name, or when the scan is
 * unsure (the caller then parses).
 */
export function scanObjectMeta(b: Buffer, from = 0, to = b.length): ScannedMeta | undefined {
  const start = skipWs(b, from, to);
  if (b[start] !== 0x7b || start >= to) return undefined;
  let name: string | undefined;
  let namespace: string | undefined;
  let resourceVersion: string | undefined;
  let labels: [number, number] | undefined;
  let hasKind = false;
  let unsure = false;
  const stringField = (v: number): [string | undefined, number] => {
    if (b[v] !== QUOTE) {
      unsure = true; // e.g. "name": null — let JSON.parse decide what that means
      return [undefined, -1];
    }
    const q = stringEnd(b, v, to);
    const value = q < 0 ? undefined : decodeString(b, v, q);
    if (value === undefined) unsure = true;
    return value === undefined ? [undefined, -1] : [value, q + 1];
  };
  const end = members(b, start, to, (ko, kc, v) => {
    if (keyIs(b, ko, kc, 'kind')) hasKind = true;
    if (!keyIs(b, ko, kc, 'metadata')) {
      // A key of interest written with escapes would not be recognised: let JSON.parse read it.
      if (hasEscape(b, ko, kc)) unsure = true;
      return skipValue(b, v, to);
    }
    if (b[v] !== 0x7b) {
      unsure = true;
      return -1;
    }
    // A later duplicate "metadata" replaces the earlier one (as JSON.parse does).
    name = namespace = resourceVersion = undefined;
    labels = undefined;
    return members(b, v, to, (mo, mc, mv) => {
      const field = keyIs(b, mo, mc, 'name')
        ? 1
        : keyIs(b, mo, mc, 'namespace')
          ? 2
          : keyIs(b, mo, mc, 'resourceVersion')
            ? 3
            : 0;
      if (field > 0) {
        const [value, after] = stringField(mv);
        if (field === 1) name = value;
        else if (field === 2) namespace = value;
        else resourceVersion = value;
        return after;
      }
      if (keyIs(b, mo, mc, 'labels')) {
        const after = skipValue(b, mv, to);
        if (after < 0 || b[mv] !== 0x7b) {
          unsure = true;
          return -1;
        }
        labels = [mv, after];
        return after;
      }
      if (hasEscape(b, mo, mc)) unsure = true;
      return skipValue(b, mv, to);
    });
  });
  if (unsure || end < 0 || skipWs(b, end, to) !== to || name === undefined || name === '') return undefined;
  return { name, namespace: namespace ?? '', resourceVersion: resourceVersion ?? '', labels, hasKind, start, end };
}

/**
 * The value of a field selector's dotted path (e.g. `spec.nodeName`) in the single JSON object
 * in `b[from, to)`, as selectors.ts fieldValue reads it from the parsed object ('' when missing,
 * null, or below a scalar), without parsing the object. Undefined when the scan is unsure
 * (malformed JSON, an escaped key, an array on the path, a number, object or array as the value,
 * a non-ASCII path): the caller then parses. Like JSON.parse, a later duplicate key wins.
 */
export function scanField(b: Buffer, path: readonly string[], from = 0, to = b.length): string | undefined {
  if (path.length === 0) return undefined;
  for (const part of path) for (let k = 0; k < part.length; k++) if (part.charCodeAt(k) > 0x7e) return undefined;
  const start = skipWs(b, from, to);
  if (b[start] !== 0x7b || start >= to) return undefined;
  let unsure = false;
  let open = start;
  for (let depth = 0; depth < path.length; depth++) {
    const part = path[depth] as string;
    let found = -1;
    let foundEnd = -1;
    const end = members(b, open, to, (ko, kc, v) => {
      if (hasEscape(b, ko, kc)) {
        unsure = true;
        return -1;
      }
      const after = skipValue(b, v, to);
      if (keyIs(b, ko, kc, part)) {
        found = v;
        foundEnd = after;
      }
      return after;
    });
    // The whole object must be well formed (as JSON.parse would require), not only the path.
    if (depth === 0 && (end < 0 || skipWs(b, end, to) !== to)) return undefined;
    if (unsure || end < 0) return undefined;
    if (found < 0) return '';
    const c = b[found];
    if (depth < path.length - 1) {
      if (c === 0x7b) {
        open = found;
        continue;
      }
      if (c === 0x5b) return undefined; // an array: indexing by a path part is JSON.parse's business
      return ''; // a scalar (or null) in the middle of the path
    }
    if (c === QUOTE) return decodeString(b, found, foundEnd - 1);
    const literal = b.toString('latin1', found, foundEnd);
    if (literal === 'null') return '';
    if (literal === 'true' || literal === 'false') return literal;
    return undefined; // numbers (String() normalises them), objects, arrays
  }
  return undefined;
}
