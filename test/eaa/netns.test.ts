import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.ts';
import { MAIN } from '../e2e/agent-in-node.ts';
import { createTopology, type NetnsNode, NODE_BIN, type TrackedProcess } from '../harness/netns.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { authenticate, client, eventually, sharedCa, tempDir } from './helpers.ts';

// Two nodes in network namespaces, each running `meshlet agent` with the EAA on its own address:
// producer on node a, consumers on a and b; every notification once at each; a cut link holds
// notifications for b and delivers them, in order, once it heals; node b keeps discovering while
// node a's agent is down, and gets notifications again when it returns.

if (requireOrSkip(t, { root: true, commands: ['ip', 'iptables', 'openssl'] })) {
  t.test('EAA across two nodes', async (t) => {
    const dir = await tempDir(t);
    const ca = await sharedCa(dir);
    const topo = await createTopology(t, { nodes: ['a', 'b'] });
    const [a, b] = [topo.node(0), topo.node(1)];
    const peers = [`a=https://${a.address}:15443`, `b=https://${b.address}:15443`];
    const registry = join(dir, 'registry.yaml');
    writeFileSync(registry, 'services: []\n');
    const startAgent = async (node: NetnsNode): Promise<TrackedProcess> => {
      const config: ConfigInput = {
        node: { name: node === a ? 'a' : 'b' },
        admin: { address: '127.0.0.1', port: 0 },
        source: { kind: 'file', file: { path: registry, watch: false } },
        dns: { enabled: false },
        proxy: { enabled: false },
        eaa: {
          enabled: true,
          address: node.address,
          ca: { certFile: ca.certFile, keyFile: ca.keyFile, generate: false },
          stateFile: join(dir, `${node.name}-state.json`),
          peers,
          syncIntervalMs: 1000,
          peerTimeoutMs: 1000,
        },
      };
      const file = join(dir, `${node.name}.yaml`);
      writeFileSync(file, stringify(config));
      const agent = node.spawn(NODE_BIN, [MAIN, 'agent', '-c', file]);
      await agent.waitForOutput(/"msg":"agent running"/, 30_000);
      return agent;
    };
    let agentA = await startAgent(a);
    await startAgent(b);
    const [apiA, authA, apiB, authB] = await Promise.all([
      topo.exposeNodePort(a, 443),
      topo.exposeNodePort(a, 80),
      topo.exposeNodePort(b, 443),
      topo.exposeNodePort(b, 80),
    ]);
    const producer = client(apiA.port, await authenticate(authA.port, dir, 'site:producer'));
    const consA = client(apiA.port, await authenticate(authA.port, dir, 'site:consumer-a'));
    const consB = client(apiB.port, await authenticate(authB.port, dir, 'site:consumer-b'));
    const body = JSON.stringify([{ name: 'tick', version: '1' }]);

    t.equal((await producer.call('POST', '/services', '{"description":"from a"}')).status, 200);
    t.equal((await consA.call('POST', '/subscriptions/site', body)).status, 201);
    t.equal((await consB.call('POST', '/subscriptions/site', body)).status, 201);
    t.ok(await eventually(async () => (await consB.call('GET', '/services')).body.includes('"from a"')), 'b discovers a');
    const wsA = await consA.socket();
    let wsB = await consB.socket();
    // b's subscription must have reached a before a routes to it.
    await new Promise((r) => setTimeout(r, 1500));

    const publish = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        t.equal((await producer.call('POST', '/notifications', `{"name":"tick","version":"1","payload":${i}}`)).status, 202);
      }
    };
    const payloads = (ws: typeof wsA) => ws.messages.map((m) => (JSON.parse(m) as { payload: number }).payload);
    await publish(0, 20);
    await wsA.waitFor(20);
    await wsB.waitFor(20);
    t.same(payloads(wsA), [...Array(20).keys()], 'consumer on a: each once, in order');
    t.same(payloads(wsB), [...Array(20).keys()], 'consumer on b: each once, in order');

    await topo.cut(a, b);
    await publish(20, 25);
    await new Promise((r) => setTimeout(r, 500));
    t.equal(wsB.messages.length, 20, 'nothing reaches b while cut');
    await topo.restore(a, b);
    await wsB.waitFor(25, 15_000);
    t.same(payloads(wsB).slice(20), [20, 21, 22, 23, 24], 'held notifications arrive after the cut heals, in order');

    await agentA.kill();
    const list = await consB.call('GET', '/services');
    t.match(list.body, '"from a"', "b still lists a's services while a is down");
    agentA = await startAgent(a);
    wsB.close();
    wsB = await consB.socket();
    await new Promise((r) => setTimeout(r, 1500));
    await publish(100, 101);
    await wsB.waitFor(1, 10_000);
    t.same(payloads(wsB), [100], 'node a is back: notifications reach b again');
    wsA.close();
    wsB.close();
  });
}
