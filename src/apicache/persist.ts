import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ErrorCodes, errorMessage, MeshletError } from '../errors.ts';
import type { Logger } from '../log.ts';

/**
 * The on-disk half of the cache: per collection (one cached resource, the discovery documents,
 * the access grants) a **snapshot** and a **journal**.
 *
 * - `<name>.snap`: line 1 `meshlet-apicache-snapshot 1`, line 2 a JSON header (with a random
 *   generation id), then one `key<TAB>value` line per entry (values are one-line JSON), and a
 *   last line `sha256 <hex>` over every byte before it. Written to `<name>.snap.tmp`, fsynced,
 *   renamed over the old one, then the directory is fsynced: a reader sees the old or the new
 *   file, never a mix. A bad checksum or a missing last line discards the file (never served).
 * - `<name>.journal`: appended lines `<crc32 hex> <op> <payload>` since that snapshot; the first
 *   line names the snapshot's generation (a journal of another generation is stale and ignored:
 *   that is a crash between the rename and the truncation). Replay stops at the first line whose
 *   CRC does not match (a torn write at the end), which is logged and counted.
 * - Appends are batched (flushed every `flushMs`, one write + fsync per batch); when a journal
 *   grows past max(1 MiB, the snapshot's size) the collection is compacted into a new snapshot,
 *   so disk use stays within about twice the cached bytes.
 *
 * Any write error (ENOSPC above all) switches persistence off ("memory-only"): the error is
 * logged once with MESHLET_ERR_APICACHE_DISK, `meshlet_apicache_disk_ok` drops to 0, the cache
 * keeps serving from memory, and every `retryMs` a full snapshot of every collection is tried;
 * when that succeeds persistence is back on.
 */

export interface Collection {
  readonly name: string;
  header(): Record<string, unknown>;
  /** Values are one-line JSON; a Buffer is written as it is (no string made of it). */
  entries(): Iterable<[string, string | Buffer]>;
}

export interface LoadedCollection {
  header: Record<string, unknown>;
  entries: Map<string, string>;
}

export interface PersisterOptions {
  dir: string;
  logger: Logger;
  flushMs?: number;
  retryMs?: number;
  snapshotDelayMs?: number;
  /** Called with the number of files (or journal tails) found corrupt and discarded. */
  onCorrupt?: (n: number) => void;
  onDiskError?: () => void;
}

const MAGIC = 'meshlet-apicache-snapshot 1';
const SAFE_NAME = /^[a-z0-9_.-]+$/;
const SNAPSHOT_BUFFER = 1 << 20;

type Op = { kind: 'P'; key: string; value: string } | { kind: 'D'; key: string } | { kind: 'H'; header: string };

interface Journal {
  gen: string;
  pending: string[];
  bytes: number;
  snapshotBytes: number;
}

export class Persister {
  readonly #dir: string;
  readonly #log: Logger;
  readonly #flushMs: number;
  readonly #retryMs: number;
  readonly #onCorrupt: (n: number) => void;
  readonly #onDiskError: () => void;
  readonly #collections = new Map<string, Collection>();
  readonly #journals = new Map<string, Journal>();
  readonly #dirtyHeaders = new Set<string>();
  readonly #dirtySnapshots = new Set<string>();
  readonly #snapshotDelayMs: number;
  #snapTimer: NodeJS.Timeout | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #ok = true;
  #lastError = '';
  #writes = 0;

  constructor(opts: PersisterOptions) {
    this.#dir = opts.dir;
    this.#log = opts.logger.child({ module: 'apicache/persist' });
    this.#flushMs = opts.flushMs ?? 50;
    this.#retryMs = opts.retryMs ?? 10_000;
    this.#snapshotDelayMs = opts.snapshotDelayMs ?? 500;
    this.#onCorrupt = opts.onCorrupt ?? (() => {});
    this.#onDiskError = opts.onDiskError ?? (() => {});
  }

  /** True while writes reach the disk; false in memory-only mode after a write error. */
  get ok(): boolean {
    return this.#ok;
  }

  get lastError(): string {
    return this.#lastError;
  }

  /** Reads every valid collection from disk; corrupt files are logged, counted and skipped. */
  load(): Map<string, LoadedCollection> {
    const out = new Map<string, LoadedCollection>();
    try {
      mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      this.#fail(err);
      return out;
    }
    let names: string[];
    try {
      names = readdirSync(this.#dir);
    } catch (err) {
      this.#fail(err);
      return out;
    }
    for (const file of names) {
      if (file.endsWith('.snap.tmp')) {
        rmSync(join(this.#dir, file), { force: true }); // a crash mid-write: the old snapshot is still whole
        continue;
      }
      if (!file.endsWith('.snap')) continue;
      const name = file.slice(0, -'.snap'.length);
      const loaded = this.#readSnapshot(name);
      if (loaded) out.set(name, loaded);
    }
    return out;
  }

  /** Registers a collection so compaction and the memory-only retry can snapshot it. */
  register(c: Collection): void {
    if (!SAFE_NAME.test(c.name)) throw new MeshletError(ErrorCodes.APICACHE_CONFIG, `bad cache collection name ${c.name}`);
    this.#collections.set(c.name, c);
  }

  put(name: string, key: string, value: string): void {
    this.#append(name, { kind: 'P', key, value });
  }

  delete(name: string, key: string): void {
    this.#append(name, { kind: 'D', key });
  }

  /** Marks the collection's header (resourceVersion, scopes) changed; written once per flush. */
  header(name: string): void {
    if (!this.#ok) return;
    this.#dirtyHeaders.add(name);
    this.#flushTimer ??= setTimeout(() => this.flush(), this.#flushMs);
  }

  /** Writes a full snapshot now (after a LIST replaced a scope): cheaper than journaling every item. */
  /** Coalesced: a burst of LISTs of one resource costs one snapshot (written within snapshotDelayMs). */
  snapshot(name: string): void {
    if (!this.#ok || !this.#collections.has(name)) return;
    this.#dirtySnapshots.add(name);
    this.#snapTimer ??= setTimeout(() => this.flush(), this.#snapshotDelayMs);
  }

  /** Writes pending snapshots, then pending journal lines (synchronously); on timers and at stop. */
  flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    clearTimeout(this.#snapTimer);
    this.#snapTimer = undefined;
    if (!this.#ok) return;
    for (const name of this.#dirtySnapshots) {
      const c = this.#collections.get(name);
      try {
        if (c) this.#writeSnapshot(c);
      } catch (err) {
        this.#fail(err);
        return;
      }
    }
    this.#dirtySnapshots.clear();
    for (const name of this.#dirtyHeaders) {
      const c = this.#collections.get(name);
      if (c) this.#append(name, { kind: 'H', header: JSON.stringify(c.header()) });
    }
    this.#dirtyHeaders.clear();
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    for (const [name, j] of this.#journals) {
      if (j.pending.length === 0) continue;
      const data = j.pending.join('');
      j.pending = [];
      try {
        const fd = openSync(join(this.#dir, `${name}.journal`), 'a', 0o600);
        try {
          writeAll(fd, Buffer.from(data));
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        this.#writes++;
        j.bytes += Buffer.byteLength(data);
        if (j.bytes > Math.max(1 << 20, j.snapshotBytes)) {
          const c = this.#collections.get(name);
          if (c) this.#writeSnapshot(c);
        }
      } catch (err) {
        this.#fail(err);
        return;
      }
    }
  }

  stop(): void {
    this.flush();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  status(): Record<string, unknown> {
    return { dir: this.#dir, ok: this.#ok, writes: this.#writes, ...(this.#lastError && { lastError: this.#lastError }) };
  }

  #append(name: string, op: Op): void {
    if (!this.#ok) return;
    const j = this.#journals.get(name);
    if (!j) {
      // No snapshot yet for this collection: the first one carries the state, the journal starts after it.
      this.snapshot(name);
      return;
    }
    j.pending.push(journalLine(op));
    this.#flushTimer ??= setTimeout(() => this.flush(), this.#flushMs);
  }

  #writeSnapshot(c: Collection): void {
    const gen = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const hash = createHash('sha256');
    const tmp = join(this.#dir, `${c.name}.snap.tmp`);
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, 'w', 0o600);
    let bytes = 0;
    try {
      // Lines are copied into one reused buffer and written from it: no string or Buffer per
      // object, so a snapshot of a large cache leaves no garbage behind.
      const buf = Buffer.allocUnsafeSlow(SNAPSHOT_BUFFER);
      let used = 0;
      const flushBuf = () => {
        if (used === 0) return;
        const view = buf.subarray(0, used);
        hash.update(view);
        writeAll(fd, view);
        bytes += used;
        used = 0;
      };
      const put = (v: string | Buffer) => {
        const n = typeof v === 'string' ? Buffer.byteLength(v) : v.length;
        if (used + n > buf.length) flushBuf();
        if (n > buf.length) {
          const big = typeof v === 'string' ? Buffer.from(v) : v;
          hash.update(big);
          writeAll(fd, big);
          bytes += n;
          return;
        }
        used += typeof v === 'string' ? buf.write(v, used, 'utf8') : v.copy(buf, used);
      };
      put(`${MAGIC}\n${JSON.stringify({ ...c.header(), gen })}\n`);
      for (const [key, value] of c.entries()) {
        put(`${key}\t`);
        put(value);
        put('\n');
      }
      flushBuf();
      const trailer = Buffer.from(`sha256 ${hash.digest('hex')}\n`);
      writeAll(fd, trailer);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    closeSync(fd);
    renameSync(tmp, join(this.#dir, `${c.name}.snap`));
    fsyncDir(this.#dir);
    // Start the journal of this generation (a crash before this leaves a stale journal, ignored on load).
    const jfd = openSync(join(this.#dir, `${c.name}.journal`), 'w', 0o600);
    try {
      writeAll(jfd, Buffer.from(journalLine({ kind: 'H', header: JSON.stringify({ gen }) })));
      fsyncSync(jfd);
    } finally {
      closeSync(jfd);
    }
    this.#writes++;
    const prev = this.#journals.get(c.name);
    this.#journals.set(c.name, { gen, pending: prev?.pending ?? [], bytes: 0, snapshotBytes: bytes });
    // Lines queued before this snapshot are already in it.
    const j = this.#journals.get(c.name);
    if (j) j.pending = [];
  }

  #readSnapshot(name: string): LoadedCollection | undefined {
    const path = join(this.#dir, `${name}.snap`);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      this.#log.warn(
        { code: ErrorCodes.APICACHE_CORRUPT, file: path, err: errorMessage(err) },
        'cannot read cache file; skipped',
      );
      this.#onCorrupt(1);
      return undefined;
    }
    const found = text.lastIndexOf('sha256 ', text.length - 2);
    const trailerAt = found > 0 && text[found - 1] === '\n' ? found : -1;
    const body = trailerAt > 0 ? text.slice(0, trailerAt) : '';
    const want = trailerAt > 0 ? text.slice(trailerAt + 7).trim() : '';
    const got = createHash('sha256').update(body).digest('hex');
    const lines = body.split('\n');
    if (want !== got || lines[0] !== MAGIC) {
      this.#log.error(
        { code: ErrorCodes.APICACHE_CORRUPT, file: path },
        'cache snapshot failed its checksum (torn or corrupted); discarded, never served',
      );
      this.#onCorrupt(1);
      rmSync(path, { force: true });
      rmSync(join(this.#dir, `${name}.journal`), { force: true });
      return undefined;
    }
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(lines[1] ?? '') as Record<string, unknown>;
    } catch {
      this.#onCorrupt(1);
      return undefined;
    }
    const entries = new Map<string, string>();
    for (let i = 2; i < lines.length; i++) {
      const line = lines[i] as string;
      if (line === '') continue;
      const tab = line.indexOf('\t');
      if (tab > 0) entries.set(line.slice(0, tab), line.slice(tab + 1));
    }
    const gen = typeof header.gen === 'string' ? header.gen : '';
    const journalBytes = this.#replayJournal(name, gen, header, entries);
    this.#journals.set(name, { gen, pending: [], bytes: journalBytes, snapshotBytes: Buffer.byteLength(text) });
    return { header, entries };
  }

  /** Applies the journal of generation gen; returns its valid length in bytes. */
  #replayJournal(name: string, gen: string, header: Record<string, unknown>, entries: Map<string, string>): number {
    const path = join(this.#dir, `${name}.journal`);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return 0;
    }
    const lines = text.split('\n');
    let valid = 0;
    let first = true;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      if (line === '' && i === lines.length - 1) break;
      const op = parseJournalLine(line);
      if (!op) {
        this.#log.warn(
          { code: ErrorCodes.APICACHE_CORRUPT, file: path, line: i + 1 },
          'cache journal line failed its CRC (torn write?); the rest of the journal is discarded',
        );
        this.#onCorrupt(1);
        break;
      }
      if (first) {
        first = false;
        const h = op.kind === 'H' ? (JSON.parse(op.header) as { gen?: string }) : {};
        if (h.gen !== gen) return 0; // stale journal of an older snapshot
        valid += Buffer.byteLength(line) + 1;
        continue;
      }
      if (op.kind === 'P') entries.set(op.key, op.value);
      else if (op.kind === 'D') entries.delete(op.key);
      else Object.assign(header, JSON.parse(op.header) as Record<string, unknown>, { gen });
      valid += Buffer.byteLength(line) + 1;
    }
    return valid;
  }

  #fail(err: unknown): void {
    const message = errorMessage(err);
    const code = (err as { code?: string }).code;
    this.#onDiskError();
    if (this.#ok) {
      this.#log.error(
        { code: ErrorCodes.APICACHE_DISK, errno: code, dir: this.#dir, err: message },
        `cannot write the apiserver cache (${code === 'ENOSPC' ? 'disk full' : message}); serving from memory only, retrying every ${this.#retryMs} ms`,
      );
    }
    this.#ok = false;
    this.#lastError = `${code ?? ''} ${message}`.trim();
    for (const j of this.#journals.values()) j.pending = [];
    this.#dirtySnapshots.clear();
    this.#dirtyHeaders.clear();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#retry(), this.#retryMs);
    this.#retryTimer.unref();
  }

  #retry(): void {
    this.#retryTimer = undefined;
    try {
      for (const c of this.#collections.values()) this.#writeSnapshot(c);
    } catch (err) {
      this.#lastError = errorMessage(err);
      this.#onDiskError();
      this.#retryTimer = setTimeout(() => this.#retry(), this.#retryMs);
      this.#retryTimer.unref();
      return;
    }
    this.#ok = true;
    this.#lastError = '';
    this.#log.info({ dir: this.#dir }, 'apiserver cache writes to disk again');
  }
}

function journalLine(op: Op): string {
  const payload = op.kind === 'P' ? `P ${op.key}\t${op.value}` : op.kind === 'D' ? `D ${op.key}` : `H ${op.header}`;
  return `${crc32(payload).toString(16).padStart(8, '0')} ${payload}\n`;
}

function parseJournalLine(line: string): Op | undefined {
  if (line.length < 11 || line[8] !== ' ') return undefined;
  const payload = line.slice(9);
  if (crc32(payload).toString(16).padStart(8, '0') !== line.slice(0, 8)) return undefined;
  const kind = payload[0];
  const rest = payload.slice(2);
  if (kind === 'P') {
    const tab = rest.indexOf('\t');
    return tab > 0 ? { kind: 'P', key: rest.slice(0, tab), value: rest.slice(tab + 1) } : undefined;
  }
  if (kind === 'D') return { kind: 'D', key: rest };
  if (kind === 'H') return { kind: 'H', header: rest };
  return undefined;
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
