import t from 'tap';
import { requireOrSkip } from '../harness/requirements.ts';
import { dig, type RegistryInput, startDns, startDnsmasq } from './helpers.ts';

// The cluster zone through the real dig: every record kind of the Kubernetes DNS spec, the
// NXDOMAIN/NODATA split, case, flags, EDNS, truncation and TCP. IPv6 test data uses the
// documentation prefix 2001:db8::/32 (RFC 3849).

const bigEndpoints = Array.from({ length: 150 }, (_, i) => ({ addresses: [`198.18.2.${i + 1}`] }));

export const registry: RegistryInput = {
  services: [
    {
      name: 'web',
      namespace: 'default',
      clusterIP: '198.19.0.10',
      ports: [
        { name: 'http', port: 80 },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
      endpoints: [{ addresses: ['198.18.0.10'], hostname: 'web-0' }],
    },
    { name: 'single', namespace: 'default', clusterIP: '198.19.0.12', ports: [{ port: 8080 }] },
    { name: 'dual', namespace: 'default', clusterIPs: ['198.19.0.11', '2001:db8::11'], ports: [{ name: 'http', port: 80 }] },
    { name: 'v6only', namespace: 'default', clusterIPs: ['2001:db8::20'], ports: [{ name: 'http', port: 80 }] },
    {
      name: 'db',
      namespace: 'default',
      clusterIP: 'None',
      ports: [{ name: 'pg', port: 5432 }],
      endpoints: [
        { addresses: ['198.18.1.1'], hostname: 'db-0', ports: { pg: 5432 } },
        { addresses: ['198.18.1.2'], hostname: 'db-1', ports: { pg: 5432 } },
        { addresses: ['198.18.1.3'], ports: { pg: 5432 } },
        { addresses: ['198.18.1.4'], hostname: 'db-3', ready: false, ports: { pg: 5432 } },
      ],
    },
    { name: 'empty', namespace: 'default', clusterIP: 'None', ports: [{ name: 'http', port: 80 }] },
    { name: 'ext', namespace: 'default', type: 'ExternalName', externalName: 'foo.example.test' },
    { name: 'alias', namespace: 'default', type: 'ExternalName', externalName: 'web.default.svc.cluster.local' },
    { name: 'loop-a', namespace: 'default', type: 'ExternalName', externalName: 'loop-b.default.svc.cluster.local' },
    { name: 'loop-b', namespace: 'default', type: 'ExternalName', externalName: 'loop-a.default.svc.cluster.local' },
    { name: 'dangling', namespace: 'default', type: 'ExternalName', externalName: 'gone.default.svc.cluster.local' },
    { name: 'big', namespace: 'bulk', clusterIP: 'None', endpoints: bigEndpoints },
  ],
};

if (requireOrSkip(t, { commands: ['dig', 'dnsmasq'] })) {
  const upstream = await startDnsmasq(t, ['--local-ttl=60', '--address=/example.test/198.18.5.5']);
  const { port, registry: reg } = await startDns(t, registry, { upstreams: [`127.0.0.1:${upstream.port}`] });
  const q = (...args: string[]) => dig(port, ...args);
  const Z = 'cluster.local';

  t.test('A of a ClusterIP service (§2.3.1): authoritative, TTL 5', async (t) => {
    const r = await q(`web.default.svc.${Z}`);
    t.equal(r.status, 'NOERROR');
    t.same(r.answer, [`web.default.svc.${Z}. 5 IN A 198.19.0.10`]);
    t.ok(r.flags.includes('aa') && r.flags.includes('qr') && r.flags.includes('rd') && r.flags.includes('ra'), r.flags.join(' '));
  });

  t.test('names match case-insensitively and the answer keeps the question case (§2.1)', async (t) => {
    const r = await q(`WeB.DeFault.SVC.Cluster.Local`);
    t.same(r.answer, ['WeB.DeFault.SVC.Cluster.Local. 5 IN A 198.19.0.10']);
  });

  t.test('dual-stack service has A and AAAA; AAAA of an IPv4-only service is NODATA', async (t) => {
    t.same((await q(`dual.default.svc.${Z}`, 'AAAA')).answer, [`dual.default.svc.${Z}. 5 IN AAAA 2001:db8::11`]);
    t.same((await q(`dual.default.svc.${Z}`, 'A')).answer, [`dual.default.svc.${Z}. 5 IN A 198.19.0.11`]);
    const nodata = await q(`web.default.svc.${Z}`, 'AAAA');
    t.equal(nodata.status, 'NOERROR');
    t.same(nodata.answer, []);
    t.match(nodata.authority[0], new RegExp(`^${Z}\\. 5 IN SOA ns\\.dns\\.${Z}\\. hostmaster\\.${Z}\\. \\d+ 7200 1800 86400 5$`));
    const v6 = await q(`v6only.default.svc.${Z}`, 'A');
    t.equal(v6.status, 'NOERROR');
    t.same(v6.answer, []);
  });

  t.test('NXDOMAIN with SOA for names in the zone that do not exist (search-path expansions too)', async (t) => {
    for (const name of [
      `nope.default.svc.${Z}`,
      `web.default.svc.${Z}.default.svc.${Z}`,
      `web.default.svc.svc.${Z}`,
      `web.nons.svc.${Z}`,
      `foo.${Z}`,
      `empty.default.svc.${Z}`, // headless without ready endpoints (§2.4.1)
      `db-3.db.default.svc.${Z}`, // not ready
      `_http._tcp.single.default.svc.${Z}`, // unnamed ports have no SRV
      `x.web.default.svc.${Z}`, // nothing below a ClusterIP service name
    ]) {
      const r = await q(name);
      t.equal(r.status, 'NXDOMAIN', name);
      t.equal(r.authority.length, 1, `${name} has the SOA`);
      t.ok(r.flags.includes('aa'), `${name} is authoritative`);
    }
  });

  t.test('NODATA for names that exist without the type (apex, svc, namespace, _tcp, TXT, SOA below apex)', async (t) => {
    for (const [name, type] of [
      [Z, 'A'],
      [`svc.${Z}`, 'A'],
      [`default.svc.${Z}`, 'A'],
      [`_tcp.web.default.svc.${Z}`, 'A'],
      [`web.default.svc.${Z}`, 'TXT'],
      [`web.default.svc.${Z}`, 'SOA'],
      [`web.default.svc.${Z}`, 'TYPE666'],
      [`web.default.svc.${Z}`, 'HTTPS'],
    ] as const) {
      const r = await q(name, type);
      t.equal(r.status, 'NOERROR', `${name} ${type}`);
      t.same(r.answer, [], `${name} ${type} has no answer`);
      t.equal(r.authority.length, 1, `${name} ${type} has the SOA`);
    }
  });

  t.test('headless service: ready endpoint addresses, hostnames, dashed-IP names (§2.4.1)', async (t) => {
    const r = await q(`db.default.svc.${Z}`);
    t.same(
      r.answer.sort(),
      ['198.18.1.1', '198.18.1.2', '198.18.1.3'].map((ip) => `db.default.svc.${Z}. 5 IN A ${ip}`),
    );
    t.same((await q(`db-0.db.default.svc.${Z}`)).answer, [`db-0.db.default.svc.${Z}. 5 IN A 198.18.1.1`]);
    t.same((await q(`198-18-1-3.db.default.svc.${Z}`)).answer, [`198-18-1-3.db.default.svc.${Z}. 5 IN A 198.18.1.3`]);
  });

  t.test('SRV for named ports (§2.3.2, §2.4.2) with addresses in ADDITIONAL', async (t) => {
    const r = await q(`_http._tcp.web.default.svc.${Z}`, 'SRV');
    t.same(r.answer, [`_http._tcp.web.default.svc.${Z}. 5 IN SRV 0 100 80 web.default.svc.${Z}.`]);
    t.same(r.additional, [`web.default.svc.${Z}. 5 IN A 198.19.0.10`]);
    const udp = await q(`_dns._udp.web.default.svc.${Z}`, 'SRV');
    t.same(udp.answer, [`_dns._udp.web.default.svc.${Z}. 5 IN SRV 0 100 53 web.default.svc.${Z}.`]);
    const headless = await q(`_pg._tcp.db.default.svc.${Z}`, 'SRV');
    t.same(
      headless.answer.sort(),
      ['198-18-1-3', 'db-0', 'db-1'].map((h) => `_pg._tcp.db.default.svc.${Z}. 5 IN SRV 0 100 5432 ${h}.db.default.svc.${Z}.`),
    );
    t.equal(headless.additional.length, 3);
  });

  t.test('PTR for service and endpoint IPs (§2.3.3, §2.4.3)', async (t) => {
    t.same((await q('-x', '198.19.0.10')).answer, [`10.0.19.198.in-addr.arpa. 5 IN PTR web.default.svc.${Z}.`]);
    t.same((await q('-x', '198.18.1.1')).answer, [`1.1.18.198.in-addr.arpa. 5 IN PTR db-0.db.default.svc.${Z}.`]);
    const v6 = await q('-x', '2001:db8::11');
    t.equal(v6.answer.length, 1);
    t.match(
      v6.answer[0],
      /^1\.1\.0\.0(\.0){20}\.8\.b\.d\.0\.1\.0\.0\.2\.ip6\.arpa\. 5 IN PTR dual\.default\.svc\.cluster\.local\.$/,
    );
  });

  t.test('ExternalName: CNAME alone for CNAME queries, CNAME plus target records for A (§2.5)', async (t) => {
    const cname = await q('+short', `ext.default.svc.${Z}`, 'CNAME');
    t.equal(cname.raw.trim(), 'foo.example.test.');
    const a = await q(`ext.default.svc.${Z}`, 'A');
    t.equal(a.status, 'NOERROR');
    t.same(a.answer, [`ext.default.svc.${Z}. 5 IN CNAME foo.example.test.`, 'foo.example.test. 60 IN A 198.18.5.5']);
  });

  t.test('ExternalName naming another service of the zone: chased inside the zone', async (t) => {
    const a = await q(`alias.default.svc.${Z}`, 'A');
    t.equal(a.status, 'NOERROR');
    t.same(a.answer, [`alias.default.svc.${Z}. 5 IN CNAME web.default.svc.${Z}.`, `web.default.svc.${Z}. 5 IN A 198.19.0.10`]);
    t.ok(a.flags.includes('aa'), 'authoritative: all of it is the zone');
    const gone = await q(`dangling.default.svc.${Z}`, 'A');
    t.equal(gone.status, 'NXDOMAIN', 'the target does not exist: NXDOMAIN with the CNAME (RFC 6604)');
    t.same(gone.answer, [`dangling.default.svc.${Z}. 5 IN CNAME gone.default.svc.${Z}.`]);
    const loop = await q(`loop-a.default.svc.${Z}`, 'A');
    t.equal(loop.status, 'NOERROR', 'a loop of ExternalNames ends (8 links), the server keeps answering');
    t.equal(loop.answer.length, 9);
    t.equal((await q(`web.default.svc.${Z}`)).status, 'NOERROR');
  });

  t.test('apex SOA and NS, and dns-version TXT (§2.2)', async (t) => {
    t.match((await q(Z, 'SOA')).answer[0], /IN SOA ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\./);
    const ns = await q(Z, 'NS');
    t.same(ns.answer, [`${Z}. 5 IN NS ns.dns.${Z}.`]);
    t.same(ns.additional, [`ns.dns.${Z}. 5 IN A 127.0.0.1`]);
    t.same((await q(`dns-version.${Z}`, 'TXT')).answer, [`dns-version.${Z}. 5 IN TXT "1.1.0"`]);
  });

  t.test('a large answer is truncated over UDP (TC) and complete over TCP', async (t) => {
    const name = `big.bulk.svc.${Z}`;
    const tc = await q('+ignore', '+notcp', name);
    t.ok(tc.flags.includes('tc'), 'TC set');
    t.same(tc.answer, []);
    const retried = await q(name); // dig retries over TCP on TC by itself
    t.match(retried.raw, /Truncated, retrying in TCP mode/);
    t.equal(retried.answer.length, 150);
    t.equal((await q('+tcp', name)).answer.length, 150);
    const classic = await q('+noedns', '+ignore', name);
    t.ok(classic.flags.includes('tc'), 'TC without EDNS too (512-byte limit)');
  });

  t.test('TCP answers cluster names, NXDOMAIN and NODATA like UDP', async (t) => {
    t.same((await q('+tcp', `web.default.svc.${Z}`)).answer, [`web.default.svc.${Z}. 5 IN A 198.19.0.10`]);
    t.equal((await q('+tcp', `nope.default.svc.${Z}`)).status, 'NXDOMAIN');
    t.equal((await q('+tcp', `web.default.svc.${Z}`, 'AAAA')).status, 'NOERROR');
  });

  t.test('EDNS: OPT only when asked, DO echoed, BADVERS for version 1; NOTIMP for other opcodes', async (t) => {
    t.notMatch((await q('+noedns', `web.default.svc.${Z}`)).raw, /OPT PSEUDOSECTION/);
    const edns = await q(`web.default.svc.${Z}`);
    t.match(edns.raw, /EDNS: version: 0, flags:; udp: 1232/);
    t.match((await q('+dnssec', `web.default.svc.${Z}`)).raw, /EDNS: version: 0, flags: do; udp: 1232/);
    const badvers = await q('+edns=1', '+noednsneg', `web.default.svc.${Z}`);
    t.equal(badvers.status, 'BADVERS');
    t.match(badvers.raw, /EDNS: version: 0/);
    const notimp = await q('+opcode=15', '+header-only', `web.default.svc.${Z}`);
    t.equal(notimp.status, 'NOTIMP');
  });

  t.test('registry changes reach DNS: a new service answers, a deleted one is NXDOMAIN', async (t) => {
    const name = `late.default.svc.${Z}`;
    t.equal((await q(name)).status, 'NXDOMAIN');
    const base = reg.getService('default', 'web');
    if (!base) throw new Error('web missing');
    reg.upsertService({ ...base, name: 'late', clusterIPs: ['198.19.0.99'] });
    reg.flush();
    t.same((await q(name)).answer, [`${name}. 5 IN A 198.19.0.99`]);
    t.same((await q('-x', '198.19.0.99')).answer, [`99.0.19.198.in-addr.arpa. 5 IN PTR ${name}.`]);
    reg.deleteService('default/late');
    reg.flush();
    t.equal((await q(name)).status, 'NXDOMAIN');
    t.equal((await q('-x', '198.19.0.99')).status, 'REFUSED', 'an unknown reverse name goes upstream (dnsmasq: REFUSED)');
    t.same((await q(`web.default.svc.${Z}`)).answer, [`web.default.svc.${Z}. 5 IN A 198.19.0.10`], 'others unchanged');
  });
}
