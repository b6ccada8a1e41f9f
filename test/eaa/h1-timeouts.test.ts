import { connect, createServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { H1Connection } from '../../src/eaa/h1.ts';

// The timeouts of the EAA's HTTP/1.1 path (src/eaa/h1.ts), shortened, and its framing of an answer
// given without a length: an idle keep-alive
// connection is closed, and so is one that trickles a request in a byte at a time for longer
// than the request timeout (node:http's headersTimeout), with node:http's 408. Plain TCP: the
// connection logic does not depend on TLS, which test/eaa/h1.test.ts covers.

const served: string[] = [];
const server = createServer((sock) => {
  new H1Connection(sock as TLSSocket, {
    maxBodyBytes: 1024,
    serve: (req, res) => {
      served.push(`${req.method} ${req.url}`);
      if (req.url === '/bare') {
        res.end(); // no writeHead, no length: the path must still frame the answer
        return;
      }
      res.writeHead(200, { 'Content-Length': 2 });
      res.end('ok');
    },
    handOff: (s) => s.destroy(),
    idleTimeoutMs: 150,
    requestTimeoutMs: 400,
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
t.teardown(() => server.close());
const port = (server.address() as { port: number }).port;

async function open(): Promise<{ sock: Socket; got: () => string; closed: Promise<number> }> {
  const sock = connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  let text = '';
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => {
    text += d;
  });
  const t0 = performance.now();
  const closed = new Promise<number>((r) => sock.once('close', () => r(performance.now() - t0)));
  return { sock, got: () => text, closed };
}

t.test('an idle connection is closed after the idle timeout, an answered one too', async (t) => {
  const c = await open();
  c.sock.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
  const ms = await c.closed;
  t.match(c.got(), /^HTTP\/1\.1 200 OK\r\nContent-Length: 2\r\nDate: .*\r\nConnection: keep-alive\r\n/);
  t.ok(ms >= 140 && ms < 2000, `closed after ${ms.toFixed(0)} ms idle`);
});

t.test('a request trickled in a byte at a time: 408 once the request timeout passes', async (t) => {
  const c = await open();
  const head = 'GET /slow HTTP/1.1\r\nHost: x\r\nX-Pad: 0123456789012345678901234567890123456789\r\n\r\n';
  let i = 0;
  const drip = setInterval(() => {
    if (i < head.length && !c.sock.destroyed) c.sock.write(head[i++] as string);
  }, 60);
  const ms = await c.closed;
  clearInterval(drip);
  t.match(c.got(), /^HTTP\/1\.1 408 Request Timeout\r\n/, 'answered 408');
  t.ok(ms >= 390 && ms < 3000, `closed after ${ms.toFixed(0)} ms`);
  t.notOk(served.includes('GET /slow'), 'the request never reached the handlers');
});

t.test('silence halfway through a head: kept until the request timeout, then closed', async (t) => {
  const c = await open();
  c.sock.write('GET /half HTTP/1.1\r\nHo');
  const ms = await c.closed;
  t.ok(ms >= 390 && ms < 3000, `closed after ${ms.toFixed(0)} ms, not at the 150 ms idle timeout`);
});

t.test('an answer without writeHead or a length still ends: Content-Length: 0, the connection goes on', async (t) => {
  const c = await open();
  c.sock.write('GET /bare HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n');
  await c.closed;
  t.match(
    c.got(),
    /^HTTP\/1\.1 200 OK\r\nDate: .*\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\nHTTP\/1\.1 200 OK\r\n/,
  );
});
