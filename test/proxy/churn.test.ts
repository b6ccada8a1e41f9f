import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import t from 'tap';
import { ClusterZone } from '../../dns/cluster/zone.ts';
import { ProxyModule } from '../../proxy/module.ts';
import { ConfigSchema } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/log.ts';
import { ServiceRegistry } from '../../src/registry/registry.ts';
import type { EndpointSlice, RegistryState, Service } from '../../src/registry/types.ts';
import { endpoint, service } from './helpers.ts';

// Registry churn must not grow anything: 200 services come and go (whole-state replacements, as a
// file reload or relist delivers them) and every listener, retained upstream endpoint, metric
// series and DNS name they brought is gone again afterwards. Structural counts only: no timing,
// no RSS.

const CHURN = 200;
const ROUNDS = 3;

function churned(i: number): { svc: Service; slice: EndpointSlice } {
  const name = `churn-${i}`;
  const svc = service(name, [
    { name: 'http', port: 80, targetPort: 8080 },
    { name: 'tcp', port: 9000, targetPort: 9000 },
  ]);
  svc.clusterIPs = [`198.18.${(i >> 8) + 1}.${i & 255}`];
  const slice: EndpointSlice = {
    namespace: 'default',
    name: `${name}-0`,
    serviceName: name,
    addressType: 'IPv4',
    ports: [
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'tcp', port: 9, protocol: 'TCP' }, // nothing listens: connects are refused
    ],
    endpoints: [endpoint(`127.0.0.${(i % 200) + 2}`), endpoint(`127.0.1.${i % 250}`)],
  };
  return { svc, slice };
}

function stateWith(extra: number): RegistryState {
  const stable = service('stable', [{ name: 'http', port: 80, targetPort: 8080 }]);
  const services = [stable];
  const endpointSlices: EndpointSlice[] = [
    {
      namespace: 'default',
      name: 'stable-0',
      serviceName: 'stable',
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: [endpoint('127.0.0.1')],
    },
  ];
  for (let i = 0; i < extra; i++) {
    const { svc, slice } = churned(i);
    services.push(svc);
    endpointSlices.push(slice);
  }
  return { services, endpointSlices, nodes: [{ name: 'node-a', addresses: [], ready: 'True', labels: {} }] };
}

async function seriesCount(metrics: Registry): Promise<number> {
  let n = 0;
  for (const m of await metrics.getMetricsAsJSON()) {
    if (m.name.startsWith('meshlet_proxy_') && m.name !== 'meshlet_proxy_listeners') n += m.values.length;
  }
  return n;
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await sleep(25);
  }
  throw new Error(`${what}: not reached within 5 s`);
}

/** One connection to a listener: counts connections, active, and a refused upstream connect. */
async function touch(port: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => undefined);
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
}

t.test(`${CHURN} services churned ${ROUNDS} times leave listeners, pools, metrics and DNS names at baseline`, async (t) => {
  const config = ConfigSchema.parse({
    node: { name: 'node-a' },
    proxy: { listenPort: 'auto', connectTimeoutMs: 500 },
    shutdown: { gracePeriodMs: 100 },
  });
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  const metrics = new Registry();
  const proxy = new ProxyModule({ config, registry, metrics, logger: silentLogger() });
  const zone = new ClusterZone({
    domain: 'cluster.local',
    ttl: 5,
    nsAddress: '127.0.0.1',
    maxUdpSize: 1232,
    logger: silentLogger(),
  });
  const updates: boolean[] = [];
  registry.subscribe((update, reg) => {
    updates.push(update.reset);
    zone.apply(update, reg);
  });
  await proxy.start();
  t.teardown(async () => {
    await proxy.stop();
    registry.close();
  });
  const apply = async (state: RegistryState) => {
    registry.replaceAll(state);
    registry.flush();
    await proxy.settled();
  };
  const counts = async () => {
    const status = proxy.status();
    return {
      listeners: status.listeners,
      retainedEndpoints: status.upstreamEndpoints,
      pools: status.upstreamPools,
      series: await seriesCount(metrics),
      names: zone.size,
      answers: zone.answers,
    };
  };

  await apply(stateWith(0));
  const baseline = await counts();
  t.match(baseline, { listeners: 1, retainedEndpoints: 1, pools: 0, series: 0 });

  for (let round = 0; round < ROUNDS; round++) {
    await apply(stateWith(CHURN));
    const full = await counts();
    t.equal(full.listeners, 1 + 2 * CHURN, `round ${round}: a listener per service port`);
    t.equal(full.retainedEndpoints, 1 + 2 * CHURN, `round ${round}: every http endpoint retained`);
    t.equal(full.pools, 0, `round ${round}: no upstream pool before a request needs one`);
    t.ok(full.names > baseline.names && full.answers > baseline.answers, `round ${round}: names published`);
    // Traffic to some tcp ports creates their metric series.
    for (let i = 0; i < 20; i++) {
      const l = proxy.listenerFor(`198.18.${(i >> 8) + 1}.${i & 255}`, 9000, 'TCP');
      if (l !== undefined) await touch(l.port);
    }
    await eventually('series created', async () => (await seriesCount(metrics)) >= 20 * 3);

    // An incremental reload (one service changes) rebuilds that one only and keeps the rest.
    const one = stateWith(CHURN);
    const first = one.services[1];
    if (first) first.clusterIPs = ['198.18.99.1'];
    await apply(one);
    t.equal((await counts()).listeners, 1 + 2 * CHURN);
    t.ok(zone.lookup('churn-0.default.svc.cluster.local')?.a.includes('198.18.99.1'), 'the changed service re-published');

    await apply(stateWith(0));
    await eventually(`round ${round}: back to baseline`, async () => {
      const now = await counts();
      return now.listeners === baseline.listeners && now.series === baseline.series;
    });
    t.same(await counts(), baseline, `round ${round}: everything back to baseline`);
  }
  t.ok(updates.length > 0 && updates.every((reset) => reset), 'every update came from a whole-state replacement');

  // The incremental zone equals one built from scratch.
  const fresh = new ClusterZone({
    domain: 'cluster.local',
    ttl: 5,
    nsAddress: '127.0.0.1',
    maxUdpSize: 1232,
    logger: silentLogger(),
  });
  fresh.rebuild(registry);
  t.equal(zone.size, fresh.size);
  t.equal(zone.answers, fresh.answers);
});
