/**
 * Where cached objects' bytes live: packed one after the other into 64 KiB "slabs" instead of one
 * Buffer each. A Buffer per object costs a JS object (~100 bytes) and, below 4 KiB, a slice of
 * Node's shared 8 KiB pool: 2 KiB pods fill a pool only to ~75% and pin it while one of them
 * lives. A slab is one allocation whose bytes are handed out in order (a bump pointer); it is
 * freed (by the GC) when no object points into it any more.
 *
 * Why 64 KiB: under glibc's default mmap threshold (128 KiB) a slab comes from the malloc heap,
 * where it fills the holes that the LIST's network buffers (freed only when the GC gets to them)
 * leave behind. Measured after one LIST of 10,000 pods (docs/apicache.md §9): RSS growth 39–42 MiB
 * with 16 or 64 KiB slabs, ~42 with 256 KiB, ~49 with 32 MiB slabs (their own mmap: the holes
 * stay and the slab comes on top).
 *
 * Bytes of replaced or deleted objects stay in their slab until it is freed, so the cache tracks,
 * per slab, how many of its bytes belong to objects it still stores (`live`, see SlabUsage), and
 * moves the objects out of mostly-dead slabs when the dead bytes grow (compaction, store.ts).
 */

/** Objects over a quarter of this get an allocation of their own. */
const SLAB_BYTES = 64 << 10;

export class Slab {
  readonly buf: Buffer;
  /** Bytes handed out (the bump pointer). */
  used = 0;
  /** Bytes of objects the cache stores (maintained by SlabUsage). */
  live = 0;

  constructor(size: number) {
    // allocUnsafeSlow: an allocation of exactly this size, never a slice of the shared pool.
    this.buf = Buffer.allocUnsafeSlow(size);
  }
}

export class SlabAllocator {
  readonly #min: number;
  readonly #max: number;
  #cur: Slab | undefined;
  #next: number;

  /** Slabs start at minSlab bytes, each new one twice the last up to maxSlab (tests use small ones). */
  constructor(minSlab = SLAB_BYTES, maxSlab = SLAB_BYTES) {
    this.#min = minSlab;
    this.#max = Math.max(minSlab, maxSlab);
    this.#next = this.#min;
  }

  /** The slab being filled. */
  get current(): Slab | undefined {
    return this.#cur;
  }

  /** Stops filling the current slab (it is being compacted away): the next alloc opens a new one. */
  retire(): void {
    this.#cur = undefined;
  }

  /** `n` bytes: the slab and the offset of the first. An object larger than a quarter slab gets a slab of its own. */
  alloc(n: number): [Slab, number] {
    if (n > this.#max >> 2) {
      const own = new Slab(n);
      own.used = n;
      return [own, 0];
    }
    let cur = this.#cur;
    if (cur === undefined || cur.buf.length - cur.used < n) {
      cur = new Slab(this.#next);
      this.#next = Math.min(this.#max, this.#next * 2);
      this.#cur = cur;
    }
    const off = cur.used;
    cur.used += n;
    return [cur, off];
  }
}

/**
 * The slabs that hold stored objects, with their live bytes: what the cache's bytes really cost
 * (`footprint`, whole slabs) against what it stores (`live`).
 */
export class SlabUsage {
  readonly #slabs = new Set<Slab>();
  #live = 0;

  get live(): number {
    return this.#live;
  }

  get slabs(): number {
    return this.#slabs.size;
  }

  /** Bytes handed out of the slabs that hold at least one stored object (the pages written). */
  get footprint(): number {
    let n = 0;
    for (const s of this.#slabs) n += s.used;
    return n;
  }

  hold(slab: Slab, n: number): void {
    if (slab.live === 0) this.#slabs.add(slab);
    slab.live += n;
    this.#live += n;
  }

  release(slab: Slab, n: number): void {
    slab.live -= n;
    this.#live -= n;
    if (slab.live <= 0) {
      slab.live = 0;
      this.#slabs.delete(slab);
    }
  }

  /**
   * Slabs worth emptying: less than half of what they handed out is stored objects. Only when the
   * dead bytes are many (over max(minWaste, live / 4)); none otherwise.
   */
  sparse(minWaste: number): Set<Slab> {
    const out = new Set<Slab>();
    const waste = this.footprint - this.#live;
    if (waste <= Math.max(minWaste, this.#live / 4)) return out;
    for (const s of this.#slabs) if (s.live * 2 < s.used) out.add(s);
    return out;
  }
}
