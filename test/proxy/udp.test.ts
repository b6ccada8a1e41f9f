import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import t from 'tap';
import { listenerPort, service, slices, startProxy, udpBackend } from './helpers.ts';

async function client(t: Tap): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => s.close());
  return s;
}
type Tap = { teardown(fn: () => unknown): void };

async function ask(s: Socket, port: number, text: string): Promise<string> {
  s.send(text, port, '127.0.0.1');
  const [msg] = (await once(s, 'message', { signal: AbortSignal.timeout(2000) })) as [Buffer];
  return msg.toString();
}

t.test('a flow per client addr:port: sticky within a flow, balanced across flows', async (t) => {
  const a = await udpBackend(t, 'a');
  const b = await udpBackend(t, 'b');
  const h = await startProxy(t, { udpIdleTimeoutMs: 60_000 });
  await h.set(
    [service('dns', [{ name: 'dns', port: 53, protocol: 'UDP' }])],
    slices('dns', 'dns', [{ port: a.port }, { port: b.port }], 'UDP'),
  );
  const port = listenerPort(h, 53, 'UDP');
  const c1 = await client(t);
  const c2 = await client(t);
  const first = await ask(c1, port, 'q1');
  for (let i = 0; i < 3; i++)
    t.equal((await ask(c1, port, `q${i}`)).split(':')[0], first.split(':')[0], 'same flow, same endpoint');
  const other = await ask(c2, port, 'z');
  t.not(other.split(':')[0], first.split(':')[0], 'a second client gets the next endpoint');
  t.equal(other, `${other.split(':')[0]}:z`);
  t.equal(a.peers.size + b.peers.size, 2, 'one upstream socket per flow');
  t.equal((h.proxy.status().routes as { connections: number }[])[0]?.connections, 2);
});

t.test('flows expire after the idle timeout and a new flow is opened', async (t) => {
  const a = await udpBackend(t, 'a');
  const h = await startProxy(t, { udpIdleTimeoutMs: 80 });
  await h.set([service('dns', [{ name: 'dns', port: 53, protocol: 'UDP' }])], slices('dns', 'dns', [{ port: a.port }], 'UDP'));
  const port = listenerPort(h, 53, 'UDP');
  const c = await client(t);
  t.equal(await ask(c, port, 'one'), 'a:one');
  const flows = () => (h.proxy.status().routes as { connections: number }[])[0]?.connections;
  t.equal(flows(), 1);
  // Bounded wait for the sweep (period idle/4) to remove the flow.
  for (let i = 0; i < 40 && flows() !== 0; i++) await new Promise((r) => setTimeout(r, 25));
  t.equal(flows(), 0, 'flow forgotten after idling');
  t.equal(await ask(c, port, 'two'), 'a:two');
  t.equal(a.peers.size, 2, 'the new flow used a new upstream socket');
});
