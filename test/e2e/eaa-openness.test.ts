import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.ts';
import { sharedCa, tempDir } from '../eaa/helpers.ts';
import { bins } from '../harness/binaries.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { createTopology, type NetnsNode, NODE_BIN, type TrackedProcess } from '../harness/netns.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { agentKubeconfig, MESHLET_ADDRESS, nodeAgentConfig, POD_RESOLV_CONF, startAgent } from './agent-in-node.ts';
import { createPodNetns } from './pod-netns.ts';

/**
 * Issue 7: "reaching eaa.openness:443 from a pod works through meshlet's DNS and proxy", for real.
 * A kube-apiserver holds the chart's own `openness/eaa` Service (rendered by helm: ClusterIP, 443
 * and 80, internalTrafficPolicy Local, no EndpointSlices at all); two nodes run `meshlet agent`
 * with the chart's EAA settings (API on the node's loopback at 15444/15080, peers on 15443). The
 * apps know only the name eaa.openness and the OpenNESS ports: a producer in a pod behind node a
 * (nat PREROUTING) and consumers on the hosts of nodes a and b (OUTPUT) each reach their own
 * node's agent through meshlet's DNS (search path) and iptables/proxy, with TLS verified for the
 * server name eaa.openness, and the notification crosses from a to b over the agents' peer link.
 */
const CHART = fileURLToPath(new URL('../../charts/meshlet', import.meta.url));
const APP = fileURLToPath(new URL('./fixtures/eaa-app.ts', import.meta.url));

const needs = {
  root: true,
  commands: ['ip', 'curl', 'getent', 'iptables-nft-restore', 'openssl'],
  executables: [bins.kubeApiserver, bins.etcd, bins.kubectl, bins.helm],
};

interface Reply {
  status: number;
  body: string;
}

if (requireOrSkip(t, needs)) {
  const dir = await tempDir(t, 'meshlet-e2e-eaa-');
  const ca = await sharedCa(dir);
  const cp = await startControlPlane(t);
  const topo = await createTopology(t, { nodes: ['a', 'b'], resolvConf: POD_RESOLV_CONF });
  const apiserver = await topo.exposeHostPort(cp.port);
  const server = `https://${apiserver.address}:${apiserver.port}`;
  const kubeconfig = await agentKubeconfig(cp, server);

  // The chart's Service, exactly as helm renders it (namespace openness included).
  const rendered = spawnSync(
    bins.helm,
    ['template', 'meshlet', CHART, '-n', 'meshlet-system', '--show-only', 'templates/eaa-service.yaml'],
    { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: dir, HELM_CONFIG_HOME: dir, HELM_DATA_HOME: dir } },
  );
  if (rendered.status !== 0) throw new Error(`helm template: ${rendered.stderr}`);
  await cp.apply(rendered.stdout);
  const clusterIP = (await cp.kubectl(['get', 'service', 'eaa', '-n', 'openness', '-o', 'jsonpath={.spec.clusterIP}'])).trim();

  // The chart's agent EAA settings, with this test's CA and state files (the chart mounts a Secret).
  const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as {
    agent: { config: { eaa: NonNullable<ConfigInput['eaa']> } };
  };
  const chartEaa = values.agent.config.eaa;
  const [a, b] = [topo.node('a'), topo.node('b')];
  const peers = [a, b].map((n) => `${n.name}=https://${n.address}:${chartEaa.peerPort ?? 15443}`);
  const agentConfig = (node: NetnsNode): ConfigInput => ({
    ...nodeAgentConfig(node.name, kubeconfig),
    eaa: {
      ...chartEaa,
      enabled: true,
      ca: { certFile: ca.certFile, keyFile: ca.keyFile, generate: false },
      stateFile: join(dir, `${node.name}-state.json`),
      peers,
      syncIntervalMs: 1000,
      peerTimeoutMs: 1000,
    },
  });
  await Promise.all([a, b].map((node) => startAgent(node, agentConfig(node))));

  async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
    const end = Date.now() + ms;
    let last = await probe();
    for (let i = 0; i < 1000 && !ok(last); i++) {
      if (Date.now() > end) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
      last = await probe();
    }
    if (!ok(last)) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    return last;
  }
  const appDir = (name: string) => {
    const d = join(dir, name);
    spawnSync('mkdir', ['-p', d]);
    return d;
  };
  /** A node's agent status, from its admin endpoint on the node's loopback. */
  async function eaaStatus(node: NetnsNode): Promise<Record<string, unknown>> {
    const out = await node.run('curl', ['-sS', '--max-time', '3', 'http://127.0.0.1:15090/debug/status']);
    const status = JSON.parse(out) as { modules: { name: string }[] };
    return (status.modules.find((m) => m.name === 'eaa') ?? {}) as Record<string, unknown>;
  }

  t.test('eaa.openness resolves through the pod search path to the Service cluster IP', async (t) => {
    t.match(clusterIP, /^198\.19\.\d+\.\d+$/, 'the chart Service got a cluster IP');
    t.equal(
      (await cp.kubectl(['get', 'endpointslices', '-n', 'openness', '-o', 'name'])).trim(),
      '',
      'no EndpointSlice in the apiserver: the route is node-local by construction',
    );
    const getent = await until(
      'getent hosts eaa.openness on node a',
      () => a.exec('getent', ['hosts', 'eaa.openness']),
      (r) => r.ok,
    );
    t.match(getent.stdout, new RegExp(`^${clusterIP.replace(/\./g, '\\.')}\\s+eaa\\.openness\\.svc\\.cluster\\.local`));
    const dig = await b.exec('getent', ['hosts', 'eaa.openness.svc.cluster.local']);
    t.match(dig.stdout, clusterIP, 'the full name on node b');
  });

  t.test('producer in a pod behind node a; consumers on nodes a and b; one notification each', async (t) => {
    const pod = createPodNetns(a, `ml-${process.pid}-eaa`, {
      nodeSide: '198.18.201.1',
      podSide: '198.18.201.2',
      prefix: 24,
      routes: ['198.19.0.0/16', `${MESHLET_ADDRESS}/32`],
      resolvConf: POD_RESOLV_CONF,
    });
    t.teardown(() => pod.remove());
    const inPod = (args: string[]) => pod.run(NODE_BIN, [APP, ...args], 20_000);
    const onNode = async (node: NetnsNode, args: string[]) => {
      const r = await node.exec(NODE_BIN, [APP, ...args], { timeoutMs: 20_000 });
      if (!r.ok) throw new Error(`${args[0]} on ${node.name}: ${r.stderr}`);
      return r.stdout;
    };
    const parseReply = (out: string) => JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Reply;

    // POST http://eaa.openness/auth (port 80) from each app, through meshlet to its node's agent.
    const producerDir = appDir('producer');
    const auth = await until(
      'POST http://eaa.openness/auth from the pod',
      async () => {
        try {
          return inPod(['auth', producerDir, 'site:producer']);
        } catch (err) {
          return String(err);
        }
      },
      (out) => /auth 200/.test(out),
    );
    t.match(auth, `resolved ${clusterIP}`, 'the pod resolved eaa.openness to the cluster IP');
    const consumerA = appDir('consumer-a');
    const consumerB = appDir('consumer-b');
    t.match(await onNode(a, ['auth', consumerA, 'site:consumer-a']), /auth 200/, 'consumer on node a authenticated');
    t.match(
      await until(
        'auth on node b',
        () => onNode(b, ['auth', consumerB, 'site:consumer-b']).catch((err: unknown) => String(err)),
        (out) => /auth 200/.test(out),
      ),
      /auth 200/,
      'consumer on node b authenticated',
    );

    // https://eaa.openness:443 with the signed certificate; the server certificate is checked for eaa.openness.
    const service = {
      description: 'ticks from a pod',
      endpoint_uri: 'tick.site',
      notifications: [{ name: 'tick', version: '1' }],
    };
    t.equal(parseReply(inPod(['call', producerDir, 'POST', '/services', JSON.stringify(service)])).status, 200, 'activated');
    const listed = parseReply(inPod(['call', producerDir, 'GET', '/services']));
    t.equal(listed.status, 200);
    t.match(listed.body, /"urn":\{[^}]*"id":"producer"/, 'the producer sees its own service');
    const subscribe = JSON.stringify([{ name: 'tick', version: '1' }]);
    for (const [node, d] of [
      [a, consumerA],
      [b, consumerB],
    ] as const) {
      t.equal(parseReply(await onNode(node, ['call', d, 'POST', '/subscriptions/site', subscribe])).status, 201);
    }
    const discovered = await until(
      "node b's consumer discovers the pod's service",
      async () => parseReply(await onNode(b, ['call', consumerB, 'GET', '/services'])),
      (r) => r.body.includes('ticks from a pod'),
    );
    t.equal(discovered.status, 200, 'discovered on node b');

    // Node-local: the pod's and node a's calls went to a's agent, node b's to b's.
    const [sa, sb] = [await eaaStatus(a), await eaaStatus(b)];
    t.equal(sa.localServices, 1, "the pod's service was registered on its own node's agent (a)");
    t.equal(sb.localServices, 0, 'and not on node b');
    t.equal(sb.services, 1, 'node b holds the replicated record');

    const listeners: TrackedProcess[] = [];
    for (const [node, d] of [
      [a, consumerA],
      [b, consumerB],
    ] as const) {
      const p = node.spawn(NODE_BIN, [APP, 'listen', d, '3', '20000']);
      await p.waitForOutput(/^open$/m, 15_000);
      listeners.push(p);
    }
    // b's subscription and socket (its node) must have reached a before a routes to b.
    await until(
      'both sockets counted',
      async () => [(await eaaStatus(a)).websocketClients, (await eaaStatus(b)).websocketClients],
      (v) => v[0] === 1 && v[1] === 1,
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    for (let i = 0; i < 3; i++) {
      const body = JSON.stringify({ name: 'tick', version: '1', payload: { seq: i } });
      t.equal(parseReply(inPod(['call', producerDir, 'POST', '/notifications', body])).status, 202, `notification ${i}`);
    }
    for (const [i, p] of listeners.entries()) {
      const exit = await p.exited;
      const frames = [...p.output().matchAll(/^msg (.*)$/gm)].map((m) => JSON.parse(m[1] ?? '{}') as Record<string, unknown>);
      t.equal(exit.code, 0, `consumer on ${i === 0 ? 'a' : 'b'} got its frames: ${p.output().slice(-500)}`);
      t.same(
        frames.map((f) => f.payload),
        [{ seq: 0 }, { seq: 1 }, { seq: 2 }],
        `consumer on ${i === 0 ? 'a (same node)' : 'b (across nodes)'}: each once, in order`,
      );
      t.match(frames[0]?.producer, { id: 'producer', namespace: 'site' }, 'the frame names the producer');
    }

    t.equal(parseReply(inPod(['call', producerDir, 'DELETE', '/services'])).status, 204, 'deactivated');
  });

  t.test('only eaa.openness is accepted as the server name; the API is not on the node address', async (t) => {
    const wrongName = await a.exec('curl', [
      '-sS',
      '--max-time',
      '3',
      '--cacert',
      ca.certFile,
      '--resolve',
      `wrong.openness:443:${clusterIP}`,
      'https://wrong.openness/services',
    ]);
    t.notOk(wrongName.ok, 'a TLS client that checks the name refuses anything but eaa.openness');
    t.match(wrongName.stderr, /subject name|does not match/i, 'refused for the name, before any client certificate');
    const direct = await b.exec('curl', ['-sS', '--max-time', '3', `http://${a.address}:${chartEaa.authPort ?? 15080}/auth`]);
    t.notOk(direct.ok, "node a's /auth is on its loopback only, not reachable from node b");
  });
}
