import { connect } from 'node:net';
import t from 'tap';
import { decodeMessage, inspectResponse, MessageWriter } from '../../dns/wire/message.ts';
import { readName } from '../../dns/wire/names.ts';
import { parseQuery } from '../../dns/wire/query.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { seededRandom } from '../harness/seeded.ts';
import { dig, metricValue, startDns, udpExchange } from './helpers.ts';

// Hostile input (dns-rules §5): specific malformed classes with their expected rcode, then a
// seeded random stream over UDP and TCP, after which the server must still answer.

const SEED = Number(process.env.DNS_FUZZ_SEED ?? 20261124);
const valid = new MessageWriter(0x1234, 0x0100).question('web.default.svc.cluster.local', 1, 1).finish();

function mutate(r: () => number): Buffer {
  const kind = Math.floor(r() * 6);
  if (kind === 0) return Buffer.from(Array.from({ length: Math.floor(r() * 80) }, () => Math.floor(r() * 256)));
  const b = Buffer.from(valid);
  if (kind === 1) for (let i = 0; i < 1 + r() * 4; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
  if (kind === 2) return b.subarray(0, Math.floor(r() * b.length));
  if (kind === 3) b.writeUInt16BE(Math.floor(r() * 65536), 4 + 2 * Math.floor(r() * 4)); // random counts
  if (kind === 4) b[12 + Math.floor(r() * 10)] = 0xc0 | Math.floor(r() * 64); // stray compression pointers
  if (kind === 5)
    return Buffer.concat([b, Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256)))]);
  return b;
}

t.test('the parsers never throw on random bytes (in process)', async (t) => {
  const r = seededRandom(SEED);
  let parsed = 0;
  for (let i = 0; i < 20_000; i++) {
    const b = mutate(r);
    const q = parseQuery(b, i % 2 === 0);
    if (typeof q !== 'string') {
      parsed++;
      void q.name;
    }
    inspectResponse(b);
    decodeMessage(b);
    readName(b, 12);
  }
  t.ok(parsed > 0, `${parsed} of 20000 mutated packets still parsed as queries`);
});

t.test('compression loops and forward pointers are rejected, not followed forever', async (t) => {
  const self = Buffer.from([...valid.subarray(0, 12), 0xc0, 0x0c, 0, 1, 0, 1]);
  t.equal(readName(self, 12), undefined, 'self-pointer');
  const forward = Buffer.from([...valid.subarray(0, 12), 0xc0, 0x10, 0, 1, 0, 1, 0]);
  t.equal(readName(forward, 12), undefined, 'forward pointer');
  t.equal(parseQuery(self, false), 'formerr');
});

if (requireOrSkip(t, { commands: ['dig'] })) {
  const { port, metrics } = await startDns(t, {
    services: [{ name: 'web', namespace: 'default', clusterIP: '198.19.0.10', ports: [{ name: 'http', port: 80 }] }],
  });
  const header = (id: number, flags: number, qd: number, an: number, ns: number, ar: number) => {
    const b = Buffer.alloc(12);
    for (const [i, v] of [id, flags, qd, an, ns, ar].entries()) b.writeUInt16BE(v, i * 2);
    return b;
  };
  const question = valid.subarray(12);
  const opt = Buffer.from([0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
  const rcodeOf = (b: Buffer | undefined) => (b ? (b[3] as number) & 0x0f : -1);

  t.test('malformed classes get the documented answer', async (t) => {
    t.equal(await udpExchange(port, Buffer.alloc(0), 200), undefined, 'empty datagram: dropped');
    t.equal(await udpExchange(port, Buffer.alloc(11), 200), undefined, '11 bytes: dropped');
    t.equal(
      await udpExchange(port, Buffer.concat([header(1, 0x8100, 1, 0, 0, 0), question]), 200),
      undefined,
      'QR=1: never answered',
    );
    t.equal(rcodeOf(await udpExchange(port, header(2, 0x0100, 0, 0, 0, 0))), 1, 'QDCOUNT 0: FORMERR');
    t.equal(rcodeOf(await udpExchange(port, Buffer.concat([header(3, 0x0100, 2, 0, 0, 0), question, question]))), 1, 'QDCOUNT 2');
    t.equal(rcodeOf(await udpExchange(port, Buffer.concat([header(4, 0x0100, 1, 0, 0, 2), question, opt, opt]))), 1, 'two OPT');
    t.equal(rcodeOf(await udpExchange(port, Buffer.concat([header(5, 0x0100, 1, 0, 0, 5), question]))), 1, 'ARCOUNT 5');
    t.equal(
      rcodeOf(await udpExchange(port, Buffer.concat([header(6, 0x0100, 1, 0, 0, 1), question, opt.subarray(0, 6)]))),
      1,
      'cut OPT',
    );
    t.equal(rcodeOf(await udpExchange(port, Buffer.concat([header(7, 0x2800, 1, 0, 0, 0), question]))), 4, 'UPDATE: NOTIMP');
    const label64 = Buffer.concat([
      header(8, 0x0100, 1, 0, 0, 0),
      Buffer.from([64]),
      Buffer.alloc(64, 0x61),
      Buffer.from([0, 0, 1, 0, 1]),
    ]);
    t.equal(rcodeOf(await udpExchange(port, label64)), 1, 'label of 64 octets');
    const long = Buffer.concat([
      header(9, 0x0100, 1, 0, 0, 0),
      ...Array.from({ length: 130 }, () => Buffer.from([1, 0x61])),
      Buffer.from([0, 0, 1, 0, 1]),
    ]);
    t.equal(rcodeOf(await udpExchange(port, long)), 1, 'name over 255 octets');
    const formerr = await udpExchange(port, header(0xbeef, 0x0100, 0, 0, 0, 0));
    t.equal(formerr?.readUInt16BE(0), 0xbeef, 'FORMERR keeps the ID');
    const axfr = new MessageWriter(10, 0).question('cluster.local', 252, 1).finish();
    t.equal(rcodeOf(await udpExchange(port, axfr)), 5, 'AXFR: REFUSED');
  });

  t.test('a fuzzed stream over UDP and TCP leaves the server answering', async (t) => {
    const r = seededRandom(SEED + 1);
    const deadline = Date.now() + 10_000;
    const { createSocket } = await import('node:dgram');
    const sock = createSocket('udp4');
    let sent = 0;
    for (let i = 0; i < 5000 && Date.now() < deadline; i++) {
      await new Promise<void>((resolve) => sock.send(mutate(r), port, '127.0.0.1', () => resolve()));
      sent++;
    }
    sock.close();
    // TCP: garbage frames, a zero length, a partial frame left hanging (slowloris), pipelined queries.
    for (const payload of [
      Buffer.concat([Buffer.from([0, 5]), Buffer.alloc(5, 0xff)]),
      Buffer.from([0, 0]),
      Buffer.from([0xff, 0xff, 1, 2, 3]),
      Buffer.concat([Buffer.from([0, valid.length]), valid, Buffer.from([0, valid.length]), valid]),
    ]) {
      await new Promise<void>((resolve) => {
        const c = connect(port, '127.0.0.1', () => c.end(payload));
        c.on('error', () => resolve());
        c.on('close', () => resolve());
        c.resume();
        setTimeout(() => {
          c.destroy();
          resolve();
        }, 500);
      });
    }
    t.ok(sent > 0, `${sent} fuzzed datagrams sent`);
    const after = await dig(port, 'web.default.svc.cluster.local');
    t.same(after.answer, ['web.default.svc.cluster.local. 5 IN A 198.19.0.10'], 'still answering over UDP');
    t.same((await dig(port, '+tcp', 'web.default.svc.cluster.local')).answer.length, 1, 'and over TCP');
    t.ok((await metricValue(metrics, 'meshlet_dns_malformed_total')) > 0, 'malformed packets were counted');
  });
}
