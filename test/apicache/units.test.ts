import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ListSplitter } from '../../src/apicache/list-splitter.ts';
import { Persister } from '../../src/apicache/persist.ts';
import { parseRequest } from '../../src/apicache/request-info.ts';
import { canonicalSelector, matchLabels, parseLabelSelector } from '../../src/apicache/selectors.ts';
import { type CachedObject, CacheStore, rvNewer, toCached } from '../../src/apicache/store.ts';
import { silentLogger } from '../../src/log.ts';

t.test('ListSplitter splits items at any chunk boundary and keeps the shell', async (t) => {
  const items = [
    { metadata: { name: 'a', labels: { x: '}{"]' } } },
    { metadata: { name: 'b\\"' } },
    { metadata: { name: 'c' }, spec: { l: [1, [2]] } },
  ];
  const body = Buffer.from(
    JSON.stringify({ kind: 'ServiceList', apiVersion: 'v1', metadata: { resourceVersion: '42', continue: '' }, items }),
  );
  for (const size of [1, 2, 3, 7, 64, body.length]) {
    const got: string[] = [];
    const s = new ListSplitter((b) => got.push(b.toString()));
    for (let i = 0; i < body.length; i += size) s.write(body.subarray(i, i + size));
    t.same(
      got.map((g) => JSON.parse(g)),
      items,
      `chunk ${size}`,
    );
    t.match(s.end(), { kind: 'ServiceList', metadata: { resourceVersion: '42' }, items: [] });
  }
  const bad = new ListSplitter(() => {});
  bad.write(Buffer.from('[1,2]'));
  t.equal(bad.end(), undefined);
});

t.test('selectors and request parsing', async (t) => {
  const reqs = parseLabelSelector('app in (a, b),tier!=front,!canary,env');
  t.ok(matchLabels(reqs, { app: 'a', tier: 'back', env: 'x' }));
  t.notOk(matchLabels(reqs, { app: 'a', tier: 'back', env: 'x', canary: '1' }));
  t.notOk(matchLabels(reqs, { app: 'c', env: 'x' }));
  t.equal(canonicalSelector('b==1, a=2'), 'a=2,b=1');
  t.match(parseRequest('GET', '/api/v1/namespaces/ns/services?watch=true'), {
    verb: 'watch',
    resource: 'services',
    namespace: 'ns',
  });
  t.match(parseRequest('GET', '/apis/discovery.k8s.io/v1/endpointslices'), {
    verb: 'list',
    group: 'discovery.k8s.io',
    resource: 'endpointslices',
  });
  t.match(parseRequest('GET', '/api/v1/namespaces/kube-system'), { verb: 'get', resource: 'namespaces', name: 'kube-system' });
  t.match(parseRequest('PUT', '/api/v1/nodes/n1/status'), {
    verb: 'update',
    resource: 'nodes',
    name: 'n1',
    subresource: 'status',
  });
  t.ok(rvNewer('100', '99'));
  t.notOk(rvNewer('99', '100'));
});

t.test('persistence: snapshot + journal round trip; torn journal tail and bad snapshot are discarded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-apicache-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const make = () => {
    const corrupt: number[] = [];
    const p = new Persister({ dir, logger: silentLogger(), flushMs: 5, onCorrupt: (n) => corrupt.push(n) });
    const store = new CacheStore({ persister: p, logger: silentLogger(), maxBytes: 1 << 20 });
    return { p, store, corrupt };
  };
  const meta = { group: '', version: 'v1', kind: 'Service' };
  const svc = (name: string, rv: string) =>
    toCached(JSON.stringify({ metadata: { name, namespace: 'ns', resourceVersion: rv } }), meta);
  const a = make();
  a.p.load();
  const scope = { namespace: 'ns', fieldSelector: '', labelSelector: '', rv: '10' };
  a.store.replaceScope(
    'services',
    meta,
    scope,
    [svc('one', '5'), svc('two', '6')].filter((o) => o !== undefined),
  );
  a.store.applyEvent('services', meta, 'ADDED', svc('three', '11'), '11', scope);
  a.store.applyEvent('services', meta, 'DELETED', svc('one', '12'), '12', scope);
  a.p.flush();

  const b = make();
  for (const [name, c] of b.p.load()) b.store.restore(name, c.header, c.entries);
  const list = b.store.list('services', { namespace: 'ns', fieldSelector: '', labelSelector: '' });
  t.same(
    list?.items.map((o) => o.name),
    ['three', 'two'],
  );
  t.equal(list?.rv, '12', 'the scope RV followed the watch');
  t.match(JSON.parse(list?.items[0]?.json.toString() ?? '{}'), { kind: 'Service', apiVersion: 'v1' });

  // A torn last journal line: everything before it is kept.
  const journal = join(dir, 'r_services.journal');
  writeFileSync(journal, `${readFileSync(journal, 'utf8')}deadbeef P ns/four\t{"metadata":{"name":"fo`);
  const c = make();
  for (const [name, col] of c.p.load()) c.store.restore(name, col.header, col.entries);
  t.same(
    c.store.list('services', { namespace: 'ns', fieldSelector: '', labelSelector: '' })?.items.map((o) => o.name),
    ['three', 'two'],
  );
  t.same(c.corrupt, [1]);

  // A snapshot whose checksum fails is discarded whole.
  const snap = join(dir, 'r_services.snap');
  writeFileSync(snap, readFileSync(snap, 'utf8').replace('"two"', '"TWO"'));
  const d = make();
  const loaded = d.p.load();
  t.notOk(loaded.has('r_services'));
  t.same(d.corrupt, [1]);
});

t.test('impersonation headers: groups as sent in legacy mode; a node by name only when constrained', async (t) => {
  const { impersonationHeaders } = await import('../../src/apicache/server.ts');
  t.same(impersonationHeaders('system:node:a', ['system:nodes'], 'legacy'), {
    'impersonate-user': 'system:node:a',
    'impersonate-group': ['system:nodes'],
  });
  t.same(
    impersonationHeaders('system:node:a', ['system:nodes'], 'constrained'),
    { 'impersonate-user': 'system:node:a' },
    'the apiserver refuses associated-node impersonation with an explicit group (test/chart/install.test.ts)',
  );
  t.same(
    impersonationHeaders('system:kube-proxy', ['k3s'], 'constrained'),
    { 'impersonate-user': 'system:kube-proxy', 'impersonate-group': ['k3s'] },
    'other users keep their groups (impersonate:user-info)',
  );
  t.same(impersonationHeaders('alice', [], 'legacy'), { 'impersonate-user': 'alice' });
});

t.test('ListSplitter skips a predicted item with one compare, and scans a changed one', async (t) => {
  const items = [{ metadata: { name: 'a', rv: '1' } }, { metadata: { name: 'b', note: 'x\\"}' } }];
  const body = Buffer.from(JSON.stringify({ kind: 'PodList', metadata: { resourceVersion: '7' }, items }));
  const json = items.map((i) => Buffer.from(JSON.stringify(i)));
  for (const size of [5, body.length]) {
    const got: [string, boolean][] = [];
    let n = 0;
    // Item 0 is predicted right, item 1 wrong (it must then be scanned normally).
    const s = new ListSplitter(
      (b, predicted) => got.push([b.toString(), predicted]),
      () => (n++ === 0 ? (json[0] as Buffer).subarray(1) : Buffer.from('"metadata":{}}')),
    );
    for (let i = 0; i < body.length; i += size) s.write(body.subarray(i, i + size));
    t.same(
      got.map(([b]) => JSON.parse(b)),
      items,
      `chunk ${size}`,
    );
    // A prediction is only used when the whole item is in one chunk.
    if (size === body.length)
      t.same(
        got.map(([, p]) => p),
        [true, false],
      );
    t.match(s.end(), { kind: 'PodList', metadata: { resourceVersion: '7' } });
  }
});

t.test('toCached keeps one compact Buffer and where the apiserver bytes start', async (t) => {
  const raw = '{"metadata":{"name":"p","namespace":"n","resourceVersion":"5","labels":{"a":"b"}},"spec":{}}';
  const o = toCached(Buffer.from(`xx${raw}`).subarray(2), { group: '', version: 'v1', kind: 'Pod' });
  t.ok(o && Buffer.isBuffer(o.json));
  t.equal(o?.json.toString(), `{"kind":"Pod","apiVersion":"v1",${raw.slice(1)}`);
  t.equal(o?.json.subarray(o.head).toString(), raw.slice(1));
  t.same(o?.labels, { a: 'b' });
  const pretty = toCached(JSON.stringify(JSON.parse(raw), null, 2), undefined);
  t.equal(pretty?.json.toString(), raw, 'newlines are compacted away (one line per object on disk)');
});

t.test('replaceScope remembers each scope LIST order, so an unchanged item is recognised', async (t) => {
  const store = new CacheStore({ persister: undefined, logger: silentLogger(), maxBytes: 1 << 20 });
  const meta = { group: '', version: 'v1', kind: 'Pod' };
  const pod = (name: string, rv: string) =>
    toCached(JSON.stringify({ metadata: { name, namespace: 'ns', resourceVersion: rv } }), meta) as CachedObject;
  const scope = { namespace: '', fieldSelector: 'spec.nodeName=n1', labelSelector: '' };
  const b = pod('b', '2');
  store.replaceScope('pods', meta, { ...scope, rv: '3' }, [b, pod('a', '1')]);
  t.equal(store.expectedItem('pods', scope, 0), b, 'position 0 is the first item of the last LIST');
  t.equal(store.expectedItem('pods', scope, 1)?.name, 'a');
  t.equal(store.expectedItem('pods', scope, 2), undefined);
  t.equal(store.expectedItem('pods', { ...scope, fieldSelector: '' }, 0), undefined, 'per scope');
  // Reusing the same objects keeps them (identity) and moves the scope's RV.
  store.replaceScope('pods', meta, { ...scope, rv: '9' }, [b]);
  t.equal(store.get('pods', 'ns', 'b'), b);
  t.equal(store.list('pods', scope)?.rv, '9');
  t.equal(store.expectedItem('pods', scope, 1), undefined);
});
