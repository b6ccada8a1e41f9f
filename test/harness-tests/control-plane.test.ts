import { existsSync } from 'node:fs';
import t from 'tap';
import { bins, pinnedVersions } from '../harness/binaries.ts';
import { describeCert } from '../harness/certs.ts';
import { firstAddress, startControlPlane } from '../harness/control-plane.ts';
import { requireOrSkip } from '../harness/requirements.ts';

/** Whether any process is left in the process group (kill -0 on the group). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const attempt = async (): Promise<T> => {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
    return attempt();
  };
  return attempt();
}

if (
  requireOrSkip(t, {
    commands: ['openssl'],
    executables: [bins.kubeApiserver, bins.etcd, bins.kubectl, bins.kubeControllerManager],
  })
) {
  // One fixture per test file: every subtest below shares it.
  const cp = await startControlPlane(t, { controllerManager: true });
  const ms = (n: number | undefined): string => `${Math.round(n ?? 0)} ms`;
  t.comment(
    `control plane up in ${ms(cp.timings.totalMs)} (certs ${ms(cp.timings.certsMs)}, etcd ${ms(cp.timings.etcdMs)}, ` +
      `apiserver ${ms(cp.timings.apiserverMs)}, controller-manager ${ms(cp.timings.controllerManagerMs)})`,
  );

  t.test('serving certificate names every address the apiserver is reached at', async (t) => {
    const text = describeCert(`${cp.dir}/pki/apiserver.crt`);
    for (const san of [
      'IP Address:127.0.0.1',
      'IP Address:198.18.0.1',
      'IP Address:198.19.0.1',
      'DNS:localhost',
      'DNS:kubernetes.default.svc',
    ]) {
      t.match(text, san);
    }
    t.equal(cp.kubernetesServiceIp, '198.19.0.1');
  });

  t.test('kubectl version: client and server are the pinned version', async (t) => {
    const want = pinnedVersions().kubernetes;
    const v = JSON.parse(await cp.kubectl(['version', '-o', 'json'])) as {
      clientVersion?: { gitVersion?: string };
      serverVersion?: { gitVersion?: string };
    };
    t.equal(v.clientVersion?.gitVersion, want, 'client');
    t.equal(v.serverVersion?.gitVersion, want, 'server');
  });

  t.test('Service and EndpointSlice round-trip through kubectl apply / get', async (t) => {
    await cp.apply(`
apiVersion: v1
kind: Namespace
metadata:
  name: cp-test
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: cp-test
spec:
  ports:
    - name: http
      port: 80
      targetPort: 8080
      protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: cp-test
  labels:
    kubernetes.io/service-name: web
    endpointslice.kubernetes.io/managed-by: meshlet-test
addressType: IPv4
ports:
  - name: http
    port: 8080
    protocol: TCP
endpoints:
  - addresses: [198.18.1.10]
    conditions:
      ready: true
    nodeName: node-a
    zone: edge-1
  - addresses: [198.18.2.10]
    conditions:
      ready: false
    nodeName: node-b
`);
    const svc = JSON.parse(await cp.kubectl(['get', 'service', 'web', '-n', 'cp-test', '-o', 'json'])) as {
      spec: { clusterIP: string; ports: { name: string; port: number; targetPort: number }[] };
    };
    t.match(svc.spec.clusterIP, /^198\.19\.\d+\.\d+$/, 'cluster IP from the service range');
    t.not(svc.spec.clusterIP, '198.19.0.1', 'not the kubernetes Service IP');
    t.match(svc.spec.ports, [{ name: 'http', port: 80, targetPort: 8080 }]);

    const list = JSON.parse(
      await cp.kubectl([
        'get',
        'endpointslices.discovery.k8s.io',
        '-n',
        'cp-test',
        '-l',
        'kubernetes.io/service-name=web',
        '-o',
        'json',
      ]),
    ) as {
      items: {
        metadata: { name: string };
        addressType: string;
        ports: unknown[];
        endpoints: { addresses: string[]; conditions: { ready?: boolean }; nodeName?: string; zone?: string }[];
      }[];
    };
    t.equal(list.items.length, 1, 'one slice selected by kubernetes.io/service-name');
    const slice = list.items[0];
    t.equal(slice?.metadata.name, 'web-1');
    t.equal(slice?.addressType, 'IPv4');
    t.match(slice?.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    t.match(slice?.endpoints, [
      { addresses: ['198.18.1.10'], conditions: { ready: true }, nodeName: 'node-a', zone: 'edge-1' },
      { addresses: ['198.18.2.10'], conditions: { ready: false }, nodeName: 'node-b' },
    ]);
  });

  t.test('a node credential is limited by the Node authorizer', async (t) => {
    const kubeconfig = cp.nodeKubeconfig('node-a');
    const whoami = JSON.parse(await cp.kubectl(['auth', 'whoami', '-o', 'json'], { kubeconfig })) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    t.equal(whoami.status.userInfo.username, 'system:node:node-a');
    t.ok(whoami.status.userInfo.groups.includes('system:nodes'), 'in group system:nodes');

    // A node may register and read its own Node object (Node authorizer + NodeRestriction)...
    await cp.kubectl(['create', '-f', '-'], {
      kubeconfig,
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'node-a', labels: { 'meshlet.dev/test': 'yes' } },
      }),
    });
    const own = JSON.parse(await cp.kubectl(['get', 'node', 'node-a', '-o', 'json'], { kubeconfig })) as {
      metadata: { name: string; labels: Record<string, string> };
    };
    t.equal(own.metadata.name, 'node-a', 'get nodes: its own Node by name');
    t.equal(own.metadata.labels['meshlet.dev/test'], 'yes');
    const listed = JSON.parse(
      await cp.kubectl(['get', 'nodes', '--field-selector', 'metadata.name=node-a', '-o', 'json'], { kubeconfig }),
    ) as { items: { metadata: { name: string } }[] };
    t.same(
      listed.items.map((n) => n.metadata.name),
      ['node-a'],
      'get nodes: the list selected to its own Node',
    );
    // ...but since AuthorizeNodeWithSelectors (GA) not every node, nor anything it has no pod for.
    await t.rejects(
      cp.kubectl(['get', 'nodes'], { kubeconfig }),
      /cannot read all nodes, only its own Node object/,
      'get nodes (all) is forbidden',
    );
    await t.rejects(cp.kubectl(['get', 'secrets', '-A'], { kubeconfig }), /Forbidden/, 'get secrets -A is forbidden');
    await t.rejects(
      cp.kubectl(['get', 'endpointslices', '-A'], { kubeconfig }),
      /Forbidden/,
      'get endpointslices -A is forbidden',
    );
    await t.resolves(cp.kubectl(['get', 'services', '-A'], { kubeconfig }), 'get services -A is allowed');
    // The admin can do all of it.
    await t.resolves(cp.kubectl(['get', 'secrets', '-A']));
    await t.resolves(cp.kubectl(['get', 'nodes']));
  });

  t.test('kube-controller-manager runs its controllers', async (t) => {
    t.ok(cp.controllerManagerUrl, 'has a healthz URL');
    await cp.kubectl(['create', 'namespace', 'cm-test']);
    // The service-account and root-CA publisher controllers fill every new namespace.
    const sa = await waitFor('the default ServiceAccount', async () =>
      (await cp.kubectl(['get', 'serviceaccount', 'default', '-n', 'cm-test', '-o', 'name'])).trim(),
    );
    t.equal(sa, 'serviceaccount/default');
    const ca = await waitFor(
      'the kube-root-ca.crt ConfigMap',
      async () =>
        JSON.parse(await cp.kubectl(['get', 'configmap', 'kube-root-ca.crt', '-n', 'cm-test', '-o', 'json'])) as {
          data: Record<string, string>;
        },
    );
    t.match(ca.data['ca.crt'], /BEGIN CERTIFICATE/);
    // The EndpointSlice controller gives a Service with a selector its (here empty) slice.
    await cp.apply(`
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: cm-test
spec:
  selector:
    app: api
  ports:
    - port: 8080
`);
    const managedBy = await waitFor("the Service's EndpointSlice", async () => {
      const list = JSON.parse(
        await cp.kubectl(['get', 'endpointslices', '-n', 'cm-test', '-l', 'kubernetes.io/service-name=api', '-o', 'json']),
      ) as { items: { metadata: { labels: Record<string, string> } }[] };
      return list.items[0]?.metadata.labels['endpointslice.kubernetes.io/managed-by'];
    });
    t.equal(managedBy, 'endpointslice-controller.k8s.io');
  });

  t.test('stop() ends every process and removes the directory', async (t) => {
    const pids = [
      cp.pids.etcd,
      cp.pids.apiserver,
      ...(cp.pids.controllerManager === undefined ? [] : [cp.pids.controllerManager]),
    ];
    t.equal(pids.length, 3);
    for (const pid of pids) t.ok(groupAlive(pid), `process group ${pid} runs before stop`);
    const t0 = performance.now();
    await cp.stop();
    t.comment(`stopped in ${Math.round(performance.now() - t0)} ms`);
    for (const pid of pids) t.notOk(groupAlive(pid), `process group ${pid} is gone`);
    t.notOk(existsSync(cp.dir), `${cp.dir} is removed`);
    await cp.stop(); // idempotent
  });
}

// Pure tests go after the fixture's top-level await: a subtest queued before it may let tap end the
// root test (and run the teardown) while the control plane is still starting.
t.test('firstAddress', async (t) => {
  t.equal(firstAddress('198.19.0.0/16'), '198.19.0.1');
  t.equal(firstAddress('198.18.7.9/24'), '198.18.7.1');
  t.throws(() => firstAddress('fd00::/64'));
});
