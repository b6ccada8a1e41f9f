import t from 'tap';
import { dashedIP } from '../../dns/cluster/records.ts';
import { decodeMessage, inspectResponse, MessageWriter } from '../../dns/wire/message.ts';
import { encodeName, reverseName } from '../../dns/wire/names.ts';
import { parseQuery, Query, questionKey } from '../../dns/wire/query.ts';

t.test('reverse names of IPv4 and IPv6 (RFC 1035 §3.5, RFC 3596 §2.5)', async (t) => {
  t.equal(reverseName('198.19.0.10'), '10.0.19.198.in-addr.arpa');
  t.equal(reverseName('2001:db8::1'), `1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.ip6.arpa`);
  t.equal(reverseName('::ffff:198.19.0.1')?.startsWith('1.0.0.0.3.1.6.c.f.f.f.f.'), true);
  t.equal(reverseName('not-an-ip'), undefined);
});

t.test('endpoint names without a hostname are the dashed IP (CoreDNS TestEndpointHostname)', async (t) => {
  t.equal(dashedIP('198.18.1.3'), '198-18-1-3');
  t.equal(dashedIP('2001:db8::'), '2001-db8--0');
});

t.test('names: label and length limits', async (t) => {
  t.same([...encodeName('a.b')], [1, 0x61, 1, 0x62, 0]);
  t.same([...encodeName('')], [0]);
  t.throws(() => encodeName(`${'a'.repeat(64)}.test`));
  t.throws(() => encodeName(Array.from({ length: 130 }, () => 'a').join('.')));
});

t.test('the parser key is the lower-case question, for any case the client uses', async (t) => {
  const msg = new MessageWriter(7, 0x0100).question('WeB.Default.svc', 65, 1).finish();
  const q = parseQuery(msg, false);
  if (!(q instanceof Query)) throw new Error(`rejected: ${q}`);
  t.equal(q.key, questionKey(encodeName('web.default.svc'), 65, 1), 'type 65 (0x41, "A") is not lower-cased');
  t.equal(q.name, 'web.default.svc');
  t.equal(q.qtype, 65);
  t.equal(q.udpSize, 512);
});

t.test('writer and decoder agree; the walker finds TTLs, the SOA and the OPT', async (t) => {
  const msg = new MessageWriter(9, 0x8183)
    .question('x.example.test', 1, 1)
    .record('answer', { type: 'CNAME', name: 'x.example.test', ttl: 10, target: 'y.example.test' })
    .record('authority', {
      type: 'SOA',
      name: 'example.test',
      ttl: 60,
      mname: 'ns.example.test',
      rname: 'h.example.test',
      serial: 1,
      refresh: 2,
      retry: 3,
      expire: 4,
      minimum: 30,
    })
    .record('additional', { type: 'RAW', name: '', ttl: 0, rtype: 41, rclass: 1232, data: Buffer.alloc(0) })
    .finish();
  const decoded = decodeMessage(msg);
  t.equal(decoded?.rcode, 3);
  t.same(decoded?.answer, [{ type: 'CNAME', name: 'x.example.test', ttl: 10, target: 'y.example.test' }]);
  t.equal(decoded?.authority[0]?.type, 'SOA');
  const info = inspectResponse(msg);
  t.equal(info?.ttlOffsets.length, 2);
  t.equal(info?.minTtl, 10);
  t.same(info?.soa, { ttl: 60, minimum: 30 });
  t.equal(info?.optIndex, 0);
  t.ok((info?.optStart ?? 0) > 12);
});
