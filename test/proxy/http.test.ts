import { once } from 'node:events';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import t from 'tap';
import { closedPort, httpBackend, listenerPort, service, slices, startProxy } from './helpers.ts';

const agent = new Agent({ keepAlive: true, maxSockets: 4 });
t.teardown(() => agent.destroy());

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function get(port: number, path = '/', headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const httpPort = { name: 'http', port: 80, appProtocol: 'http' };

t.test('per-request round robin over one keep-alive client connection, x-forwarded-for', async (t) => {
  const a = await httpBackend(t, 'a');
  const b = await httpBackend(t, 'b');
  const h = await startProxy(t);
  await h.set([service('web', [httpPort])], slices('web', 'http', [{ port: a.port }, { port: b.port }]));
  const port = listenerPort(h, 80);
  const bodies: string[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await get(port, '/', { 'x-forwarded-for': '198.18.0.7' });
    t.equal(r.headers['x-seen-xff'], '198.18.0.7, 127.0.0.1');
    bodies.push(r.body);
  }
  t.equal(bodies.filter((x) => x === 'a').length, 5);
  t.equal(bodies.filter((x) => x === 'b').length, 5);
  const post = await get(port, '/p', { 'content-type': 'text/plain' }, 'POST', 'payload');
  t.equal(post.status, 200);
  t.match(await h.metrics.getSingleMetricAsString('meshlet_proxy_requests_total'), /code="200"} 11/);
});

t.test('an http- port name selects L7 (EdgeMesh convention); request bodies stream through', async (t) => {
  const echo = await httpBackend(t, 'echo', (req, res) => req.pipe(res));
  const h = await startProxy(t);
  await h.set([service('api', [{ name: 'http-api', port: 81 }])], slices('api', 'http-api', [{ port: echo.port }]));
  const body = 'y'.repeat(256 * 1024);
  const r = await get(listenerPort(h, 81), '/', {}, 'PUT', body);
  t.equal(r.body.length, body.length);
  t.equal((h.proxy.status().routes as { mode: string }[])[0]?.mode, 'http');
});

t.test('garbage gets a 400 and the listener keeps serving', async (t) => {
  const a = await httpBackend(t, 'a');
  const h = await startProxy(t);
  await h.set([service('web', [httpPort])], slices('web', 'http', [{ port: a.port }]));
  const port = listenerPort(h, 80);
  const s = connect(port, '127.0.0.1');
  s.end('\x00\x01GARBAGE \r\n\r\n');
  let raw = '';
  for await (const chunk of s) raw += chunk.toString();
  t.match(raw, /^HTTP\/1\.1 400 /);
  t.equal((await get(port)).body, 'a');
  t.match(await h.metrics.getSingleMetricAsString('meshlet_proxy_requests_total'), /code="400"} 1/);
});

t.test('a dead endpoint: requests are retried elsewhere, none fails', async (t) => {
  const a = await httpBackend(t, 'a');
  const dead = await closedPort();
  const h = await startProxy(t);
  await h.set([service('web', [httpPort])], slices('web', 'http', [{ port: dead }, { port: a.port }]));
  const port = listenerPort(h, 80);
  for (let i = 0; i < 6; i++) t.equal((await get(port)).status, 200);
});

t.test('no endpoint → 503; slow endpoint → 504 after requestTimeoutMs', async (t) => {
  const slow = await httpBackend(t, 'slow', (_req, res) => {
    const timer = setTimeout(() => res.end('late'), 2000);
    res.on('close', () => clearTimeout(timer));
  });
  const h = await startProxy(t, { requestTimeoutMs: 100 });
  await h.set(
    [service('web', [httpPort]), service('none', [{ ...httpPort, port: 82 }])],
    slices('web', 'http', [{ port: slow.port }]),
  );
  t.equal((await get(listenerPort(h, 82))).status, 503);
  t.equal((await get(listenerPort(h, 80))).status, 504);
});

t.test('WebSocket upgrade is relayed both ways', async (t) => {
  const ws = await httpBackend(t, 'ws');
  ws.server.on('upgrade', (req, socket) => {
    t.teardown(() => socket.destroy()); // upgraded sockets are not closed by server.closeAllConnections()
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-path: ${req.url}\r\n\r\n`);
    socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}`));
  });
  const h = await startProxy(t);
  await h.set(
    [service('ws', [{ name: 'ws', port: 90, appProtocol: 'kubernetes.io/ws' }])],
    slices('ws', 'ws', [{ port: ws.port }]),
  );
  const s = connect(listenerPort(h, 90), '127.0.0.1');
  t.teardown(() => s.destroy());
  s.write('GET /chat HTTP/1.1\r\nhost: ws\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
  let buf = '';
  while (!buf.includes('\r\n\r\n')) buf += ((await once(s, 'data')) as [Buffer])[0].toString();
  t.match(buf, /^HTTP\/1\.1 101 /);
  t.match(buf, /x-path: \/chat/);
  s.write('ping');
  t.equal(((await once(s, 'data')) as [Buffer])[0].toString(), 'echo:ping');
});

t.test('endpoint removal while requests run: no request fails', async (t) => {
  const a = await httpBackend(t, 'a', (_req, res) => setTimeout(() => res.end('a'), 5));
  const b = await httpBackend(t, 'b', (_req, res) => setTimeout(() => res.end('b'), 5));
  const h = await startProxy(t);
  const svc = service('web', [httpPort]);
  await h.set([svc], slices('web', 'http', [{ port: a.port }, { port: b.port }]));
  const port = listenerPort(h, 80);
  let stop = false;
  const results: number[] = [];
  const deadline = Date.now() + 5000;
  const worker = async () => {
    for (let i = 0; i < 200 && !stop && Date.now() < deadline; i++) results.push((await get(port)).status);
  };
  const workers = Promise.all([worker(), worker(), worker(), worker()]);
  await new Promise((r) => setTimeout(r, 50));
  await h.set([svc], slices('web', 'http', [{ port: b.port }])); // a removed (still draining)
  await new Promise((r) => setTimeout(r, 50));
  await h.set([svc], slices('web', 'http', [{ port: a.port }, { port: b.port }])); // and back
  await new Promise((r) => setTimeout(r, 50));
  stop = true;
  await workers;
  t.ok(results.length > 8, `ran ${results.length} requests`);
  t.same(new Set(results), new Set([200]), 'every request succeeded');
});
