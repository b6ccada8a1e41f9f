import t from 'tap';
import { policyFromService } from '../../policies/model.ts';
import { buildBalancer } from '../../proxy/balance/build.ts';
import { ClientIpAffinityPicker } from '../../proxy/balance/client-ip.ts';
import { LeastRequestPicker } from '../../proxy/balance/least-request.ts';
import { LocalityPicker } from '../../proxy/balance/locality.ts';
import { OutlierPicker } from '../../proxy/balance/outlier.ts';
import { newStats, type Picker, type ProxyEndpoint } from '../../proxy/balance/picker.ts';
import { RandomPicker } from '../../proxy/balance/random.ts';
import { RingHashPicker } from '../../proxy/balance/ring-hash.ts';
import { RoundRobinPicker } from '../../proxy/balance/round-robin.ts';
import { endpointsOf } from '../../proxy/route.ts';
import { endpoint, service } from './helpers.ts';

function eps(n: number, extra: (i: number) => Partial<ProxyEndpoint> = () => ({})): ProxyEndpoint[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `198.18.0.${i + 1}:80`,
    address: `198.18.0.${i + 1}`,
    port: 80,
    nodeName: 'node-a',
    zone: 'zone-a',
    ready: true,
    stats: newStats(),
    ...extra(i),
  }));
}

function counts(
  picker: Picker,
  n: number,
  req: (i: number) => { clientIp: string; headers?: Record<string, string> },
): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const ep = picker.pick(req(i));
    const id = ep?.id ?? 'none';
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

/** A seeded PRNG (mulberry32) so distribution checks are deterministic. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('round robin: exactly even, skips excluded and ejected endpoints', async (t) => {
  const p = new RoundRobinPicker();
  const list = eps(4);
  p.update(list);
  t.same([...counts(p, 400, () => ({ clientIp: '198.18.1.1' })).values()], [100, 100, 100, 100]);
  t.equal(p.pick({ clientIp: 'x', exclude: new Set(list.slice(0, 3).map((e) => e.id)) })?.id, list[3]?.id);
  (list[0] as ProxyEndpoint).stats.ejectedUntil = Date.now() + 60_000;
  t.notOk([...counts(p, 30, () => ({ clientIp: 'x' })).keys()].includes(list[0]?.id as string));
});

t.test('random: every endpoint within ±15% of its share', async (t) => {
  const p = new RandomPicker(seeded(1));
  p.update(eps(5));
  for (const c of counts(p, 10_000, () => ({ clientIp: 'x' })).values()) t.ok(c > 1700 && c < 2300, `${c}`);
});

t.test('least request (p2c): load goes to the less busy endpoints', async (t) => {
  const list = eps(3);
  const p = new LeastRequestPicker(seeded(2));
  p.update(list);
  (list[0] as ProxyEndpoint).stats.active = 10;
  const c = counts(p, 3000, () => ({ clientIp: 'x' }));
  t.equal(c.get(list[0]?.id as string) ?? 0, 0, 'the busy endpoint loses every duel');
  t.ok((c.get(list[1]?.id as string) ?? 0) > 1200 && (c.get(list[2]?.id as string) ?? 0) > 1200);
});

t.test('ring hash: stable per key, spread across endpoints, minimal disruption on removal', async (t) => {
  const list = eps(5);
  const p = new RingHashPicker({ from: 'header', name: 'x-user' });
  p.update(list);
  const req = (i: number) => ({ clientIp: '198.18.9.9', headers: { 'x-user': `user-${i}` } });
  const before = Array.from({ length: 2000 }, (_, i) => p.pick(req(i))?.id);
  t.same(
    Array.from({ length: 2000 }, (_, i) => p.pick(req(i))?.id),
    before,
    'same key, same endpoint',
  );
  const spread = counts(p, 2000, req);
  t.equal(spread.size, 5);
  for (const c of spread.values()) t.ok(c > 200 && c < 700, `share ${c}/2000`);
  const removed = list[2]?.id;
  p.update(list.filter((e) => e.id !== removed));
  let moved = 0;
  let toRemoved = 0;
  for (let i = 0; i < 2000; i++) {
    const now = p.pick(req(i))?.id;
    if (before[i] !== removed && now !== before[i]) moved++;
    if (now === removed) toRemoved++;
  }
  t.equal(toRemoved, 0, 'nothing goes to the removed endpoint');
  t.equal(moved, 0, 'keys of the remaining endpoints stay where they were');

  const cookie = new RingHashPicker({ from: 'cookie', name: 'session' });
  cookie.update(list);
  const a = cookie.pick({ clientIp: '1', headers: { cookie: 'a=1; session=abc' } })?.id;
  t.equal(cookie.pick({ clientIp: '2', headers: { cookie: 'session=abc' } })?.id, a, 'cookie, not client IP');
  const ip = new RingHashPicker({ from: 'source-ip' });
  ip.update(list);
  t.equal(ip.pick({ clientIp: '198.18.3.3' })?.id, ip.pick({ clientIp: '198.18.3.3' })?.id);
});

t.test('ClientIP affinity: sticky for the timeout, then re-balanced; survives updates', async (t) => {
  const list = eps(3);
  const p = new ClientIpAffinityPicker(new RoundRobinPicker(), 60);
  p.update(list);
  const first = p.pick({ clientIp: '198.18.0.50' })?.id;
  for (let i = 0; i < 10; i++) t.equal(p.pick({ clientIp: '198.18.0.50' })?.id, first);
  t.not(p.pick({ clientIp: '198.18.0.51' })?.id, first, 'another client gets the next endpoint');
  p.update(list.slice());
  t.equal(p.pick({ clientIp: '198.18.0.50' })?.id, first, 'kept across an endpoint update');
  p.update(list.filter((e) => e.id !== first));
  t.not(p.pick({ clientIp: '198.18.0.50' })?.id, first, 'moved when its endpoint is gone');
  const now = p.pick({ clientIp: '198.18.0.60' })?.id;
  await new Promise((r) => setTimeout(r, 100));
  p.pick({ clientIp: 'other' });
  t.not(p.pick({ clientIp: '198.18.0.60' })?.id, undefined);
  t.ok(now !== undefined);
});

t.test('locality: internalTrafficPolicy Local and PreferClose tiers', async (t) => {
  const list = eps(6, (i) => ({ nodeName: i < 2 ? 'node-a' : 'node-b', zone: i < 4 ? 'zone-a' : 'zone-b' }));
  const local = new LocalityPicker(
    { nodeName: 'node-a', zone: 'zone-a', nodeLocalOnly: true, preferClose: false },
    () => new RoundRobinPicker(),
  );
  local.update(list);
  t.same([...counts(local, 10, () => ({ clientIp: 'x' })).keys()].sort(), [list[0]?.id, list[1]?.id]);
  t.equal(
    local.pick({ clientIp: 'x', exclude: new Set([list[0]?.id as string, list[1]?.id as string]) }),
    undefined,
    'never leaves the node',
  );

  const close = new LocalityPicker(
    { nodeName: 'node-a', zone: 'zone-a', nodeLocalOnly: false, preferClose: true },
    () => new RoundRobinPicker(),
  );
  close.update(list);
  t.same([...counts(close, 10, () => ({ clientIp: 'x' })).keys()].sort(), [list[0]?.id, list[1]?.id], 'same node first');
  const notLocal = new Set([list[0]?.id as string, list[1]?.id as string]);
  t.match(close.pick({ clientIp: 'x', exclude: notLocal })?.zone, 'zone-a', 'then same zone');
  const notZone = new Set([...notLocal, list[2]?.id as string, list[3]?.id as string]);
  t.match(close.pick({ clientIp: 'x', exclude: notZone })?.zone, 'zone-b', 'then anywhere');
});

t.test('outlier ejection wraps a picker; panic mode when all are ejected', async (t) => {
  const list = eps(4);
  const p = new OutlierPicker(new RoundRobinPicker(), { consecutiveFailures: 2, ejectionMs: 60_000, maxEjectionPercent: 50 });
  p.update(list);
  const [a, b, c] = list as [ProxyEndpoint, ProxyEndpoint, ProxyEndpoint];
  t.notOk(p.failure(a));
  t.ok(p.failure(a), 'second failure in a row ejects');
  t.notOk([...counts(p, 20, () => ({ clientIp: 'x' })).keys()].includes(a.id));
  p.failure(b);
  t.ok(p.failure(b));
  p.failure(c);
  t.notOk(p.failure(c), 'maxEjectionPercent caps ejections at half');
  const all = new OutlierPicker(new RoundRobinPicker(), { consecutiveFailures: 1, ejectionMs: 60_000, maxEjectionPercent: 100 });
  const one = eps(1);
  all.update(one);
  all.failure(one[0] as ProxyEndpoint);
  t.equal(all.pick({ clientIp: 'x' })?.id, one[0]?.id, 'panic: an ejected endpoint beats none');
  all.success(one[0] as ProxyEndpoint);
  t.equal(one[0]?.stats.consecutiveFailures, 0);
});

t.test('ready endpoints only; terminating-but-serving ones as the fallback', async (t) => {
  const port = { name: 'http', port: 80, protocol: 'TCP' as const, targetPort: 8080 };
  const slice = (endpoints: ReturnType<typeof endpoint>[]) => ({
    namespace: 'default',
    name: 's',
    serviceName: 'web',
    addressType: 'IPv4' as const,
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' as const }],
    endpoints,
  });
  const terminating = { ready: false, serving: true, terminating: true };
  const mixed = endpointsOf(
    port,
    [slice([endpoint('198.18.0.1'), endpoint('198.18.0.2', { conditions: terminating })])],
    undefined,
  );
  t.same(
    mixed.map((e) => e.id),
    ['198.18.0.1:8080'],
  );
  const onlyTerminating = endpointsOf(port, [slice([endpoint('198.18.0.2', { conditions: terminating })])], undefined);
  t.same(
    onlyTerminating.map((e) => [e.id, e.ready]),
    [['198.18.0.2:8080', false]],
  );
  const notServing = endpointsOf(
    port,
    [slice([endpoint('198.18.0.3', { conditions: { ready: false, serving: false, terminating: true } })])],
    undefined,
  );
  t.same(notServing, []);
  const carried = endpointsOf(port, [slice([endpoint('198.18.0.1')])], mixed);
  t.equal(carried[0]?.stats, mixed[0]?.stats, 'counters carry over by id');
});

t.test('policy from the Service: annotations, affinity, traffic policies, warnings', async (t) => {
  const svc = service('web', [], {
    annotations: { 'meshlet.io/lb-policy': 'ring-hash', 'meshlet.io/hash-key': 'header:X-User' },
    sessionAffinity: 'ClientIP',
    sessionAffinityTimeoutSeconds: 30,
    internalTrafficPolicy: 'Local',
    trafficDistribution: 'PreferClose',
  });
  const { policy, warnings } = policyFromService(svc, 'round-robin');
  t.same(policy, {
    lb: 'ring-hash',
    hashKey: { from: 'header', name: 'x-user' },
    clientIpAffinityMs: 30_000,
    nodeLocalOnly: true,
    preferClose: true,
    source: 'service',
  });
  t.equal(warnings.length, 1, 'affinity over ring-hash is warned about');
  const bad = policyFromService(
    service('w', [], { annotations: { 'meshlet.io/lb-policy': 'fastest', 'meshlet.io/hash-key': 'x' } }),
    'random',
  );
  t.equal(bad.policy.lb, 'random');
  t.equal(bad.warnings.length, 2);
  const balancer = buildBalancer({
    policy,
    nodeName: 'node-a',
    zone: 'zone-a',
    outlier: { consecutiveFailures: 0, ejectionMs: 1, maxEjectionPercent: 0 },
  });
  balancer.update(eps(3, (i) => ({ nodeName: i === 0 ? 'node-a' : 'node-b' })));
  t.equal(balancer.pick({ clientIp: 'x', headers: { 'x-user': 'u' } })?.id, '198.18.0.1:80', 'Local keeps to node-a');
});

t.test('policies/example-services.yaml is a valid registry file with the documented policies', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { parse } = await import('yaml');
  const { RegistryFileSchema, registryStateFromFile } = await import('../../src/sources/file-format.ts');
  const file = RegistryFileSchema.parse(
    parse(readFileSync(new URL('../../policies/example-services.yaml', import.meta.url), 'utf8')),
  );
  const state = registryStateFromFile(file);
  const rules = new Map((state.destinationRules ?? []).map((r) => [`${r.namespace}/${r.name}`, r]));
  const lb = state.services.map((s) =>
    policyFromService(s, 'round-robin', rules.get(`${s.namespace}/${s.name}`), s.ports[0]?.port),
  );
  t.same(
    lb.map((r) => [
      r.policy.lb,
      r.policy.nodeLocalOnly,
      r.policy.preferClose,
      r.policy.clientIpAffinityMs ?? 0,
      r.warnings.length,
    ]),
    [
      ['ring-hash', false, false, 0, 0],
      ['least-request', false, true, 0, 0],
      ['round-robin', true, false, 10_800_000, 0],
      ['ring-hash', false, false, 0, 0],
    ],
  );
  const reviews = lb[3]?.policy;
  t.same(reviews?.hashKey, { from: 'cookie', name: 'session' }, 'the DestinationRule picked cookie hashing');
  t.same(reviews?.outlier, { consecutiveFailures: 3, ejectionMs: 30_000, maxEjectionPercent: 50 });
  t.equal(reviews?.source, 'destination-rule');
});
