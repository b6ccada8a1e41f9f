import t from 'tap';
import { type RegistryUpdate, ServiceRegistry } from '../../src/registry/registry.ts';
import { node, service, slice } from './fixtures.ts';

function collect(registry: ServiceRegistry): RegistryUpdate[] {
  const updates: RegistryUpdate[] = [];
  registry.subscribe((update) => updates.push(update));
  return updates;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('a burst of changes is delivered as one update', async (t) => {
  const registry = new ServiceRegistry({ coalesceMs: 20 });
  const updates = collect(registry);
  for (let i = 0; i < 500; i++) {
    registry.upsertService(service(`svc-${i % 50}`, { clusterIPs: [`198.19.0.${i % 50}`] }));
    registry.upsertEndpointSlice(slice(`svc-${i % 50}-abc`, `svc-${i % 50}`, [`198.18.1.${i % 200}`]));
  }
  registry.upsertNode(node('a'));
  t.equal(updates.length, 0, 'nothing delivered synchronously');
  await sleep(60);
  t.equal(updates.length, 1, 'one update for the whole burst');
  const [update] = updates;
  t.equal(update?.services.size, 50, 'every touched service is named once');
  t.same([...(update?.nodes ?? [])], ['a']);
  t.equal(update?.version, 1);
  t.equal(registry.version, 1);
  registry.close();
});

t.test('idempotent writes wake nobody', async (t) => {
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  const updates = collect(registry);
  registry.upsertService(service('web'));
  await tick();
  t.equal(updates.length, 1);
  registry.upsertService(service('web')); // an equal copy
  registry.deleteService('default/missing');
  registry.deleteEndpointSlice('default/missing');
  registry.deleteNode('missing');
  await tick();
  t.equal(updates.length, 1, 'no update for no change');
  registry.close();
});

t.test('endpoint slices are indexed by service, and moves between services touch both', async (t) => {
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  const updates = collect(registry);
  registry.upsertService(service('a'));
  registry.upsertService(service('b'));
  registry.upsertEndpointSlice(slice('s1', 'a', ['198.18.0.1']));
  registry.upsertEndpointSlice(slice('s2', 'a', ['198.18.0.2']));
  registry.flush();
  t.same(
    registry.endpointSlicesOf('default', 'a').map((s) => s.name),
    ['s1', 's2'],
  );
  registry.upsertEndpointSlice(slice('s2', 'b', ['198.18.0.2']));
  registry.flush();
  t.same([...(updates.at(-1)?.services ?? [])].sort(), ['default/a', 'default/b']);
  t.same(
    registry.endpointSlicesOf('default', 'a').map((s) => s.name),
    ['s1'],
  );
  t.same(
    registry.endpointSlicesOf('default', 'b').map((s) => s.name),
    ['s2'],
  );
  registry.deleteEndpointSlice('default/s1');
  registry.flush();
  t.same(registry.endpointSlicesOf('default', 'a'), []);
  t.same(registry.counts(), { services: 2, endpointSlices: 1, endpoints: 1, nodes: 0 });
  registry.close();
});

t.test('replaceAll announces only real differences and marks a reset', async (t) => {
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  const updates = collect(registry);
  t.notOk(registry.synced);
  registry.replaceAll({
    services: [service('a'), service('b')],
    endpointSlices: [slice('a-1', 'a', ['198.18.0.1'])],
    nodes: [node('n1')],
  });
  registry.flush();
  t.ok(registry.synced);
  t.equal(updates.length, 1);
  t.ok(updates[0]?.reset);
  registry.replaceAll({
    services: [service('a'), service('c')],
    endpointSlices: [slice('a-1', 'a', ['198.18.0.9'])],
    nodes: [node('n1')],
  });
  registry.flush();
  t.same([...(updates[1]?.services ?? [])].sort(), ['default/a', 'default/b', 'default/c'], 'a (endpoints), b (gone), c (new)');
  t.equal(updates[1]?.nodes.size, 0, 'unchanged node not announced');
  t.notOk(registry.getService('default', 'b'));
  registry.close();
});

t.test('a throwing subscriber does not starve the others', async (t) => {
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  registry.subscribe(() => {
    throw new Error('boom');
  });
  const updates = collect(registry);
  registry.upsertNode(node('x'));
  registry.flush();
  t.equal(updates.length, 1);
  registry.close();
});

t.test('snapshot is a sorted copy that callers cannot use to mutate the registry', async (t) => {
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  registry.upsertService(service('b'));
  registry.upsertService(service('a'));
  const snap = registry.snapshot();
  t.same(
    snap.services.map((s) => s.name),
    ['a', 'b'],
  );
  const first = snap.services[0];
  if (first) first.clusterIPs.push('198.19.9.9');
  t.same(registry.getService('default', 'a')?.clusterIPs, ['198.19.0.10']);
  registry.close();
});
