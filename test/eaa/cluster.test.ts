import { createServer } from 'node:net';
import t from 'tap';
import { requireOrSkip } from '../harness/requirements.ts';
import { authenticate, client, eventually, sharedCa, sleep, startNode, type TestNode, tempDir } from './helpers.ts';

// Two agents in one process on loopback: registrations and subscriptions replicate, a
// notification reaches local subscribers directly and each other node with subscribers once.

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function metric(node: TestNode, name: string, labels = ''): Promise<number> {
  const text = await node.metrics.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

const outcome = (node: TestNode, o: string) => metric(node, 'meshlet_eaa_notifications_total', `{outcome="${o}"}`);

if (requireOrSkip(t, { commands: ['openssl'] })) {
  const dir = await tempDir(t);
  const ca = await sharedCa(dir);
  const [pa, pb] = [await freePort(), await freePort()];
  const peers = [`node-a=https://127.0.0.1:${pa}`, `node-b=https://127.0.0.1:${pb}`];
  const start = (name: string, peerPort: number) => startNode(t, { name, dir, ca, peers, peerPort });
  let a = await start('node-a', pa);
  const b = await start('node-b', pb);

  const producerId = await authenticate(a.authPort, dir, 'fleet:producer');
  const localId = await authenticate(a.authPort, dir, 'fleet:consumer-a');
  const remoteId = await authenticate(b.authPort, dir, 'fleet:consumer-b');
  const events = JSON.stringify([{ name: 'tick', version: '1' }]);

  t.test('registration on node a is discovered on node b; subscriptions replicate', async (t) => {
    const producer = client(a.port, producerId);
    t.equal((await producer.call('POST', '/services', '{"description":"on a"}')).status, 200);
    const onB = client(b.port, remoteId);
    t.ok(await eventually(async () => (await onB.call('GET', '/services')).body.includes('"on a"')), 'visible on b');
    t.equal((await onB.call('POST', '/subscriptions/fleet', events)).status, 201);
    t.equal((await client(a.port, localId).call('POST', '/subscriptions/fleet', events)).status, 201);
    t.ok(
      await eventually(() => a.module.core.recipients({ namespace: 'fleet', id: 'producer' }, 'tick', '1').size === 2),
      'node a routes to both nodes',
    );
  });

  t.test('each consumer receives every notification once, in order; one hop per notification', async (t) => {
    const wsA = await client(a.port, localId).socket();
    const wsB = await client(b.port, remoteId).socket();
    const producer = client(a.port, producerId);
    const forwardedBefore = await outcome(a, 'forwarded');
    const N = 50;
    for (let i = 0; i < N; i++) {
      t.equal((await producer.call('POST', '/notifications', `{"name":"tick","version":"1","payload":${i}}`)).status, 202);
    }
    await wsA.waitFor(N);
    await wsB.waitFor(N);
    await sleep(200);
    const payloads = (ws: typeof wsA) => ws.messages.map((m) => (JSON.parse(m) as { payload: number }).payload);
    const want = Array.from({ length: N }, (_, i) => i);
    t.same(payloads(wsA), want, 'local consumer: all, once, in order');
    t.same(payloads(wsB), want, 'remote consumer: all, once, in order');
    t.equal((await outcome(a, 'forwarded')) - forwardedBefore, N, 'one forward per notification (to node b only)');
    wsA.close();
    wsB.close();
  });

  t.test('only local subscribers: nothing crosses the network', async (t) => {
    await client(b.port, remoteId).call('DELETE', '/subscriptions');
    await eventually(() => a.module.core.recipients({ namespace: 'fleet', id: 'producer' }, 'tick', '1').size === 1);
    const ws = await client(a.port, localId).socket();
    const before = await outcome(a, 'forwarded');
    await client(a.port, producerId).call('POST', '/notifications', '{"name":"tick","version":"1","payload":"local"}');
    t.same(await ws.waitFor(1), [
      '{"name":"tick","version":"1","payload":"local","producer":{"id":"producer","namespace":"fleet"}}',
    ]);
    t.equal(await outcome(a, 'forwarded'), before, 'not forwarded');
    ws.close();
  });

  t.test('a retried forward is delivered once (duplicate suppression)', async (t) => {
    await client(b.port, remoteId).call('POST', '/subscriptions/fleet', events);
    const ws = await client(b.port, remoteId).socket();
    const env = {
      id: 'node-a/test/1',
      producer: { namespace: 'fleet', id: 'producer' },
      name: 'tick',
      version: '1',
      payload: '"dup"',
    };
    const dupBefore = await outcome(b, 'duplicate');
    a.module.peers?.forward('node-b', env);
    a.module.peers?.forward('node-b', env);
    await ws.waitFor(1);
    await sleep(200);
    t.equal(ws.messages.length, 1);
    t.equal((await outcome(b, 'duplicate')) - dupBefore, 1);
    ws.close();
  });

  t.test('node a stops: b still discovers; a restarts from its state file and routing resumes', async (t) => {
    await a.stop();
    const onB = client(b.port, remoteId);
    const list = await onB.call('GET', '/services');
    t.equal(list.status, 200);
    t.match(list.body, '"on a"', "node a's registration is still listed (replicated and persisted on b)");
    a = await start('node-a', pa);
    t.ok(a.module.core.isRegistered('fleet:producer'), 'node a reloaded its registrations from disk');
    const ws = await onB.socket();
    t.ok(
      await eventually(() => a.module.core.recipients({ namespace: 'fleet', id: 'producer' }, 'tick', '1').has('node-b')),
      "node a knows b's subscriber",
    );
    await client(a.port, producerId).call('POST', '/notifications', '{"name":"tick","version":"1","payload":"back"}');
    t.match(await ws.waitFor(1), [
      '{"name":"tick","version":"1","payload":"back","producer":{"id":"producer","namespace":"fleet"}}',
    ]);
    ws.close();
  });

  t.test("a consumer that moves to another node takes its subscriptions' routing with it", async (t) => {
    const mover = await authenticate(a.authPort, dir, 'fleet:mover');
    await client(a.port, mover).call('POST', '/subscriptions/fleet', events);
    await eventually(() => b.module.core.subscriptionsOf('fleet:mover').length === 1);
    const ws = await client(b.port, mover).socket();
    t.ok(
      await eventually(
        () =>
          a.module.core.recipients({ namespace: 'fleet', id: 'producer' }, 'tick', '1').get('node-b')?.includes('fleet:mover') ===
          true,
      ),
      'rehomed to node b',
    );
    await client(a.port, producerId).call('POST', '/notifications', '{"name":"tick","version":"1","payload":"moved"}');
    t.match(await ws.waitFor(1), [/"payload":"moved"/]);
    ws.close();
  });
}
