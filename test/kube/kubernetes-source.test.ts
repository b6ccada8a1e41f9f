import t from 'tap';
import { silentLogger } from '../../src/log.ts';
import { ServiceRegistry } from '../../src/registry/registry.ts';
import { KubernetesSource } from '../../src/sources/kubernetes-source.ts';
import { bins } from '../harness/binaries.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { requireOrSkip } from '../harness/requirements.ts';

/** The Kubernetes source against a real kube-apiserver: what kubectl changes reaches the registry. */
if (requireOrSkip(t, { executables: [bins.kubeApiserver, bins.etcd, bins.kubectl], commands: ['openssl'] })) {
  const cp = await startControlPlane(t);
  const registry = new ServiceRegistry({ coalesceMs: 0 });
  const source = new KubernetesSource({
    kubeconfig: cp.kubeconfigPath,
    context: '',
    initialSyncTimeoutMs: 30_000,
    logger: silentLogger(),
    crdRecheckMs: 200,
  });
  t.teardown(async () => {
    await source.stop();
    registry.close();
  });

  async function until(what: string, check: () => boolean, ms = 5_000): Promise<number> {
    const start = Date.now();
    while (!check()) {
      if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return Date.now() - start;
  }

  t.test('start lists everything and reports synced', async (t) => {
    await source.start(registry);
    t.ok(source.status().synced);
    t.ok(registry.synced);
    // The apiserver creates its own `kubernetes` service shortly after it reports ready.
    await until('the kubernetes service', () => registry.getService('default', 'kubernetes') !== undefined, 10_000);
    t.pass('the apiserver’s own service arrived through the watch');
  });

  t.test('a Service and its EndpointSlice created with kubectl reach the registry within a second', async (t) => {
    await cp.apply(`
apiVersion: v1
kind: Service
metadata: { name: nginx-svc, namespace: default, labels: { app: nginx }, annotations: { meshlet.io/lb-policy: random } }
spec:
  selector: { app: nginx }
  ports: [{ name: http-0, port: 12345, targetPort: 80, protocol: TCP }]
  sessionAffinity: ClientIP
  internalTrafficPolicy: Local
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: nginx-svc-abc
  namespace: default
  labels: { kubernetes.io/service-name: nginx-svc }
addressType: IPv4
ports: [{ name: http-0, port: 80, protocol: TCP }]
endpoints:
  - addresses: [198.18.2.10]
    conditions: { ready: true }
    nodeName: node-b
    zone: zone-1
    hostname: nginx-0
    targetRef: { kind: Pod, namespace: default, name: nginx-0 }
  - addresses: [198.18.2.11]
    conditions: { ready: false, serving: true, terminating: true }
    nodeName: node-b
`);
    const ms = await until('nginx-svc endpoints', () => registry.endpointSlicesOf('default', 'nginx-svc').length === 1, 1_000);
    t.ok(ms < 1_000, `seen after ${ms} ms`);
    const svc = registry.getService('default', 'nginx-svc');
    t.match(svc, {
      type: 'ClusterIP',
      headless: false,
      sessionAffinity: 'ClientIP',
      sessionAffinityTimeoutSeconds: 10800,
      internalTrafficPolicy: 'Local',
      annotations: { 'meshlet.io/lb-policy': 'random' },
      ports: [{ name: 'http-0', port: 12345, targetPort: 80, protocol: 'TCP' }],
    });
    t.match(svc?.clusterIPs[0], /^198\.19\./, 'cluster IP from the service range');
    const [slice] = registry.endpointSlicesOf('default', 'nginx-svc');
    t.same(slice?.endpoints, [
      {
        addresses: ['198.18.2.10'],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: 'node-b',
        zone: 'zone-1',
        hostname: 'nginx-0',
        targetRef: 'default/nginx-0',
      },
      { addresses: ['198.18.2.11'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'node-b' },
    ]);
  });

  t.test('headless and ExternalName services, and Nodes', async (t) => {
    await cp.apply(`
apiVersion: v1
kind: Service
metadata: { name: db, namespace: default }
spec: { clusterIP: None, ports: [{ port: 5432 }] }
---
apiVersion: v1
kind: Service
metadata: { name: docs, namespace: default }
spec: { type: ExternalName, externalName: docs.example.org }
---
apiVersion: v1
kind: Node
metadata: { name: node-b, labels: { topology.kubernetes.io/zone: zone-1 } }
`);
    await until('db, docs and node-b', () =>
      Boolean(registry.getService('default', 'db') && registry.getService('default', 'docs') && registry.getNode('node-b')),
    );
    t.match(registry.getService('default', 'db'), { headless: true, clusterIPs: [] });
    t.match(registry.getService('default', 'docs'), { type: 'ExternalName', externalName: 'docs.example.org', clusterIPs: [] });
    t.match(registry.getNode('node-b'), { zone: 'zone-1', ready: 'Unknown' });
  });

  t.test('deletes reach the registry', async (t) => {
    await cp.kubectl(['delete', 'service', 'nginx-svc', 'db', 'docs']);
    await cp.kubectl(['delete', 'endpointslice', 'nginx-svc-abc']);
    await cp.kubectl(['delete', 'node', 'node-b']);
    await until('deletions', () => !registry.getService('default', 'nginx-svc') && !registry.getNode('node-b'));
    t.same(registry.endpointSlicesOf('default', 'nginx-svc'), []);
    t.notOk(registry.getService('default', 'db'));
    t.equal(source.status().lastError, undefined, 'no errors along the way');
  });

  t.test('a burst of 200 changes arrives complete and in order', async (t) => {
    const docs = Array.from(
      { length: 100 },
      (_, i) => `apiVersion: v1
kind: Service
metadata: { name: burst-${i}, namespace: default, labels: { round: "1" } }
spec: { ports: [{ port: ${1000 + i} }] }`,
    ).join('\n---\n');
    await cp.apply(docs);
    await cp.kubectl(['label', 'service', '-l', 'round=1', 'round=2', '--overwrite']);
    await until(
      'all 100 services relabelled',
      () => [...registry.services()].filter((s) => s.labels.round === '2').length === 100,
      20_000,
    );
    await cp.kubectl(['delete', 'service', '-l', 'round=2']);
    await until('all deleted', () => ![...registry.services()].some((s) => s.name.startsWith('burst-')), 20_000);
    t.pass('no update lost');
  });

  t.test('Istio DestinationRules are watched once their CRD is installed', async (t) => {
    t.notMatch(JSON.stringify(source.status().detail), /destinationrules/, 'not watched while the CRD is absent');
    await cp.apply(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: destinationrules.networking.istio.io }
spec:
  group: networking.istio.io
  scope: Namespaced
  names: { kind: DestinationRule, plural: destinationrules, singular: destinationrule, shortNames: [dr] }
  versions:
    - name: v1
      served: true
      storage: true
      schema: { openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true } }
`);
    await cp.kubectl(['wait', '--for=condition=Established', 'crd/destinationrules.networking.istio.io', '--timeout=30s']);
    await cp.apply(`apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: default }
spec: { ports: [{ name: http, port: 9080 }] }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: { consistentHash: { httpCookie: { name: session, ttl: 0s } } }
`);
    await until('the rule in the registry', () => registry.destinationRuleFor('default', 'reviews') !== undefined, 10_000);
    t.match(registry.destinationRuleFor('default', 'reviews'), {
      host: 'reviews.default.svc.cluster.local',
      trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'session' } } } },
    });
    await cp.kubectl(['delete', 'destinationrule', 'reviews']);
    await until('the rule gone', () => registry.destinationRuleFor('default', 'reviews') === undefined);
    t.pass('deleted');
  });
}
