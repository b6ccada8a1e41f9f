import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { ConfigSchema } from '../../src/config/schema.ts';
import { startController } from '../../src/controller/run.ts';
import { createKubeConnection } from '../../src/kube/connection.ts';
import { kubeRequest } from '../../src/kube/http.ts';
import { silentLogger } from '../../src/log.ts';
import { KeyRing } from '../../src/witness/auth.ts';
import { REPORT_ANNOTATION, REPORT_MAC_ANNOTATION, signReport } from '../../src/witness/report.ts';
import { MAIN } from '../e2e/agent-in-node.ts';
import { bins } from '../harness/binaries.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { NODE_BIN } from '../harness/netns.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { edgeNode, metricValue, peerReport, phaseOf, registerNode, renewLease, sleep, until, writeReport } from './helpers.ts';

/**
 * The controller against a real kube-apiserver and kube-controller-manager (node lifecycle,
 * taint eviction, EndpointSlices, pod GC), with in-process stand-ins for kubelet (Node + Lease
 * renewals) and for the witnesses (signed report Leases). Node lifecycle timings are shortened:
 * NotReady after 8 s without a heartbeat.
 */
const NLC_GRACE_MS = 8_000;
if (
  requireOrSkip(t, {
    commands: ['openssl'],
    executables: [bins.kubeApiserver, bins.etcd, bins.kubectl, bins.kubeControllerManager],
  })
) {
  const cp = await startControlPlane(t, {
    controllerManager: { flags: [`--node-monitor-grace-period=${NLC_GRACE_MS / 1000}s`, '--node-monitor-period=1s'] },
  });
  const conn = createKubeConnection({ kubeconfig: cp.kubeconfigPath, context: '' });
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-controller-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Text, as the chart's Secret is (a random binary key may end in a newline, which the loader trims).
  const clusterKey = Buffer.from(randomBytes(32).toString('hex'));
  const keyFile = join(dir, 'witness.key');
  writeFileSync(keyFile, clusterKey);
  const keys = new KeyRing(clusterKey);
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
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}`);

  // kubelet stand-ins: register a, b, c and renew their Leases every 500 ms while "alive".
  const nodes = ['a', 'b', 'c'];
  const renewing = new Set(nodes);
  for (const [i, n] of nodes.entries()) await registerNode(conn, n, `198.18.0.${10 + i}`);
  let stop = false;
  const kubelets = (async () => {
    for (let i = 0; i < 100_000 && !stop; i++) {
      await Promise.all([...renewing].map((n) => renewLease(conn, n).catch(() => {})));
      await sleep(500);
    }
  })();
  // Witness stand-ins: each listed reporter hears each listed peer "now", every 500 ms.
  const hearing = new Map<string, Set<string>>([
    ['a', new Set(['b', 'c'])],
    ['b', new Set(['a', 'c'])],
    ['c', new Set(['a', 'b'])],
  ]);
  const lastHeard = new Map<string, number>();
  const witnesses = (async () => {
    for (let i = 0; i < 100_000 && !stop; i++) {
      const now = Date.now();
      await Promise.all(
        [...hearing].map(([reporter, heard]) => {
          const peers: Record<string, number | undefined> = {};
          for (const p of nodes.filter((x) => x !== reporter)) {
            if (heard.has(p)) lastHeard.set(`${reporter}>${p}`, now);
            const at = lastHeard.get(`${reporter}>${p}`);
            peers[p] = at === undefined ? undefined : now - at;
          }
          return writeReport(conn, NS, reporter, peerReport(reporter, peers, now), keys).catch(() => {});
        }),
      );
      await sleep(500);
    }
  })();
  t.teardown(async () => {
    stop = true;
    await Promise.all([kubelets, witnesses]);
  });

  // Pods bound to a, made Ready by hand; the EndpointSlice controller publishes them.
  for (const p of ['web-a1', 'web-a2']) {
    await kubeRequest(conn, 'POST', '/api/v1/namespaces/work/pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p, namespace: 'work', labels: { app: 'web' } },
      spec: { nodeName: 'a', containers: [{ name: 'c', image: 'none', ports: [{ containerPort: 8080 }] }] },
    });
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    await kubeRequest(
      conn,
      'PATCH',
      `/api/v1/namespaces/work/pods/${p}/status`,
      {
        status: {
          phase: 'Running',
          podIP: '198.18.0.10',
          podIPs: [{ ip: '198.18.0.10' }],
          conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
        },
      },
      { patchType: 'strategic' },
    );
  }

  const controllerConfig = {
    log: { level: 'warn' as const },
    admin: { port: 0 },
    witness: { namespace: NS, keyFile },
    controller: {
      kubeconfig: cp.kubeconfigPath,
      installCrd: true,
      syncIntervalMs: 200,
      cloudGraceMs: 3_000,
      peerGraceMs: 2_500,
      reportMaxAgeMs: 10_000,
      renewIntervalMs: 1_000,
      statusRefreshMs: 5_000,
      leaderElection: { leaseNamespace: NS, leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 },
      outOfService: { enabled: true, afterMs: 3_000 },
    },
  };
  const handle = await startController(
    ConfigSchema.parse({
      ...controllerConfig,
      controller: {
        ...controllerConfig.controller,
        leaderElection: { ...controllerConfig.controller.leaderElection, identity: 'in-process' },
      },
    }),
    silentLogger(),
  );
  let handleStopped = false;
  t.teardown(() => (handleStopped ? undefined : handle.stop()));

  const podsReady = async () => {
    const list = await kubeRequest<{
      items: { metadata: { deletionTimestamp?: string }; status?: { conditions?: { type: string; status: string }[] } }[];
    }>(conn, 'GET', '/api/v1/namespaces/work/pods');
    return list.items.map((p) =>
      p.metadata.deletionTimestamp ? 'deleting' : (p.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? '?'),
    );
  };
  const readyEndpoints = async () => {
    const list = await kubeRequest<{ items: { endpoints?: { nodeName?: string; conditions?: { ready?: boolean } }[] }[] }>(
      conn,
      'GET',
      '/apis/discovery.k8s.io/v1/namespaces/work/endpointslices',
    );
    return list.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.nodeName === 'a' && e.conditions?.ready === true).length;
  };
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

  t.test('all nodes heard: EdgeNodes Ready, with printer columns', async (t) => {
    for (const n of nodes) await until(`${n} Ready`, async () => (await phaseOf(conn, n)) === 'Ready', 20_000);
    await until('2 ready endpoints on a', async () => (await readyEndpoints()) === 2, 20_000);
    const table = await cp.kubectl(['get', 'edgenodes']);
    t.match(table, /NAME\s+PHASE\s+CLOUD-HEARD\s+PEERS-HEARD\s+AGENT\s+AGE/);
    t.match(table, /\na\s+Ready\s+\S+\s+\S+\s+0\.0\.0-test/);
    const a = await edgeNode(conn, 'a');
    t.match(
      a?.status?.conditions?.find((c) => c.type === 'CloudHeard'),
      { status: 'True' },
    );
    t.same(
      a?.status?.peers?.map((p) => [p.node, p.reachable]),
      [
        ['b', true],
        ['c', true],
      ],
    );
  });

  t.test('a cut from the cloud, heard by its peers: CutOff, not evicted, endpoints stay ready; restore: Ready', async (t) => {
    const cutAt = Date.now();
    renewing.delete('a');
    await until('a CutOff', async () => (await phaseOf(conn, 'a')) === 'CutOff', 15_000, 50);
    const cutOffMs = Date.now() - cutAt;
    t.ok(cutOffMs < 3_000 + 2_000, `CutOff ${cutOffMs} ms after the last kubelet renewal stopped (cloud grace 3 s)`);
    // Well past the node-monitor grace period: the node lifecycle controller would have acted.
    await sleep(NLC_GRACE_MS + 4_000);
    t.same(await nodeState('a'), { ready: 'True', taints: [] }, 'Node a still Ready, no unreachable taint');
    t.same(await podsReady(), ['True', 'True'], "a's pods not marked not-ready, not evicted");
    t.equal(await readyEndpoints(), 2, "a's EndpointSlice entries still ready");
    t.equal(await phaseOf(conn, 'a'), 'CutOff');
    const guard = (await edgeNode(conn, 'a'))?.status?.conditions?.find((c) => c.type === 'EvictionGuard');
    t.match(guard, { status: 'True' });
    t.ok((await metricValue(handle.admin.url, 'meshlet_controller_delegated_renewals_total')) >= 5, 'leases renewed for a');

    const restoreAt = Date.now();
    renewing.add('a');
    await until('a Ready', async () => (await phaseOf(conn, 'a')) === 'Ready', 10_000, 50);
    const readyMs = Date.now() - restoreAt;
    t.ok(readyMs < 2_000, `Ready ${readyMs} ms after kubelet renewed again`);
    t.same(await podsReady(), ['True', 'True'], 'nothing lost');
  });

  t.test('bad reports are rejected and counted; they do not count as hearing', async (t) => {
    const before = await metricValue(handle.admin.url, 'meshlet_controller_reports_rejected_total');
    // Reporter "d" does not exist; its Lease carries garbage, then b's report signed by c.
    await writeReport(conn, NS, 'mallory', { [REPORT_ANNOTATION]: '{"v":1,"node":', [REPORT_MAC_ANNOTATION]: 'x' }, keys);
    const forged = signReport(
      new KeyRing(Buffer.concat([clusterKey.subarray(0, 31), Buffer.from('!')])),
      peerReport('zed', { a: 0 }),
    );
    await writeReport(conn, NS, 'zed', forged, keys);
    const byC = peerReport('zed2', { a: 0 });
    const text = JSON.stringify(byC);
    await writeReport(conn, NS, 'zed2', { [REPORT_ANNOTATION]: text, [REPORT_MAC_ANNOTATION]: keys.sign('c', text) }, keys);
    await until(
      '3 rejections',
      async () => (await metricValue(handle.admin.url, 'meshlet_controller_reports_rejected_total')) - before >= 3,
      5_000,
    );
    t.equal(await metricValue(handle.admin.url, 'meshlet_controller_reports_rejected_total', { reason: 'malformed' }), 1);
    t.equal(await metricValue(handle.admin.url, 'meshlet_controller_reports_rejected_total', { reason: 'bad-signature' }), 2);
    const a = await edgeNode(conn, 'a');
    t.notOk(
      a?.status?.peers?.some((p) => p.node.startsWith('zed') || p.node === 'mallory'),
      'rejected reporters are not witnesses',
    );
  });

  t.test(
    'a stopped entirely: Unreachable, out-of-service taint after 3 s, pods evicted; back: Ready, taint removed',
    async (t) => {
      const stopAt = Date.now();
      renewing.delete('a');
      hearing.get('b')?.delete('a');
      hearing.get('c')?.delete('a');
      await until('a Unreachable', async () => (await phaseOf(conn, 'a')) === 'Unreachable', 15_000, 50);
      const unreachableMs = Date.now() - stopAt;
      t.ok(unreachableMs < 5_000, `Unreachable ${unreachableMs} ms after a stopped`);
      await until(
        'out-of-service taint',
        async () => (await nodeState('a')).taints.includes('node.kubernetes.io/out-of-service'),
        10_000,
        100,
      );
      const taintMs = Date.now() - stopAt;
      t.ok(taintMs < unreachableMs + 3_000 + 2_000, `tainted out-of-service ${taintMs} ms after a stopped`);
      await until('pods evicted', async () => (await podsReady()).every((s) => s === 'deleting'), 10_000, 100);
      const evictedMs = Date.now() - stopAt;
      t.ok(evictedMs < taintMs + 3_000, `pods evicted ${evictedMs} ms after a stopped`);
      t.match(
        (await edgeNode(conn, 'a'))?.status?.conditions?.find((c) => c.type === 'OutOfService'),
        { status: 'True' },
      );

      renewing.add('a');
      hearing.get('b')?.add('a');
      await until('a Ready again', async () => (await phaseOf(conn, 'a')) === 'Ready', 10_000, 50);
      await until(
        'taint removed',
        async () => !(await nodeState('a')).taints.includes('node.kubernetes.io/out-of-service'),
        5_000,
      );
    },
  );

  t.test('two controller processes: kill the leader, the other takes over within its lease time', async (t) => {
    await handle.stop(); // releases the lease
    handleStopped = true;
    const procs = ['one', 'two'].map((id) => {
      const file = join(dir, `controller-${id}.yaml`);
      const cfg = {
        ...controllerConfig,
        controller: {
          ...controllerConfig.controller,
          installCrd: false,
          leaderElection: { ...controllerConfig.controller.leaderElection, identity: id },
        },
      };
      writeFileSync(file, stringify({ ...cfg, log: { level: 'info' } }));
      return { id, proc: spawnController(file) };
    });
    t.teardown(() => {
      for (const p of procs) p.proc.kill('SIGKILL');
    });
    const holder = async () =>
      (
        await kubeRequest<{ spec: { holderIdentity?: string } }>(
          conn,
          'GET',
          `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/meshlet-controller`,
        )
      ).spec.holderIdentity;
    const first = await until('a leader', async () => {
      const h = await holder();
      return h === 'one' || h === 'two' ? h : undefined;
    });
    const leader = procs.find((p) => p.id === first);
    const other = procs.find((p) => p.id !== first);
    if (!leader || !other) throw new Error('no leader');
    await until('a Ready under the first leader', async () => (await phaseOf(conn, 'a')) === 'Ready');
    const killedAt = Date.now();
    leader.proc.kill('SIGKILL');
    await until('the other leads', async () => (await holder()) === other.id, 10_000, 50);
    const takeoverMs = Date.now() - killedAt;
    t.ok(takeoverMs <= 3_000 + 1_000, `took over ${takeoverMs} ms after the kill (lease 3 s)`);
    // The new leader keeps the phases right: a cut again turns CutOff under it.
    t.same(
      await Promise.all(nodes.map((n) => phaseOf(conn, n))),
      ['Ready', 'Ready', 'Ready'],
      'phases unchanged by the failover',
    );
    renewing.delete('a');
    await until('a CutOff under the new leader', async () => (await phaseOf(conn, 'a')) === 'CutOff', 10_000, 50);
    renewing.add('a');
    await until('a Ready under the new leader', async () => (await phaseOf(conn, 'a')) === 'Ready', 10_000, 50);
  });
}

function spawnController(file: string): ChildProcess {
  return spawn(NODE_BIN, [MAIN, 'controller', '-c', file], { stdio: 'ignore' });
}
