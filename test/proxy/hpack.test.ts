import { once } from 'node:events';
import { connect, sensitiveHeaders } from 'node:http2';
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import { encodeHeaders, type HeaderField, HpackDecoder, HpackError } from '../../proxy/http/hpack.ts';
import { huffmanDecode, huffmanEncode, huffmanLength } from '../../proxy/http/huffman.ts';
import { seededRandom } from '../harness/seeded.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 7541 Appendix C: the examples, decoded in sequence on one decoder as the RFC does.
t.test('RFC 7541 C.3: requests without Huffman, sharing one dynamic table', async (t) => {
  const d = new HpackDecoder();
  t.same(d.decode(hex('828684410f7777772e6578616d706c652e636f6d')).headers, [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ]);
  t.equal(d.tableSize, 57);
  t.same(d.decode(hex('828684be58086e6f2d6361636865')).headers, [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ]);
  t.equal(d.tableSize, 110);
  t.same(d.decode(hex('828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565')).headers, [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ]);
  t.equal(d.tableSize, 164);
});

t.test('RFC 7541 C.4: the same requests Huffman-coded', async (t) => {
  const d = new HpackDecoder();
  t.same(d.decode(hex('828684418cf1e3c2e5f23a6ba0ab90f4ff')).headers[3], [':authority', 'www.example.com']);
  t.same(d.decode(hex('828684be5886a8eb10649cbf')).headers[4], ['cache-control', 'no-cache']);
  t.same(d.decode(hex('828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf')).headers[4], ['custom-key', 'custom-value']);
  t.equal(d.tableSize, 164);
});

t.test('RFC 7541 C.5: responses with a 256-octet table, the oldest entries evicted', async (t) => {
  const d = new HpackDecoder(256);
  const first = d.decode(
    hex(
      '4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d54' +
        '6e1768747470733a2f2f7777772e6578616d706c652e636f6d',
    ),
  );
  t.same(first.headers, [
    [':status', '302'],
    ['cache-control', 'private'],
    ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['location', 'https://www.example.com'],
  ]);
  t.equal(d.tableSize, 222);
  // ":status: 307" does not fit without evicting ":status: 302", the oldest.
  t.same(d.decode(hex('4803333037c1c0bf')).headers, [
    [':status', '307'],
    ['cache-control', 'private'],
    ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
    ['location', 'https://www.example.com'],
  ]);
  t.equal(d.tableSize, 222);
});

t.test('RFC 7541 C.2: the literal kinds and an indexed field', async (t) => {
  t.same(new HpackDecoder().decode(hex('400a637573746f6d2d6b65790d637573746f6d2d686561646572')).headers, [
    ['custom-key', 'custom-header'],
  ]);
  const without = new HpackDecoder();
  t.same(without.decode(hex('040c2f73616d706c652f70617468')).headers, [[':path', '/sample/path']]);
  t.equal(without.tableSize, 0, 'without indexing adds nothing');
  const never = new HpackDecoder();
  t.same(never.decode(hex('100870617373776f726406736563726574')).headers, [['password', 'secret']]);
  t.equal(never.tableSize, 0, 'never indexed adds nothing');
  t.same(new HpackDecoder().decode(hex('82')).headers, [[':method', 'GET']]);
});

t.test('Huffman: the RFC example, every byte value, and the padding rules', async (t) => {
  const out = new Uint8Array(64);
  t.equal(Buffer.from(out.subarray(0, huffmanEncode('www.example.com', out, 0))).toString('hex'), 'f1e3c2e5f23a6ba0ab90f4ff');
  const all = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
  const buf = new Uint8Array(huffmanLength(all));
  t.equal(huffmanEncode(all, buf, 0), buf.length);
  t.equal(huffmanDecode(buf, 0, buf.length), all, 'all 256 byte values round-trip');
  t.equal(huffmanDecode(hex('ffffffff'), 0, 4), 'eos-in-string', 'a whole EOS in the string');
  t.equal(huffmanDecode(hex('ff'), 0, 1), 'padding-too-long', 'eight bits of padding');
  // "0" is 00000 (5 bits); padded with 000 instead of 111.
  t.equal(huffmanDecode(hex('00'), 0, 1), 'padding-not-ones');
  t.equal(huffmanDecode(hex('07'), 0, 1), '0');
});

t.test('decoder errors end the block with HpackError', async (t) => {
  const bad: [string, string][] = [
    ['80', 'index 0'],
    ['be', 'dynamic index on an empty table'],
    ['ff80808080808080', 'integer without an end'],
    ['ffffffffff0f', 'integer too large'],
    ['400a6375', 'name runs past the block'],
    ['41', 'value missing'],
    ['4001', 'value literal missing after the name'],
    ['3fe21f', 'size update above the allowed 4096'],
    ['8220', 'size update after a field'],
    ['4081ff0161', 'Huffman name that is all padding'],
  ];
  for (const [block, why] of bad) t.throws(() => new HpackDecoder().decode(hex(block)), HpackError, why);
});

t.test('dynamic table: size updates evict, an entry larger than the table empties it', async (t) => {
  const d = new HpackDecoder();
  d.decode(hex('400a637573746f6d2d6b65790d637573746f6d2d686561646572')); // 55 octets
  t.equal(d.tableSize, 55);
  d.decode(hex('20')); // size update to 0: everything evicted
  t.equal(d.tableSize, 0);
  t.throws(() => d.decode(hex('be')), HpackError, 'the evicted entry is gone');
  d.decode(hex('3f19')); // back to 56 (31 + 25)
  const big = encodeLiteralWithIndexing('n', 'v'.repeat(40)); // 73 octets > 56
  t.same(d.decode(big).headers, [['n', 'v'.repeat(40)]]);
  t.equal(d.tableSize, 0, 'not added, and the table emptied');
});

t.test('a block past the list size limit is decoded to the end, the table kept in step', async (t) => {
  const d = new HpackDecoder();
  const block = Buffer.concat([encodeLiteralWithIndexing('a', 'x'.repeat(50)), encodeLiteralWithIndexing('b', 'y'.repeat(50))]);
  const r = d.decode(block, 100);
  t.equal(r.tooLarge, true);
  t.same(r.headers, [['a', 'x'.repeat(50)]]);
  t.equal(d.tableSize, 2 * (1 + 50 + 32), 'both entries are in the table anyway');
  t.same(d.decode(hex('be')).headers, [['b', 'y'.repeat(50)]], 'the next block refers to them as the peer expects');
});

t.test('encodeHeaders round-trips random header lists', async (t) => {
  const seed = Number(process.env.HPACK_FUZZ_SEED ?? 0x5eed);
  const rand = seededRandom(seed);
  const pick = (n: number) => Math.floor(rand() * n);
  const word = (n: number, bytes: boolean) =>
    String.fromCharCode(...Array.from({ length: n }, () => (bytes ? pick(256) : 97 + pick(26))));
  for (let i = 0; i < 300; i++) {
    const fields: HeaderField[] = Array.from({ length: 1 + pick(8) }, () => {
      const r = pick(4);
      if (r === 0) return [':status', String(100 + pick(500))];
      if (r === 1) return ['content-type', word(pick(40), false)];
      return [word(1 + pick(20), false), word(pick(r === 2 ? 300 : 20), r === 3)];
    });
    const decoded = new HpackDecoder().decode(encodeHeaders(fields));
    if (!t.same(decoded.headers, fields, `seed ${seed} case ${i}`)) break;
  }
});

t.test('fuzz: mutated and random blocks decode or throw HpackError, nothing else', async (t) => {
  const seed = Number(process.env.HPACK_FUZZ_SEED ?? 0xbadc0de);
  const rand = seededRandom(seed);
  const pick = (n: number) => Math.floor(rand() * n);
  const seeds = [
    hex('828684418cf1e3c2e5f23a6ba0ab90f4ff'),
    hex('828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf'),
    hex('4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d54'),
    encodeHeaders([
      [':status', '202'],
      ['content-type', 'application/json'],
      ['x-long', 'z'.repeat(200)],
    ]),
  ];
  const shared = new HpackDecoder(512);
  let decoded = 0;
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    let block: Buffer;
    if (i % 5 === 0) block = Buffer.from(Array.from({ length: pick(64) }, () => pick(256)));
    else {
      block = Buffer.from(seeds[pick(seeds.length)] as Buffer);
      for (let m = 1 + pick(4); m > 0; m--) block[pick(block.length)] = pick(256);
      if (pick(4) === 0) block = block.subarray(0, pick(block.length));
    }
    for (const d of [new HpackDecoder(), shared]) {
      try {
        d.decode(block, 4096);
        decoded++;
      } catch (err) {
        if (!(err instanceof HpackError)) {
          t.fail(`seed ${seed} case ${i} (${block.toString('hex')}): ${String(err)}`);
          return;
        }
        refused++;
      }
    }
  }
  t.ok(decoded > 500 && refused > 500, `both outcomes seen (${decoded} decoded, ${refused} refused)`);
});

/**
 * The real thing: node:http2's client (nghttp2's encoder, with Huffman coding, its dynamic table
 * and, with a small table here, size updates and eviction) sends requests to a bare h2c server
 * written for this test, which reads the frames, decodes each header block with HpackDecoder and
 * answers with blocks from encodeHeaders, which the client decodes.
 */
t.test('interop with node:http2 (nghttp2) both ways', async (t) => {
  const TABLE = 256;
  const received: HeaderField[][] = [];
  const server = createServer((socket) => serveH2c(socket, TABLE, received));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const client = connect(`http://127.0.0.1:${port}`);
  t.teardown(() => client.close());
  const sent: Record<string, string>[] = [];
  for (let i = 0; i < 40; i++) {
    const headers: Record<string, string> = {
      'x-request': `r-${i}`,
      'x-repeat': 'the same long value on every request, indexed once and then referred to',
      'user-agent': 'meshlet-hpack-test/1.0',
      ...(i % 3 === 0 && { 'x-big': `${'b'.repeat(150)}${i}` }),
      ...(i % 4 === 0 && { cookie: `session=${i}; theme=dark` }),
      ...(i % 5 === 0 && { 'x-bytes': 'caf\u00e9 \u00ff' }),
    };
    const req = client.request({
      ':method': 'POST',
      ':path': `/notifications?k=${i}`,
      ...headers,
      ...(i % 7 === 0 && { authorization: 'Bearer secret', [sensitiveHeaders]: ['authorization'] }),
    });
    req.end('{}');
    const [response] = (await once(req, 'response')) as [Record<string, string | string[]>];
    req.resume();
    await once(req, 'end');
    t.equal(response[':status'], 202);
    t.equal(response['x-echo'], `r-${i}`);
    t.equal(response['x-long'], 'w'.repeat(300));
    sent.push(headers);
  }
  t.equal(received.length, 40);
  for (const [i, fields] of received.entries()) {
    const got = Object.fromEntries(fields);
    t.equal(got[':path'], `/notifications?k=${i}`);
    t.equal(got[':method'], 'POST');
    for (const [k, v] of Object.entries(sent[i] ?? {})) t.equal(got[k], v, `request ${i} ${k}`);
  }
});

/** Literal with incremental indexing, new name, no Huffman: test input for table behaviour. */
function encodeLiteralWithIndexing(name: string, value: string): Buffer {
  if (name.length > 126 || value.length > 126) throw new Error('short strings only');
  return Buffer.concat([
    Buffer.from([0x40, name.length]),
    Buffer.from(name, 'latin1'),
    Buffer.from([value.length]),
    Buffer.from(value, 'latin1'),
  ]);
}

/** Just enough HTTP/2 server for the interop test: preface, SETTINGS, HEADERS/CONTINUATION/DATA in, HEADERS out. */
function serveH2c(socket: Socket, tableSize: number, received: HeaderField[][]): void {
  const decoder = new HpackDecoder(tableSize);
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    socket.write(Buffer.concat([head, payload]));
  };
  // SETTINGS_HEADER_TABLE_SIZE (1) = tableSize: the client's encoder must fit in it.
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(1, 0);
  settings.writeUInt32BE(tableSize, 2);
  frame(4, 0, 0, settings);
  let buf = Buffer.alloc(0);
  let prefaceSeen = false;
  let fragments: Buffer[] = [];
  const answer = (stream: number) => {
    const fields = received[received.length - 1] ?? [];
    const echo = fields.find(([n]) => n === 'x-request')?.[1] ?? '';
    const block = encodeHeaders([
      [':status', '202'],
      ['content-type', 'application/json'],
      ['x-echo', echo],
      ['x-long', 'w'.repeat(300)],
    ]);
    frame(1, 0x1 | 0x4, stream, block);
  };
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (!prefaceSeen) {
      if (buf.length < 24) return;
      prefaceSeen = true;
      buf = buf.subarray(24);
    }
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3] as number;
      const flags = buf[4] as number;
      const stream = buf.readUInt32BE(5) & 0x7fffffff;
      let payload = buf.subarray(9, 9 + len);
      buf = buf.subarray(9 + len);
      if (type === 4 && (flags & 0x1) === 0) frame(4, 0x1, 0, Buffer.alloc(0)); // SETTINGS ack
      if (type === 1 || type === 9) {
        if (type === 1 && flags & 0x8) payload = payload.subarray(1, payload.length - (payload[0] as number)); // padded
        if (type === 1 && flags & 0x20) payload = payload.subarray(5); // priority
        fragments.push(payload);
        if (flags & 0x4) {
          received.push(decoder.decode(Buffer.concat(fragments)).headers);
          fragments = [];
          if (type === 1 && flags & 0x1) answer(stream);
        }
      }
      if (type === 0 && flags & 0x1) answer(stream); // DATA with END_STREAM
    }
  });
}
