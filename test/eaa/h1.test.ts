import { connect, type TLSSocket } from 'node:tls';
import t from 'tap';
import { requireOrSkip } from '../harness/requirements.ts';
import { seededRandom } from '../harness/seeded.ts';
import { type AppIdentity, client, identities, sharedCa, sleep, startNode, tempDir } from './helpers.ts';

// HTTP/1.1 on the API port, byte for byte (src/eaa/h1.ts): requests are read by llhttp and
// answered without node:http's per-request objects, so the exact response bytes node:http wrote
// are pinned here (recorded from it, Date masked), together with what a connection does around
// them: keep-alive, pipelining, Connection: close, bodies in pieces, chunked bodies, bad
// requests, and the requests that still go to node:http (upgrade, Expect, HTTP/1.0).

const NS = 'h1ns';
const PRODUCER = `${NS}:producer`;
const CONSUMER = `${NS}:consumer`;
const SERVICE = JSON.stringify({
  urn: { id: 'producer', namespace: NS },
  description: 'raw',
  endpoint_uri: 'eaa.openness',
  notifications: [{ name: 'tick', version: '1', description: 'a tick' }],
});
const NOTE = '{"name":"tick","version":"1","payload":{"k":1}}';

/** A request as Go's client writes it: Host, User-Agent, Content-Length when there is a body. */
function req(method: string, path: string, body?: string, extra = ''): string {
  const length = body === undefined ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  return `${method} ${path} HTTP/1.1\r\nHost: eaa.openness\r\nUser-Agent: Go-http-client/1.1\r\n${length}${extra}\r\n${body ?? ''}`;
}

/** One TLS connection that collects everything the server writes; Date values masked. */
class Raw {
  readonly sock: TLSSocket;
  #got = '';
  closed = false;

  private constructor(sock: TLSSocket) {
    this.sock = sock;
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.#got += d;
    });
    sock.on('close', () => {
      this.closed = true;
    });
    sock.on('error', () => {});
  }

  static async open(port: number, id: AppIdentity, alpn?: string[]): Promise<Raw> {
    const sock = connect({
      host: '127.0.0.1',
      port,
      servername: 'eaa.openness',
      key: id.keyPem,
      cert: id.certPem,
      ca: [id.caPem],
      ...(alpn ? { ALPNProtocols: alpn } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', resolve);
      sock.once('error', reject);
    });
    return new Raw(sock);
  }

  get text(): string {
    return this.#got.replace(/Date: [^\r]*\r\n/g, 'Date: <date>\r\n');
  }

  /** Writes, then waits until `count` responses (status lines) arrived, or the socket closed. */
  async exchange(bytes: string | string[], count = 1, timeoutMs = 3000): Promise<string> {
    const from = this.#got.length;
    for (const b of Array.isArray(bytes) ? bytes : [bytes]) {
      this.sock.write(b, 'latin1');
      if (Array.isArray(bytes)) await sleep(20);
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const part = this.#got.slice(from);
      const heads = part.match(/HTTP\/1\.1 \d{3}/g)?.length ?? 0;
      if ((heads >= count && complete(part)) || this.closed || Date.now() > deadline) break;
      await sleep(5);
    }
    return this.#got.slice(from).replace(/Date: [^\r]*\r\n/g, 'Date: <date>\r\n');
  }

  close(): void {
    this.sock.destroy();
  }
}

/** The last response in `s` has all of its body (Content-Length, or chunked to the last chunk). */
function complete(s: string): boolean {
  const at = s.lastIndexOf('HTTP/1.1 ');
  const head = s.indexOf('\r\n\r\n', at);
  if (head < 0) return false;
  if (/Transfer-Encoding: chunked/i.test(s.slice(at, head))) return s.endsWith('0\r\n\r\n');
  const m = /Content-Length: (\d+)/i.exec(s.slice(at, head));
  return m === null || s.length - (head + 4) >= Number(m[1]);
}

const KEEP = 'Date: <date>\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n';
const JSON_HEAD = 'Content-Type: application/json; charset=UTF-8\r\n';

if (requireOrSkip(t, { commands: ['openssl'] })) {
  const dir = await tempDir(t);
  const ca = await sharedCa(dir);
  const node = await startNode(t, { dir, ca, eaa: { maxBodyBytes: 4096 } });
  const identity = identities(node.authPort, dir);
  const producer = await identity(PRODUCER);
  const consumer = await identity(CONSUMER);
  const raw = async (id: AppIdentity, alpn?: string[]) => {
    const r = await Raw.open(node.port, id, alpn);
    t.teardown(() => r.close());
    return r;
  };

  t.test('every route answers with the bytes node:http wrote', async (t) => {
    const p = await raw(producer);
    t.equal(
      await p.exchange(req('POST', '/services', SERVICE)),
      `HTTP/1.1 200 OK\r\n${JSON_HEAD}Content-Length: 0\r\n${KEEP}`,
      'POST /services',
    );
    const list = await p.exchange(req('GET', '/services'));
    t.match(list, /^HTTP\/1\.1 200 OK\r\nContent-Type: application\/json; charset=UTF-8\r\nContent-Length: \d+\r\n/);
    t.ok(list.endsWith(`${KEEP}{"services":[${SERVICE}]}\n`), 'GET /services: head then the list');
    t.equal(
      await p.exchange(req('POST', '/notifications', NOTE)),
      `HTTP/1.1 202 Accepted\r\n${JSON_HEAD}Content-Length: 0\r\n${KEEP}`,
      'POST /notifications',
    );
    t.equal(
      await p.exchange(req('GET', '/nowhere')),
      `HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: <date>\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n13\r\n404 page not found\n\r\n0\r\n\r\n`,
      'unknown path: gorilla/mux 404',
    );
    t.equal(
      await p.exchange(req('PUT', '/services', '{}')),
      `HTTP/1.1 405 Method Not Allowed\r\n${JSON_HEAD}Content-Length: 0\r\n${KEEP}`,
      'known path, other method: 405',
    );
    t.equal(
      await p.exchange(req('GET', '/services/?x=1')),
      `HTTP/1.1 301 Moved Permanently\r\nLocation: /services?x=1\r\nContent-Length: 0\r\n${KEEP}`,
      'trailing slash: 301 keeping the query',
    );
    t.equal(
      await p.exchange(req('POST', '/notifications', '{"name":')),
      `HTTP/1.1 500 Internal Server Error\r\n${JSON_HEAD}Content-Length: 0\r\nX-Meshlet-Error: MESHLET_ERR_EAA_BAD_REQUEST: unexpected end of JSON input\r\n${KEEP}`,
      'malformed JSON: OpenNESS 500 with the reason in X-Meshlet-Error',
    );
    const big = `{"name":"tick","version":"1","payload":"${'x'.repeat(5000)}"}`;
    t.equal(
      await p.exchange(req('POST', '/notifications', big)),
      `HTTP/1.1 413 Payload Too Large\r\n${JSON_HEAD}Content-Length: 0\r\nX-Meshlet-Error: MESHLET_ERR_EAA_BAD_REQUEST: request body over 4096 bytes\r\n${KEEP}`,
      'body over eaa.maxBodyBytes: 413',
    );
    t.equal(
      await p.exchange(req('POST', '/notifications', NOTE)),
      `HTTP/1.1 202 Accepted\r\n${JSON_HEAD}Content-Length: 0\r\n${KEEP}`,
      'the connection goes on after the refused body',
    );
    t.equal(
      await p.exchange(req('DELETE', '/services')),
      `HTTP/1.1 204 No Content\r\n${JSON_HEAD}Content-Length: 0\r\n${KEEP}`,
      'DELETE /services',
    );
    const c = await raw(consumer);
    t.equal(
      await c.exchange(req('GET', '/notifications', undefined, '')),
      `HTTP/1.1 401 Unauthorized\r\n${JSON_HEAD}Content-Length: 0\r\n${KEEP}`,
      'GET /notifications without an upgrade, Host is not the CN: 401',
    );
  });

  t.test('a connection: pipelining, pieces, chunked bodies, close, errors', async (t) => {
    const p = await raw(producer);
    t.match(await p.exchange(req('POST', '/services', SERVICE)), /^HTTP\/1\.1 200 OK/);
    const three = await p.exchange(req('POST', '/notifications', NOTE).repeat(3), 3);
    t.equal(three.match(/HTTP\/1\.1 202 Accepted/g)?.length, 3, 'three pipelined requests, three answers in order');
    const pieces = req('POST', '/notifications', NOTE);
    t.match(
      await p.exchange([pieces.slice(0, 7), pieces.slice(7, 60), pieces.slice(60, pieces.length - 5), pieces.slice(-5)]),
      /^HTTP\/1\.1 202 Accepted/,
      'a request in four pieces',
    );
    const chunked = `POST /notifications HTTP/1.1\r\nHost: eaa.openness\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n${NOTE.slice(0, 16)}\r\n${(NOTE.length - 16).toString(16)}\r\n${NOTE.slice(16)}\r\n0\r\n\r\n`;
    t.match(await p.exchange(chunked), /^HTTP\/1\.1 202 Accepted/, 'a chunked body');
    const closing = await p.exchange(req('GET', '/services', undefined, 'Connection: close\r\n'));
    t.match(closing, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Connection: close\r\n\r\n\{"services"/, 'Connection: close is answered so');
    await sleep(50);
    t.ok(p.closed, 'and the server closes after it');

    const bad = await raw(producer);
    t.match(await bad.exchange('GARBAGE / HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request\r\n/, 'unparsable: 400');
    await sleep(50);
    t.ok(bad.closed, 'then closed');

    const after = await raw(producer);
    const mixed = await after.exchange(`${req('POST', '/notifications', NOTE)}POST /x HTTP/1.1\r\nContent-Length: zz\r\n\r\n`, 2);
    t.match(mixed, /^HTTP\/1\.1 202 Accepted[\s\S]*HTTP\/1\.1 400 Bad Request/, 'the answer owed first, then 400');
  });

  t.test('upgrade, Expect and HTTP/1.0 are node:http’s, on the same connection', async (t) => {
    const p = await raw(producer);
    t.match(await p.exchange(req('POST', '/services', SERVICE)), /^HTTP\/1\.1 200 OK/);
    const expect = await p.exchange(req('POST', '/notifications', NOTE, 'Expect: 100-continue\r\n'), 2);
    t.match(expect, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 Accepted/, 'Expect: 100-continue');
    t.match(await p.exchange(req('POST', '/notifications', NOTE)), /^HTTP\/1\.1 202 Accepted/, 'then node:http serves it');

    const old = await raw(producer);
    const ten = await old.exchange(`GET /services HTTP/1.0\r\nHost: eaa.openness\r\n\r\n`);
    t.match(ten, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Connection: close\r\n/, 'HTTP/1.0 without keep-alive: answered, then closed');

    // A consumer's WebSocket after a request on the same connection.
    const ws = client(node.port, consumer);
    t.equal((await ws.call('POST', `/subscriptions/${NS}`, JSON.stringify([{ name: 'tick', version: '1' }]))).status, 201);
    const c = await raw(consumer);
    t.match(await c.exchange(req('GET', '/subscriptions')), /^HTTP\/1\.1 200 OK/);
    const up = await c.exchange(
      'GET /notifications HTTP/1.1\r\nHost: h1ns:consumer\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    t.match(up, /^HTTP\/1\.1 101 Switching Protocols\r\n/, 'the upgrade after a request');
    t.match(await p.exchange(req('POST', '/notifications', NOTE)), /^HTTP\/1\.1 202 Accepted/);
    await sleep(100);
    t.match(c.text, /\x81.\{"name":"tick","version":"1","payload":\{"k":1\},"producer"/, 'and the notification arrives on it');
  });

  t.test('mangled request streams: an answer or a close, never a stall, and the port serves on', async (t) => {
    const seed = Number(process.env.EAA_FUZZ_SEED ?? 0x5eed) >>> 0;
    const rand = seededRandom(seed);
    const valid = req('POST', '/notifications', NOTE) + req('GET', '/services') + req('DELETE', '/subscriptions', '');
    const cases = 60;
    let answered = 0;
    for (let i = 0; i < cases; i++) {
      const bytes = Buffer.from(valid, 'latin1');
      for (let m = 1 + Math.floor(rand() * 4); m > 0; m--) {
        const at = Math.floor(rand() * bytes.length);
        const r = rand();
        if (r < 0.4) bytes[at] = Math.floor(rand() * 256);
        else if (r < 0.7) bytes[at] = [0x0d, 0x0a, 0x3a, 0x20, 0x30][Math.floor(rand() * 5)] as number;
        else bytes.copyWithin(at, Math.min(bytes.length - 1, at + 1 + Math.floor(rand() * 20)));
      }
      const c = await raw(producer);
      const got = await c.exchange([bytes.toString('latin1')], 3, 2000);
      // Complete requests are answered (any status); the rest ends in 400, a close, or silence
      // while the server waits for the missing bytes (a truncated Content-Length body).
      if (/^HTTP\/1\.1 \d{3} /.test(got)) answered++;
      t.notMatch(got, /HTTP\/1\.1 5\d\d (?!Internal Server Error)/, `case ${i}: no other 5xx`);
      c.close();
    }
    t.ok(answered > cases / 2, `most mangled streams got answers (${answered}/${cases}, seed ${seed})`);
    const after = await raw(producer);
    t.match(await after.exchange(req('GET', '/services')), /^HTTP\/1\.1 200 OK/, 'a clean request afterwards is served');
  });

  t.test('h2 is still served when offered', async (t) => {
    const r = await raw(producer, ['h2', 'http/1.1']);
    t.equal(r.sock.alpnProtocol, 'h2');
  });
}
