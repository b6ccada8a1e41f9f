import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:http';
import t from 'tap';
import { ConfigSchema } from '../../src/config/schema.ts';
import type { KubeConnection } from '../../src/kube/connection.ts';
import { silentLogger } from '../../src/log.ts';
import { createMetricsRegistry } from '../../src/metrics.ts';
import { ServiceRegistry } from '../../src/registry/registry.ts';
import { checkClusterKey, KeyRing } from '../../src/witness/auth.ts';
import { ringSuccessors, WitnessModule } from '../../src/witness/module.ts';
import {
  REPORT_ANNOTATION,
  REPORT_MAC_ANNOTATION,
  type Report,
  readDatagram,
  readReport,
  signProbe,
  signReport,
} from '../../src/witness/report.ts';

const clusterKey = randomBytes(32);
const keys = new KeyRing(clusterKey);
const now = Date.now();

function report(node: string, extra: Partial<Report> = {}): Report {
  return {
    v: 1,
    node,
    ts: new Date(now).toISOString(),
    agentVersion: '0.1.0',
    cloud: { reachable: true, known: true, since: new Date(now - 60_000).toISOString() },
    peers: [{ node: 'a', lastHeard: new Date(now - 1_000).toISOString(), rttMs: 1 }],
    ...extra,
  };
}
const opts = { now, maxSkewMs: 30_000 };

async function metric(
  reg: ReturnType<typeof createMetricsRegistry>,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const m = reg.getSingleMetric(name);
  const data = m ? await m.get() : undefined;
  return data?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
}

t.test('keys: too short is refused; node keys differ per node', async (t) => {
  t.throws(() => checkClusterKey(Buffer.from('short\n')), { code: 'MESHLET_ERR_WITNESS_KEY' });
  t.equal(checkClusterKey(Buffer.from(`${'k'.repeat(32)}\n`)).length, 32, 'trailing newline dropped');
  t.not(keys.keyOf('a').toString('hex'), keys.keyOf('b').toString('hex'));
});

t.test('reports: a good one passes; malformed and wrongly signed ones are rejected with a reason', async (t) => {
  const good = signReport(keys, report('b'));
  t.match(readReport(keys, 'witness-b', good, opts), { ok: true, report: { node: 'b' } });

  t.same(readReport(keys, 'witness-b', undefined, opts), { ok: false, reason: 'malformed' }, 'no annotations');
  t.same(readReport(keys, 'witness-b', { ...good, [REPORT_ANNOTATION]: '{not json' }, opts), { ok: false, reason: 'malformed' });
  const extraField = JSON.stringify({ ...report('b'), evil: true });
  t.same(
    readReport(keys, 'witness-b', { [REPORT_ANNOTATION]: extraField, [REPORT_MAC_ANNOTATION]: keys.sign('b', extraField) }, opts),
    { ok: false, reason: 'malformed' },
    'unknown field',
  );
  const badName = JSON.stringify(report('B_ad'));
  t.same(
    readReport(keys, 'witness-b', { [REPORT_ANNOTATION]: badName, [REPORT_MAC_ANNOTATION]: keys.sign('b', badName) }, opts),
    { ok: false, reason: 'malformed' },
  );
  t.same(
    readReport(keys, 'witness-b', { ...good, [REPORT_MAC_ANNOTATION]: 'x' }, opts),
    { ok: false, reason: 'malformed' },
    'bad mac',
  );

  // c writes a report claiming to be b, signed with its own key.
  const forgedText = JSON.stringify(report('b'));
  t.same(
    readReport(keys, 'witness-b', { [REPORT_ANNOTATION]: forgedText, [REPORT_MAC_ANNOTATION]: keys.sign('c', forgedText) }, opts),
    { ok: false, reason: 'bad-signature' },
    'signed by the wrong node',
  );
  // A stranger with another cluster key.
  t.same(readReport(keys, 'witness-b', signReport(new KeyRing(randomBytes(32)), report('b')), opts), {
    ok: false,
    reason: 'bad-signature',
  });
  // b's genuine report copied into c's lease.
  t.same(readReport(keys, 'witness-c', good, opts), { ok: false, reason: 'wrong-node' });
  t.same(readReport(keys, 'witness-b', signReport(keys, report('b', { ts: new Date(now + 120_000).toISOString() })), opts), {
    ok: false,
    reason: 'future',
  });
  // Tampering after signing.
  const tampered = { ...good, [REPORT_ANNOTATION]: (good[REPORT_ANNOTATION] ?? '').replace('"rttMs":1', '"rttMs":2') };
  t.same(readReport(keys, 'witness-b', tampered, opts), { ok: false, reason: 'bad-signature' });
});

t.test('datagrams: only signed probes addressed to us are accepted', async (t) => {
  const p = { t: 'probe' as const, from: 'b', to: 'a', nonce: 'abcdefghijklmnop', ts: now };
  t.match(readDatagram(keys, 'a', signProbe(keys, p)), { ok: true });
  t.same(readDatagram(keys, 'c', signProbe(keys, p)), { ok: false, reason: 'wrong-node' });
  t.same(readDatagram(keys, 'a', signProbe(new KeyRing(randomBytes(32)), p)), { ok: false, reason: 'bad-signature' });
  t.same(readDatagram(keys, 'a', Buffer.from('hello')), { ok: false, reason: 'malformed' });
  t.same(readDatagram(keys, 'a', Buffer.alloc(5000, 0x7b)), { ok: false, reason: 'malformed' });
});

t.test('ring successors: each node is witnessed by k peers', async (t) => {
  const nodes = Array.from({ length: 50 }, (_, i) => ({ node: `n${i}` }));
  const witnessedBy = new Map<string, number>();
  for (const n of nodes) {
    const targets = ringSuccessors(n.node, nodes, 3);
    t.equal(targets.length, 3);
    t.notOk(targets.some((x) => x.node === n.node));
    for (const x of targets) witnessedBy.set(x.node, (witnessedBy.get(x.node) ?? 0) + 1);
  }
  t.same(new Set(witnessedBy.values()), new Set([3]), 'every node exactly 3 witnesses');
  t.equal(ringSuccessors('n0', nodes, 0).length, 49, 'k = 0: all');
});

t.test('two agents probe each other over UDP and publish signed reports', async (t) => {
  const writes: { method: string; url: string; body: string }[] = [];
  const created = new Set<string>();
  const fake = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      writes.push({ method: req.method ?? '', url: req.url ?? '', body });
      // Like the apiserver: a Lease exists once POSTed, per name (a and b report independently).
      const name = (req.url ?? '').split('/leases/')[1];
      if (req.method === 'POST') created.add((JSON.parse(body || '{}') as { metadata?: { name?: string } }).metadata?.name ?? '');
      if (req.method === 'PATCH' && (name === undefined || !created.has(name))) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","reason":"NotFound"}');
      } else res.writeHead(200, { 'content-type': 'application/json' }).end(body || '{}');
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => fake.close(() => r())));
  const addr = fake.address();
  const conn: KubeConnection = {
    server: new URL(`http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`),
    description: 'fake',
    requestOptions: async () => ({}),
  };
  const make = (node: string, address: string, port: number, peers: string[]) => {
    const config = ConfigSchema.parse({
      node: { name: node },
      witness: { enabled: true, address, port, probeIntervalMs: 100, probeTimeoutMs: 300, reportIntervalMs: 300, peers },
    });
    const metrics = createMetricsRegistry();
    const registry = new ServiceRegistry({ coalesceMs: 10, logger: silentLogger() });
    return { metrics, module: new WitnessModule({ config, registry, metrics, logger: silentLogger(), clusterKey, conn }) };
  };
  const a = make('a', '127.0.0.1', 0, []);
  await a.module.start();
  t.teardown(() => a.module.stop());
  const port = a.module.port;
  const b = make('b', '127.0.0.2', port, ['a=127.0.0.1']);
  await b.module.start();
  t.teardown(() => b.module.stop());
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && !b.module.buildReport().peers[0]?.lastHeard) await new Promise((r) => setTimeout(r, 50));
  const r = b.module.buildReport();
  t.equal(r.peers[0]?.node, 'a');
  t.ok(r.peers[0]?.lastHeard, 'b heard a');
  t.ok((await metric(a.metrics, 'meshlet_witness_acks_sent_total', {})) >= 1, 'a acknowledged');
  t.match(r.peers[0]?.cloud, { known: false }, "a's cloud view travels in its acks");

  // A stranger's probe and garbage are rejected and counted by a; neither gets an answer.
  const stranger = createSocket('udp4');
  t.teardown(() => stranger.close());
  let answered = false;
  stranger.on('message', () => {
    answered = true;
  });
  await new Promise<void>((r) => stranger.bind(0, '127.0.0.3', () => r()));
  const forged = signProbe(new KeyRing(randomBytes(32)), {
    t: 'probe',
    from: 'b',
    to: 'a',
    nonce: 'zzzzzzzzzzzzzzzzzz',
    ts: now,
  });
  stranger.send(forged, port, '127.0.0.1');
  stranger.send(Buffer.from('{"t":"ack"}'), port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(answered, false, 'no acknowledgement for a stranger');
  t.equal(await metric(a.metrics, 'meshlet_witness_rejected_total', { reason: 'bad-signature' }), 1);
  t.equal(await metric(a.metrics, 'meshlet_witness_rejected_total', { reason: 'malformed' }), 1);

  // Reports: first PATCH is 404, then the Lease is created, then patched.
  const end = Date.now() + 15_000; // generous: CI shares two cores with other test files
  while (Date.now() < end && writes.filter((w) => w.url.includes('witness-b') && w.method === 'PATCH').length < 2) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const post = writes.find((w) => w.method === 'POST' && w.body.includes('"witness-b"'));
  t.ok(post, 'report Lease created');
  t.match(post?.url, '/apis/coordination.k8s.io/v1/namespaces/meshlet-system/leases');
  const patch = writes.filter((w) => w.method === 'PATCH' && w.url.endsWith('/leases/witness-b')).at(-1);
  const annotations = (JSON.parse(patch?.body ?? '{}') as { metadata: { annotations: Record<string, string> } }).metadata
    .annotations;
  t.match(readReport(keys, 'witness-b', annotations, { now: Date.now(), maxSkewMs: 1_000 }), { ok: true, report: { node: 'b' } });
  t.ok((patch?.body.length ?? 0) < 1_000, `report write body ${patch?.body.length} bytes`);
});
