import t from 'tap';
import { bins } from '../harness/binaries.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { createTopology, type NetnsNode, NODE_BIN } from '../harness/netns.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { agentKubeconfig, MESHLET_ADDRESS, nodeAgentConfig, POD_RESOLV_CONF, POD_SERVER, startAgent } from './agent-in-node.ts';
import { createPodNetns } from './pod-netns.ts';

/**
 * The EdgeMesh walkthrough, for real: three edge nodes (network namespaces) whose agents watch a
 * real kube-apiserver, an nginx-like backend on node b behind ClusterIP service `nginx-svc`
 * (port 12345 → 80), and `curl http://nginx-svc.default.svc.cluster.local:12345` from the nodes,
 * resolved by meshlet's DNS and intercepted by meshlet's iptables rules. Then beyond it: scale to
 * three backends and check the spread, remove one under load, delete the service.
 */
const needs = {
  root: true,
  commands: ['ip', 'curl', 'dig', 'getent', 'iptables-nft-restore', 'openssl'],
  executables: [bins.kubeApiserver, bins.etcd, bins.kubectl],
};

if (requireOrSkip(t, needs)) {
  const cp = await startControlPlane(t);
  const topo = await createTopology(t, { nodes: ['a', 'b', 'c'], resolvConf: POD_RESOLV_CONF });
  const apiserver = await topo.exposeHostPort(cp.port);
  const server = `https://${apiserver.address}:${apiserver.port}`;

  const kubeconfig = await agentKubeconfig(cp, server);

  const [a, b, c] = [topo.node('a'), topo.node('b'), topo.node('c')];
  const nodes = [a, b, c];
  for (const node of nodes) {
    const pod = node.spawn(NODE_BIN, [POD_SERVER, `nginx-${node.name}`, node.address, '80']);
    await pod.waitForOutput(/listening/);
  }
  const agents = await Promise.all(nodes.map((node) => startAgent(node, nodeAgentConfig(node.name, kubeconfig))));

  const url = 'http://nginx-svc.default.svc.cluster.local:12345/';
  async function curl(node: NetnsNode, target = url): Promise<string> {
    const r = await node.exec('curl', ['-sS', '--max-time', '3', target], { timeoutMs: 5_000 });
    return r.ok ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
  }
  async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
    const end = Date.now() + ms;
    let last = await probe();
    while (!ok(last)) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      last = await probe();
    }
    return last;
  }
  function slice(podNodes: NetnsNode[]): string {
    const endpoints = podNodes
      .map((n) => `  - { addresses: [${n.address}], conditions: { ready: true }, nodeName: ${n.name} }`)
      .join('\n');
    return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: nginx-svc-1, namespace: default, labels: { kubernetes.io/service-name: nginx-svc } }
addressType: IPv4
ports: [{ name: http-0, port: 80, protocol: TCP }]
endpoints:
${endpoints}
`;
  }

  t.test('curl nginx-svc by name from node a and node b reaches the backend on node b', async (t) => {
    await cp.apply(`apiVersion: v1
kind: Service
metadata: { name: nginx-svc, namespace: default }
spec: { ports: [{ name: http-0, port: 12345, targetPort: 80, protocol: TCP }] }
---
${slice([b])}`);
    t.equal(
      await until(
        'curl from a',
        () => curl(a),
        (out) => out === 'nginx-b',
      ),
      'nginx-b',
      'from node a (remote backend)',
    );
    t.equal(
      await until(
        'curl from b',
        () => curl(b),
        (out) => out === 'nginx-b',
      ),
      'nginx-b',
      'from node b (local backend)',
    );
    const getent = await a.exec('getent', ['hosts', 'nginx-svc']);
    t.match(getent.stdout, /^198\.19\.\d+\.\d+\s+nginx-svc\.default\.svc\.cluster\.local/, 'short name through the search path');
  });

  t.test('three backends: round robin spreads requests evenly', async (t) => {
    await cp.apply(slice([a, b, c]));
    await until(
      'three backends from a',
      () => curl(a),
      (out) => out === 'nginx-a' || out === 'nginx-c',
    );
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const out = await curl(a);
      counts.set(out, (counts.get(out) ?? 0) + 1);
    }
    t.same(Object.fromEntries(counts), { 'nginx-a': 10, 'nginx-b': 10, 'nginx-c': 10 });
  });

  t.test('a backend removed while requests run: no request fails', async (t) => {
    const results: string[] = [];
    let stop = false;
    const load = (async () => {
      for (let i = 0; i < 400 && !stop; i++) results.push(await curl(a));
    })();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await cp.apply(slice([a, b]));
    await until(
      'c gone',
      () => curl(b),
      (out) => out === 'nginx-a' || out === 'nginx-b',
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    stop = true;
    await load;
    t.ok(results.length >= 10, `${results.length} requests during the change`);
    t.same(
      results.filter((r) => r.startsWith('failed')),
      [],
      'no failed request',
    );
    const after = new Set<string>();
    for (let i = 0; i < 10; i++) after.add(await curl(a));
    t.same([...after].sort(), ['nginx-a', 'nginx-b'], 'only the remaining backends after the change');
  });

  t.test('a new service resolves within a second; a deleted one is NXDOMAIN', async (t) => {
    const dig = async (name: string) => (await a.exec('dig', [`@${MESHLET_ADDRESS}`, name, '+tries=1', '+time=1'])).stdout;
    await cp.apply(`apiVersion: v1
kind: Service
metadata: { name: fresh, namespace: default }
spec: { ports: [{ port: 80 }] }`);
    const started = Date.now(); // the apiserver has stored it
    const out = await until(
      'fresh resolves',
      () => dig('fresh.default.svc.cluster.local'),
      (o) => /status: NOERROR/.test(o) && /IN\s+A\s+198\.19\./.test(o),
      5_000,
    );
    const ms = Date.now() - started;
    t.ok(ms < 1_000, `resolved ${ms} ms after the apiserver stored it`);
    t.match(out, /flags: qr aa rd/, 'authoritative answer');
    await cp.kubectl(['delete', 'service', 'fresh']);
    const gone = await until(
      'fresh NXDOMAIN',
      () => dig('fresh.default.svc.cluster.local'),
      (o) => /status: NXDOMAIN/.test(o),
      5_000,
    );
    t.match(gone, /SOA/, 'NXDOMAIN carries the SOA');
  });

  t.test('a pod behind node a (nat PREROUTING) reaches the service by name', async (t) => {
    const pod = createPodNetns(a, `ml-${process.pid}-pod`, {
      nodeSide: '198.18.200.1',
      podSide: '198.18.200.2',
      prefix: 24,
      routes: ['198.19.0.0/16', `${MESHLET_ADDRESS}/32`],
      resolvConf: POD_RESOLV_CONF,
    });
    t.teardown(() => pod.remove());
    const out = pod.run('curl', ['-sS', '--max-time', '3', url]).trim();
    t.match(out, /^nginx-[ab]$/, `pod traffic intercepted in PREROUTING (${out})`);
    t.match(pod.run('iptables-nft-save', ['-t', 'nat']), /^(?![\s\S]*MESHLET)/, 'the pod namespace itself has no meshlet rules');
  });

  t.test('UDP service: datagrams reach the backend and replies come back', async (t) => {
    const echo = b.spawn(NODE_BIN, [
      '-e',
      `const s = require('node:dgram').createSocket('udp4');
       s.on('message', (m, r) => s.send(Buffer.concat([Buffer.from('echo-b:'), m]), r.port, r.address));
       s.bind(5300, '${b.address}', () => console.log('listening'));`,
    ]);
    await echo.waitForOutput(/listening/);
    await cp.apply(`apiVersion: v1
kind: Service
metadata: { name: echo-udp, namespace: default }
spec: { ports: [{ name: echo, port: 5300, targetPort: 5300, protocol: UDP }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: echo-udp-1, namespace: default, labels: { kubernetes.io/service-name: echo-udp } }
addressType: IPv4
ports: [{ name: echo, port: 5300, protocol: UDP }]
endpoints: [{ addresses: [${b.address}], conditions: { ready: true }, nodeName: b }]
`);
    const clusterIP = (await cp.kubectl(['get', 'service', 'echo-udp', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const client = `const s = require('node:dgram').createSocket('udp4');
      const t = setTimeout(() => { console.log('timeout'); process.exit(1); }, 1500);
      s.on('message', (m) => { console.log(m.toString()); clearTimeout(t); s.close(); });
      s.send('ping', 5300, '${clusterIP}');`;
    const reply = await until(
      'a UDP reply through the cluster IP',
      async () => (await c.exec(NODE_BIN, ['-e', client], { timeoutMs: 5_000 })).stdout.trim(),
      (o) => o === 'echo-b:ping',
    );
    t.equal(reply, 'echo-b:ping', 'from node c via the cluster IP to the pod on node b');
    await cp.kubectl(['delete', 'service', 'echo-udp']);
    await cp.kubectl(['delete', 'endpointslice', 'echo-udp-1']);
  });

  t.test('kernel forwarding (meshlet.io/tcp-forwarding: kernel): DNAT to the endpoints, spread, following changes', async (t) => {
    await cp.apply(`apiVersion: v1
kind: Service
metadata: { name: raw, namespace: default, annotations: { meshlet.io/tcp-forwarding: kernel } }
spec: { ports: [{ name: tcp, port: 7000, targetPort: 80, protocol: TCP }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: raw-1, namespace: default, labels: { kubernetes.io/service-name: raw } }
addressType: IPv4
ports: [{ name: tcp, port: 80, protocol: TCP }]
endpoints:
  - { addresses: [${b.address}], conditions: { ready: true }, nodeName: b }
  - { addresses: [${c.address}], conditions: { ready: true }, nodeName: c }
`);
    const rawUrl = 'http://raw.default.svc.cluster.local:7000/';
    const save = () => a.run('iptables-nft-save', ['-t', 'nat']);
    await until(
      'kernel rules on node a',
      save,
      (s) => s.includes(`--to-destination ${b.address}:80`) && s.includes(`--to-destination ${c.address}:80`),
    );
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add(await curl(a, rawUrl));
    t.same([...seen].sort(), ['nginx-b', 'nginx-c'], 'both endpoints, straight from the kernel');
    await cp.apply(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: raw-1, namespace: default, labels: { kubernetes.io/service-name: raw } }
addressType: IPv4
ports: [{ name: tcp, port: 80, protocol: TCP }]
endpoints:
  - { addresses: [${c.address}], conditions: { ready: true }, nodeName: c }
`);
    await until('node b out of the rules', save, (s) => !s.includes(`--to-destination ${b.address}:80`));
    for (let i = 0; i < 5; i++) t.equal(await curl(a, rawUrl), 'nginx-c');
    await cp.kubectl(['annotate', 'service', 'raw', 'meshlet.io/tcp-forwarding=proxy', '--overwrite']);
    await until('back to the listener', save, (s) => !s.includes(`--to-destination ${c.address}:80`));
    t.equal(await curl(a, rawUrl), 'nginx-c', 'proxied by meshlet again');
    await cp.kubectl(['delete', 'service', 'raw']);
    await cp.kubectl(['delete', 'endpointslice', 'raw-1']);
  });

  t.test('deleting the service removes its rules on every node', async (t) => {
    const save = (node: NetnsNode) => node.run('iptables-nft-save', ['-t', 'nat']);
    const clusterIP = (await cp.kubectl(['get', 'service', 'nginx-svc', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    for (const node of nodes)
      t.match(await save(node), new RegExp(`-d ${clusterIP.replace(/\./g, '\\.')}/32`), `rule on ${node.name}`);
    await cp.kubectl(['delete', 'service', 'nginx-svc']);
    for (const node of nodes) {
      await until(
        `rule gone on ${node.name}`,
        () => save(node),
        (s) => !s.includes(`-d ${clusterIP}/32`),
      );
    }
    t.match(await curl(a), /^failed/, 'the name no longer resolves');
  });

  t.test('SIGTERM removes every rule and the address the agent installed', async (t) => {
    const agent = agents[0];
    if (!agent) throw new Error('no agent on node a');
    await agent.kill();
    const saved = await a.run('iptables-nft-save', ['-t', 'nat']);
    t.notMatch(saved, /MESHLET/, 'no meshlet chain or jump left');
    const addrs = await a.run('ip', ['addr', 'show', 'dev', 'lo']);
    t.notMatch(addrs, new RegExp(MESHLET_ADDRESS.replace(/\./g, '\\.')), 'link-local address removed');
  });
}
