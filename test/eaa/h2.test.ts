import { once } from 'node:events';
import { type ClientHttp2Session, connect } from 'node:http2';
import { createServer, type Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import { encodeHeaders, type HeaderField, HpackDecoder } from '../../proxy/http/hpack.ts';
import type { BufferedRequest } from '../../src/eaa/buffered-request.ts';
import { H2_ERROR, H2Connection, type H2Response } from '../../src/eaa/h2.ts';
import { seededRandom } from '../harness/seeded.ts';

// The HTTP/2 connection of the EAA API port (src/eaa/h2.ts) on its own, over cleartext TCP
// (it reads and writes the socket it is given; the agent gives it a TLS socket after ALPN h2).
// node:http2's client plays the well-behaved peer; raw frames play the others.

const MAX_BODY = 4096;

interface Served {
  req: BufferedRequest;
  res: H2Response;
}

/** An H2Connection per accepted socket; each request is answered by `answer` (an echo by default). */
async function h2Server(
  t: Test,
  answer: (s: Served) => void = ({ req, res }) => {
    if (req.body === undefined) {
      res.writeHead(413, { 'Content-Length': 0 });
      res.end();
      return;
    }
    const body = `${req.method} ${req.url} ${req.body}`;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Echo': String(req.headers['x-echo'] ?? '') });
    res.end(body);
  },
  idleTimeoutMs?: number,
): Promise<{ port: number; served: Served[]; server: Server }> {
  const served: Served[] = [];
  const server = createServer((sock) => {
    new H2Connection(sock as TLSSocket, {
      maxBodyBytes: MAX_BODY,
      serve: (req, res) => {
        served.push({ req, res });
        answer({ req, res });
      },
      ...(idleTimeoutMs !== undefined && { idleTimeoutMs }),
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return { port: (server.address() as { port: number }).port, served, server };
}

function client(t: Test, port: number, settings: Record<string, number> = {}): ClientHttp2Session {
  const c = connect(`http://127.0.0.1:${port}`, { settings });
  c.on('error', () => {});
  t.teardown(() => c.destroy());
  return c;
}

async function call(
  c: ClientHttp2Session,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const req = c.request(headers);
  req.end(body);
  const [h] = (await once(req, 'response')) as [Record<string, unknown>];
  const chunks: Buffer[] = [];
  req.on('data', (d: Buffer) => chunks.push(d));
  await once(req, 'end');
  return { status: Number(h[':status']), headers: h, body: Buffer.concat(chunks) };
}

t.test('requests and answers with node:http2 as the client', async (t) => {
  const { port, served } = await h2Server(t);
  const c = client(t, port);
  const r = await call(c, { ':method': 'POST', ':path': '/notifications?k=1', 'x-echo': 'hi' }, '{"a":1}');
  t.equal(r.status, 200);
  t.equal(r.body.toString(), 'POST /notifications?k=1 {"a":1}');
  t.equal(r.headers['x-echo'], 'hi');
  t.equal(r.headers['content-type'], 'text/plain');
  t.match(String(r.headers.date), /GMT$/, 'a Date header, as node:http2 sent');
  t.equal(served[0]?.req.headers[':authority'], `127.0.0.1:${port}`);
  const get = await call(c, { ':path': '/services' });
  t.equal(get.body.toString(), 'GET /services ', 'a GET without a body has an empty one');
  // Many streams at once on one connection, each answered on its own stream.
  const all = await Promise.all(
    Array.from({ length: 60 }, (_, i) => call(c, { ':method': 'POST', ':path': `/n/${i}`, 'x-echo': String(i) }, `b${i}`)),
  );
  t.same(
    all.map((x) => x.body.toString()),
    Array.from({ length: 60 }, (_, i) => `POST /n/${i} b${i}`),
  );
});

t.test('flow control: a body larger than the client window and the frame size waits for WINDOW_UPDATE', async (t) => {
  const big = 'x'.repeat(100_000);
  const { port } = await h2Server(t, ({ res }) => {
    res.writeHead(200, { 'Content-Length': big.length });
    res.end(big);
  });
  // A 1,000-byte stream window: the answer leaves in pieces as the client reads.
  const c = client(t, port, { initialWindowSize: 1000 });
  const r = await call(c, { ':path': '/big' });
  t.equal(r.body.length, big.length);
  t.equal(r.body.toString(), big);
  const again = await Promise.all([call(c, { ':path': '/1' }), call(c, { ':path': '/2' })]);
  t.same(
    again.map((x) => x.body.length),
    [big.length, big.length],
    'two at once share the connection window',
  );
});

t.test('response headers larger than a frame go out in CONTINUATION frames', async (t) => {
  const long = 'v'.repeat(20_000);
  const { port } = await h2Server(t, ({ res }) => {
    res.writeHead(204, { 'X-Long': long });
    res.end();
  });
  const c = client(t, port, { maxHeaderListSize: 100_000 });
  const r = await call(c, { ':path': '/' });
  t.equal(r.status, 204);
  t.equal(r.headers['x-long'], long);
});

t.test('a body over maxBodyBytes is served at once without it, and the stream reset NO_ERROR', async (t) => {
  const { port, served } = await h2Server(t);
  const c = client(t, port);
  const req = c.request({ ':method': 'POST', ':path': '/notifications' });
  req.write(Buffer.alloc(MAX_BODY + 1, 'a'));
  const [h] = (await once(req, 'response')) as [Record<string, unknown>];
  t.equal(h[':status'], 413);
  await once(req, 'close');
  t.equal(served[0]?.req.body, undefined);
  t.equal(served[0]?.req.bodyBytes, MAX_BODY + 1);
  const ok = await call(c, { ':method': 'POST', ':path': '/after' }, 'fine');
  t.equal(ok.body.toString(), 'POST /after fine', 'the connection goes on');
  // 1.5 MB of refused bodies on one connection, past its 1 MiB receive window: the window is given
  // back for what was dropped too, or the client would stall here.
  for (let round = 0; round < 12; round++) {
    const statuses = await Promise.all(
      Array.from({ length: 25 }, () => call(c, { ':method': 'POST', ':path': '/big' }, Buffer.alloc(MAX_BODY + 1000, 'b'))),
    );
    if (
      !t.ok(
        statuses.every((r) => r.status === 413),
        `round ${round}: all 413`,
      )
    )
      break;
  }
  const still = await call(c, { ':method': 'POST', ':path': '/still' }, 'fine');
  t.equal(still.status, 200, 'and the connection still carries a body');
});

// ---- raw frames ----------------------------------------------------------------------------

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

interface RawFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** A raw peer: what it sends, and the frames it gets back until the server closes (or 2 s). */
async function raw(port: number, ...chunks: Buffer[]): Promise<{ frames: RawFrame[]; closed: boolean }> {
  const sock = new Socket();
  sock.connect(port, '127.0.0.1');
  await once(sock, 'connect');
  let buf = Buffer.alloc(0);
  const frames: RawFrame[] = [];
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      frames.push({
        type: buf[3] as number,
        flags: buf[4] as number,
        stream: buf.readUInt32BE(5),
        payload: buf.subarray(9, 9 + len),
      });
      buf = buf.subarray(9 + len);
    }
  });
  sock.on('error', () => {});
  for (const c of chunks) sock.write(c);
  const closed = await Promise.race([
    once(sock, 'close').then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 2000)),
  ]);
  sock.destroy();
  return { frames, closed };
}

const SETTINGS = frame(4, 0, 0);
const goAwayCode = (frames: RawFrame[]) => {
  const g = frames.find((f) => f.type === 7);
  return g === undefined ? undefined : g.payload.readUInt32BE(4);
};
const rstCode = (frames: RawFrame[], stream: number) => {
  const r = frames.find((f) => f.type === 3 && f.stream === stream);
  return r === undefined ? undefined : r.payload.readUInt32BE(0);
};
const headersFrame = (stream: number, fields: HeaderField[], flags = 0x5) => frame(1, flags, stream, encodeHeaders(fields));
const GET: HeaderField[] = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':path', '/x'],
  [':authority', 'eaa.openness'],
];

t.test('connection errors: GOAWAY with the right code, then the close', async (t) => {
  const { port } = await h2Server(t);
  const cases: [string, Buffer[], number][] = [
    ['a bad preface', [Buffer.from('GET / HTTP/1.1\r\n\r\n')], H2_ERROR.PROTOCOL_ERROR],
    ['a first frame other than SETTINGS', [PREFACE, frame(6, 0, 0, Buffer.alloc(8))], H2_ERROR.PROTOCOL_ERROR],
    ['DATA on an idle stream', [PREFACE, SETTINGS, frame(0, 1, 1, Buffer.from('x'))], H2_ERROR.PROTOCOL_ERROR],
    ['a stream opened with an even id', [PREFACE, SETTINGS, headersFrame(2, GET)], H2_ERROR.PROTOCOL_ERROR],
    ['stream ids going down', [PREFACE, SETTINGS, headersFrame(5, GET), headersFrame(3, GET)], H2_ERROR.PROTOCOL_ERROR],
    [
      'an HPACK block that does not decode',
      [PREFACE, SETTINGS, frame(1, 0x5, 1, Buffer.from([0x80]))],
      H2_ERROR.COMPRESSION_ERROR,
    ],
    ['a frame over 16,384 bytes', [PREFACE, SETTINGS, frame(0, 0, 1, Buffer.alloc(16_385))], H2_ERROR.FRAME_SIZE_ERROR],
    [
      'a header block interrupted by another frame',
      [PREFACE, SETTINGS, frame(1, 0x1, 1, encodeHeaders(GET)), frame(6, 0, 0, Buffer.alloc(8))],
      H2_ERROR.PROTOCOL_ERROR,
    ],
    ['CONTINUATION without HEADERS', [PREFACE, SETTINGS, frame(9, 0x4, 1, encodeHeaders(GET))], H2_ERROR.PROTOCOL_ERROR],
    ['PUSH_PROMISE from a client', [PREFACE, SETTINGS, frame(5, 0x4, 1, Buffer.alloc(4))], H2_ERROR.PROTOCOL_ERROR],
    ['SETTINGS of a wrong length', [PREFACE, frame(4, 0, 0, Buffer.alloc(5))], H2_ERROR.FRAME_SIZE_ERROR],
    ['ENABLE_PUSH of 2', [PREFACE, frame(4, 0, 0, Buffer.from([0, 2, 0, 0, 0, 2]))], H2_ERROR.PROTOCOL_ERROR],
    [
      'INITIAL_WINDOW_SIZE over 2^31-1',
      [PREFACE, frame(4, 0, 0, Buffer.from([0, 4, 0x80, 0, 0, 0]))],
      H2_ERROR.FLOW_CONTROL_ERROR,
    ],
    ['WINDOW_UPDATE of 0 on the connection', [PREFACE, SETTINGS, frame(8, 0, 0, Buffer.alloc(4))], H2_ERROR.PROTOCOL_ERROR],
    [
      'the connection window overflowed',
      [PREFACE, SETTINGS, frame(8, 0, 0, Buffer.from([0x7f, 0xff, 0xff, 0xff]))],
      H2_ERROR.FLOW_CONTROL_ERROR,
    ],
    ['PING on a stream', [PREFACE, SETTINGS, frame(6, 0, 1, Buffer.alloc(8))], H2_ERROR.PROTOCOL_ERROR],
    ['RST_STREAM on an idle stream', [PREFACE, SETTINGS, frame(3, 0, 7, Buffer.alloc(4))], H2_ERROR.PROTOCOL_ERROR],
  ];
  for (const [why, chunks, code] of cases) {
    const { frames, closed } = await raw(port, ...chunks);
    t.equal(goAwayCode(frames), code, why);
    t.ok(closed, `${why}: closed`);
  }
});

t.test('stream errors reset the stream and keep the connection', async (t) => {
  const { port, served } = await h2Server(t);
  const without = (name: string) => GET.filter(([n]) => n !== name);
  const cases: [string, HeaderField[]][] = [
    ['no :path', without(':path')],
    ['no :method', without(':method')],
    ['an unknown pseudo-header', [...GET, [':protocol', 'x']]],
    ['a pseudo-header after a regular field', [['accept', '*/*'], ...GET]],
    ['an upper-case name', [...GET, ['X-Upper', '1']]],
    ['a connection-specific field', [...GET, ['connection', 'keep-alive']]],
    ['TE other than trailers', [...GET, ['te', 'gzip']]],
    ['a bad content-length', [...GET, ['content-length', 'ten']]],
  ];
  let stream = 1;
  const chunks: Buffer[] = [PREFACE, SETTINGS];
  const ids: [string, number][] = [];
  for (const [why, fields] of cases) {
    chunks.push(headersFrame(stream, fields));
    ids.push([why, stream]);
    stream += 2;
  }
  // content-length that the DATA does not match.
  chunks.push(
    headersFrame(
      stream,
      [...GET.slice(0, 1).map((): HeaderField => [':method', 'POST']), ...GET.slice(1), ['content-length', '5']],
      0x4,
    ),
  );
  chunks.push(frame(0, 1, stream, Buffer.from('abc')));
  ids.push(['content-length not matching the DATA', stream]);
  stream += 2;
  // And a good one after all that, on the same connection.
  chunks.push(headersFrame(stream, GET));
  chunks.push(frame(7, 0, 0, Buffer.alloc(8))); // then GOAWAY, so the server closes once it has answered
  const { frames } = await raw(port, ...chunks);
  for (const [why, id] of ids) t.equal(rstCode(frames, id), H2_ERROR.PROTOCOL_ERROR, why);
  t.equal(goAwayCode(frames), H2_ERROR.NO_ERROR, 'no connection error');
  const answer = frames.find((f) => f.type === 1 && f.stream === stream);
  t.ok(answer, 'the good request is answered');
  if (answer) t.same(new HpackDecoder().decode(answer.payload).headers[0], [':status', '200']);
  t.same(
    served.map((s) => s.req.url),
    ['/x'],
    'only the good request reached the handlers',
  );
});

t.test('PING is answered, SETTINGS acknowledged, a header list over the limit gets 431', async (t) => {
  const { port, served } = await h2Server(t);
  const ping = Buffer.from('12345678');
  const huge: HeaderField[] = [
    ...GET,
    ['x-big', 'b'.repeat(16_000)],
    ['x-big2', 'c'.repeat(16_000)],
    ['x-big3', 'd'.repeat(16_000)],
    ['x-big4', 'e'.repeat(16_000)],
    ['x-big5', 'f'.repeat(4_000)],
  ];
  const block = encodeHeaders(huge);
  const parts: Buffer[] = [];
  for (let at = 0; at < block.length; at += 16_000) {
    const first = at === 0;
    const last = at + 16_000 >= block.length;
    parts.push(frame(first ? 1 : 9, (first ? 0x1 : 0) | (last ? 0x4 : 0), 1, block.subarray(at, at + 16_000)));
  }
  const { frames } = await raw(port, PREFACE, SETTINGS, frame(6, 0, 0, ping), ...parts, frame(7, 0, 0, Buffer.alloc(8)));
  const pong = frames.find((f) => f.type === 6);
  t.equal(pong?.flags, 1, 'PING ACK');
  t.same(pong?.payload, ping, 'with the same payload');
  t.ok(
    frames.some((f) => f.type === 4 && f.flags === 1),
    'SETTINGS ACK',
  );
  const answer = frames.find((f) => f.type === 1 && f.stream === 1);
  t.ok(answer);
  if (answer) t.same(new HpackDecoder().decode(answer.payload).headers[0], [':status', '431']);
  t.equal(served.length, 0);
});

t.test('a stream the client resets before its end is never served; the connection goes on', async (t) => {
  const { port, served } = await h2Server(t);
  const post: HeaderField[] = [[':method', 'POST'], ...GET.slice(1)];
  const { frames } = await raw(
    port,
    PREFACE,
    SETTINGS,
    headersFrame(1, post, 0x4),
    frame(0, 0, 1, Buffer.from('part of a body')),
    frame(3, 0, 1, Buffer.from([0, 0, 0, 8])), // RST_STREAM CANCEL
    frame(0, 0, 1, Buffer.from('late DATA, already on its way')),
    headersFrame(3, GET),
    frame(7, 0, 0, Buffer.alloc(8)),
  );
  t.equal(goAwayCode(frames), H2_ERROR.NO_ERROR, 'no connection error for the late DATA');
  t.same(
    served.map((s) => s.req.url),
    ['/x'],
    'only stream 3 was served',
  );
  t.notOk(
    frames.some((f) => f.stream === 1 && (f.type === 1 || f.type === 0)),
    'nothing is answered on the reset stream',
  );
});

t.test('an idle connection gets GOAWAY NO_ERROR and is closed', async (t) => {
  const { port } = await h2Server(t, undefined, 200);
  const { frames, closed } = await raw(port, PREFACE, SETTINGS);
  t.ok(closed);
  t.equal(goAwayCode(frames), H2_ERROR.NO_ERROR);
});

t.test('fuzz: random frames never crash the server, and a client still gets through after', async (t) => {
  const { port } = await h2Server(t);
  const seed = Number(process.env.H2_FUZZ_SEED ?? 0x42);
  const rand = seededRandom(seed);
  const pick = (n: number) => Math.floor(rand() * n);
  const valid = [SETTINGS, headersFrame(1, GET), frame(6, 0, 0, Buffer.alloc(8)), frame(8, 0, 0, Buffer.from([0, 0, 1, 0]))];
  const conns: Promise<unknown>[] = [];
  for (let i = 0; i < 40; i++) {
    const chunks: Buffer[] = [PREFACE, SETTINGS];
    for (let n = 1 + pick(8); n > 0; n--) {
      if (pick(2) === 0) {
        const f = Buffer.from(valid[pick(valid.length)] as Buffer);
        for (let m = pick(3); m >= 0; m--) f[pick(f.length)] = pick(256);
        chunks.push(f);
      } else {
        chunks.push(
          frame(
            pick(11),
            pick(256),
            pick(2) === 0 ? 0 : 1 + pick(9),
            Buffer.from(Array.from({ length: pick(40) }, () => pick(256))),
          ),
        );
      }
    }
    conns.push(raw(port, ...chunks));
  }
  await Promise.all(conns);
  const c = client(t, port);
  const r = await call(c, { ':method': 'POST', ':path': '/still' }, 'alive');
  t.equal(r.body.toString(), 'POST /still alive', `seed ${seed}: the server still answers`);
});
