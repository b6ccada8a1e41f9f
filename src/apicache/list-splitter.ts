/**
 * Splits a JSON List body (`{"kind":"ServiceList",...,"items":[{...},{...}]}`) into its items as
 * the bytes stream past, without building the whole list: each item's bytes are handed out as
 * soon as its closing brace arrives, and everything outside the items array (kind, apiVersion,
 * metadata with resourceVersion and continue) is kept as a small "shell" that parses to the list
 * with `items: []`. A byte scanner tracks depth, strings and escapes; it never decodes UTF-8
 * inside strings, which is safe because JSON's structural characters are ASCII.
 */
export class ListSplitter {
  readonly #onItem: (item: Buffer) => void;
  #depth = 0;
  #inString = false;
  #escape = false;
  /** Bytes of the string being read at depth 1 (to spot the key "items"). */
  #str: number[] | undefined;
  #lastString = '';
  #inItems = false;
  #itemParts: Buffer[] | undefined;
  #shell: Buffer[] = [];
  #shellBytes = 0;
  #failed = false;
  #done = false;

  constructor(onItem: (item: Buffer) => void) {
    this.#onItem = onItem;
  }

  /** False once the body turned out not to be a JSON object we can split (the tee then gives up). */
  get ok(): boolean {
    return !this.#failed;
  }

  write(chunk: Buffer): void {
    if (this.#failed) return;
    let shellStart = this.#inItems ? -1 : 0;
    let itemStart = this.#itemParts ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i] as number;
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (c === 0x5c) this.#escape = true;
        else if (c === 0x22) {
          this.#inString = false;
          if (this.#str) {
            this.#lastString = Buffer.from(this.#str).toString('utf8');
            this.#str = undefined;
          }
        } else if (this.#str && this.#str.length < 16) this.#str.push(c);
        continue;
      }
      switch (c) {
        case 0x22: // "
          this.#inString = true;
          if (this.#depth === 1) this.#str = [];
          break;
        case 0x7b: // {
        case 0x5b: // [
          if (this.#depth === 0 && c !== 0x7b) {
            this.#fail();
            return;
          }
          if (this.#depth === 1 && c === 0x5b && this.#lastString === 'items' && !this.#inItems) {
            this.#inItems = true;
            this.#depth++;
            // The shell keeps the '[' and skips everything up to the matching ']'.
            this.#pushShell(chunk.subarray(shellStart, i + 1));
            shellStart = -1;
            break;
          }
          if (this.#inItems && this.#depth === 2) {
            if (c !== 0x7b) {
              this.#fail();
              return;
            }
            this.#itemParts = [];
            itemStart = i;
          }
          this.#depth++;
          break;
        case 0x7d: // }
        case 0x5d: // ]
          this.#depth--;
          if (this.#depth < 0) {
            this.#fail();
            return;
          }
          if (this.#inItems && this.#depth === 2 && c === 0x7d && this.#itemParts) {
            this.#itemParts.push(chunk.subarray(itemStart, i + 1));
            const parts = this.#itemParts;
            this.#itemParts = undefined;
            itemStart = -1;
            this.#onItem(parts.length === 1 ? Buffer.from(parts[0] as Buffer) : Buffer.concat(parts));
          } else if (this.#inItems && this.#depth === 1) {
            this.#inItems = false;
            shellStart = i; // the ']'
          }
          if (this.#depth === 0) this.#done = true;
          break;
        default:
          break;
      }
    }
    if (shellStart >= 0) this.#pushShell(chunk.subarray(shellStart));
    if (this.#itemParts && itemStart >= 0) this.#itemParts.push(Buffer.from(chunk.subarray(itemStart)));
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
