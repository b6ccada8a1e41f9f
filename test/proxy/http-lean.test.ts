import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { listenerPort, service, slices, startProxy } from './helpers.ts';

function req(port: number, method: string, path: string, headers: Record<string, string> = {}) {
  return new Promise<{
    status: number;
    headers: Record<string, unknown>;
    body: string;
    trailers: Record<string, unknown>;
    times: number[];
  }>((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let body = '';
      const times: number[] = [];
      const t0 = Date.now();
      res.setEncoding('latin1');
      res.on('data', (d: string) => {
        body += d;
        times.push(Date.now() - t0);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, trailers: res.trailers, times }));
    });
    r.on('error', reject);
    r.end();
  });
}

/**
 * The lean HTTP/1.1 client path (proxy/http/h1-pool.ts) that body-less requests take: the
 * response framings and header rules llhttp must get right, against a real node:http backend.
 */
t.test('lean path: chunked, streaming, HEAD, 204, trailers, close-delimited, 1xx, hop-by-hop', async (t) => {
  const backend = createServer((q, s) => {
    if (q.url === '/chunked') {
      s.write('a'.repeat(100));
      s.end('b'.repeat(100000));
      return;
    }
    if (q.url === '/stream') {
      s.write('first');
      setTimeout(() => s.end('second'), 300);
      return;
    }
    if (q.url === '/head') {
      s.writeHead(200, { 'content-length': '5' });
      s.end(q.method === 'HEAD' ? undefined : 'hello');
      return;
    }
    if (q.url === '/204') {
      s.writeHead(204);
      s.end();
      return;
    }
    if (q.url === '/trailers') {
      s.writeHead(200, { trailer: 'x-t' });
      s.write('x');
      s.addTrailers({ 'x-t': 'v' });
      s.end();
      return;
    }
    if (q.url === '/hop') {
      s.writeHead(200, { connection: 'x-secret', 'x-secret': '1', 'x-ok': '2', 'set-cookie': ['a=1', 'b=2'] });
      s.end('ok');
      return;
    }
    if (q.url === '/early') {
      s.writeEarlyHints({ link: '</a.css>; rel=preload' });
      setTimeout(() => s.end('after hints'), 20);
      return;
    }
    if (q.url === '/close') {
      s.socket?.end('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-eof');
      return;
    }
    s.end(`${q.headers.host}|${q.headers['x-forwarded-for']}|${q.headers['x-forwarded-proto']}`);
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  t.teardown(() => backend.close());
  const bport = (backend.address() as AddressInfo).port;
  const h = await startProxy(t);
  await h.set([service('web', [{ name: 'http', port: 80, targetPort: bport }])], slices('web', 'http', [{ port: bport }]));
  const port = listenerPort(h, 80);
  const c = await req(port, 'GET', '/chunked');
  t.equal(c.body.length, 100100);
  const st = await req(port, 'GET', '/stream');
  t.equal(st.body, 'firstsecond');
  t.ok(st.times.length >= 2, `the body arrived in parts as the backend wrote them (${st.times.length} chunks)`);
  const hd = await req(port, 'HEAD', '/head');
  t.equal(hd.headers['content-length'], '5');
  t.equal(hd.body, '');
  const g = await req(port, 'GET', '/head');
  t.equal(g.body, 'hello');
  t.equal((await req(port, 'GET', '/204')).status, 204);
  const tr = await req(port, 'GET', '/trailers');
  t.equal(tr.body, 'x');
  t.same(tr.trailers, { 'x-t': 'v' });
  const hop = await req(port, 'GET', '/hop');
  t.equal(hop.headers['x-secret'], undefined);
  t.equal(hop.headers['x-ok'], '2');
  t.same(hop.headers['set-cookie'], ['a=1', 'b=2']);
  const e = await req(port, 'GET', '/early');
  t.equal(e.body, 'after hints');
  const cl = await req(port, 'GET', '/close');
  t.equal(cl.body, 'until-eof');
  const d = await req(port, 'GET', '/x', { 'x-forwarded-for': '198.18.7.7' });
  t.match(d.body, /\|198\.18\.7\.7, 127\.0\.0\.1\|http$/);
  for (let i = 0; i < 3; i++) t.equal((await req(port, 'GET', '/head')).body, 'hello', 'pool still usable');
});
