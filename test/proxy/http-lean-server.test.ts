import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { httpBackend, listenerPort, service, slices, startProxy, type Tap } from './helpers.ts';

/**
 * The lean server path (proxy/http/lean-server.ts): llhttp on the client socket, body-less
 * HTTP/1.1 requests forwarded without node:http, the rest handed to node:http mid-connection.
 * Raw sockets, so pipelining, byte splits and malformed input reach the parser as written.
 */

interface Parsed {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Complete responses at the front of `buf` (content-length or chunked), and the bytes left. */
function parseResponses(buf: string): { responses: Parsed[]; rest: string } {
  const responses: Parsed[] = [];
  let rest = buf;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const lines = rest.slice(0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? Number.NaN);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    let at = end + 4;
    let body = '';
    if (status === 100) {
      rest = rest.slice(at);
      continue;
    }
    if (headers['transfer-encoding'] === 'chunked') {
      let complete = false;
      for (;;) {
        const lineEnd = rest.indexOf('\r\n', at);
        if (lineEnd < 0) break;
        const size = Number.parseInt(rest.slice(at, lineEnd), 16);
        if (size === 0) {
          const trailerEnd = rest.indexOf('\r\n\r\n', lineEnd);
          if (trailerEnd < 0 && rest.slice(lineEnd, lineEnd + 4) !== '\r\n\r\n') break;
          at = rest.slice(lineEnd, lineEnd + 4) === '\r\n\r\n' ? lineEnd + 4 : trailerEnd + 4;
          complete = true;
          break;
        }
        if (rest.length < lineEnd + 2 + size + 2) break;
        body += rest.slice(lineEnd + 2, lineEnd + 2 + size);
        at = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
    } else {
      const length = Number(headers['content-length'] ?? 0);
      if (rest.length < at + length) break;
      body = rest.slice(at, at + length);
      at += length;
    }
    responses.push({ status, headers, body });
    rest = rest.slice(at);
  }
  return { responses, rest };
}

/** Reads until `count` responses arrived (or the connection ended). */
async function readResponses(s: Socket, count: number, timeoutMs = 3000): Promise<{ responses: Parsed[]; ended: boolean }> {
  let buf = '';
  let ended = false;
  s.setEncoding('latin1');
  const deadline = setTimeout(() => s.destroy(), timeoutMs);
  try {
    for await (const chunk of s) {
      buf += chunk as string;
      if (parseResponses(buf).responses.length >= count) break;
    }
    ended = s.readableEnded || s.destroyed;
  } catch {
    ended = true;
  } finally {
    clearTimeout(deadline);
  }
  return { responses: parseResponses(buf).responses, ended };
}

async function open(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await once(s, 'connect');
  return s;
}

async function setup(t: Tap) {
  const backend = await httpBackend(t, 'echo', (req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (d: string) => {
      body += d;
    });
    req.on('end', () => {
      res.setHeader('x-xff', String(req.headers['x-forwarded-for'] ?? ''));
      res.setHeader('x-connection', String(req.headers.connection ?? ''));
      res.end(`${req.method} ${req.url} ${req.httpVersion} ${body}`);
    });
  });
  const h = await startProxy(t);
  await h.set([service('web', [{ name: 'http', port: 80 }])], slices('web', 'http', [{ port: backend.port }]));
  return { port: listenerPort(h, 80), h };
}

t.test('pipelined requests are answered in order, across a hand-off to node:http for a body', async (t) => {
  const { port } = await setup(t);
  const s = await open(port);
  t.teardown(() => s.destroy());
  let wire = '';
  for (let i = 0; i < 5; i++) wire += `GET /a${i} HTTP/1.1\r\nhost: web\r\nx-forwarded-for: 198.18.0.1\r\n\r\n`;
  wire += 'POST /post HTTP/1.1\r\nhost: web\r\ncontent-length: 4\r\n\r\nbody';
  wire += 'GET /after HTTP/1.1\r\nhost: web\r\n\r\n';
  wire += 'DELETE /last HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n';
  s.write(wire);
  const { responses, ended } = await readResponses(s, 8);
  t.same(
    responses.map((r) => r.body),
    [
      'GET /a0 1.1 ',
      'GET /a1 1.1 ',
      'GET /a2 1.1 ',
      'GET /a3 1.1 ',
      'GET /a4 1.1 ',
      'POST /post 1.1 body',
      'GET /after 1.1 ',
      'DELETE /last 1.1 ',
    ],
  );
  t.equal(responses[0]?.headers['x-xff'], '198.18.0.1, 127.0.0.1');
  t.equal(responses[7]?.headers['x-connection'], '', "the client's Connection: close is not forwarded");
  t.ok(responses[0]?.headers.date, 'date is present');
  t.equal(responses[7]?.headers.connection, 'close');
  t.ok(ended || (await once(s, 'close')), 'the connection closes after Connection: close');
});

t.test('a request split at every byte boundary, two pipelined', async (t) => {
  const { port } = await setup(t);
  const wire =
    'GET /split?q=1 HTTP/1.1\r\nHost: web\r\nX-Forwarded-For: 198.18.0.2\r\nAccept: */*\r\n\r\n' +
    'HEAD /two HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n';
  for (let cut = 1; cut < wire.length; cut++) {
    const s = await open(port);
    s.write(wire.slice(0, cut));
    await new Promise((r) => setTimeout(r, 1));
    s.write(wire.slice(cut));
    const { responses } = await readResponses(s, 2);
    s.destroy();
    if (responses.length !== 2 || responses[0]?.body !== 'GET /split?q=1 1.1 ' || responses[1]?.status !== 200) {
      t.fail(`cut at ${cut}: ${JSON.stringify(responses)}`);
      return;
    }
    if (responses[0].headers['x-xff'] !== '198.18.0.2, 127.0.0.1') {
      t.fail(`cut at ${cut}: xff ${responses[0].headers['x-xff']}`);
      return;
    }
  }
  t.pass(`all ${wire.length - 1} cuts answered both requests`);
});

t.test('hand-offs: HTTP/1.0, Expect: 100-continue, chunked body, no Host (400 from node:http)', async (t) => {
  const { port } = await setup(t);
  const ask = async (wire: string, count: number) => {
    const s = await open(port);
    s.write(wire);
    const r = await readResponses(s, count);
    s.destroy();
    return r.responses;
  };
  const v10 = await ask('GET /old HTTP/1.0\r\nhost: web\r\n\r\n', 1);
  t.equal(v10[0]?.body, 'GET /old 1.1 ', 'HTTP/1.0 served (upstream request is 1.1)');
  const s = await open(port);
  t.teardown(() => s.destroy());
  s.write('PUT /e HTTP/1.1\r\nhost: web\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n');
  s.setEncoding('latin1');
  const [first] = (await once(s, 'data')) as [string];
  t.match(first, /^HTTP\/1\.1 100 Continue/);
  s.write('abc');
  const put = await readResponses(s, 1);
  t.equal(put.responses[0]?.body, 'PUT /e 1.1 abc');
  const chunked = await ask('POST /c HTTP/1.1\r\nhost: web\r\ntransfer-encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n', 1);
  t.equal(chunked[0]?.body, 'POST /c 1.1 xyz');
  const noHost = await ask('GET /nohost HTTP/1.1\r\n\r\n', 1);
  t.equal(noHost[0]?.status, 400);
});

t.test('malformed input: every reply is a well-formed response or nothing, the listener keeps serving', async (t) => {
  const { port, h } = await setup(t);
  const base = 'GET /fuzz HTTP/1.1\r\nhost: web\r\nx-a: b\r\n\r\nGET /fuzz2 HTTP/1.1\r\nhost: web\r\n\r\n';
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = [
    '\0',
    '\r',
    '\n',
    ' ',
    ':',
    '\x7f',
    '\xff',
    'A',
    '/',
    'HTTP/9.9',
    '\r\n\r\n',
    'transfer-encoding: chunked\r\n',
  ];
  let statuses = new Set<number>();
  for (let i = 0; i < 150; i++) {
    const chars = [...base];
    const edits = 1 + rand(3);
    for (let e = 0; e < edits; e++) {
      const at = rand(chars.length);
      const kind = rand(3);
      if (kind === 0) chars[at] = alphabet[rand(alphabet.length)] as string;
      else if (kind === 1) chars.splice(at, 0, alphabet[rand(alphabet.length)] as string);
      else chars.splice(at, 1);
    }
    const s = await open(port);
    s.on('error', () => {});
    s.end(Buffer.from(chars.join(''), 'latin1'));
    let raw = '';
    s.setEncoding('latin1');
    const timer = setTimeout(() => s.destroy(), 2000);
    for await (const chunk of s) raw += chunk as string;
    clearTimeout(timer);
    if (raw !== '' && !raw.startsWith('HTTP/1.1 ')) {
      t.fail(`input ${JSON.stringify(chars.join(''))} got ${JSON.stringify(raw.slice(0, 80))}`);
      return;
    }
    const { responses } = parseResponses(raw);
    statuses = new Set([...statuses, ...responses.map((r) => r.status)]);
  }
  t.ok(statuses.has(400), `400s among the replies (${[...statuses].join(', ')})`);
  const s = await open(port);
  s.write('GET /alive HTTP/1.1\r\nhost: web\r\n\r\n');
  const { responses } = await readResponses(s, 1);
  s.destroy();
  t.equal(responses[0]?.body, 'GET /alive 1.1 ');
  t.match(await h.metrics.getSingleMetricAsString('meshlet_proxy_requests_total'), /code="400"/);
});

t.test('a large response to a slow reader: backpressure, all bytes, then the connection is reused', async (t) => {
  const big = Buffer.alloc(8 * 1024 * 1024, 'z');
  const backend = await httpBackend(t, 'big', (req, res) => {
    if (req.url === '/big') {
      res.setHeader('content-length', big.length);
      res.end(big);
    } else res.end('small');
  });
  const h = await startProxy(t);
  await h.set([service('web', [{ name: 'http', port: 80 }])], slices('web', 'http', [{ port: backend.port }]));
  const s = await open(listenerPort(h, 80));
  t.teardown(() => s.destroy());
  s.write('GET /big HTTP/1.1\r\nhost: web\r\n\r\nGET /small HTTP/1.1\r\nhost: web\r\n\r\n');
  s.pause();
  await new Promise((r) => setTimeout(r, 300));
  s.resume();
  const { responses } = await readResponses(s, 2, 10_000);
  t.equal(responses[0]?.body.length, big.length);
  t.equal(responses[1]?.body, 'small');
});

t.test('a response streaming longer than requestTimeoutMs is not cut while bytes keep coming', async (t) => {
  const backend = await httpBackend(t, 'drip', (_req, res) => {
    let n = 0;
    const timer = setInterval(() => {
      res.write(`${n}`);
      if (++n === 8) {
        clearInterval(timer);
        res.end();
      }
    }, 60);
    res.on('close', () => clearInterval(timer));
  });
  const h = await startProxy(t, { requestTimeoutMs: 200 });
  await h.set([service('web', [{ name: 'http', port: 80 }])], slices('web', 'http', [{ port: backend.port }]));
  const s = await open(listenerPort(h, 80));
  t.teardown(() => s.destroy());
  s.write('GET /drip HTTP/1.1\r\nhost: web\r\n\r\n');
  const { responses } = await readResponses(s, 1);
  t.equal(responses[0]?.body, '01234567');
});
