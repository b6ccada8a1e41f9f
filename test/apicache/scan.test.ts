import t from 'tap';
import { ListSplitter } from '../../src/apicache/list-splitter.ts';
import { scanField, scanObjectMeta } from '../../src/apicache/meta-scan.ts';
import { fieldValue } from '../../src/apicache/selectors.ts';
import { CacheStore, toCached } from '../../src/apicache/store.ts';
import { silentLogger } from '../../src/log.ts';

const meta = { group: '', version: 'v1', kind: 'Pod' };

/** What toCached must index, read with JSON.parse (the oracle). */
function oracle(json: string): { name: string; namespace: string; rv: string; labels: unknown } | undefined {
  let o: { metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: unknown } };
  try {
    o = JSON.parse(json);
  } catch {
    return undefined;
  }
  const md = o?.metadata;
  if (!md?.name) return undefined;
  return { name: md.name, namespace: md.namespace ?? '', rv: md.resourceVersion ?? '', labels: md.labels };
}

const objects: string[] = [
  '{"metadata":{"name":"a","namespace":"n","resourceVersion":"5","labels":{"app":"web","x":"}{\\"]"}},"spec":{"nodeName":"edge-1"}}',
  ' { "kind" : "Pod" , "metadata" : { "labels" : { } , "name" : "b\\u00e9\\"q" } } ',
  '{"spec":{"a":[1,2.5e3,true,false,null,{"b":"\\\\"}],"c":"metadata"},"metadata":{"name":"c","annotations":{"k":"{\\"metadata\\":1}"}}}',
  '{"metadata":{"name":"old"},"metadata":{"name":"new","resourceVersion":"9"}}',
  '{"metadata":{"name":"ünïcode-名前","namespace":"ns","uid":"x"},"status":{}}',
  '{"metadata":{"name":"d","labels":null}}',
  '{"metadata":{"name":null}}',
  '{"metadata":{"namespace":"no-name"}}',
  '{"metadata":{"na\\u006de":"escaped-key"}}',
  `{"metadata":{"name":"e","labels":{"a":"1"}},"data":"${'z'.repeat(300)}\\\\"}`,
  '{}',
  '[]',
  '"str"',
];

t.test('toCached indexes what JSON.parse reads, for odd but valid objects', async (t) => {
  for (const json of objects) {
    const want = oracle(json);
    const got = toCached(Buffer.from(json), meta);
    if (!want) {
      t.equal(got, undefined, `not cached: ${json.slice(0, 60)}`);
      continue;
    }
    t.ok(got, `cached: ${json.slice(0, 60)}`);
    if (!got) continue;
    t.same(
      { name: got.name, namespace: got.namespace, rv: got.rv, labels: got.labels ?? null },
      { ...want, labels: want.labels ?? null },
      json.slice(0, 60),
    );
    // The entry is the same object (kind/apiVersion added when missing), and the apiserver bytes are after `head`.
    const parsed = JSON.parse(got.json.toString('utf8'));
    t.same(
      { ...parsed, kind: undefined, apiVersion: undefined },
      { ...JSON.parse(json), kind: undefined, apiVersion: undefined },
    );
    t.equal(parsed.kind, JSON.parse(json).kind ?? 'Pod');
  }
});

t.test('scanObjectMeta: every truncation and junk suffix of an object is refused', async (t) => {
  for (const json of objects.slice(0, 5)) {
    const b = Buffer.from(json);
    let accepted = 0;
    for (let n = 0; n < b.length - 1; n++) if (scanObjectMeta(b, 0, n) !== undefined) accepted++;
    t.equal(accepted, 0, `no proper prefix accepted: ${json.slice(0, 40)}`);
    t.equal(scanObjectMeta(Buffer.from(`${json}x`)), undefined, 'trailing junk');
    t.equal(scanObjectMeta(Buffer.from(`${json}}`)), undefined, 'extra brace');
  }
  for (const bad of [
    '{"metadata":{"name":"a"]}',
    '{"metadata":{"name":"a"}}]',
    '{"metadata" {"name":"a"}}',
    '{"metadata":{"name":"a",}}',
  ])
    t.equal(toCached(Buffer.from(bad), meta), undefined, bad);
});

t.test('toCached never throws on mutated input (fuzz)', async (t) => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = Buffer.from('{}[]":,\\ a0nu');
  let cached = 0;
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(objects[rnd(5)] as string);
    for (let k = 0; k < 1 + rnd(3); k++) b[rnd(b.length)] = alphabet[rnd(alphabet.length)] as number;
    const o = toCached(b, meta);
    if (o) {
      cached++;
      // Whatever is cached is a complete object and names what JSON.parse would when it parses.
      const want = oracle(b.toString('utf8'));
      if (want) t.equal(o.name, want.name);
    }
  }
  t.ok(cached > 0, 'some mutations stay valid objects');
});

function listBody(n: number): { body: Buffer; items: string[] } {
  const items: string[] = [];
  for (let i = 0; i < n; i++)
    items.push(
      JSON.stringify({
        metadata: { name: `p${i}`, namespace: 'ns', resourceVersion: String(100 + i), labels: { app: i % 2 ? 'a}' : 'b"[' } },
        spec: { note: i === 1 ? 'x\\"}],{' : '', list: [1, { a: [] }] },
      }),
    );
  const body = Buffer.from(
    `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7","continue":""},"items":[${items.join(',')}]}\n`,
  );
  return { body, items };
}

t.test('ListSplitter: every split point of a list body gives the same items and shell', async (t) => {
  const { body, items } = listBody(4);
  for (let cut = 0; cut <= body.length; cut++) {
    const got: string[] = [];
    const s = new ListSplitter((b) => got.push(b.toString()));
    s.write(body.subarray(0, cut));
    s.write(body.subarray(cut));
    const shell = s.end();
    if (got.join('\n') !== items.join('\n') || (shell?.metadata as { resourceVersion?: string })?.resourceVersion !== '7') {
      t.fail(`split at ${cut}`);
      return;
    }
  }
  t.pass('all split points');
  // Three-way splits and one-byte chunks, with predictions for every item (right for even ones).
  let seed = 7;
  for (let round = 0; round < 300; round++) {
    seed = (seed * 48271) % 0x7fffffff;
    const a = seed % body.length;
    const b = a + ((seed >> 8) % (body.length - a));
    const got: [string, boolean][] = [];
    let n = 0;
    const s = new ListSplitter(
      (item, predicted) => got.push([item.toString(), predicted]),
      () => {
        const i = n++;
        return i % 2 === 0 ? Buffer.from((items[i] as string).slice(1)) : Buffer.from('"metadata":{}}');
      },
    );
    const parts =
      round === 0 ? [...body].map((x) => Buffer.from([x])) : [body.subarray(0, a), body.subarray(a, b), body.subarray(b)];
    for (const p of parts) s.write(p);
    if (got.map(([x]) => x).join('\n') !== items.join('\n') || !s.ok || s.end() === undefined) {
      t.fail(`splits ${a}, ${b}`);
      return;
    }
    if (got.some(([, p], i) => p && i % 2 === 1)) {
      t.fail('a wrong prediction was taken');
      return;
    }
  }
  t.pass('random splits with predictions');
});

t.test('ListSplitter refuses what is not a list object, at any split', async (t) => {
  for (const bad of ['[1,2]', '{"items":[1]}', '{"items":[{"a":1}]]', '}']) {
    const body = Buffer.from(bad);
    for (let cut = 0; cut <= body.length; cut++) {
      const s = new ListSplitter(() => {});
      s.write(body.subarray(0, cut));
      s.write(body.subarray(cut));
      t.equal(s.end(), undefined, `${bad} split at ${cut}`);
    }
  }
});

t.test('store.hold: changes during a deferred LIST commit are applied after it', async (t) => {
  const store = new CacheStore({ persister: undefined, logger: silentLogger(), maxBytes: 1 << 20 });
  const pod = (name: string, rv: string) =>
    toCached(JSON.stringify({ metadata: { name, namespace: 'ns', resourceVersion: rv } }), meta) as NonNullable<
      ReturnType<typeof toCached>
    >;
  const scope = { namespace: 'ns', fieldSelector: '', labelSelector: '' };
  const release = store.hold('pods');
  // A watch event newer than the LIST arrives while the LIST is still being processed.
  store.applyEvent('pods', meta, 'MODIFIED', pod('a', '20'), '20', scope);
  store.applyEvent('pods', meta, 'DELETED', pod('b', '21'), '21', scope);
  t.equal(store.get('pods', 'ns', 'a'), undefined, 'queued, not applied');
  store.replaceScope('pods', meta, { ...scope, rv: '10' }, [pod('a', '9'), pod('b', '8')], true);
  t.equal(store.get('pods', 'ns', 'a')?.rv, '9');
  release();
  release(); // idempotent
  t.equal(store.get('pods', 'ns', 'a')?.rv, '20', 'the newer event wins');
  t.equal(store.get('pods', 'ns', 'b'), undefined);
  t.equal(store.list('pods', scope)?.rv, '21');
  // Without a hold, changes apply at once.
  store.applyEvent('pods', meta, 'ADDED', pod('c', '22'), '22', scope);
  t.equal(store.get('pods', 'ns', 'c')?.rv, '22');
});

t.test('labels are read from the JSON on demand and match selectors', async (t) => {
  const store = new CacheStore({ persister: undefined, logger: silentLogger(), maxBytes: 1 << 20 });
  const { body } = listBody(6);
  const items: NonNullable<ReturnType<typeof toCached>>[] = [];
  const s = new ListSplitter((b) => {
    const o = toCached(b, meta);
    if (o) items.push(o);
  });
  s.write(body);
  store.replaceScope('pods', meta, { namespace: '', fieldSelector: '', labelSelector: '', rv: '7' }, items);
  t.same(
    store.list('pods', { namespace: '', fieldSelector: '', labelSelector: 'app=a}' })?.items.map((o) => o.name),
    ['p1', 'p3', 'p5'],
  );
  t.same(items[0]?.labels, { app: 'b"[' });
});

t.test('scanField reads a field selector path as fieldValue(JSON.parse) does, or gives up', async (t) => {
  const docs = [
    ...objects,
    '{"spec":{"nodeName":"edge-1","restartPolicy":"Always"},"status":{"phase":"Running","podIP":"10.0.0.1"}}',
    '{"spec":{"nodeName":"a"},"spec":{"nodeName":"b"}}',
    '{"spec":{"nodeName":"a\\u00e9\\"b"},"status":null}',
    '{"spec":{"nodeName":null,"n":3,"t":true,"f":false,"o":{},"l":[1]},"status":"x"}',
    '{"spec":{"containers":[{"name":"c"}]}}',
    '{"spec":{"node\\u004eame":"escaped"}}',
    ' { "spec" : { "nodeName" : "ws" } } ',
    '{"spec":{"nodeName":"x"}} junk',
  ];
  const paths = [
    'spec.nodeName',
    'status.phase',
    'status.podIP',
    'spec.restartPolicy',
    'metadata.name',
    'spec.n',
    'spec.t',
    'spec.f',
    'spec.o',
    'spec.l',
    'spec.containers.0.name',
    'status.phase.deeper',
    'nope.nothing',
    'spec',
    'metadata.ünï',
  ];
  let scanned = 0;
  for (const json of docs) {
    let parsed: unknown;
    let valid = true;
    try {
      parsed = JSON.parse(json);
    } catch {
      valid = false;
    }
    for (const path of paths) {
      const got = scanField(Buffer.from(json), path.split('.'));
      if (!valid || parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        t.equal(got, undefined, `not an object: ${json.slice(0, 40)} ${path}`);
        continue;
      }
      if (got === undefined) continue; // unsure: the caller parses
      scanned++;
      t.equal(got, fieldValue(parsed, path), `${json.slice(0, 50)} ${path}`);
    }
  }
  t.ok(scanned > 40, `most lookups answered by the scan (${scanned})`);
  t.equal(scanField(Buffer.from('{"spec":{"nodeName":"a\\u00e9"}}'), ['spec', 'nodeName']), 'aé');
  t.equal(scanField(Buffer.from('{"spec":{"l":[1]}}'), ['spec', 'l', '0']), undefined, 'arrays are left to JSON.parse');
  t.equal(scanField(Buffer.from('{"spec":{"n":3}}'), ['spec', 'n']), undefined, 'numbers are left to JSON.parse');
});

t.test('scanField never throws and agrees with JSON.parse on mutated input (fuzz)', async (t) => {
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const base = '{"metadata":{"name":"a"},"spec":{"nodeName":"edge-1","x":[1,{"y":"z"}]},"status":{"phase":"Running"}}';
  const alphabet = Buffer.from('{}[]":,\\ a0nu');
  let agreed = 0;
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(base);
    for (let k = 0; k < 1 + rnd(3); k++) b[rnd(b.length)] = alphabet[rnd(alphabet.length)] as number;
    for (const path of ['spec.nodeName', 'status.phase']) {
      const got = scanField(b, path.split('.'));
      if (got === undefined) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(b.toString('utf8'));
      } catch {
        continue; // the scan does not check scalar grammar inside skipped values
      }
      t.equal(got, fieldValue(parsed, path));
      agreed++;
    }
  }
  t.ok(agreed > 100, `answers checked (${agreed})`);
});

t.test('replaceScope with a field selector reads objects outside it by scanning', async (t) => {
  const store = new CacheStore({ persister: undefined, logger: silentLogger(), maxBytes: 1 << 20 });
  const pod = (name: string, node: string) =>
    toCached(
      JSON.stringify({ metadata: { name, namespace: 'ns', resourceVersion: '1' }, spec: { nodeName: node } }),
      meta,
    ) as NonNullable<ReturnType<typeof toCached>>;
  const all = { namespace: '', fieldSelector: '', labelSelector: '' };
  store.replaceScope('pods', meta, { ...all, rv: '1' }, [pod('a', 'n1'), pod('b', 'n2'), pod('c', 'n1')]);
  const parse = JSON.parse;
  let parses = 0;
  JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
    parses++;
    return parse(text, reviver);
  }) as typeof JSON.parse;
  try {
    const n1 = { namespace: '', fieldSelector: 'spec.nodeName=n1', labelSelector: '' };
    store.replaceScope('pods', meta, { ...n1, rv: '2' }, [pod('a', 'n1')]);
    t.same(
      store.list('pods', all)?.items.map((o) => o.name),
      ['a', 'b'],
      'c (on n1, not in the new LIST) is gone; b (on n2) stays',
    );
    t.same(
      store.list('pods', n1)?.items.map((o) => o.name),
      ['a'],
    );
  } finally {
    JSON.parse = parse;
  }
  t.equal(parses, 0, 'no object was parsed');
});
