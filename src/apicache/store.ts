import type { Logger } from '../log.ts';
import { scanField, scanObjectMeta } from './meta-scan.ts';
import type { Persister } from './persist.ts';
import {
  type FieldRequirement,
  fieldValue,
  type LabelRequirement,
  matchFields,
  matchLabels,
  parseFieldSelector,
  parseLabelSelector,
} from './selectors.ts';
import { type Slab, SlabAllocator, SlabUsage } from './slab.ts';

/**
 * The in-memory cache. One copy of each object per resource, shared by every client (YurtHub
 * keeps one copy per component); who may read what offline is recorded separately as grants
 * (see server.ts). Objects are kept as their compact JSON text, not as parsed objects: a cached
 * object costs about its JSON size plus a small index (name, namespace, labels, rv), and an
 * offline LIST is a string join, not a serialization.
 *
 * A **scope** is one (namespace, fieldSelector, labelSelector) view that a complete LIST (or a
 * watch-list's initial events) filled. It records the resourceVersion up to which the cache holds
 * everything in it: the list's RV, raised by every event of a watch whose own scope covers it.
 * Offline LISTs are answered only from a covering scope, with that scope's RV, so a client that
 * then watches from it misses nothing. A LIST replaces the objects of its scope (objects it no
 * longer returns are deleted).
 */

/**
 * One cached object. Kept small on the heap (10,000 pods are 10,000 of these): its bytes are not a
 * Buffer of its own but a range of a shared slab (slab.ts), the labels are not held as an object
 * but read from the JSON when a label selector asks (offline LISTs and scope replacement only),
 * and namespaces are shared strings.
 */
export class CachedObject {
  readonly name: string;
  readonly namespace: string;
  /** resourceVersion: a number when it is a plain decimal (etcd's), which takes less heap than its string. */
  readonly #rv: string | number;
  /** Length of the compact JSON (`json.length`, without making the view). */
  readonly size: number;
  /**
   * Where the object's own bytes start in `json`: `json.subarray(head)` is the object as the
   * apiserver sent it without its opening brace (`head` > 1 when kind and apiVersion were added in
   * front). A LIST item with exactly those bytes is this object unchanged (see ListSplitter).
   */
  readonly head: number;
  #slab: Slab;
  #off: number;
  /** metadata.labels as `json[labelsAt, labelsEnd)`, or (labelsEnd 0) #labelsObject. */
  readonly #labelsAt: number;
  readonly #labelsEnd: number;
  readonly #labelsObject: Readonly<Record<string, string>> | undefined;

  constructor(
    name: string,
    namespace: string,
    rv: string,
    slab: Slab,
    off: number,
    size: number,
    head: number,
    labels: [number, number] | Readonly<Record<string, string>> | undefined,
  ) {
    this.name = name;
    this.namespace = internNamespace(namespace);
    this.#rv = DECIMAL_RV.test(rv) ? Number(rv) : rv;
    this.#slab = slab;
    this.#off = off;
    this.size = size;
    this.head = head;
    const span = Array.isArray(labels) ? labels : undefined;
    this.#labelsAt = span?.[0] ?? 0;
    this.#labelsEnd = span?.[1] ?? 0;
    this.#labelsObject = span ? undefined : (labels as Readonly<Record<string, string>> | undefined);
  }

  get rv(): string {
    const rv = this.#rv;
    return typeof rv === 'number' ? String(rv) : rv;
  }

  /**
   * Compact JSON with kind and apiVersion: a view of the slab (no JS string, no parsed object: it
   * is written to clients as it is). Made on each call: keep it only as long as needed.
   */
  get json(): Buffer {
    return this.#slab.buf.subarray(this.#off, this.#off + this.size);
  }

  /** The slab holding the bytes (for the store's accounting). */
  get slab(): Slab {
    return this.#slab;
  }

  /** Copies the bytes into `slab` at `off` (compaction); the object points there from now on. */
  moveTo(slab: Slab, off: number): void {
    this.#slab.buf.copy(slab.buf, off, this.#off, this.#off + this.size);
    this.#slab = slab;
    this.#off = off;
  }

  get labels(): Readonly<Record<string, string>> | undefined {
    if (this.#labelsEnd === 0) return this.#labelsObject;
    try {
      return JSON.parse(this.#slab.buf.toString('utf8', this.#off + this.#labelsAt, this.#off + this.#labelsEnd)) as Record<
        string,
        string
      >;
    } catch {
      return undefined;
    }
  }
}

/** A resourceVersion that round-trips through a double exactly (no leading zero, at most 15 digits). */
const DECIMAL_RV = /^(?:0|[1-9]\d{0,14})$/;

/** Where new cache entries are copied (one allocator for the process: entries are made before their store is known). */
export const entrySlabs = new SlabAllocator();

const namespaces = new Map<string, string>();

/** One string per namespace name (bounded, so a flood of names cannot grow it without limit). */
function internNamespace(ns: string): string {
  const known = namespaces.get(ns);
  if (known !== undefined) return known;
  if (namespaces.size < 65_536) namespaces.set(ns, ns);
  return ns;
}

export interface Scope {
  namespace: string;
  fieldSelector: string;
  labelSelector: string;
  rv: string;
}

export interface ResourceMeta {
  group: string;
  version: string;
  kind: string;
}

/** Compares two resourceVersions; they are opaque, but etcd's are integers, and only those are ordered. */
export function rvNewer(a: string, b: string): boolean {
  if (b === '') return a !== '';
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return a.length !== b.length ? a.length > b.length : a > b;
  return a !== b;
}

function scopeId(s: Pick<Scope, 'namespace' | 'fieldSelector' | 'labelSelector'>): string {
  return `${s.namespace}|${s.fieldSelector}|${s.labelSelector}`;
}

/** Whether everything in `inner` is also in `outer`. */
export function covers(outer: Omit<Scope, 'rv'>, inner: Omit<Scope, 'rv'>): boolean {
  return (
    (outer.namespace === '' || outer.namespace === inner.namespace) &&
    (outer.fieldSelector === '' || outer.fieldSelector === inner.fieldSelector) &&
    (outer.labelSelector === '' || outer.labelSelector === inner.labelSelector)
  );
}

export interface Matcher {
  namespace: string;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
}

export function matcherFor(scope: Omit<Scope, 'rv'>): Matcher {
  return {
    namespace: scope.namespace,
    labels: parseLabelSelector(scope.labelSelector),
    fields: parseFieldSelector(scope.fieldSelector),
  };
}

export function matches(m: Matcher, o: CachedObject): boolean {
  if (m.namespace !== '' && o.namespace !== m.namespace) return false;
  if (m.labels.length > 0 && !matchLabels(m.labels, o.labels)) return false;
  if (m.fields.length === 0) return true;
  let parsed: unknown;
  let json: Buffer | undefined;
  return matchFields(m.fields, (path) => {
    if (path === 'metadata.name') return o.name;
    if (path === 'metadata.namespace') return o.namespace;
    json ??= o.json;
    // A targeted scan (no object tree); JSON.parse only when the scan is unsure.
    const scanned = parsed === undefined ? scanField(json, path.split('.')) : undefined;
    if (scanned !== undefined) return scanned;
    parsed ??= JSON.parse(json.toString('utf8'));
    return fieldValue(parsed, path);
  });
}

/**
 * One object's JSON (as served by the apiserver) as a cache entry, kind/apiVersion added if
 * missing. The index fields come from a targeted scan (meta-scan.ts), not a parse; JSON.parse is
 * only the fallback for what the scan is unsure of, and for multi-line (pretty) JSON, which is
 * re-serialized to one line (one line per object on disk).
 */
export function toCached(
  json: string | Buffer,
  meta: ResourceMeta | undefined,
  slabs: SlabAllocator = entrySlabs,
): CachedObject | undefined {
  const buf = typeof json === 'string' ? Buffer.from(json) : json;
  const m = buf.indexOf(0x0a) < 0 ? scanObjectMeta(buf) : undefined;
  if (m) return build(buf, m.start, m.end, m.hasKind, meta, m, slabs);
  let obj: {
    kind?: string;
    apiVersion?: string;
    metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  };
  try {
    obj = JSON.parse(buf.toString('utf8')) as typeof obj;
  } catch {
    return undefined;
  }
  const md = obj?.metadata;
  if (!md?.name) return undefined;
  const one = buf.indexOf(0x0a) >= 0 ? Buffer.from(JSON.stringify(obj)) : buf;
  const start = one.indexOf(0x7b);
  let end = one.length;
  while (end > start && one[end - 1] !== 0x7d) end--;
  return build(
    one,
    start,
    end,
    obj.kind !== undefined,
    meta,
    {
      name: md.name,
      namespace: md.namespace ?? '',
      resourceVersion: md.resourceVersion ?? '',
      labels: md.labels !== null && typeof md.labels === 'object' && !Array.isArray(md.labels) ? md.labels : undefined,
    },
    slabs,
  );
}

/** The entry: a copy of exactly the object's bytes `buf[start, end)` (buf may be a view of a larger chunk). */
function build(
  buf: Buffer,
  start: number,
  end: number,
  hasKind: boolean,
  meta: ResourceMeta | undefined,
  md: {
    name: string;
    namespace: string;
    resourceVersion: string;
    labels: [number, number] | Readonly<Record<string, string>> | undefined;
  },
  slabs: SlabAllocator,
): CachedObject {
  const open = start + 1;
  let prefix = '{';
  if (!hasKind && meta) {
    const apiVersion = meta.group === '' ? meta.version : `${meta.group}/${meta.version}`;
    prefix = `{"kind":${JSON.stringify(meta.kind)},"apiVersion":${JSON.stringify(apiVersion)}${buf[skipWsAt(buf, open)] === 0x7d ? '' : ','}`;
  }
  const head = prefix.length === 1 ? 1 : Buffer.byteLength(prefix);
  const size = head + end - open;
  const [slab, off] = slabs.alloc(size);
  if (head === 1) slab.buf[off] = 0x7b;
  else slab.buf.write(prefix, off, 'utf8');
  buf.copy(slab.buf, off + head, open, end);
  // A label span moves with the bytes (relative to the entry): buf[open] is entry[head].
  const labels = Array.isArray(md.labels)
    ? ([md.labels[0] - open + head, md.labels[1] - open + head] as [number, number])
    : (md.labels as Readonly<Record<string, string>> | undefined);
  return new CachedObject(md.name, md.namespace, md.resourceVersion, slab, off, size, head, labels);
}

function skipWsAt(b: Buffer, i: number): number {
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0d || b[i] === 0x0a)) i++;
  return i;
}

/** Dead bytes in slabs below which they are left alone (slab.ts). */
const COMPACT_MIN_WASTE = 2 << 20;

/**
 * Objects by namespace and name: a map per namespace, so the key of each object is its name
 * string (which it holds anyway), not one more "namespace/name" string per object.
 */
export class ObjectIndex {
  readonly #byNs = new Map<string, Map<string, CachedObject>>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(namespace: string, name: string): CachedObject | undefined {
    return this.#byNs.get(namespace)?.get(name);
  }

  /** Adds or replaces; returns the object replaced. */
  set(o: CachedObject): CachedObject | undefined {
    let names = this.#byNs.get(o.namespace);
    if (names === undefined) {
      names = new Map();
      this.#byNs.set(o.namespace, names);
    }
    const old = names.get(o.name);
    names.set(o.name, o);
    if (old === undefined) this.#size++;
    return old;
  }

  /** Removes; returns the object removed. */
  delete(namespace: string, name: string): CachedObject | undefined {
    const names = this.#byNs.get(namespace);
    const old = names?.get(name);
    if (names === undefined || old === undefined) return undefined;
    names.delete(name);
    this.#size--;
    if (names.size === 0) this.#byNs.delete(namespace);
    return old;
  }

  /** Every object (deleting the current one while iterating is allowed). */
  *values(): IterableIterator<CachedObject> {
    for (const names of this.#byNs.values()) yield* names.values();
  }

  /** Every object with its key (ResourceCache.objectKey), for the persisted collection. */
  *entries(): IterableIterator<[string, CachedObject]> {
    for (const [ns, names] of this.#byNs) for (const [name, o] of names) yield [ResourceCache.objectKey(ns, name), o];
  }
}

/** A scope's last LIST, in the apiserver's order: namespace and name of each item (strings shared with the objects). */
interface ListOrder {
  namespaces: string[];
  names: string[];
}

export class ResourceCache {
  readonly key: string;
  meta: ResourceMeta | undefined;
  readonly objects = new ObjectIndex();
  readonly scopes = new Map<string, Scope>();
  /** Each scope's last LIST, in the apiserver's order (to recognise unchanged items). */
  readonly order = new Map<string, ListOrder>();
  bytes = 0;
  /** The slabs its objects' bytes are in (shared by the resources of one store). */
  readonly usage: SlabUsage;

  constructor(key: string, usage: SlabUsage = new SlabUsage()) {
    this.key = key;
    this.usage = usage;
  }

  static objectKey(namespace: string, name: string): string {
    return namespace === '' ? name : `${namespace}/${name}`;
  }

  set(o: CachedObject): void {
    const old = this.objects.set(o);
    if (old) {
      this.bytes -= old.size;
      this.usage.release(old.slab, old.size);
    }
    this.bytes += o.size;
    this.usage.hold(o.slab, o.size);
  }

  remove(namespace: string, name: string): boolean {
    const old = this.objects.delete(namespace, name);
    if (!old) return false;
    this.bytes -= old.size;
    this.usage.release(old.slab, old.size);
    return true;
  }

  coveringScope(s: Omit<Scope, 'rv'>): Scope | undefined {
    let best: Scope | undefined;
    for (const scope of this.scopes.values()) {
      if (covers(scope, s) && (best === undefined || rvNewer(scope.rv, best.rv))) best = scope;
    }
    return best;
  }

  header(): Record<string, unknown> {
    return { key: this.key, meta: this.meta, scopes: [...this.scopes.values()] };
  }
}

export interface StoreOptions {
  persister: Persister | undefined;
  logger: Logger;
  maxBytes: number;
  onOverflow?: () => void;
  /** Where entries are copied and compacted to (default: the process's entrySlabs; tests use small slabs). */
  slabs?: SlabAllocator;
  /** Dead slab bytes below which no compaction runs (default COMPACT_MIN_WASTE). */
  compactMinWaste?: number;
}

/** Name of a resource's persisted collection. */
function collectionName(key: string): string {
  return `r_${key.replace(/[^a-z0-9.-]/g, '_')}`;
}

export class CacheStore {
  readonly #resources = new Map<string, ResourceCache>();
  readonly #usage = new SlabUsage();
  readonly #slabs: SlabAllocator;
  readonly #compactMinWaste: number;
  readonly #persister: Persister | undefined;
  readonly #log: Logger;
  readonly #maxBytes: number;
  readonly #onOverflow: () => void;
  #overflowLogged = false;
  /** Resources with a LIST being committed after its response: later changes wait for it (see hold). */
  readonly #holds = new Map<string, { n: number; queue: (() => void)[] }>();

  constructor(opts: StoreOptions) {
    this.#persister = opts.persister;
    this.#log = opts.logger.child({ module: 'apicache/store' });
    this.#maxBytes = opts.maxBytes;
    this.#onOverflow = opts.onOverflow ?? (() => {});
    this.#slabs = opts.slabs ?? entrySlabs;
    this.#compactMinWaste = opts.compactMinWaste ?? COMPACT_MIN_WASTE;
  }

  get bytes(): number {
    let n = 0;
    for (const r of this.#resources.values()) n += r.bytes;
    return n;
  }

  resources(): IterableIterator<ResourceCache> {
    return this.#resources.values();
  }

  resource(key: string): ResourceCache | undefined {
    return this.#resources.get(key);
  }

  #ensure(key: string, meta?: ResourceMeta): ResourceCache {
    let r = this.#resources.get(key);
    if (!r) {
      r = new ResourceCache(key, this.#usage);
      this.#resources.set(key, r);
      const rc = r;
      this.#persister?.register({ name: collectionName(key), header: () => rc.header(), entries: () => entriesOf(rc) });
    }
    if (meta && !r.meta) r.meta = meta;
    return r;
  }

  /** Restores a resource from its persisted collection (at start). */
  restore(name: string, header: Record<string, unknown>, entries: Map<string, string>): boolean {
    if (!name.startsWith('r_') || typeof header.key !== 'string') return false;
    const r = this.#ensure(header.key, header.meta as ResourceMeta | undefined);
    for (const s of (header.scopes as Scope[] | undefined) ?? []) r.scopes.set(scopeId(s), s);
    for (const json of entries.values()) {
      const o = toCached(json, r.meta, this.#slabs);
      if (o) r.set(o);
    }
    this.#compact();
    return true;
  }

  /** Bytes of the slabs holding the cached objects (what the cache's bytes really take; slab.ts). */
  get slabBytes(): number {
    return this.#usage.footprint;
  }

  /**
   * Moves the objects out of mostly-dead slabs once replaced and deleted objects left many dead
   * bytes (slab.ts): the emptied slabs are then freed by the GC. O(objects) when it runs, which is
   * after about as many bytes were replaced as a quarter of the cache.
   */
  #compact(): void {
    const sparse = this.#usage.sparse(this.#compactMinWaste);
    if (sparse.size === 0) return;
    // The slab being filled may be one of them (many replacements of few objects): start a new one.
    const cur = this.#slabs.current;
    if (cur !== undefined && sparse.has(cur)) this.#slabs.retire();
    for (const r of this.#resources.values()) {
      for (const o of r.objects.values()) {
        if (!sparse.has(o.slab)) continue;
        const [slab, off] = this.#slabs.alloc(o.size);
        this.#usage.release(o.slab, o.size);
        o.moveTo(slab, off);
        this.#usage.hold(slab, o.size);
      }
    }
  }

  #overLimit(extra: number): boolean {
    if (this.bytes + extra <= this.#maxBytes) return false;
    this.#onOverflow();
    if (!this.#overflowLogged) {
      this.#overflowLogged = true;
      this.#log.error(
        { maxBytes: this.#maxBytes },
        'apiserver cache is full (apicache.maxCacheBytes); new objects are not cached',
      );
    }
    return true;
  }

  /**
   * Defers every later change of resource `key` (watch events, GET answers, scope replacements)
   * until the returned release() is called: a LIST whose cache work runs after its response was
   * sent commits under a hold (replaceScope with `held`), so a watch event that arrived
   * meanwhile (newer than the LIST) is applied after it, not overwritten by it.
   */
  hold(key: string): () => void {
    let h = this.#holds.get(key);
    if (!h) {
      h = { n: 0, queue: [] };
      this.#holds.set(key, h);
    }
    const held = h;
    held.n++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--held.n > 0) return;
      this.#holds.delete(key);
      for (const fn of held.queue) fn();
    };
  }

  /** Queues fn when `key` is held (true), or leaves it to the caller to run now (false). */
  #deferred(key: string, fn: () => void): boolean {
    const h = this.#holds.get(key);
    if (!h) return false;
    h.queue.push(fn);
    return true;
  }

  /**
   * A complete LIST of a scope: its objects replace what the scope held. Returns false when the
   * list did not fit (the scope is then not marked complete, so it is never served partially).
   * `held`: the caller holds the resource (hold()) and commits under it.
   */
  replaceScope(key: string, meta: ResourceMeta, scope: Scope, items: CachedObject[], held = false): boolean {
    if (!held && this.#deferred(key, () => this.replaceScope(key, meta, scope, items))) return true;
    const r = this.#ensure(key, meta);
    const fresh = new ObjectIndex();
    for (const o of items) fresh.set(o); // a repeated name: the last one wins
    let extra = 0;
    for (const o of fresh.values()) extra += o.size - (r.objects.get(o.namespace, o.name)?.size ?? 0);
    if (this.#overLimit(extra)) {
      this.#dropScopesMatching(r, scope);
      return false;
    }
    const id = scopeId(scope);
    let changed = !r.scopes.has(id);
    const m = matcherFor(scope);
    for (const o of r.objects.values()) {
      if (fresh.get(o.namespace, o.name) === undefined && matches(m, o)) {
        r.remove(o.namespace, o.name);
        changed = true;
      }
    }
    for (const o of fresh.values()) {
      if (r.objects.get(o.namespace, o.name) === o) continue; // an unchanged item (ListSplitter prediction): nothing to do
      r.set(o);
      changed = true;
    }
    // The LIST's own order (the apiserver's), each object once.
    const order: ListOrder = { namespaces: [], names: [] };
    for (const o of items) {
      if (fresh.get(o.namespace, o.name) !== o) continue;
      order.namespaces.push(o.namespace);
      order.names.push(o.name);
    }
    r.order.set(id, order);
    const old = r.scopes.get(id);
    r.scopes.set(id, scope);
    // Narrower scopes are now as fresh as this one.
    for (const s of r.scopes.values()) if (covers(scope, s) && rvNewer(scope.rv, s.rv)) s.rv = scope.rv;
    // A LIST that changed no object only moves the scope's resourceVersion: a journal line, not a snapshot.
    if (changed) {
      this.#persister?.snapshot(collectionName(key));
      this.#compact();
    } else if (old?.rv !== scope.rv) this.#persister?.header(collectionName(key));
    return true;
  }

  /**
   * The expected bytes (after the opening brace) of item `index` of a LIST of this scope: the
   * object at that position in the scope's last LIST, as cached now.
   */
  expectedItem(key: string, scope: Omit<Scope, 'rv'>, index: number): CachedObject | undefined {
    const r = this.#resources.get(key);
    const order = r?.order.get(scopeId(scope));
    const name = order?.names[index];
    return name === undefined ? undefined : r?.objects.get(order?.namespaces[index] ?? '', name);
  }

  /** One watch event (or a GET answer, with watchScope undefined). */
  applyEvent(
    key: string,
    meta: ResourceMeta | undefined,
    type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK',
    o: CachedObject | undefined,
    rv: string,
    watchScope: Omit<Scope, 'rv'> | undefined,
  ): void {
    if (this.#deferred(key, () => this.applyEvent(key, meta, type, o, rv, watchScope))) return;
    const r = this.#ensure(key, meta);
    const name = collectionName(key);
    if (o && type !== 'BOOKMARK') {
      const k = ResourceCache.objectKey(o.namespace, o.name);
      const old = r.objects.get(o.namespace, o.name);
      if (type === 'DELETED') {
        if (r.remove(o.namespace, o.name)) this.#persister?.delete(name, k);
      } else if (!old || !rvNewer(old.rv, o.rv)) {
        if (!old && this.#overLimit(o.size))
          this.#dropScopesMatching(r, { namespace: o.namespace, fieldSelector: '', labelSelector: '' });
        else {
          r.set(o);
          this.#persister?.put(name, k, o.json.toString('utf8'));
        }
      }
      this.#compact();
    }
    if (watchScope && rv !== '') {
      let changed = false;
      for (const s of r.scopes.values()) {
        if (covers(watchScope, s) && rvNewer(rv, s.rv)) {
          s.rv = rv;
          changed = true;
        }
      }
      if (changed) this.#persister?.header(name);
    }
  }

  /** A GET answered 404: the object is gone. */
  forget(key: string, namespace: string, objName: string): void {
    if (this.#deferred(key, () => this.forget(key, namespace, objName))) return;
    const r = this.#resources.get(key);
    if (r?.remove(namespace, objName)) {
      this.#persister?.delete(collectionName(key), ResourceCache.objectKey(namespace, objName));
      this.#compact();
    }
  }

  #dropScopesMatching(r: ResourceCache, s: Omit<Scope, 'rv'>): void {
    for (const [id, scope] of r.scopes) if (covers(scope, s) || covers(s, scope)) r.scopes.delete(id);
    this.#persister?.header(collectionName(r.key));
  }

  /** Objects of a scope from a covering complete scope, or undefined when nothing complete covers it. */
  list(key: string, want: Omit<Scope, 'rv'>): { rv: string; items: CachedObject[]; meta: ResourceMeta | undefined } | undefined {
    const r = this.#resources.get(key);
    if (!r) return undefined;
    const scope = r.coveringScope(want);
    if (!scope) return undefined;
    const m = matcherFor(want);
    const items: CachedObject[] = [];
    for (const o of r.objects.values()) if (matches(m, o)) items.push(o);
    items.sort((a, b) => (a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
    return { rv: scope.rv, items, meta: r.meta };
  }

  get(key: string, namespace: string, name: string): CachedObject | undefined {
    return this.#resources.get(key)?.objects.get(namespace, name);
  }

  /** Whether a complete scope covers the namespace, so a missing object is known not to exist. */
  knowsNamespace(key: string, namespace: string): boolean {
    return this.#resources.get(key)?.coveringScope({ namespace, fieldSelector: '', labelSelector: '' }) !== undefined;
  }

  stats(): { resource: string; objects: number; bytes: number; scopes: number }[] {
    return [...this.#resources.values()].map((r) => ({
      resource: r.key,
      objects: r.objects.size,
      bytes: r.bytes,
      scopes: r.scopes.size,
    }));
  }
}

function* entriesOf(r: ResourceCache): Iterable<[string, Buffer]> {
  for (const [k, o] of r.objects.entries()) yield [k, o.json];
}
