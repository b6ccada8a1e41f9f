import t from 'tap';
import { httpBackend, listenerPort, service, slices, startProxy } from './helpers.ts';

/** An Istio DestinationRule in the registry changes how the proxy balances, and removing it restores the default. */
t.test('consistent hash by header from a DestinationRule, then back to round robin', async (t) => {
  const h = await startProxy(t);
  const backends = [await httpBackend(t, 'b1'), await httpBackend(t, 'b2'), await httpBackend(t, 'b3')];
  const svc = service('web', [{ name: 'http', port: 8080, targetPort: 8080 }]);
  const eps = slices(
    'web',
    'http',
    backends.map((b) => ({ port: b.port })),
  );
  const rule = {
    namespace: 'default',
    name: 'web',
    host: 'web.default.svc.cluster.local',
    trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } },
  };
  h.registry.replaceAll({ services: [svc], endpointSlices: eps, nodes: [], destinationRules: [rule] });
  h.registry.flush();
  await h.proxy.settled();
  const port = listenerPort(h, 8080);
  const get = async (user: string) =>
    (await fetch(`http://127.0.0.1:${port}/`, { headers: { 'x-user': user } })).headers.get('x-backend') ?? '';

  for (const user of ['alice', 'bob', 'carol', 'dave']) {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await get(user));
    t.equal(seen.size, 1, `${user} always reaches the same backend`);
  }
  const spread = new Set<string>();
  for (let i = 0; i < 40; i++) spread.add(await get(`user-${i}`));
  t.ok(spread.size >= 2, `different users spread over backends (${spread.size})`);

  h.registry.deleteDestinationRule('default/web');
  h.registry.flush();
  await h.proxy.settled();
  const after: string[] = [];
  for (let i = 0; i < 6; i++) after.push(await get('alice'));
  t.same(new Set(after).size, 3, 'without the rule: round robin again, whatever the header');
});
