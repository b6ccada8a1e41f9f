import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Persister } from '../../src/apicache/persist.ts';
import { SlabAllocator, SlabUsage } from '../../src/apicache/slab.ts';
import { type CachedObject, CacheStore, ObjectIndex, toCached } from '../../src/apicache/store.ts';
import { silentLogger } from '../../src/log.ts';

const meta = { group: '', version: 'v1', kind: 'Pod' };

function pod(
  slabs: SlabAllocator,
  name: string,
  rv: string,
  pad = 0,
  labels: Record<string, string> = { app: name },
): CachedObject {
  const json = JSON.stringify({
    metadata: { name, namespace: 'ns', resourceVersion: rv, labels },
    spec: { pad: 'x'.repeat(pad) },
  });
  return toCached(json, meta, slabs) as CachedObject;
}

t.test('SlabAllocator packs entries, opens a new slab when full, gives big ones their own', async (t) => {
  const a = new SlabAllocator(1024, 4096);
  const [s1, o1] = a.alloc(100);
  const [s2, o2] = a.alloc(200);
  t.equal(s1, s2, 'same slab');
  t.same([o1, o2], [0, 100], 'one after the other');
  t.equal(s1.buf.length, 1024);
  const [s3, o3] = a.alloc(900);
  t.not(s3, s1, 'a new slab when the rest does not fit');
  t.equal(o3, 0);
  t.equal(s3.buf.length, 2048, 'each new slab twice the last');
  t.equal(a.current, s3);
  const [big, bo] = a.alloc(2000);
  t.same([big.buf.length, big.used, bo], [2000, 2000, 0], 'more than a quarter of the largest slab: its own');
  t.equal(a.current, s3, 'the slab being filled is unchanged');
  t.equal(a.alloc(1000)[0], s3, 'what still fits goes to the slab being filled');
  const [s4] = a.alloc(1000);
  t.equal(s4.buf.length, 4096, 'the next one twice as large (the cap)');
  a.alloc(1000);
  a.alloc(1000);
  a.alloc(1000);
  const [s5] = a.alloc(1000);
  t.same([s5.buf.length, a.current], [4096, s5], 'capped at the largest size');
});

t.test('SlabUsage counts live bytes per slab and finds sparse ones', async (t) => {
  const a = new SlabAllocator(1000, 1000);
  const u = new SlabUsage();
  const [s1] = a.alloc(200);
  for (let i = 0; i < 4; i++) t.equal(a.alloc(200)[0], s1);
  const [s2] = a.alloc(200);
  t.not(s2, s1);
  for (let i = 0; i < 5; i++) u.hold(s1, 200);
  u.hold(s2, 200);
  t.same([u.live, u.slabs, u.footprint], [1200, 2, 1200]);
  u.release(s1, 400);
  t.equal(s1.live, 600);
  t.same([...u.sparse(0)], [], 'half live or more is not sparse');
  u.release(s1, 600);
  t.equal(u.slabs, 1, 'a slab with nothing stored is no longer counted');
  u.hold(s1, 200);
  t.same([...u.sparse(0)], [s1], 'under half live');
  t.same([...u.sparse(10_000)], [], 'not while the dead bytes are few');
  a.retire();
  t.equal(a.current, undefined);
  t.not(a.alloc(10)[0], s2, 'a retired slab is not filled any more');
});

t.test('the store keeps entries in slabs; replacements and deletions are compacted away', async (t) => {
  const slabs = new SlabAllocator(4096, 4096);
  const store = new CacheStore({ persister: undefined, logger: silentLogger(), maxBytes: 1 << 20, slabs, compactMinWaste: 0 });
  const scope = { namespace: 'ns', fieldSelector: '', labelSelector: '' };
  const names = Array.from({ length: 40 }, (_, i) => `p${i}`);
  store.replaceScope(
    'pods',
    meta,
    { ...scope, rv: '1' },
    names.map((n) => pod(slabs, n, '1', 100)),
  );
  const first = store.get('pods', 'ns', 'p0') as CachedObject;
  const firstSlab = first.slab;
  t.ok(firstSlab.buf.length === 4096 && firstSlab.used > 0, 'entries share a slab');
  t.equal(store.slabBytes, store.bytes, 'footprint = stored bytes while nothing is dead');
  // Replace most objects one by one (watch events): their old bytes are dead.
  for (let i = 0; i < 35; i++) store.applyEvent('pods', meta, 'MODIFIED', pod(slabs, `p${i}`, '2', 100), '2', scope);
  for (const n of names.slice(35)) t.not(store.get('pods', 'ns', n)?.slab, firstSlab, `${n} moved out of the emptied slab`);
  t.ok(store.slabBytes <= store.bytes * 1.25 + 4096, `dead bytes bounded (${store.slabBytes} for ${store.bytes})`);
  for (const n of names) {
    const o = store.get('pods', 'ns', n) as CachedObject;
    const parsed = JSON.parse(o.json.toString()) as { kind: string; metadata: { name: string; resourceVersion: string } };
    t.equal(parsed.metadata.name, n, `${n}: bytes intact after compaction`);
    t.equal(parsed.kind, 'Pod');
    t.same(o.labels, { app: n }, `${n}: label span still right`);
    t.equal(o.json.length, o.size);
  }
  // Deletions and a LIST that drops objects release their bytes too.
  for (let i = 0; i < 10; i++) store.applyEvent('pods', meta, 'DELETED', pod(slabs, `p${i}`, '3'), '3', scope);
  store.forget('pods', 'ns', 'p10');
  store.replaceScope(
    'pods',
    meta,
    { ...scope, rv: '4' },
    names.slice(30).map((n) => pod(slabs, n, '4', 100)),
  );
  t.equal(store.list('pods', scope)?.items.length, 10);
  t.ok(store.slabBytes <= store.bytes * 1.25 + 4096, `after deletions (${store.slabBytes} for ${store.bytes})`);
  // Slots are reused: an unchanged LIST keeps the same objects (no new bytes).
  const before = store.slabBytes;
  const same = store.list('pods', scope)?.items ?? [];
  store.replaceScope('pods', meta, { ...scope, rv: '5' }, same);
  t.equal(store.slabBytes, before, 'the same objects again cost nothing');
});

t.test('slab entries survive a persistence round trip (snapshot + journal)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-apicache-slab-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const slabs = new SlabAllocator(2048, 2048);
  const make = () => {
    const p = new Persister({ dir, logger: silentLogger(), flushMs: 5 });
    return { p, store: new CacheStore({ persister: p, logger: silentLogger(), maxBytes: 1 << 20, slabs, compactMinWaste: 0 }) };
  };
  const a = make();
  a.p.load();
  const scope = { namespace: 'ns', fieldSelector: '', labelSelector: '' };
  a.store.replaceScope(
    'pods',
    meta,
    { ...scope, rv: '1' },
    Array.from({ length: 30 }, (_, i) => pod(slabs, `p${i}`, '1', 50, { i: String(i) })),
  );
  a.p.flush();
  for (let i = 0; i < 25; i++)
    a.store.applyEvent('pods', meta, 'MODIFIED', pod(slabs, `p${i}`, '2', 60, { i: `m${i}` }), '2', scope);
  a.store.applyEvent('pods', meta, 'DELETED', pod(slabs, 'p29', '3'), '3', scope);
  a.p.flush();
  const want = new Map((a.store.list('pods', scope)?.items ?? []).map((o) => [o.name, o.json.toString()]));
  t.equal(want.size, 29);

  const b = make();
  for (const [name, c] of b.p.load()) b.store.restore(name, c.header, c.entries);
  const got = b.store.list('pods', scope);
  t.equal(got?.rv, '3');
  t.same(new Map((got?.items ?? []).map((o) => [o.name, o.json.toString()])), want, 'the same bytes after a restart');
  t.same(b.store.get('pods', 'ns', 'p3')?.labels, { i: 'm3' });
  t.same(b.store.get('pods', 'ns', 'p27')?.labels, { i: '27' });
  t.equal(
    b.store
      .list('pods', { ...scope, labelSelector: 'i=m7' })
      ?.items.map((o) => o.name)
      .join(),
    'p7',
    'label selectors read the labels from the restored slab bytes',
  );
});

t.test('many replacements of a few objects do not fill the current slab with dead bytes', async (t) => {
  const slabs = new SlabAllocator(1 << 16, 1 << 16);
  const store = new CacheStore({ persister: undefined, logger: silentLogger(), maxBytes: 1 << 20, slabs, compactMinWaste: 4096 });
  const scope = { namespace: 'ns', fieldSelector: '', labelSelector: '' };
  store.replaceScope('pods', meta, { ...scope, rv: '1' }, [pod(slabs, 'a', '1', 200), pod(slabs, 'b', '1', 200)]);
  let most = 0;
  for (let i = 2; i < 2000; i++) {
    store.applyEvent('pods', meta, 'MODIFIED', pod(slabs, i % 2 === 0 ? 'a' : 'b', String(i), 200), String(i), scope);
    most = Math.max(most, store.slabBytes);
  }
  t.ok(most < 4096 + 2 * store.bytes + 1024, `at most ~minWaste of dead bytes held (${most} for ${store.bytes})`);
  t.equal(store.get('pods', 'ns', 'b')?.rv, '1999');
  t.equal(
    (JSON.parse(store.get('pods', 'ns', 'a')?.json.toString() ?? '{}') as { metadata: { resourceVersion: string } }).metadata
      .resourceVersion,
    '1998',
  );
});

t.test('ObjectIndex: objects by namespace and name, replaced, removed, iterated', async (t) => {
  const slabs = new SlabAllocator(4096, 4096);
  const mk = (ns: string, name: string, rv: string) =>
    toCached(JSON.stringify({ metadata: { name, namespace: ns, resourceVersion: rv } }), meta, slabs) as CachedObject;
  const idx = new ObjectIndex();
  const a = mk('ns1', 'a', '1');
  t.equal(idx.set(a), undefined);
  t.equal(idx.set(mk('ns2', 'a', '2')), undefined, 'same name, other namespace');
  t.equal(idx.set(mk('', 'node-1', '3')), undefined, 'cluster-scoped');
  const a2 = mk('ns1', 'a', '4');
  t.equal(idx.set(a2), a, 'a replacement returns the object replaced');
  t.equal(idx.size, 3);
  t.equal(idx.get('ns1', 'a'), a2);
  t.equal(idx.get('ns3', 'a'), undefined);
  t.same(
    [...idx.entries()].map(([k, o]) => [k, o.rv]),
    [
      ['ns1/a', '4'],
      ['ns2/a', '2'],
      ['node-1', '3'],
    ],
    'keys as persisted (objectKey)',
  );
  for (const o of idx.values()) if (o.namespace === 'ns2') idx.delete(o.namespace, o.name);
  t.equal(idx.size, 2, 'deleting while iterating');
  t.equal(idx.delete('ns2', 'a'), undefined, 'twice');
  t.equal(idx.delete('ns1', 'a'), a2);
  idx.set(mk('ns1', 'b', '5'));
  t.same(
    [...idx.values()].map((o) => `${o.namespace}/${o.name}`),
    ['/node-1', 'ns1/b'],
    'an emptied namespace is dropped and comes back',
  );
});
