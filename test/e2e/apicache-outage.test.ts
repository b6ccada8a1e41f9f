import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.ts';
import { bins } from '../harness/binaries.ts';
import { createCa, issueCert } from '../harness/certs.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { createTopology, type TrackedProcess } from '../harness/netns.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { startAgent } from './agent-in-node.ts';

/**
 * Issue 6's done-when with real network namespaces: `meshlet agent` with the apiserver cache runs
 * in node a, the real kube-apiserver is reachable there at 198.18.0.1 (the "cloud"), and the real
 * kubectl runs inside node a against the edge server (https://127.0.0.1:8778) with a client
 * certificate, so the proxy impersonates it upstream. The node's link to the control plane is cut
 * with the fixture's iptables partition (packets dropped, connections stall), the agent is
 * restarted while cut, and the link is restored.
 */
if (
  requireOrSkip(t, {
    root: true,
    commands: ['ip', 'openssl'],
    executables: [bins.kubeApiserver, bins.etcd, bins.kubectl],
  })
) {
  const cp = await startControlPlane(t);
  const topo = await createTopology(t, { nodes: ['a'] });
  const cloud = await topo.exposeHostPort(cp.port);
  const upstream = `https://${cloud.address}:${cloud.port}`;
  const a = topo.node('a');
  const admin = await topo.exposeNodePort(a, 15090);

  const dir = mkdtempSync(join(tmpdir(), 'meshlet-apicache-outage-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const edgeCa = createCa(dir, 'edge-ca', 'meshlet-edge-ca');
  const serving = issueCert(edgeCa, dir, 'edge', { cn: 'meshlet-apicache', sans: ['127.0.0.1'], usage: 'server' });
  const registry = join(dir, 'registry.yaml');
  writeFileSync(registry, 'services: []\n');
  const EDGE_PORT = 8778;

  // The proxy's own credentials: allowed to impersonate (system:masters), against 198.18.0.1.
  const proxyKubeconfig = cp.clientKubeconfig({ user: 'meshlet-apicache', groups: ['system:masters'], server: upstream });
  // kubectl's: a client certificate for user edge-user, the edge server as server, its CA.
  const userKubeconfig = join(dir, 'edge-user.kubeconfig');
  {
    const doc = parseYaml(readFileSync(cp.clientKubeconfig({ user: 'edge-user', groups: ['system:masters'] }), 'utf8')) as {
      clusters: { cluster: Record<string, string> }[];
    };
    for (const c of doc.clusters) {
      c.cluster.server = `https://127.0.0.1:${EDGE_PORT}`;
      c.cluster['certificate-authority-data'] = readFileSync(edgeCa.certPath).toString('base64');
    }
    writeFileSync(userKubeconfig, toYaml(doc), { mode: 0o600 });
  }
  const kubectlCache = join(dir, 'kubectl-cache');

  const config: ConfigInput = {
    node: { name: 'a' },
    log: { level: 'info' },
    admin: { address: a.address, port: 15090 }, // exposeNodePort reaches the node's address
    source: { kind: 'file', file: { path: registry } },
    dns: { enabled: false },
    proxy: { enabled: false },
    apicache: {
      enabled: true,
      address: '127.0.0.1',
      port: EDGE_PORT,
      tlsCertFile: serving.certPath,
      tlsKeyFile: serving.keyPath,
      kubeconfig: proxyKubeconfig,
      upstreams: [upstream],
      cacheDir: join(dir, 'apicache'),
      healthCheckIntervalMs: 500,
      healthCheckTimeoutMs: 500,
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      resumeJitterMs: 300,
      offlineBookmarkIntervalMs: 1_000,
    },
    shutdown: { gracePeriodMs: 1_000 },
  };
  let agent: TrackedProcess = await startAgent(a, config);
  /** kubectl get -w opened online (before the cut), and opened offline after the agent's restart. */
  let w1: TrackedProcess | undefined;
  let w2: TrackedProcess | undefined;

  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  const kubectlArgs = (args: string[]) => [`--kubeconfig=${userKubeconfig}`, `--cache-dir=${kubectlCache}`, ...args];
  /** The real kubectl, inside node a, through the edge server; rejects with stderr. */
  async function viaEdge(args: string[]): Promise<string> {
    const r = await a.exec(bins.kubectl, kubectlArgs(['--request-timeout=10s', ...args]), { timeoutMs: 20_000 });
    if (!r.ok) throw new Error(`kubectl ${args.join(' ')} (code ${r.code}, timedOut ${r.timedOut}): ${r.stderr.trim()}`);
    return r.stdout;
  }
  const names = (json: string) =>
    (JSON.parse(json) as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name).sort();
  const list = async (args: string[]) => names(await viaEdge(['get', ...args, '-n', 'outage', '-o', 'json']));
  /** A `kubectl get -w` inside the node, output collected (no --request-timeout: it would end the watch). */
  const watch = (args: string[]) => a.spawn(bins.kubectl, kubectlArgs(['get', ...args, '-n', 'outage', '-w']));

  /** meshlet_apicache_cloud_reachable from the agent's /metrics (from the host, never cut). */
  async function cloudReachable(): Promise<number | undefined> {
    try {
      const res = await fetch(`http://${admin.address}:${admin.port}/metrics`, { signal: AbortSignal.timeout(2_000) });
      const m = /^meshlet_apicache_cloud_reachable (\d+)$/m.exec(await res.text());
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  }
  /**
   * Polls until check holds and resolves with the time it took; after ms rejects with the time,
   * the agent's last log lines and those of the watchers.
   */
  async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      if (await check()) return Date.now() - t0;
      if (Date.now() - t0 > ms) {
        const tail = (p: TrackedProcess | undefined) => p?.output().slice(-1500) ?? '(none)';
        throw new Error(
          `timed out after ${Date.now() - t0} ms waiting for ${what}\nagent:\n${tail(agent)}\nwatch 1:\n${tail(w1)}\nwatch 2:\n${tail(w2)}`,
        );
      }
      await sleep(100);
    }
  }

  await cp.apply(`
apiVersion: v1
kind: Namespace
metadata: {name: outage}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: outage}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: outage, labels: {app: web, tier: front}}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: outage, labels: {app: db, tier: back}}
spec: {ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: cache, namespace: outage, labels: {app: cache, tier: back}}
spec: {type: NodePort, ports: [{port: 6379}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, namespace: outage, labels: {app: web}}
spec: {nodeName: a, automountServiceAccountToken: false, containers: [{name: c, image: example.invalid/web}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, namespace: outage, labels: {app: web}}
spec: {nodeName: b, automountServiceAccountToken: false, containers: [{name: c, image: example.invalid/web}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-a, namespace: outage, labels: {app: db}}
spec: {nodeName: a, automountServiceAccountToken: false, containers: [{name: c, image: example.invalid/db}]}
`);

  /** The reads that must answer online, offline, and after a restart offline. */
  async function checkReads(t: Test, when: string, services: string[]): Promise<void> {
    const t0 = Date.now();
    t.same(await list(['services']), services, `${when}: get services`);
    t.same(
      await list(['services', '-l', 'tier=back']),
      services.filter((s) => s === 'cache' || s === 'db'),
      `${when}: get -l`,
    );
    t.same(await list(['services', '--field-selector', 'spec.type=NodePort']), ['cache'], `${when}: --field-selector`);
    t.same(await list(['pods', '--field-selector', 'spec.nodeName=a']), ['db-a', 'web-a'], `${when}: pods on node a`);
    t.same(await list(['pods', '-l', 'app=web', '--field-selector', 'spec.nodeName=a']), ['web-a'], `${when}: -l and fields`);
    t.match(
      JSON.parse(await viaEdge(['get', 'service', 'web', '-n', 'outage', '-o', 'json'])),
      { kind: 'Service', metadata: { name: 'web' } },
      `${when}: get one`,
    );
    // Online the apiserver's Table passes through; offline the proxy answers a Table request with
    // the plain list, which kubectl prints with its generic NAME/AGE columns.
    const human = await viaEdge(['get', 'services', '-n', 'outage']);
    t.match(human, when === 'online' ? /web\s+ClusterIP/ : /^web\s+\d+s$/m, `${when}: the human form`);
    t.comment(`${when}: 7 reads in ${Date.now() - t0} ms`);
  }

  t.test('online: kubectl in the node reads through the edge server as itself', async (t) => {
    const ms = await until('the edge server answers and the cloud is reachable', async () => (await cloudReachable()) === 1);
    t.pass(`cloud reachable (${ms} ms)`);
    await checkReads(t, 'online', ['cache', 'db', 'web']);
    const who = JSON.parse(await viaEdge(['auth', 'whoami', '-o', 'json'])) as { status: { userInfo: { username: string } } };
    t.equal(who.status.userInfo.username, 'edge-user', 'the apiserver sees the client, impersonated');
    w1 = watch(['services', '-o', 'name']);
    const listed = await until('the watch lists the services', () => /service\/web/.test(w1?.output() ?? ''));
    t.pass(`kubectl get -w listed in ${listed} ms`);
    await viaEdge(['create', 'configmap', 'online-write', '-n', 'outage', '--from-literal=a=b']);
    t.match(await cp.kubectl(['get', 'configmap', 'online-write', '-n', 'outage', '-o', 'name']), /online-write/);
  });

  t.test('cut: reads answer from the cache, the watch stays open', async (t) => {
    const t0 = Date.now();
    await topo.cutFromControlPlane(a);
    await until('the agent notices the outage', async () => (await cloudReachable()) === 0);
    t.pass(`cloud unreachable noticed ${Date.now() - t0} ms after the cut`);
    const direct = await a.exec(
      bins.kubectl,
      [`--kubeconfig=${proxyKubeconfig}`, `--cache-dir=${kubectlCache}`, '--request-timeout=2s', 'get', '--raw', '/readyz'],
      { timeoutMs: 10_000 },
    );
    t.notOk(direct.ok, 'the apiserver itself is unreachable from the node');
    await checkReads(t, 'offline', ['cache', 'db', 'web']);
    await t.rejects(
      viaEdge(['create', 'configmap', 'offline-write', '-n', 'outage', '--from-literal=a=b']),
      /cloud is unreachable/,
      'writes fail clearly',
    );
    await sleep(Math.max(0, 8_000 - (Date.now() - t0)));
    t.ok(w1?.running, `kubectl get -w still running ${Date.now() - t0} ms after the cut`);
  });

  t.test('restart while cut: the persisted cache still serves the last state', async (t) => {
    const t0 = Date.now();
    await agent.kill();
    agent = await startAgent(a, config);
    const started = Date.now() - t0;
    t.equal(await cloudReachable(), 0, 'still offline after the restart');
    t.pass(`agent restarted offline in ${started} ms`);
    await checkReads(t, 'offline after restart', ['cache', 'db', 'web']);
    // The first watch's stream ended with the old process; kubectl get -w exits then.
    await Promise.race([w1?.exited, sleep(5_000)]);
    t.comment(`watch opened before the restart: ${w1?.running ? 'still running' : 'exited with the old agent'}`);
    // A watch opened offline: the cached state, then held.
    w2 = watch(['services', '-o', 'name']);
    const listed = await until('the offline watch lists from the cache', () => /service\/web/.test(w2?.output() ?? ''));
    t.pass(`offline kubectl get -w listed from the cache in ${listed} ms`);

    // Meanwhile, in the cloud: changes the node cannot see yet.
    await cp.kubectl(['create', 'service', 'clusterip', 'born-offline', '-n', 'outage', '--tcp=81:81']);
    await cp.kubectl(['delete', 'service', 'db', '-n', 'outage']);
    await sleep(1_500);
    t.ok(w2?.running, 'the offline watch is held open');
    t.notMatch(w2?.output() ?? '', /born-offline/, 'the change is not visible while cut');
    t.same(await list(['services']), ['cache', 'db', 'web'], 'offline reads still show the last state');
  });

  t.test('restore: the change made while away reaches the watcher', async (t) => {
    const t0 = Date.now();
    await topo.restoreControlPlane(a);
    const back = await until('the agent notices the return', async () => (await cloudReachable()) === 1);
    t.pass(`cloud reachable again ${back} ms after the restore`);
    const added = await until(
      'the held watch delivers the service created while away',
      () => /service\/born-offline/.test(w2?.output() ?? ''),
      20_000,
    );
    t.pass(`born-offline reached the watcher ${Date.now() - t0} ms after the restore (${added} ms after reachable)`);
    // With -o name a deletion prints the name again: service/db a second time.
    const dbLines = () => (w2?.output() ?? '').split('\n').filter((l) => l.trim() === 'service/db').length;
    await until('the held watch delivers the deletion', () => dbLines() >= 2, 10_000);
    t.pass(`the deletion of db reached the watcher ${Date.now() - t0} ms after the restore`);
    t.ok(w2?.running, 'the same kubectl get -w is still running');
    t.same(await list(['services']), ['born-offline', 'cache', 'web'], 'reads show the new state');
  });
}
