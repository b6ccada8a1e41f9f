/**
 * Splits a JSON List body (`{"kind":"ServiceList",...,"items":[{...},{...}]}`) into its items as
 * the bytes stream past, without building the whole list: each item's bytes are handed out as
 * soon as its closing brace arrives, and everything outside the items array (kind, apiVersion,
 * metadata with resourceVersion and continue) is kept as a small "shell" that parses to the list
 * with `items: []`. A byte scanner tracks depth, strings and escapes; it never decodes UTF-8
 * inside strings, which is safe because JSON's structural characters are ASCII. String contents
 * are skipped with `Buffer.indexOf` (native memchr), so the JavaScript loop only visits the bytes
 * between strings: about a fifth of a Kubernetes object's JSON.
 *
 * An item handed to `onItem` may be a view of the chunk passed to `write` (no copy): the caller
 * copies what it keeps.
 */
export class ListSplitter {
  readonly #onItem: (item: Buffer, predicted: boolean) => void;
  readonly #predict: (() => Buffer | undefined) | undefined;
  #depth = 0;
  #inString = false;
  #escape = false;
  /** Start (latin1) of the string being read at depth 1 (to spot the key "items"), when it spans chunks. */
  #str: string | undefined;
  #lastString = '';
  #inItems = false;
  #itemParts: Buffer[] | undefined;
  #shell: Buffer[] = [];
  #shellBytes = 0;
  #failed = false;
  #done = false;

  /**
   * `predict`, asked at the start of each item, may return the bytes the item is expected to have
   * after its opening brace (the same object in the previous LIST of this scope). When the chunk
   * holds exactly those bytes they are skipped with one memcmp instead of being scanned, and
   * `onItem` is told `predicted = true`: a repeated LIST of unchanged objects costs a compare.
   */
  constructor(onItem: (item: Buffer, predicted: boolean) => void, predict?: () => Buffer | undefined) {
    this.#onItem = onItem;
    this.#predict = predict;
  }

  /** False once the body turned out not to be a JSON object we can split (the tee then gives up). */
  get ok(): boolean {
    return !this.#failed;
  }

  /**
   * Whether an item began in an earlier chunk and has not ended yet: the splitter then still
   * holds views of those chunks (they must stay intact until the item ends).
   */
  get midItem(): boolean {
    return this.#itemParts !== undefined;
  }

  /** The shell read so far (before the items: kind, apiVersion, metadata), as text. */
  head(): string {
    return Buffer.concat(this.#shell).toString('utf8');
  }

  /**
   * Index of the quote closing a string whose content starts at `from`, or -1 when the chunk ends
   * inside the string (then #escape says whether its last byte was an unpaired backslash).
   */
  #stringEnd(chunk: Buffer, from: number): number {
    let j = from;
    if (this.#escape) {
      this.#escape = false;
      j++;
    }
    // Most strings of an object are short: walking them in JavaScript is cheaper than a call to
    // Buffer.indexOf (memchr), which is kept for the long ones.
    const n = chunk.length;
    const walk = Math.min(n, j + 64);
    for (; j < walk; j++) {
      const c = chunk[j];
      if (c === 0x22) return j;
      if (c === 0x5c) {
        if (j + 1 >= n) {
          this.#escape = true;
          return -1;
        }
        j++;
      }
    }
    if (j >= n) return -1;
    for (;;) {
      const q = chunk.indexOf(0x22, j);
      let b = 0;
      if (q < 0) {
        for (let k = chunk.length - 1; k >= j && chunk[k] === 0x5c; k--) b++;
        this.#escape = (b & 1) === 1;
        return -1;
      }
      for (let k = q - 1; k >= j && chunk[k] === 0x5c; k--) b++;
      if ((b & 1) === 0) return q;
      j = q + 1;
    }
  }

  write(chunk: Buffer): void {
    if (this.#failed) return;
    const n = chunk.length;
    let shellStart = this.#inItems ? -1 : 0;
    let itemStart = this.#itemParts ? 0 : -1;
    let depth = this.#depth;
    let i = 0;
    if (this.#inString) {
      const q = this.#stringEnd(chunk, 0);
      if (q < 0) {
        if (this.#str !== undefined && this.#str.length < 16) this.#str += chunk.toString('latin1', 0, Math.min(n, 16));
        i = n;
      } else {
        this.#inString = false;
        if (this.#str !== undefined) {
          this.#lastString = this.#str + chunk.toString('latin1', 0, Math.min(q, 16));
          this.#str = undefined;
        }
        i = q + 1;
      }
    }
    for (; i < n; i++) {
      const c = chunk[i] as number;
      if (c === 0x22) {
        if (this.#inItems && depth === 2) {
          this.#fail(); // an item that is not an object
          return;
        }
        const q = this.#stringEnd(chunk, i + 1);
        if (q < 0) {
          this.#inString = true;
          if (depth === 1) this.#str = chunk.toString('latin1', i + 1, Math.min(n, i + 17));
          i = n;
          break;
        }
        if (depth === 1) this.#lastString = q - i - 1 <= 16 ? chunk.toString('latin1', i + 1, q) : '';
        i = q;
        continue;
      }
      if (c === 0x7b || c === 0x5b) {
        if (depth === 0 && c !== 0x7b) {
          this.#fail();
          return;
        }
        if (depth === 1 && c === 0x5b && this.#lastString === 'items' && !this.#inItems) {
          this.#inItems = true;
          depth++;
          // The shell keeps the '[' and skips everything up to the matching ']'.
          this.#pushShell(chunk.subarray(shellStart, i + 1));
          if (this.#failed) return;
          shellStart = -1;
          continue;
        }
        if (this.#inItems && depth === 2) {
          if (c !== 0x7b) {
            this.#fail();
            return;
          }
          const want = this.#predict?.();
          if (want !== undefined && i + want.length < n && chunk[i + want.length] === 0x7d) {
            const end = i + 1 + want.length;
            if (want.equals(chunk.subarray(i + 1, end))) {
              this.#depth = depth;
              this.#onItem(chunk.subarray(i, end), true);
              i = end - 1;
              continue;
            }
          }
          this.#itemParts = [];
          itemStart = i;
        }
        depth++;
      } else if (this.#inItems && depth === 2 && c !== 0x2c && c !== 0x5d && c > 0x20) {
        this.#fail(); // a scalar item: this is not a list of objects
        return;
      } else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth < 0) {
          this.#fail();
          return;
        }
        if (this.#inItems && depth === 2 && c === 0x7d && this.#itemParts) {
          const parts = this.#itemParts;
          parts.push(chunk.subarray(itemStart, i + 1));
          this.#itemParts = undefined;
          itemStart = -1;
          this.#depth = depth;
          this.#onItem(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts), false);
        } else if (this.#inItems && depth === 1) {
          this.#inItems = false;
          shellStart = i; // the ']'
        }
        if (depth === 0) this.#done = true;
      }
    }
    this.#depth = depth;
    if (shellStart >= 0) this.#pushShell(chunk.subarray(shellStart));
    if (this.#itemParts && itemStart >= 0) this.#itemParts.push(chunk.subarray(itemStart));
  }

  /** The list without its items, parsed; undefined if the body was not a complete JSON object. */
  end(): Record<string, unknown> | undefined {
    if (this.#failed || !this.#done) return undefined;
    try {
      const shell = JSON.parse(Buffer.concat(this.#shell).toString('utf8')) as unknown;
      return shell !== null && typeof shell === 'object' ? (shell as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }

  #pushShell(b: Buffer): void {
    if (b.length === 0) return;
    this.#shellBytes += b.length;
    // A shell is a few hundred bytes; a huge one means this is not a List.
    if (this.#shellBytes > 1 << 20) {
      this.#fail();
      return;
    }
    this.#shell.push(Buffer.from(b));
  }

  #fail(): void {
    this.#failed = true;
    this.#itemParts = undefined;
    this.#shell = [];
  }
}
