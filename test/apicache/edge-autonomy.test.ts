import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { bins } from '../harness/binaries.ts';
import { createCa, issueCert } from '../harness/certs.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { edgeKubeconfig, LinkRelay, metricValue, spawnKubectl, startEdge, until } from './helpers.ts';

/**
 * The apiserver caching proxy against a real kube-apiserver, with the real kubectl pointed at
 * it. The node's link to the control plane is two TCP relays (two "apiservers" of an HA control
 * plane, both in front of the one real apiserver) that the test can partition.
 */
if (requireOrSkip(t, { commands: ['openssl'], executables: [bins.kubeApiserver, bins.etcd, bins.kubectl] })) {
  const cp = await startControlPlane(t);
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-apicache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const edgeCa = createCa(dir, 'edge-ca', 'meshlet-edge-ca');
  const serving = issueCert(edgeCa, dir, 'edge', { cn: 'meshlet-apicache', sans: ['127.0.0.1', 'localhost'], usage: 'server' });
  const relayA = await new LinkRelay(cp.port).start();
  const relayB = await new LinkRelay(cp.port).start();
  t.teardown(() => Promise.all([relayA.stop(), relayB.stop()]));
  const cacheDir = join(dir, 'cache');
  const edgeOpts = {
    dir,
    kubeconfig: cp.kubeconfigPath,
    upstreams: [relayA.url, relayB.url],
    certPath: serving.certPath,
    keyPath: serving.keyPath,
    cacheDir,
  };
  let edge = await startEdge(edgeOpts);
  t.teardown(() => edge.module.stop());
  const kubectlCache = join(dir, 'kubectl-cache');
  // A user whose client certificate the edge server verifies and impersonates upstream.
  const userKc = () =>
    edgeKubeconfig(
      cp.clientKubeconfig({ user: 'edge-user', groups: ['system:masters'] }),
      dir,
      'user',
      edge.module.port,
      edgeCa.certPath,
    );
  let kc = userKc();
  const viaEdge = (args: string[], timeoutMs = 20_000) =>
    cp.kubectl([...args, `--cache-dir=${kubectlCache}`, '--request-timeout=15s'], { kubeconfig: kc, timeoutMs });
  const names = (json: string) =>
    (JSON.parse(json) as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name).sort();
  const cutAll = async () => {
    relayA.cut();
    relayB.cut();
    await until('cloud unreachable', () => !edge.module.cloud.reachable);
  };
  const restoreAll = async () => {
    relayA.restore();
    relayB.restore();
    await until('cloud reachable', () => edge.module.cloud.reachable);
  };

  await cp.apply(`
apiVersion: v1
kind: Namespace
metadata: {name: edge}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: edge, labels: {app: web, tier: front}}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: edge, labels: {app: db, tier: back}}
spec: {ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: cache, namespace: edge, labels: {app: cache, tier: back}}
spec: {type: NodePort, ports: [{port: 6379}]}
`);

  t.test('online: kubectl through the edge server gets, lists with selectors, and writes', async (t) => {
    t.equal(edge.module.cloud.reachable, true);
    t.equal(await metricValue(edge.metrics, 'meshlet_apicache_cloud_reachable'), 1);
    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '-o', 'json'])), ['cache', 'db', 'web']);
    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '-l', 'tier=back', '-o', 'json'])), ['cache', 'db']);
    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '--field-selector', 'metadata.name=web', '-o', 'json'])), [
      'web',
    ]);
    const web = JSON.parse(await viaEdge(['get', 'service', 'web', '-n', 'edge', '-o', 'json'])) as { kind: string };
    t.equal(web.kind, 'Service');
    // Identity is kept: the apiserver sees the impersonated user, not the proxy.
    const who = JSON.parse(await viaEdge(['auth', 'whoami', '-o', 'json'])) as { status: { userInfo: { username: string } } };
    t.equal(who.status.userInfo.username, 'edge-user');
    await viaEdge(['create', 'configmap', 'online-write', '-n', 'edge', '--from-literal=a=b']);
    t.match(await cp.kubectl(['get', 'configmap', 'online-write', '-n', 'edge', '-o', 'name']), /online-write/);
    // The human (Table) form is passed through as-is.
    t.match(await viaEdge(['get', 'services', '-n', 'edge']), /web\s+ClusterIP/);
    const status = edge.module.status() as { cache: { resources: { resource: string; objects: number }[] } };
    t.ok(
      status.cache.resources.find((r) => r.resource === 'services' && r.objects >= 3),
      'services cached',
    );
  });

  t.test('failover: one dead upstream is skipped, the cloud stays reachable', async (t) => {
    relayA.cut();
    await until('upstream A marked down', () => {
      const s = edge.module.status() as { upstreams: { url: string; healthy: boolean }[] };
      return s.upstreams.some((u) => u.url.endsWith(`:${relayA.port}`) && !u.healthy);
    });
    t.equal(edge.module.cloud.reachable, true);
    for (let i = 0; i < 4; i++)
      t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '-o', 'json'])), ['cache', 'db', 'web']);
    t.equal(
      await metricValue(edge.metrics, 'meshlet_apicache_upstream_healthy', { upstream: `https://127.0.0.1:${relayA.port}` }),
      0,
    );
    relayA.restore();
    await until('upstream A back', () =>
      (edge.module.status() as { upstreams: { healthy: boolean }[] }).upstreams.every((u) => u.healthy),
    );
  });

  t.test('offline: reads from the cache with selectors; writes fail clearly; a watch survives the outage', async (t) => {
    // A watch opened online, before the outage.
    const watch = spawnKubectl(kc, kubectlCache, ['get', 'services', '-n', 'edge', '-w', '-o', 'name']);
    t.teardown(() => watch.child.kill('SIGKILL'));
    await until('watch lists the services', () => /service\/web/.test(watch.out()));
    const changes: boolean[] = [];
    edge.module.cloud.on('change', (s) => changes.push(s.reachable));

    await cutAll();
    t.same(changes, [false], 'the signal flipped once');
    t.equal(await metricValue(edge.metrics, 'meshlet_apicache_cloud_reachable'), 0);
    t.match(edge.module.status(), { cloud: 'unreachable' });

    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '-o', 'json'])), ['cache', 'db', 'web']);
    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '-l', 'tier=back', '-o', 'json'])), ['cache', 'db']);
    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '-l', 'app in (web,db),tier!=front', '-o', 'json'])), ['db']);
    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '--field-selector', 'metadata.name=web', '-o', 'json'])), [
      'web',
    ]);
    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '--field-selector', 'spec.type=NodePort', '-o', 'json'])), [
      'cache',
    ]);
    t.match(JSON.parse(await viaEdge(['get', 'service', 'db', '-n', 'edge', '-o', 'json'])), {
      kind: 'Service',
      metadata: { name: 'db' },
    });
    t.match(await viaEdge(['get', 'services', '-n', 'edge']), /web/, 'the human form too (client-side printing)');
    await t.rejects(viaEdge(['get', 'service', 'nope', '-n', 'edge']), /not found/i);
    await t.rejects(
      viaEdge(['create', 'configmap', 'offline-write', '-n', 'edge', '--from-literal=a=b']),
      /cloud is unreachable.*not queued/,
    );
    await t.rejects(viaEdge(['get', 'secrets', '-n', 'edge']), /cloud is unreachable/);

    // Meanwhile, in the cloud: a change the node cannot see yet.
    await cp.kubectl(['create', 'service', 'clusterip', 'born-offline', '-n', 'edge', '--tcp=81:81']);
    await cp.kubectl(['delete', 'service', 'db', '-n', 'edge']);
    await new Promise((r) => setTimeout(r, 1_000));
    t.equal(watch.child.exitCode, null, 'kubectl get -w is still running');
    t.notMatch(watch.out(), /born-offline/);

    await restoreAll();
    t.same(changes, [false, true]);
    await until('the held watch delivers the change made offline', () => /service\/born-offline/.test(watch.out()), 15_000);
    t.equal(watch.child.exitCode, null, 'the same kubectl get -w is still running');

    // The resumed watch also updated the cache: offline again, the new state is served.
    await until('the deletion reached the cache', () => {
      const s = edge.module.status() as { cache: { resources: { resource: string; objects: number }[] } };
      return (s.cache.resources.find((r) => r.resource === 'services')?.objects ?? 0) >= 3;
    });
    await cutAll();
    await until('cache reflects the offline changes', async () => {
      const got = names(await viaEdge(['get', 'services', '-n', 'edge', '-o', 'json']));
      return got.join(',') === 'born-offline,cache,web';
    });
    t.pass('offline LIST shows the changes made while the node was away');
  });

  t.test('restart while offline still serves the last state', async (t) => {
    await edge.module.stop();
    edge = await startEdge(edgeOpts);
    kc = userKc();
    t.equal(edge.module.cloud.reachable, false);
    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '-o', 'json'])), ['born-offline', 'cache', 'web']);
    t.same(names(await viaEdge(['get', 'services', '-n', 'edge', '-l', 'tier=back', '-o', 'json'])), ['cache']);
    // A watch opened offline gets the cached state, then waits; the cloud's return resumes it.
    const watch = spawnKubectl(kc, kubectlCache, ['get', 'services', '-n', 'edge', '-w', '-o', 'name']);
    t.teardown(() => watch.child.kill('SIGKILL'));
    await until('offline watch lists from the cache', () => /service\/born-offline/.test(watch.out()));
    const human = spawnKubectl(kc, kubectlCache, ['get', 'services', '-n', 'edge', '-w']);
    t.teardown(() => human.child.kill('SIGKILL'));
    await until('the human form of an offline watch prints too', () => /born-offline/.test(human.out()));
    await restoreAll();
    await cp.kubectl(['create', 'service', 'clusterip', 'after-return', '-n', 'edge', '--tcp=82:82']);
    await until(
      'the watch opened offline sees a change after the return',
      () => /service\/after-return/.test(watch.out()),
      15_000,
    );
    t.equal(watch.child.exitCode, null);
  });

  t.test('a corrupt cache file is detected and never served', async (t) => {
    await edge.module.stop();
    const snap = readdirSync(cacheDir).find((f) => f.startsWith('r_services') && f.endsWith('.snap'));
    t.ok(snap, 'services snapshot exists');
    writeFileSync(join(cacheDir, snap ?? 'x'), 'meshlet-apicache-snapshot 1\n{"key":"services"}\nweb\t{"kind":"Service"\n');
    relayA.cut();
    relayB.cut();
    edge = await startEdge(edgeOpts);
    kc = userKc();
    t.equal(await metricValue(edge.metrics, 'meshlet_apicache_corrupt_files_total'), 1);
    await t.rejects(viaEdge(['get', 'services', '-n', 'edge', '-o', 'json']), /no complete list/);
    await restoreAll();
  });

  t.test('node credentials keep their own authorization through the proxy', async (t) => {
    const nodeKc = edgeKubeconfig(cp.nodeKubeconfig('node-a'), dir, 'node-a', edge.module.port, edgeCa.certPath);
    const asNode = (args: string[]) => cp.kubectl([...args, `--cache-dir=${kubectlCache}`], { kubeconfig: nodeKc });
    t.match(await asNode(['get', 'services', '-A', '-o', 'name']), /service\/web/);
    await t.rejects(asNode(['get', 'nodes']), /forbidden/i, 'the Node authorizer still decides');
    await cp.apply(`
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: node-a, namespace: kube-node-lease}
spec: {holderIdentity: node-a, leaseDurationSeconds: 40}
`);
    const lease = await asNode(['get', 'lease', 'node-a', '-n', 'kube-node-lease', '-o', 'json']);
    await cutAll();
    // Offline, kubelet's renewal of its own Lease is acknowledged locally.
    const replaced = await cp.kubectl(['replace', '-f', '-', '--validate=false', '-o', 'json', `--cache-dir=${kubectlCache}`], {
      kubeconfig: nodeKc,
      input: lease,
    });
    t.match(JSON.parse(replaced), { kind: 'Lease', metadata: { name: 'node-a' } });
    await t.rejects(
      cp.kubectl(['replace', '-f', '-', '--validate=false', `--cache-dir=${kubectlCache}`], { kubeconfig: kc, input: lease }),
      /cloud is unreachable/,
      "another identity's lease write is refused",
    );
    await restoreAll();
  });

  t.test('a full disk degrades to memory-only: clear error, metric, still serving', async (t) => {
    if (!requireOrSkip(t, { root: true, commands: ['mount', 'umount'] })) return;
    const small = join(dir, 'tiny');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', small]);
    t.teardown(() => execFileSync('umount', ['-l', small]));
    const big = Array.from(
      { length: 24 },
      (_, i) => `
---
apiVersion: v1
kind: ConfigMap
metadata: {name: big-${i}, namespace: edge}
data: {blob: "${'x'.repeat(4000)}"}`,
    ).join('');
    await cp.apply(big);
    await edge.module.stop();
    edge = await startEdge({ ...edgeOpts, cacheDir: join(small, 'cache') });
    kc = userKc();
    t.equal(await metricValue(edge.metrics, 'meshlet_apicache_disk_ok'), 1);
    const online = names(await viaEdge(['get', 'configmaps', '-n', 'edge', '-o', 'json']));
    t.equal(online.filter((n) => n.startsWith('big-')).length, 24);
    await until('disk error noticed', async () => (await metricValue(edge.metrics, 'meshlet_apicache_disk_ok')) === 0);
    t.ok(((await metricValue(edge.metrics, 'meshlet_apicache_disk_errors_total')) ?? 0) >= 1);
    t.match(edge.module.status(), { disk: { ok: false, lastError: /ENOSPC/ } });
    await cutAll();
    const offline = names(await viaEdge(['get', 'configmaps', '-n', 'edge', '-o', 'json']));
    t.same(offline, online, 'served from memory');
    await restoreAll();
    await edge.module.stop();
    edge = await startEdge(edgeOpts);
  });
}
