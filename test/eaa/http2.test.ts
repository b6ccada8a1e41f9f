import { connect } from 'node:tls';
import t from 'tap';
import { requireOrSkip } from '../harness/requirements.ts';
import {
  type AppIdentity,
  authenticate,
  client,
  type EaaClient,
  h2Client,
  identities,
  sharedCa,
  sleep,
  startNode,
  tempDir,
} from './helpers.ts';

// HTTP/2 on the API port (docs/eaa.md §Transport): Go clients negotiate h2 by ALPN with the
// OpenNESS EAA, so every route must answer the same over h2 as over HTTP/1.1, with the same
// mutual TLS, while WebSockets keep using an HTTP/1.1 upgrade on the same port.

const JSON_TYPE = 'application/json; charset=UTF-8';
const NS = 'h2ns';
const PRODUCER = `${NS}:producer`;
const CONSUMER = `${NS}:consumer`;
const SERVICE = {
  urn: { id: 'producer', namespace: NS },
  description: 'over h2',
  endpoint_uri: 'eaa.openness',
  notifications: [{ name: 'tick', version: '1', description: 'a tick' }],
};
const SUBSCRIPTION = [{ name: 'tick', version: '1', description: 'ticks' }];

if (requireOrSkip(t, { commands: ['openssl'] })) {
  const dir = await tempDir(t);
  const ca = await sharedCa(dir);
  const node = await startNode(t, { dir, ca, eaa: { maxBodyBytes: 4096 } });
  const identity = identities(node.authPort, dir);
  const tlsOf = (id: AppIdentity) => ({ key: id.keyPem, cert: id.certPem, ca: [id.caPem] });
  const h1 = async (cn: string): Promise<EaaClient> => client(node.port, await identity(cn));

  t.test('ALPN: h2 when offered, HTTP/1.1 when only it or nothing is offered', async (t) => {
    const id = await identity(PRODUCER);
    const alpn = (protocols: string[] | undefined) =>
      new Promise<string | false>((resolve, reject) => {
        const s = connect({
          host: '127.0.0.1',
          port: node.port,
          servername: 'eaa.openness',
          ...tlsOf(id),
          ...(protocols && { ALPNProtocols: protocols }),
        });
        s.on('secureConnect', () => {
          resolve(s.alpnProtocol ?? false);
          s.destroy();
        });
        s.on('error', reject);
      });
    t.equal(await alpn(['h2', 'http/1.1']), 'h2', 'a Go client offers h2 first and gets it');
    t.equal(await alpn(['http/1.1']), 'http/1.1');
    t.equal(await alpn(undefined), false, 'no ALPN: the server falls back to HTTP/1.1');
    const c = await h2Client(node.port, tlsOf(id));
    t.equal(c.alpn, 'h2');
    await c.close();
  });

  t.test('mutual TLS holds on h2: no client certificate or a foreign one fails', async (t) => {
    const noCert = h2Client(node.port, { ca: [ca.certPem] }).then(async (c) => {
      // TLS 1.3 may finish the client side of the handshake before the server refuses it.
      const r = await c.call('GET', '/services');
      await c.close();
      return r.status;
    });
    await t.rejects(noCert, 'no client certificate');
    const otherDir = await tempDir(t);
    const other = await sharedCa(otherDir);
    const foreign = await startNode(t, { name: 'foreign', dir: otherDir, ca: other });
    const stranger = await authenticate(foreign.authPort, otherDir, 'x:y');
    const strangerCall = h2Client(node.port, { key: stranger.keyPem, cert: stranger.certPem, ca: [ca.certPem] }).then(
      async (c) => {
        const r = await c.call('GET', '/services');
        await c.close();
        return r.status;
      },
    );
    await t.rejects(strangerCall, 'certificate of another CA');
    await foreign.stop();
  });

  t.test('every route over h2 answers as over HTTP/1.1; the WebSocket stays HTTP/1.1', async (t) => {
    const producer = await h2Client(node.port, tlsOf(await identity(PRODUCER)));
    const consumer = await h2Client(node.port, tlsOf(await identity(CONSUMER)));
    const ws = await (await h1(CONSUMER)).socket();
    t.teardown(async () => {
      ws.close();
      await producer.close();
      await consumer.close();
    });

    const reg = await producer.call('POST', '/services', JSON.stringify(SERVICE));
    t.same([reg.status, reg.body, reg.headers['content-type']], [200, '', JSON_TYPE], 'POST /services: 200, empty');
    const list = await producer.call('GET', '/services');
    t.equal(list.status, 200);
    t.equal(list.body, (await (await h1(PRODUCER)).call('GET', '/services')).body, 'GET /services: the same bytes');
    t.same((JSON.parse(list.body) as { services: unknown[] }).services, [SERVICE]);

    t.equal((await consumer.call('POST', `/subscriptions/${NS}`, JSON.stringify(SUBSCRIPTION))).status, 201);
    t.equal((await consumer.call('POST', `/subscriptions/${NS}/producer`, JSON.stringify(SUBSCRIPTION))).status, 201);
    const subs = await consumer.call('GET', '/subscriptions');
    t.equal(subs.status, 200);
    t.equal(subs.body, (await (await h1(CONSUMER)).call('GET', '/subscriptions')).body, 'GET /subscriptions: the same');

    const body = JSON.stringify({ name: 'tick', version: '1', payload: { n: 1, s: '<&>' } });
    const push = await producer.call('POST', '/notifications', body);
    t.same([push.status, push.body], [202, ''], 'POST /notifications: 202, empty');
    await (await h1(PRODUCER)).call('POST', '/notifications', body);
    const frames = await ws.waitFor(2);
    t.equal(frames.length, 2, 'one frame each, although subscribed at both levels');
    t.equal(frames[0], frames[1], 'the frame does not depend on the producer protocol');
    t.equal(
      frames[0],
      '{"name":"tick","version":"1","payload":{"n":1,"s":"\\u003c\\u0026\\u003e"},"producer":{"id":"producer","namespace":"h2ns"}}',
    );

    t.equal(
      (await consumer.call('DELETE', `/subscriptions/${NS}/producer`, JSON.stringify(SUBSCRIPTION))).status,
      204,
      'DELETE /subscriptions/{ns}/{id} with a body',
    );
    t.equal((await consumer.call('DELETE', `/subscriptions/${NS}`, JSON.stringify(SUBSCRIPTION))).status, 204);
    t.equal((await consumer.call('DELETE', '/subscriptions')).status, 204);
    t.equal((await consumer.call('GET', '/subscriptions')).body, '{}\n');
    await producer.call('POST', '/notifications', body);
    await sleep(100);
    t.equal(ws.messages.length, 2, 'nothing after unsubscribing');

    t.equal((await producer.call('DELETE', '/services')).status, 204, 'DELETE /services: 204');
    t.equal((await producer.call('DELETE', '/services')).status, 404, 'again: 404');
    t.equal((await producer.call('POST', '/notifications', body)).status, 500, 'not registered: 500');
  });

  t.test('errors and routing over h2', async (t) => {
    const c = await h2Client(node.port, tlsOf(await identity(PRODUCER)));
    t.teardown(() => c.close());
    const bad = await c.call('POST', '/services', '{"description": 5}');
    t.equal(bad.status, 500, 'bad JSON: 500 as OpenNESS');
    t.match(String(bad.headers['x-meshlet-error']), /MESHLET_ERR_EAA/);
    t.equal(bad.body, '');
    const missing = await c.call('GET', '/nowhere');
    t.same(
      [missing.status, missing.body, missing.headers['content-type']],
      [404, '404 page not found\n', 'text/plain; charset=utf-8'],
    );
    t.equal((await c.call('PUT', '/services')).status, 405);
    const moved = await c.call('GET', '/services/');
    t.same([moved.status, moved.headers.location], [301, '/services']);
    t.equal((await c.call('POST', '/notifications', 'x'.repeat(5000))).status, 413, 'body over maxBodyBytes');
    const notSocket = await c.call('GET', '/notifications');
    t.equal(notSocket.status, 401, 'GET /notifications: :authority is not the CN');
    const own = await h2Client(node.port, tlsOf(await identity(PRODUCER)), { authority: PRODUCER });
    t.teardown(() => own.close());
    const plain = await own.call('GET', '/notifications');
    t.same([plain.status, plain.body], [400, 'Bad Request\n'], ':authority is the CN but no upgrade: 400');
  });

  t.test('many streams on one connection, two producers: each notification once, named by its own certificate', async (t) => {
    const a = `${NS}:a`;
    const b = `${NS}:b`;
    const pa = await h2Client(node.port, tlsOf(await identity(a)));
    const pb = await h2Client(node.port, tlsOf(await identity(b)));
    const ws = await (await h1(CONSUMER)).socket();
    t.teardown(async () => {
      ws.close();
      await pa.close();
      await pb.close();
    });
    for (const p of [pa, pb]) t.equal((await p.call('POST', '/services', '{}')).status, 200);
    const consumer = await h1(CONSUMER);
    t.equal((await consumer.call('POST', `/subscriptions/${NS}`, JSON.stringify(SUBSCRIPTION))).status, 201);
    const n = 200;
    const sent = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        (i % 2 === 0 ? pa : pb).call('POST', '/notifications', JSON.stringify({ name: 'tick', version: '1', payload: i })),
      ),
    );
    t.ok(
      sent.every((r) => r.status === 202),
      'all 202',
    );
    const frames = await ws.waitFor(n);
    t.equal(frames.length, n);
    const byProducer = frames.map((f) => JSON.parse(f) as { payload: number; producer: { id: string } });
    t.ok(
      byProducer.every((f) => f.producer.id === (f.payload % 2 === 0 ? 'a' : 'b')),
      'the producer of each frame is the certificate of the connection it came on',
    );
    t.same(
      byProducer.map((f) => f.payload).sort((x, y) => x - y),
      Array.from({ length: n }, (_, i) => i),
      'each once',
    );
  });

  t.test('TLS renegotiation is refused (the CN is cached per connection)', async (t) => {
    const id = await identity(PRODUCER);
    const result = await new Promise<string>((resolve) => {
      const s = connect({
        host: '127.0.0.1',
        port: node.port,
        servername: 'eaa.openness',
        ...tlsOf(id),
        maxVersion: 'TLSv1.2',
        ALPNProtocols: ['http/1.1'],
      });
      s.on('error', (err) => resolve(`error: ${err.message}`));
      s.on('close', () => resolve('closed'));
      s.on('secureConnect', () => {
        const started = s.renegotiate({ rejectUnauthorized: false }, (err) => {
          if (err) resolve(`error: ${err.message}`);
          else {
            // The client side may believe it renegotiated; the server must not have.
            s.write('GET /services HTTP/1.1\r\nHost: eaa.openness\r\nConnection: close\r\n\r\n');
            s.once('data', (d: Buffer) => resolve(`answered: ${d.toString().split('\r\n')[0]}`));
          }
        });
        if (!started) resolve('not started');
      });
    });
    t.notMatch(result, /^answered: HTTP\/1.1 200/, `renegotiation did not succeed (${result})`);
  });
}
