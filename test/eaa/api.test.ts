import { connect } from 'node:tls';
import t from 'tap';
import { requireOrSkip } from '../harness/requirements.ts';
import {
  authenticate,
  client,
  type EaaClient,
  httpCall,
  identities,
  makeCsr,
  sharedCa,
  sleep,
  startNode,
  tempDir,
} from './helpers.ts';

// Compatibility with the OpenNESS EAA, written from its public API facts (docs/eaa.md §Facts),
// driven the way the sample producer and consumer drive it: /auth, then mutual TLS and wss.

const JSON_TYPE = 'application/json; charset=UTF-8';
const NS = 'ExampleNamespace';
const PRODUCER = `${NS}:ExampleProducerAppID`;
const CONSUMER = `${NS}:ExampleConsumerAppID`;
const SAMPLE_SERVICE = {
  urn: { id: 'ExampleProducerAppID', namespace: NS },
  description: 'The Example Producer',
  endpoint_uri: 'eaa.openness',
  notifications: [{ name: 'ExampleNotification', version: '1.0.0', description: 'Description for Event #1 by Example Producer' }],
};
const SAMPLE_SUBSCRIPTION = [{ name: 'ExampleNotification', version: '1.0.0', description: 'Event #1 description' }];

if (requireOrSkip(t, { commands: ['openssl'] })) {
  const dir = await tempDir(t);
  const ca = await sharedCa(dir);
  const node = await startNode(t, { dir, ca, eaa: { maxBodyBytes: 4096 } });
  const identity = identities(node.authPort, dir);
  const app = async (cn: string): Promise<EaaClient> => client(node.port, await identity(cn));

  t.test('POST /auth signs a CSR: id, certificate, ca_chain and ca_pool', async (t) => {
    const { csrPem } = await makeCsr(dir, PRODUCER);
    const r = await httpCall(node.authPort, 'POST', '/auth', JSON.stringify({ csr: csrPem }));
    t.equal(r.status, 200);
    t.equal(r.headers['content-type'], JSON_TYPE);
    t.ok(r.body.endsWith('}\n'), 'json.Encoder ends the body with a newline');
    const body = JSON.parse(r.body) as Record<string, unknown>;
    t.same(Object.keys(body), ['id', 'certificate', 'ca_chain', 'ca_pool']);
    t.equal(body.id, PRODUCER);
    t.match(body.certificate, /^-----BEGIN CERTIFICATE-----\n/);
    t.same(body.ca_chain, [ca.certPem]);
    t.same(body.ca_pool, [ca.certPem]);
  });

  t.test('POST /auth refuses bad input with OpenNESS status codes and a reason', async (t) => {
    const ec = await makeCsr(dir, 'a:b');
    const rsa = await makeCsr(dir, 'a:b', 'rsa');
    const tampered = ec.csrPem.replace(/\n([A-Za-z0-9+/]{10})/, (_m, s: string) => `\n${s.split('').reverse().join('')}`);
    const cases: [string, string, number][] = [
      ['garbage JSON', '{"csr":', 500],
      ['empty body', '', 500],
      ['csr of the wrong type', '{"csr":5}', 500],
      ['csr not PEM', '{"csr":"hello"}', 500],
      ['PEM that is not a CSR', JSON.stringify({ csr: ca.certPem }), 500],
      ['RSA CSR (OpenNESS fails these too)', JSON.stringify({ csr: rsa.csrPem }), 500],
      ['CSR whose bytes were altered', JSON.stringify({ csr: tampered }), 500],
      ["the agents' reserved namespace", JSON.stringify({ csr: (await makeCsr(dir, 'meshlet-peer:node-b')).csrPem }), 500],
      ['oversized body', JSON.stringify({ csr: 'x'.repeat(5000) }), 413],
    ];
    for (const [what, body, status] of cases) {
      const r = await httpCall(node.authPort, 'POST', '/auth', body);
      t.equal(r.status, status, what);
      t.equal(r.body, '', `${what}: empty body`);
      t.match(r.headers['x-meshlet-error'], /^MESHLET_ERR_EAA_/, `${what}: reason in X-Meshlet-Error`);
    }
    t.equal((await httpCall(node.authPort, 'GET', '/auth')).status, 405);
    const nf = await httpCall(node.authPort, 'POST', '/other', '{}');
    t.equal(nf.status, 404);
    t.equal(nf.body, '404 page not found\n');
  });

  t.test('mutual TLS: no client certificate, or one from another CA, fails the handshake', async (t) => {
    const handshake = (opts: { key?: string; cert?: string }) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: node.port, servername: 'eaa.openness', ca: [ca.certPem], ...opts });
        s.on('secureConnect', () => {
          s.write('GET /services HTTP/1.1\r\nHost: eaa.openness\r\nConnection: close\r\n\r\n');
        });
        let data = '';
        s.on('data', (d: Buffer) => {
          data += d.toString();
        });
        s.on('error', (err) => resolve(`error: ${err.message}`));
        s.on('close', () => resolve(data));
      });
    t.match(await handshake({}), /^error|^$/, 'no certificate');
    const otherDir = await tempDir(t);
    const other = await sharedCa(otherDir);
    const foreign = await startNode(t, { name: 'foreign', dir: otherDir, ca: other });
    const stranger = await authenticate(foreign.authPort, otherDir, 'x:y');
    t.match(await handshake({ key: stranger.keyPem, cert: stranger.certPem }), /^error|^$/, 'certificate of another CA');
    const r = await client(node.port, await identity(PRODUCER)).call('GET', '/services');
    t.equal(r.status, 200, 'a certificate from /auth is accepted');
    await foreign.stop();
  });

  t.test('the sample producer and consumer, end to end', async (t) => {
    const producer = await app(PRODUCER);
    const consumer = await app(CONSUMER);
    const ws = await consumer.socket();
    const reg = await producer.call('POST', '/services', JSON.stringify(SAMPLE_SERVICE));
    t.equal(reg.status, 200, 'register: exactly 200');
    t.equal(reg.body, '');
    t.equal(reg.headers['content-type'], JSON_TYPE);
    const list = await producer.call('GET', '/services');
    t.equal(list.status, 200);
    const services = (JSON.parse(list.body) as { services: unknown[] }).services;
    t.same(services, [SAMPLE_SERVICE], 'GET /services holds exactly what was posted (no status added)');
    t.equal(
      list.body,
      '{"services":[{"urn":{"id":"ExampleProducerAppID","namespace":"ExampleNamespace"},"description":"The Example Producer","endpoint_uri":"eaa.openness","notifications":[{"name":"ExampleNotification","version":"1.0.0","description":"Description for Event #1 by Example Producer"}]}]}\n',
      'field order and omitempty as Go writes them',
    );
    t.equal((await consumer.call('POST', `/subscriptions/${NS}`, JSON.stringify(SAMPLE_SUBSCRIPTION))).status, 201);
    const msg = { msg: 'Mon Jan  2 15:04:05 MST 2006' };
    const push = await producer.call(
      'POST',
      '/notifications',
      JSON.stringify({ name: 'ExampleNotification', version: '1.0.0', payload: msg }),
    );
    t.equal(push.status, 202, 'notify: exactly 202');
    t.equal(push.body, '');
    const [frame] = await ws.waitFor(1);
    t.equal(
      frame,
      '{"name":"ExampleNotification","version":"1.0.0","payload":{"msg":"Mon Jan  2 15:04:05 MST 2006"},"producer":{"id":"ExampleProducerAppID","namespace":"ExampleNamespace"}}',
      'the frame names the producer under "producer"',
    );
    t.equal((await consumer.call('DELETE', `/subscriptions/${NS}`, JSON.stringify(SAMPLE_SUBSCRIPTION))).status, 204);
    await producer.call('POST', '/notifications', JSON.stringify({ name: 'ExampleNotification', version: '1.0.0' }));
    await sleep(150);
    t.equal(ws.messages.length, 1, 'nothing after unsubscribing');
    t.equal((await producer.call('DELETE', '/services')).status, 204, 'deregister: exactly 204');
    t.equal((await producer.call('GET', '/services')).body, '{}\n', 'no services: {}');
    t.equal((await producer.call('DELETE', '/services')).status, 404, 'deregister again: 404');
    ws.close();
  });

  t.test('subscriptions: listing, replace, collapse, first description, service level', async (t) => {
    const c = await app('ns1:consumer');
    const other = await app('ns1:other');
    t.equal((await c.call('GET', '/subscriptions')).body, '{}\n');
    await other.call('POST', '/subscriptions/ns1', JSON.stringify([{ name: 'a', version: '1', description: 'first' }]));
    await c.call('POST', '/subscriptions/ns1', JSON.stringify([{ name: 'x', version: '1' }]));
    const body = JSON.stringify([
      { name: 'a', version: '1', description: 'second' },
      { name: 'a', version: '1' },
    ]);
    t.equal((await c.call('POST', '/subscriptions/ns1', body)).status, 201);
    t.equal((await c.call('POST', '/subscriptions/ns1/prod1', JSON.stringify([{ name: 'z', version: '9' }]))).status, 201);
    t.equal(
      (await c.call('GET', '/subscriptions')).body,
      '{"subscriptions":[{"urn":{"namespace":"ns1"},"notifications":[{"name":"a","version":"1","description":"first"}]},{"urn":{"id":"prod1","namespace":"ns1"},"notifications":[{"name":"z","version":"9"}]}]}\n',
      'replaced (x gone), duplicates collapsed, first description kept, namespace urn without id',
    );
    t.equal((await c.call('DELETE', '/subscriptions/ns1', JSON.stringify([{ name: 'nope', version: '0' }]))).status, 204);
    t.equal((await c.call('DELETE', '/subscriptions/unknown-ns', '[]')).status, 204);
    t.equal((await c.call('DELETE', '/subscriptions/ns1', '')).status, 500, 'unsubscribe needs a body');
    t.equal((await c.call('DELETE', '/subscriptions/ns1/prod1', 'nope')).status, 500);
    t.equal((await c.call('DELETE', '/subscriptions/ns1/prod1', JSON.stringify([{ name: 'z', version: '9' }]))).status, 204);
    t.match((await c.call('GET', '/subscriptions')).body, /^\{"subscriptions":\[\{"urn":\{"namespace":"ns1"\}/);
    t.equal((await c.call('DELETE', '/subscriptions')).status, 204);
    t.equal((await c.call('GET', '/subscriptions')).body, '{}\n');
    await other.call('DELETE', '/subscriptions');
  });

  t.test('routing of notifications: levels, undeclared names, one copy, no queue, 1012', async (t) => {
    const p1 = await app('ns2:p1');
    const p2 = await app('ns2:p2');
    const both = await app('ns2:both');
    const svcOnly = await app('ns2:svc-only');
    await p1.call('POST', '/services', JSON.stringify({ notifications: [{ name: 'declared', version: '1' }] }));
    await p2.call('POST', '/services', '{}');
    const e = JSON.stringify([{ name: 'e', version: '2' }]);
    await both.call('POST', '/subscriptions/ns2', e);
    await both.call('POST', '/subscriptions/ns2/p1', e);
    await svcOnly.call('POST', '/subscriptions/ns2/p1', e);
    const wsBoth = await both.socket();
    const wsSvc = await svcOnly.socket();
    t.equal((await p1.call('POST', '/notifications', '{"name":"e","version":"2","payload":1.0}')).status, 202);
    t.equal((await p2.call('POST', '/notifications', '{"name":"e","version":"2","payload":"s"}')).status, 202);
    await p1.call('POST', '/notifications', '{"name":"e","version":"2.0"}'); // another version: nobody
    await wsBoth.waitFor(2);
    await wsSvc.waitFor(1);
    await sleep(100);
    t.same(wsBoth.messages, [
      '{"name":"e","version":"2","payload":1.0,"producer":{"id":"p1","namespace":"ns2"}}',
      '{"name":"e","version":"2","payload":"s","producer":{"id":"p2","namespace":"ns2"}}',
    ]);
    t.same(wsSvc.messages, ['{"name":"e","version":"2","payload":1.0,"producer":{"id":"p1","namespace":"ns2"}}']);

    // No queue: what is published while the socket is closed is never delivered.
    wsSvc.close();
    await wsSvc.waitClosed();
    await sleep(50);
    await p1.call('POST', '/notifications', '{"name":"e","version":"2","payload":"missed"}');
    const again = await svcOnly.socket();
    await p1.call('POST', '/notifications', '{"name":"e","version":"2","payload":"seen"}');
    await again.waitFor(1);
    await sleep(100);
    t.same(
      again.messages.map((m) => (JSON.parse(m) as { payload: string }).payload),
      ['seen'],
      'reconnected: only later ones',
    );

    // A second socket for the same app closes the first with 1012.
    const third = await svcOnly.socket();
    t.same(await again.waitClosed(), { code: 1012, reason: 'New connection request, closing this connection' });
    third.close();
    wsBoth.close();
  });

  t.test('producers: identity from the certificate, payload and info pass through as Go writes them', async (t) => {
    const p = await app('ns3:prod');
    const c = await app('ns3:cons');
    const body =
      '{"urn":{"id":"spoofed","namespace":"other"},"status":"weird","notifications":[{"name":"a","version":"1"},{"name":"","version":"1"},{"name":"b"}],"info":{"k": [1, 2], "h": "<&>", "n": 1.50}}';
    t.equal((await p.call('POST', '/services', body)).status, 200);
    const list = (await p.call('GET', '/services')).body;
    t.match(
      list,
      '{"urn":{"id":"prod","namespace":"ns3"},"status":"weird","notifications":[{"name":"a","version":"1"}],"info":{"k":[1,2],"h":"\\u003c\\u0026\\u003e","n":1.50}}',
    );
    t.equal((await p.call('POST', '/services', '{}')).status, 200);
    t.match(
      (await p.call('GET', '/services')).body,
      '{"urn":{"id":"prod","namespace":"ns3"}}',
      'upsert replaces the whole object',
    );

    // Subscribed before the producer existed; kept after it deregisters.
    await c.call('POST', '/subscriptions/ns3/prod', JSON.stringify([{ name: 'a', version: '1' }]));
    const ws = await c.socket();
    await p.call(
      'POST',
      '/notifications',
      '{"Name":"a","VERSION":"1","payload":{"x": "<b>", "y": [1, 2]},"extra":true} trailing',
    );
    t.same(await ws.waitFor(1), [
      '{"name":"a","version":"1","payload":{"x":"\\u003cb\\u003e","y":[1,2]},"producer":{"id":"prod","namespace":"ns3"}}',
    ]);
    t.equal((await p.call('DELETE', '/services')).status, 204);
    t.equal((await p.call('POST', '/notifications', '{"name":"a","version":"1"}')).status, 500, 'deregistered: 500');
    t.match((await c.call('GET', '/subscriptions')).body, /"id":"prod"/, 'subscriptions survive deregistration');

    const noColon = await app('test.org.com');
    t.equal((await noColon.call('POST', '/notifications', '{"name":"a","version":"1"}')).status, 401, 'no colon: 401');
    t.equal((await noColon.call('POST', '/services', '{}')).status, 500, 'no colon: register 500');
    t.equal((await noColon.call('DELETE', '/services')).status, 500, 'no colon: deregister 500');
    t.equal((await noColon.call('GET', '/services')).status, 200, 'any CN may read');
    ws.close();
  });

  t.test('bad input: clear errors, nothing changed', async (t) => {
    const p = await app('ns4:prod');
    await p.call('POST', '/services', '{"description":"kept"}');
    const before = (await p.call('GET', '/services')).body;
    const cases: [string, string, string, number][] = [
      ['POST', '/services', '{"description":', 500],
      ['POST', '/services', '', 500],
      ['POST', '/services', '[]', 500],
      ['POST', '/services', '{"notifications":"x"}', 500],
      ['POST', '/services', '{"description":5}', 500],
      ['POST', '/services', `{"description":"${'x'.repeat(5000)}"}`, 413],
      ['POST', '/subscriptions/ns4', '{}', 500],
      ['POST', '/subscriptions/ns4', '[{"name":1}]', 500],
      ['POST', '/notifications', 'garbage', 500],
      ['POST', '/notifications', '{"payload":', 500],
    ];
    for (const [method, path, body, status] of cases) {
      const r = await p.call(method, path, body);
      t.equal(r.status, status, `${method} ${path} ${body.slice(0, 30)}`);
      t.equal(r.body, '');
      t.match(r.headers['x-meshlet-error'], /^MESHLET_ERR_EAA_BAD_REQUEST: /);
    }
    t.equal((await p.call('GET', '/services')).body, before, 'the registration is unchanged');
    t.equal((await p.call('GET', '/subscriptions')).body, '{}\n');
  });

  t.test('router: 404, 405, 301 as gorilla/mux', async (t) => {
    const c = await app('ns5:c');
    const nf = await c.call('GET', '/nope');
    t.equal(nf.status, 404);
    t.equal(nf.headers['content-type'], 'text/plain; charset=utf-8');
    t.equal(nf.body, '404 page not found\n');
    t.equal((await c.call('GET', '/')).status, 404, 'GET / (the sample client probe) gets an answer');
    t.equal((await c.call('PUT', '/services')).status, 405);
    t.equal((await c.call('GET', '/subscriptions/ns5')).status, 405);
    const slash = await c.call('GET', '/services/');
    t.equal(slash.status, 301);
    t.equal(slash.headers.location, '/services');
    t.equal((await c.call('GET', '/x/../services')).headers.location, '/services');
  });

  t.test('WebSocket refusals: Host, Origin, no upgrade', async (t) => {
    const c = await app('ns6:c');
    await t.rejects(c.socket({ host: 'ns6:someone-else' }), /websocket refused: 401/);
    await t.rejects(c.socket({ headers: { Origin: 'https://evil.example' } }), /websocket refused: 403/);
    const plain = await c.call('GET', '/notifications', undefined, { Host: 'ns6:c' });
    t.equal(plain.status, 400);
    t.equal(plain.body, 'Bad Request\n');
    t.equal((await c.call('GET', '/notifications')).status, 401, 'plain GET with another Host: 401');
  });

  t.test('metrics', async (t) => {
    const text = await node.metrics.metrics();
    t.match(text, /meshlet_eaa_notifications_total\{outcome="delivered"\} \d+/);
    t.match(text, /meshlet_eaa_notifications_total\{outcome="no_socket"\} \d+/);
    t.match(text, /meshlet_eaa_services\{scope="all"\} \d+/);
    t.match(text, /meshlet_eaa_websocket_clients \d+/);
  });
}
