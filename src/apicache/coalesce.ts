/**
 * The buffers a LIST tee copies the response into (server.ts), handed out as 256 KiB pieces of
 * one large "arena" that is reused from LIST to LIST.
 *
 * Why one arena of 32 MiB: that is glibc's largest dynamic mmap threshold
 * (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit), so the arena is always its own mmap: only the pages
 * written take memory, and freeing it returns them to the OS. 256 KiB buffers of their own came
 * from the malloc heap once the dynamic threshold had risen (it rises to the size of any freed
 * mmapped chunk) and, freed between long-lived allocations, stayed in RSS as holes: ~20 MiB after
 * a LIST of 10,000 pods. Why reused: a fresh 32 MiB buffer per LIST costs page faults on every
 * page written and 32 MiB of V8 "external memory" per LIST, which triggers full GCs (4 parallel
 * LISTs of 1,000 pods lost a third of their throughput that way).
 *
 * When every piece is back, the arena starts over from its beginning, unless more than
 * `keepBytes` of it were written: a large LIST's pages are then given back (the arena is freed,
 * the next LIST maps a new one). Pieces never given back (a LIST cut short) are only lost to
 * reuse: the arena is replaced when full and the GC frees it when no piece is referenced.
 */

const ARENA_BYTES = 32 << 20;
const PIECE_BYTES = 256 << 10;
const KEEP_BYTES = 4 << 20;

export class Arena {
  readonly buf: Buffer;
  used = 0;
  /** Pieces handed out and not given back. */
  out = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafeSlow(size);
  }
}

export interface Piece {
  readonly buf: Buffer;
  readonly arena: Arena;
}

export class CoalescePool {
  readonly #arenaBytes: number;
  readonly #pieceBytes: number;
  readonly #keepBytes: number;
  #arena: Arena | undefined;
  /** Arenas mapped so far (tests). */
  arenas = 0;

  constructor(arenaBytes = ARENA_BYTES, pieceBytes = PIECE_BYTES, keepBytes = KEEP_BYTES) {
    this.#arenaBytes = arenaBytes;
    this.#pieceBytes = Math.min(pieceBytes, arenaBytes);
    this.#keepBytes = keepBytes;
  }

  get pieceBytes(): number {
    return this.#pieceBytes;
  }

  take(): Piece {
    let a = this.#arena;
    if (a === undefined || a.used + this.#pieceBytes > a.buf.length) {
      a = new Arena(this.#arenaBytes);
      this.arenas++;
      this.#arena = a;
    }
    const buf = a.buf.subarray(a.used, a.used + this.#pieceBytes);
    a.used += this.#pieceBytes;
    a.out++;
    return { buf, arena: a };
  }

  /** Gives a piece back: no view of it may be used afterwards. */
  give(p: Piece): void {
    const a = p.arena;
    if (--a.out > 0) return;
    if (a !== this.#arena) {
      freeNow(a.buf); // a full arena replaced meanwhile: nothing will be taken from it again
    } else if (a.used > this.#keepBytes) {
      freeNow(a.buf);
      this.#arena = undefined;
    } else {
      a.used = 0;
    }
  }
}

/** The process's pool (LIST tees of every edge server share it). */
export const coalescePool = new CoalescePool();

/**
 * Frees a buffer now instead of at some later GC (ArrayBuffer.prototype.transfer(0) detaches it;
 * its memory is released at once when nothing else holds it): a buffer outside the V8 heap is
 * freed by the GC only when the GC gets round to it. Every view of it reads as empty afterwards.
 */
export function freeNow(b: Buffer): void {
  const ab = b.buffer;
  if (ab instanceof ArrayBuffer && b.byteOffset === 0 && ab.byteLength === b.length && b.length > 0) ab.transfer(0);
}
