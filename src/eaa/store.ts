import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCodes, MeshletError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { NotificationDescriptor, Service, Subscription } from './model.ts';

/**
 * Registrations and subscriptions as replicated records (docs/eaa.md §Store). One record per
 * (kind, app CN); the node that serves the app writes it, every node holds a copy. Records merge
 * last-writer-wins on (version, writer): `version` is a Lamport clock, so merging is idempotent
 * and order-independent, and a deletion is a record too (a tombstone), never a missing key.
 */

interface RecordMeta {
  cn: string;
  /** The node whose agent serves this app: where its notifications are delivered. */
  node: string;
  version: number;
  /** The node that wrote this version; breaks ties between equal versions. */
  writer: string;
  /** Wall-clock ms of the write, for tombstone expiry only (never for ordering). */
  updatedAt: number;
}

export type EaaRecord =
  | (RecordMeta & { kind: 'service'; service: Service | null })
  | (RecordMeta & { kind: 'subscriptions'; subscriptions: Subscription[] });

export type RecordKind = EaaRecord['kind'];

export function recordKey(kind: RecordKind, cn: string): string {
  return `${kind}\u0000${cn}`;
}

/** True when `a` replaces `b`. */
export function wins(a: EaaRecord, b: EaaRecord | undefined): boolean {
  if (b === undefined) return true;
  return a.version !== b.version ? a.version > b.version : a.writer > b.writer;
}

export function isLive(r: EaaRecord): boolean {
  return r.kind === 'service' ? r.service !== null : r.subscriptions.length > 0;
}

/** Where records live. Memory only, or memory plus a file (FileRecordStore). */
export interface RecordStore {
  load(): Promise<void>;
  all(): IterableIterator<EaaRecord>;
  get(kind: RecordKind, cn: string): EaaRecord | undefined;
  /** Keeps `rec` if it wins over what is stored; true when the state changed. */
  merge(rec: EaaRecord): boolean;
  /** The highest version seen (the Lamport clock). */
  clock(): number;
  /** Drops tombstones written before `before` (ms); they have reached every peer by then. */
  expire(before: number): number;
  /** Resolves once everything merged so far is durable. */
  flush(): Promise<void>;
}

export class MemoryRecordStore implements RecordStore {
  protected readonly records = new Map<string, EaaRecord>();
  private maxVersion = 0;

  async load(): Promise<void> {}

  all(): IterableIterator<EaaRecord> {
    return this.records.values();
  }

  get(kind: RecordKind, cn: string): EaaRecord | undefined {
    return this.records.get(recordKey(kind, cn));
  }

  merge(rec: EaaRecord): boolean {
    this.maxVersion = Math.max(this.maxVersion, rec.version);
    const key = recordKey(rec.kind, rec.cn);
    if (!wins(rec, this.records.get(key))) return false;
    this.records.set(key, rec);
    this.changed();
    return true;
  }

  clock(): number {
    return this.maxVersion;
  }

  expire(before: number): number {
    let n = 0;
    for (const [key, r] of this.records) {
      if (!isLive(r) && r.updatedAt < before) {
        this.records.delete(key);
        n++;
      }
    }
    if (n > 0) this.changed();
    return n;
  }

  async flush(): Promise<void> {}

  protected changed(): void {}
}

const FILE_FORMAT = 'meshlet.eaa/v1';

/**
 * Records in memory, rewritten to one JSON file (write to a temporary file, then rename) after
 * each change. Writes coalesce: changes during a write are saved by the next one. A corrupt file
 * is moved aside and the agent starts empty, then refills from its peers.
 */
export class FileRecordStore extends MemoryRecordStore {
  readonly path: string;
  private readonly log: Logger;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private generation = 0;
  private saved = 0;

  constructor(opts: { path: string; logger: Logger }) {
    super();
    this.path = opts.path;
    this.log = opts.logger;
  }

  override async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new MeshletError(ErrorCodes.EAA_STORE, `cannot read ${this.path}`, { cause: err });
    }
    try {
      const doc = JSON.parse(text) as { format?: unknown; records?: unknown };
      if (doc.format !== FILE_FORMAT || !Array.isArray(doc.records)) throw new Error(`not a ${FILE_FORMAT} document`);
      for (const r of doc.records as EaaRecord[]) {
        if (!validRecord(r)) throw new Error('invalid record');
        super.merge(r);
      }
    } catch (err) {
      const aside = `${this.path}.corrupt-${Date.now()}`;
      await rename(this.path, aside).catch(() => {});
      this.log.error({ err, aside, code: ErrorCodes.EAA_STORE }, 'EAA state file is corrupt; moved aside, starting empty');
      this.records.clear();
    }
    this.saved = this.generation;
  }

  protected override changed(): void {
    this.generation++;
  }

  override async flush(): Promise<void> {
    const target = this.generation;
    while (this.saved < target) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      this.writing = this.write().finally(() => {
        this.writing = undefined;
      });
      await this.writing;
    }
  }

  private async write(): Promise<void> {
    const generation = this.generation;
    const body = JSON.stringify({ format: FILE_FORMAT, records: [...this.records.values()] });
    const tmp = `${this.path}.tmp`;
    try {
      await mkdir(dirname(this.path), { recursive: true });
      await writeFile(tmp, body, { mode: 0o600 });
      await rename(tmp, this.path);
      this.saved = generation;
      this.dirty = false;
    } catch (err) {
      if (!this.dirty) this.log.error({ err, path: this.path, code: ErrorCodes.EAA_STORE }, 'cannot persist EAA state');
      this.dirty = true;
      throw new MeshletError(ErrorCodes.EAA_STORE, `cannot write ${this.path}`, { cause: err });
    }
  }
}

function isDescriptor(d: unknown): d is NotificationDescriptor {
  const o = d as NotificationDescriptor;
  return typeof o === 'object' && o !== null && typeof o.name === 'string' && typeof o.version === 'string';
}

/** Shape check for records read from disk or from a peer. */
export function validRecord(r: unknown): r is EaaRecord {
  const o = r as Partial<EaaRecord> & Record<string, unknown>;
  if (typeof o !== 'object' || o === null) return false;
  if (typeof o.cn !== 'string' || typeof o.node !== 'string' || typeof o.writer !== 'string') return false;
  if (!Number.isSafeInteger(o.version) || typeof o.updatedAt !== 'number') return false;
  if (o.kind === 'service') {
    const s = o.service as Service | null | undefined;
    if (s === null) return true;
    return (
      typeof s === 'object' &&
      typeof s.urn?.id === 'string' &&
      typeof s.urn.namespace === 'string' &&
      Array.isArray(s.notifications) &&
      s.notifications.every(isDescriptor)
    );
  }
  if (o.kind === 'subscriptions') {
    const subs = o.subscriptions as Subscription[] | undefined;
    return (
      Array.isArray(subs) &&
      subs.every(
        (s) =>
          typeof s?.urn?.namespace === 'string' &&
          typeof s.urn.id === 'string' &&
          Array.isArray(s.notifications) &&
          s.notifications.every(isDescriptor),
      )
    );
  }
  return false;
}
