import { connect, type Socket } from 'node:net';
import t from 'tap';
import { closedPort, listenerPort, service, slices, startProxy, tcpBackend } from './helpers.ts';

function dial(port: number, allowHalfOpen = false): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends `payload`, half-closes, and collects everything until the server closes. */
async function exchange(port: number, payload: string): Promise<string> {
  const s = await dial(port, true);
  s.end(payload);
  let out = '';
  for await (const chunk of s) out += chunk.toString();
  return out;
}

const named = (name: string) => (s: Socket) => {
  // Replies only after the client's FIN: proves half-close is passed on and the reply still flows.
  let got = '';
  s.on('data', (d) => {
    got += d.toString();
  });
  s.on('end', () => s.end(`${name}:${got}`));
};

t.test('round robin across connections, with half-close', async (t) => {
  const a = await tcpBackend(t, named('a'));
  const b = await tcpBackend(t, named('b'));
  const h = await startProxy(t);
  await h.set([service('db', [{ name: 'tcp', port: 5432 }])], slices('db', 'tcp', [{ port: a.port }, { port: b.port }]));
  const port = listenerPort(h, 5432);
  const replies: string[] = [];
  for (let i = 0; i < 6; i++) replies.push(await exchange(port, `req${i}`));
  t.same(replies.map((r) => r.split(':')[0]).sort(), ['a', 'a', 'a', 'b', 'b', 'b']);
  t.ok(
    replies.every((r, i) => r.endsWith(`:req${i}`)),
    'each reply carries its request, sent after the FIN',
  );
  const metrics = await h.metrics.getSingleMetricAsString('meshlet_proxy_connections_total');
  t.match(metrics, /service="default\/db",port="tcp",protocol="TCP"} 6/);
});

t.test('large transfer keeps order (backpressure through pipe)', async (t) => {
  const echo = await tcpBackend(t, (s) => s.pipe(s));
  const h = await startProxy(t);
  await h.set([service('echo', [{ name: 'tcp', port: 7 }])], slices('echo', 'tcp', [{ port: echo.port }]));
  const s = await dial(listenerPort(h, 7), true);
  const block = Buffer.alloc(4 * 1024 * 1024, 'x');
  block.write('start');
  s.end(block);
  const chunks: Buffer[] = [];
  for await (const chunk of s) chunks.push(chunk as Buffer);
  const all = Buffer.concat(chunks);
  t.equal(all.length, block.length);
  t.ok(all.equals(block));
});

t.test('a failed connect is retried on another endpoint and feeds ejection', async (t) => {
  const good = await tcpBackend(t, named('good'));
  const dead = await closedPort();
  const h = await startProxy(t, { outlier: { consecutiveFailures: 1, ejectionMs: 60_000, maxEjectionPercent: 50 } });
  await h.set([service('db', [{ name: 'tcp', port: 5432 }])], slices('db', 'tcp', [{ port: dead }, { port: good.port }]));
  const port = listenerPort(h, 5432);
  for (let i = 0; i < 4; i++) t.equal(await exchange(port, 'x'), 'good:x');
  const failures = await h.metrics.getSingleMetricAsString('meshlet_proxy_upstream_connect_failures_total');
  t.match(failures, /reason="refused"} 1$/m, 'the dead endpoint was tried once, then ejected');
});

t.test('no endpoint: the connection is closed, the listener stays', async (t) => {
  const h = await startProxy(t);
  await h.set([service('empty', [{ name: 'tcp', port: 9 }])], []);
  const port = listenerPort(h, 9);
  t.equal(await exchange(port, 'x'), '');
  t.equal(await exchange(port, 'x'), '');
});

t.test('listeners follow the registry; headless and ExternalName are skipped; clashes are reported', async (t) => {
  const a = await tcpBackend(t, named('a'));
  const h = await startProxy(t);
  await h.set(
    [
      service('one', [{ name: 'tcp', port: 1000 }]),
      service('two', [{ name: 'tcp', port: 2000 }], { clusterIPs: ['198.19.0.11'] }),
      service('hl', [{ name: 'tcp', port: 3000 }], { headless: true, clusterIPs: [] }),
      service('ext', [], { type: 'ExternalName', clusterIPs: [], externalName: 'example.org' }),
    ],
    [...slices('one', 'tcp', [{ port: a.port }]), ...slices('two', 'tcp', [{ port: a.port }])],
  );
  t.equal(h.proxy.status().listeners, 2);
  const before = listenerPort(h, 1000);
  t.ok(listenerPort(h, 2000, 'TCP', '198.19.0.11') > 0);
  t.equal(h.proxy.listenerFor('198.19.0.10', 1000, 'UDP'), undefined);

  // An endpoint change keeps the listener (same port) and serves the new endpoints.
  const b = await tcpBackend(t, named('b'));
  await h.set([service('one', [{ name: 'tcp', port: 1000 }])], slices('one', 'tcp', [{ port: b.port }]));
  t.equal(listenerPort(h, 1000), before, 'listener kept across an endpoint change');
  t.equal(await exchange(before, 'y'), 'b:y');
  t.equal(h.proxy.status().listeners, 1, 'service two removed');

  // listenPort=service: a port already taken is reported, not fatal.
  const taken = await tcpBackend(t, undefined);
  const hs = await startProxy(t, { listenPort: 'service' });
  await hs.set([service('clash', [{ name: 'tcp', port: taken.port }])], slices('clash', 'tcp', [{ port: a.port }]));
  const failed = hs.proxy.status().failed as { state: string; error: string }[];
  t.equal(failed.length, 1);
  t.match(failed[0]?.error, /EADDRINUSE/);
});
