import { createSocket } from 'node:dgram';
import t from 'tap';
import { MessageWriter } from '../../dns/wire/message.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { dig, freePort, metricValue, startDns, startDnsmasq, startFakeUpstream } from './helpers.ts';

// Forwarding through the cache to real dnsmasq upstreams and scripted fake ones: failover,
// TCP fallback, positive and negative caching, serve-stale.

const noServices = { services: [] };

if (requireOrSkip(t, { commands: ['dig', 'dnsmasq'] })) {
  t.test('forwards to dnsmasq, then answers from the cache with aged TTLs', async (t) => {
    const up = await startDnsmasq(t, ['--local-ttl=60', '--address=/example.test/198.18.5.5']);
    const { port, metrics } = await startDns(t, noServices, { upstreams: [`127.0.0.1:${up.port}`] });
    const first = await dig(port, 'www.example.test');
    t.equal(first.status, 'NOERROR');
    t.same(first.answer, ['www.example.test. 60 IN A 198.18.5.5']);
    t.notOk(first.flags.includes('aa'), 'forwarded answers are not authoritative');
    t.ok(first.flags.includes('ra'));
    const second = await dig(port, 'WWW.Example.TEST');
    t.match(second.answer[0], /^WWW\.Example\.TEST\. (59|60) IN A 198\.18\.5\.5$/, 'cached, question case kept');
    t.equal(await metricValue(metrics, 'meshlet_dns_cache_lookups_total', { result: 'hit' }), 1);
    t.equal(await metricValue(metrics, 'meshlet_dns_cache_lookups_total', { result: 'miss' }), 1);
    t.ok((await metricValue(metrics, 'meshlet_dns_queries_total', { type: 'A', rcode: 'NOERROR' })) >= 2);
    t.ok((await metricValue(metrics, 'meshlet_dns_upstream_duration_seconds_count', { outcome: 'ok' })) >= 1);
  });

  t.test('fails over from a silent upstream and from a SERVFAIL one to a working one', async (t) => {
    const silentPort = await freePort();
    const silent = createSocket('udp4'); // binds and never answers
    await new Promise<void>((resolve) => silent.bind(silentPort, '127.0.0.1', () => resolve()));
    t.teardown(() => silent.close());
    const servfail = await startFakeUpstream(t, (q) =>
      new MessageWriter(q.id, 0x8182).question(q.question?.name ?? '', q.question?.qtype ?? 1, 1).finish(),
    );
    const up = await startDnsmasq(t, ['--local-ttl=60', '--address=/example.test/198.18.5.6']);
    const { port, metrics } = await startDns(t, noServices, {
      upstreams: [`127.0.0.1:${silentPort}`, `127.0.0.1:${servfail.port}`, `127.0.0.1:${up.port}`],
      timeoutMs: 300,
    });
    t.same((await dig(port, 'a.example.test')).answer, ['a.example.test. 60 IN A 198.18.5.6']);
    t.equal(servfail.queries.length, 1, 'the SERVFAIL upstream was asked');
    t.equal(await metricValue(metrics, 'meshlet_dns_upstream_duration_seconds_count', { outcome: 'timeout' }), 1);
    t.equal(await metricValue(metrics, 'meshlet_dns_upstream_duration_seconds_count', { outcome: 'servfail' }), 1);
    // A second failure makes the silent upstream unhealthy: it moves to the back of the order.
    await dig(port, 'b.example.test');
    const started = Date.now();
    t.same((await dig(port, 'c.example.test')).answer, ['c.example.test. 60 IN A 198.18.5.6']);
    t.ok(Date.now() - started < 250, 'the unhealthy upstream is no longer tried first');
  });

  t.test('a truncated UDP reply from upstream is retried over TCP', async (t) => {
    const fake = await startFakeUpstream(t, (q, transport) => {
      const name = q.question?.name ?? '';
      const w = new MessageWriter(q.id, transport === 'udp' ? 0x8382 : 0x8180).question(name, 1, 1);
      if (transport === 'tcp')
        for (let i = 1; i <= 3; i++) w.record('answer', { type: 'A', name, ttl: 30, address: `198.18.6.${i}` });
      return w.finish();
    });
    const { port, metrics } = await startDns(t, noServices, { upstreams: [`127.0.0.1:${fake.port}`] });
    const r = await dig(port, 'many.example.test');
    t.same(
      r.answer.sort(),
      [1, 2, 3].map((i) => `many.example.test. 30 IN A 198.18.6.${i}`),
    );
    t.same(
      fake.queries.map((q) => q.transport),
      ['udp', 'tcp'],
    );
    t.equal(await metricValue(metrics, 'meshlet_dns_upstream_duration_seconds_count', { transport: 'tcp', outcome: 'ok' }), 1);
  });

  t.test('NXDOMAIN with SOA is cached for min(SOA TTL, MINIMUM) (RFC 2308)', async (t) => {
    const fake = await startFakeUpstream(t, (q) => {
      const name = q.question?.name ?? '';
      return new MessageWriter(q.id, 0x8183)
        .question(name, q.question?.qtype ?? 1, 1)
        .record('authority', {
          type: 'SOA',
          name: 'example.test',
          ttl: 60,
          mname: 'ns.example.test',
          rname: 'h.example.test',
          serial: 1,
          refresh: 1,
          retry: 1,
          expire: 1,
          minimum: 20,
        })
        .finish();
    });
    const { port } = await startDns(t, noServices, { upstreams: [`127.0.0.1:${fake.port}`] });
    const first = await dig(port, 'gone.example.test');
    t.equal(first.status, 'NXDOMAIN');
    t.match(first.authority[0], /^example\.test\. 60 IN SOA/);
    const second = await dig(port, 'gone.example.test');
    t.equal(second.status, 'NXDOMAIN');
    t.match(second.authority[0], /^example\.test\. (19|20) IN SOA/, 'served from the negative cache, TTL capped by MINIMUM');
    t.equal(fake.queries.length, 1, 'upstream asked once');
  });

  t.test('serves stale answers when every upstream is unreachable (RFC 8767)', async (t) => {
    const up = await startDnsmasq(t, ['--local-ttl=1', '--address=/example.test/198.18.5.7']);
    const { port, metrics } = await startDns(t, noServices, {
      upstreams: [`127.0.0.1:${up.port}`],
      timeoutMs: 300,
      cache: { serveStale: 3600, staleTtl: 30 },
    });
    t.same((await dig(port, 'old.example.test')).answer, ['old.example.test. 1 IN A 198.18.5.7']);
    await up.stop();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const stale = await dig(port, 'old.example.test');
    t.equal(stale.status, 'NOERROR');
    t.same(stale.answer, ['old.example.test. 30 IN A 198.18.5.7'], 'stale answer with TTL 30');
    t.equal(await metricValue(metrics, 'meshlet_dns_cache_lookups_total', { result: 'stale' }), 1);
    t.equal((await dig(port, 'never.example.test')).status, 'SERVFAIL', 'no stale data: SERVFAIL');
  });

  t.test('a slow upstream: the stale answer comes after the client response timer, not the upstream timeout', async (t) => {
    let silent = false;
    const fake = await startFakeUpstream(t, (q) => {
      if (silent) return undefined;
      const name = q.question?.name ?? '';
      return new MessageWriter(q.id, 0x8180)
        .question(name, 1, 1)
        .record('answer', { type: 'A', name, ttl: 1, address: '198.18.5.8' })
        .finish();
    });
    const { port } = await startDns(t, noServices, {
      upstreams: [`127.0.0.1:${fake.port}`],
      timeoutMs: 3000,
      cache: { serveStale: 3600, staleTtl: 30, staleAnswerTimeoutMs: 200 },
    });
    t.same((await dig(port, 'slow.example.test')).answer, ['slow.example.test. 1 IN A 198.18.5.8']);
    silent = true;
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const started = Date.now();
    const stale = await dig(port, 'slow.example.test');
    const took = Date.now() - started;
    t.same(stale.answer, ['slow.example.test. 30 IN A 198.18.5.8'], 'stale, TTL 30');
    t.ok(took >= 150 && took < 2000, `after about 200 ms, not the 3 s upstream timeout (${took} ms)`);
  });

  t.test('each upstream query leaves from its own random source port (RFC 5452)', async (t) => {
    const fake = await startFakeUpstream(t, (q) => {
      const name = q.question?.name ?? '';
      return new MessageWriter(q.id, 0x8180)
        .question(name, 1, 1)
        .record('answer', { type: 'A', name, ttl: 60, address: '198.18.5.9' })
        .finish();
    });
    const { port } = await startDns(t, noServices, { upstreams: [`127.0.0.1:${fake.port}`] });
    for (let i = 0; i < 12; i++) t.equal((await dig(port, `p${i}.example.test`)).status, 'NOERROR');
    const ports = new Set(fake.queries.map((q) => q.fromPort));
    t.equal(fake.queries.length, 12);
    t.ok(ports.size >= 11, `12 queries from ${ports.size} source ports`);
  });

  t.test('upstreams come from resolv.conf when none are configured', async (t) => {
    const dir = t.testdir({
      'resolv.conf': '# test\nsearch example.test\nnameserver 198.18.53.1\nnameserver ::1\noptions ndots:5\n',
    });
    const { module } = await startDns(t, noServices, { resolvConf: `${dir}/resolv.conf` });
    const status = module.status?.() ?? {};
    t.same(status.upstreams, [
      { upstream: '198.18.53.1:53', healthy: true },
      { upstream: '[::1]:53', healthy: true },
    ]);
  });
}
