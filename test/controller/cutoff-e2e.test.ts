import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.ts';
import { ConfigSchema } from '../../src/config/schema.ts';
import { startController } from '../../src/controller/run.ts';
import { createKubeConnection } from '../../src/kube/connection.ts';
import { kubeRequest } from '../../src/kube/http.ts';
import { silentLogger } from '../../src/log.ts';
import { POD_SERVER, startAgent } from '../e2e/agent-in-node.ts';
import { bins } from '../harness/binaries.ts';
import { createCa, issueCert } from '../harness/certs.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { createTopology, type NetnsNode, NODE_BIN } from '../harness/netns.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { metricValue, phaseOf, sleep, until } from './helpers.ts';

/**
 * The done-when of issue 10 for real: three namespaced nodes, each running `meshlet agent`
 * (apiserver cache + witness + service proxy) and a kubelet stand-in that registers its Node and
 * renews its Lease through the node's cache with the node's credentials; pods bound to node a;
 * the controller in the test process against the real apiserver and kube-controller-manager.
 */
const STANDIN = fileURLToPath(new URL('./fixtures/kubelet-standin.ts', import.meta.url));
const NLC_GRACE_MS = 10_000;
const needs = {
  root: true,
  commands: ['ip', 'curl', 'iptables', 'openssl'],
  executables: [bins.kubeApiserver, bins.etcd, bins.kubectl, bins.kubeControllerManager],
};

if (requireOrSkip(t, needs)) {
  const cp = await startControlPlane(t, {
    controllerManager: { flags: [`--node-monitor-grace-period=${NLC_GRACE_MS / 1000}s`, '--node-monitor-period=1s'] },
  });
  const topo = await createTopology(t, { nodes: ['a', 'b', 'c'] });
  const exposed = await topo.exposeHostPort(cp.port);
  const server = `https://${exposed.address}:${exposed.port}`;
  const conn = createKubeConnection({ kubeconfig: cp.kubeconfigPath, context: '' });
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-cutoff-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'witness.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex')); // text, as the chart's Secret is
  const NS = 'meshlet-system';

  await cp.apply(`apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: v1
kind: Namespace
metadata: {name: work}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: work}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: meshlet-agent}
rules:
  - {apiGroups: [""], resources: [services, nodes], verbs: [get, list, watch]}
  - {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: meshlet-agent}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: meshlet-agent}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: meshlet-agent}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: meshlet-witness, namespace: ${NS}}
rules:
  - {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, patch, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: meshlet-witness, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: meshlet-witness}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: meshlet-agent}]`);

  // The controller (host namespace, admin credentials), short timings.
  const controller = await startController(
    ConfigSchema.parse({
      log: { level: 'warn' },
      admin: { port: 0 },
      witness: { namespace: NS, keyFile },
      controller: {
        kubeconfig: cp.kubeconfigPath,
        installCrd: true,
        syncIntervalMs: 250,
        cloudGraceMs: 5_000,
        peerGraceMs: 3_000,
        reportMaxAgeMs: 10_000,
        renewIntervalMs: 1_000,
        statusRefreshMs: 5_000,
        leaderElection: { leaseNamespace: NS, leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 },
        outOfService: { enabled: true, afterMs: 3_000 },
      },
    }),
    silentLogger(),
  );
  t.teardown(() => controller.stop());

  // Per node: the cache's serving certificate, kubeconfigs through the cache, the agent and the stand-in.
  const edgeCa = createCa(dir, 'edge-ca', 'meshlet-edge-ca');
  const serving = issueCert(edgeCa, dir, 'edge', { cn: 'meshlet-apicache', sans: ['127.0.0.1'], usage: 'server' });
  const viaCache = (src: string, name: string) => {
    const doc = parseYaml(readFileSync(src, 'utf8')) as { clusters: { cluster: Record<string, string> }[] };
    for (const c of doc.clusters) {
      c.cluster.server = 'https://127.0.0.1:8778';
      c.cluster['certificate-authority-data'] = readFileSync(edgeCa.certPath).toString('base64');
    }
    const path = join(dir, `${name}.kubeconfig`);
    writeFileSync(path, toYaml(doc), { mode: 0o600 });
    return path;
  };
  const cacheUpstream = cp.clientKubeconfig({ user: 'meshlet-cache', groups: ['system:masters'], server });
  const agentKc = viaCache(cp.clientKubeconfig({ user: 'meshlet-agent', server }), 'agent');
  const nodes = [topo.node('a'), topo.node('b'), topo.node('c')];
  const [a, b] = nodes as [NetnsNode, NetnsNode, NetnsNode];
  const agentConfig = (node: NetnsNode): ConfigInput => {
    const cacheDir = join(dir, `cache-${node.name}`);
    mkdirSync(cacheDir, { recursive: true });
    return {
      node: { name: node.name },
      log: { level: 'info' },
      admin: { address: '127.0.0.1', port: 15090 },
      source: { kind: 'kubernetes', kubernetes: { kubeconfig: agentKc, initialSyncTimeoutMs: 5_000 } },
      dns: { enabled: false },
      proxy: { address: '127.0.0.1', listenPort: 'service' },
      apicache: {
        enabled: true,
        address: '127.0.0.1',
        port: 8778,
        tlsCertFile: serving.certPath,
        tlsKeyFile: serving.keyPath,
        kubeconfig: cacheUpstream,
        cacheDir,
        healthCheckIntervalMs: 500,
        healthCheckTimeoutMs: 400,
        unhealthyThreshold: 2,
        resumeJitterMs: 200,
      },
      witness: { enabled: true, keyFile, namespace: NS, probeIntervalMs: 500, probeTimeoutMs: 400, reportIntervalMs: 1_000 },
      shutdown: { gracePeriodMs: 1_000 },
    };
  };
  const pods = new Map<string, ReturnType<NetnsNode['spawn']>>();
  const agents = new Map<string, ReturnType<NetnsNode['spawn']>>();
  const standins = new Map<string, ReturnType<NetnsNode['spawn']>>();
  for (const node of nodes) {
    const standin = node.spawn(NODE_BIN, [
      STANDIN,
      viaCache(cp.nodeKubeconfig(node.name, { server }), `node-${node.name}`),
      node.name,
      node.address,
    ]);
    standins.set(node.name, standin);
  }
  await Promise.all(nodes.map(async (node) => agents.set(node.name, await startAgent(node, agentConfig(node)))));
  await Promise.all([...standins.values()].map((s) => s.waitForOutput(/registered/, 30_000)));
  const pod = a.spawn(NODE_BIN, [POD_SERVER, 'web-a', a.address, '8080']);
  await pod.waitForOutput(/listening/);
  pods.set('a', pod);

  for (const p of ['web-a1', 'web-a2']) {
    await kubeRequest(conn, 'POST', '/api/v1/namespaces/work/pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p, namespace: 'work', labels: { app: 'web' } },
      spec: { nodeName: 'a', containers: [{ name: 'c', image: 'none', ports: [{ containerPort: 8080 }] }] },
    });
    const ts = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    await kubeRequest(
      conn,
      'PATCH',
      `/api/v1/namespaces/work/pods/${p}/status`,
      {
        status: {
          phase: 'Running',
          podIP: a.address,
          podIPs: [{ ip: a.address }],
          conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: ts }],
        },
      },
      { patchType: 'strategic' },
    );
  }

  const podStates = async () =>
    (
      await kubeRequest<{
        items: { metadata: { deletionTimestamp?: string }; status?: { conditions?: { type: string; status: string }[] } }[];
      }>(conn, 'GET', '/api/v1/namespaces/work/pods')
    ).items.map((p) =>
      p.metadata.deletionTimestamp ? 'deleting' : (p.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? '?'),
    );
  const readyEndpoints = async () =>
    (
      await kubeRequest<{ items: { endpoints?: { nodeName?: string; conditions?: { ready?: boolean } }[] }[] }>(
        conn,
        'GET',
        '/apis/discovery.k8s.io/v1/namespaces/work/endpointslices',
      )
    ).items
      .flatMap((s) => s.endpoints ?? [])
      .filter((e) => e.nodeName === 'a' && e.conditions?.ready === true).length;
  const nodeState = async (name: string) => {
    const n = await kubeRequest<{
      spec?: { taints?: { key: string }[] };
      status?: { conditions?: { type: string; status: string }[] };
    }>(conn, 'GET', `/api/v1/nodes/${name}`);
    return {
      ready: n.status?.conditions?.find((c) => c.type === 'Ready')?.status,
      taints: (n.spec?.taints ?? []).map((x) => x.key),
    };
  };
  const curlFromB = async () => {
    const r = await b.exec('curl', ['-sS', '--max-time', '2', 'http://127.0.0.1:80/'], { timeoutMs: 4_000 });
    return r.ok ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
  };

  t.test('every node heard by the cloud and its peers: Ready', async (t) => {
    for (const n of ['a', 'b', 'c']) await until(`${n} Ready`, async () => (await phaseOf(conn, n)) === 'Ready', 30_000);
    await until('a heard by b and c', async () => {
      const table = await cp.kubectl(['get', 'edgenode', 'a', '-o', 'jsonpath={.status.peers[*].reachable}']);
      return table === 'true true';
    });
    await until('endpoints of a ready', async () => (await readyEndpoints()) === 2);
    t.equal(await until('traffic b → a', async () => ((await curlFromB()) === 'web-a' ? 'web-a' : undefined)), 'web-a');
    t.match(await cp.kubectl(['get', 'edgenodes']), /\na\s+Ready\s/);
  });

  t.test('cut a from the control plane: CutOff, not evicted, endpoints ready, traffic flows; restore: Ready', async (t) => {
    const cutAt = Date.now();
    await topo.cutFromControlPlane(a);
    await until('a CutOff', async () => (await phaseOf(conn, 'a')) === 'CutOff', 20_000, 100);
    const cutOffMs = Date.now() - cutAt;
    t.ok(cutOffMs < 5_000 + 3_000, `CutOff ${cutOffMs} ms after the cut (cloud grace 5 s)`);
    await sleep(NLC_GRACE_MS + 3_000);
    t.same(await nodeState('a'), { ready: 'True', taints: [] }, 'Node a Ready, no taint, past the node-monitor grace period');
    t.same(await podStates(), ['True', 'True'], "a's pods Ready, not evicted");
    t.equal(await readyEndpoints(), 2, "a's EndpointSlice entries ready");
    t.equal(await curlFromB(), 'web-a', 'traffic from b to the pod on a flows through meshlet');
    t.equal(await phaseOf(conn, 'a'), 'CutOff');
    const status = JSON.parse(await cp.kubectl(['get', 'edgenode', 'a', '-o', 'json'])) as {
      status: { cloud?: { reachable: boolean } };
    };
    t.match(status.status.cloud, { reachable: false }, "a's own view (relayed by its peers): no apiserver");

    const restoreAt = Date.now();
    await topo.restoreControlPlane(a);
    await until('a Ready', async () => (await phaseOf(conn, 'a')) === 'Ready', 20_000, 100);
    t.ok(Date.now() - restoreAt < 8_000, `Ready ${Date.now() - restoreAt} ms after the restore`);
    t.same(await podStates(), ['True', 'True'], 'nothing lost');
  });

  t.test('stop a entirely: Unreachable, then out-of-service and evicted', async (t) => {
    const stopAt = Date.now();
    agents.get('a')?.kill();
    standins.get('a')?.kill();
    await until('a Unreachable', async () => (await phaseOf(conn, 'a')) === 'Unreachable', 20_000, 100);
    const unreachableMs = Date.now() - stopAt;
    t.ok(unreachableMs < 5_000 + 2_000, `Unreachable ${unreachableMs} ms after a stopped`);
    await until('pods evicted', async () => (await podStates()).every((s) => s === 'deleting'), 15_000, 200);
    const evictedMs = Date.now() - stopAt;
    t.ok(evictedMs < unreachableMs + 3_000 + 3_000, `pods evicted ${evictedMs} ms after a stopped (out-of-service after 3 s)`);
    t.ok((await nodeState('a')).taints.includes('node.kubernetes.io/out-of-service'));
    t.equal(await metricValue(controller.admin.url, 'meshlet_controller_reports_rejected_total'), 0, 'no report rejected');
  });
}
