import { Registry } from 'prom-client';
import t from 'tap';
import { CacheHandler } from '../../dns/cache/handler.ts';
import type { Outcome } from '../../dns/chain.ts';
import { DnsMetrics } from '../../dns/metrics.ts';
import { decodeMessage, MessageWriter, type RR } from '../../dns/wire/message.ts';
import { parseQuery, type Query } from '../../dns/wire/query.ts';
import { requireOrSkip } from '../harness/requirements.ts';
import { dig, metricValue, startDns, startFakeUpstream } from './helpers.ts';

// The cache's fast path (CacheHandler.reply, served by the server before the chain): whole
// replies from fresh entries with the client's ID, case, OPT and aged TTLs; the chain for the rest.

const A = 1;
const IN = 1;

function query(name: string, opts: { id?: number; qtype?: number; edns?: number; dnssecOk?: boolean; cd?: boolean } = {}): Query {
  const w = new MessageWriter(opts.id ?? 0x1234, 0x0100 | (opts.cd ? 0x0010 : 0)).question(name, opts.qtype ?? A, IN);
  if (opts.edns !== undefined) {
    w.record('additional', {
      type: 'RAW',
      name: '',
      ttl: opts.dnssecOk ? 0x8000 : 0,
      rtype: 41,
      rclass: opts.edns,
      data: Buffer.alloc(0),
    });
  }
  const q = parseQuery(w.finish(), false);
  if (typeof q === 'string') throw new Error(`bad test query: ${q}`);
  return q;
}

/** An upstream answer as the forward handler passes it on: lower-case question, no OPT. */
function upstream(name: string, rcode: number, answer: RR[], authority: RR[] = []): Buffer {
  const w = new MessageWriter(0, 0x8180 | rcode).question(name.toLowerCase(), A, IN);
  for (const rr of answer) w.record('answer', rr);
  for (const rr of authority) w.record('authority', rr);
  return w.finish();
}

function soa(ttl: number, minimum: number): RR {
  const rr = { type: 'SOA', name: 'example.test', ttl, mname: 'ns.example.test', rname: 'h.example.test' } as const;
  return { ...rr, serial: 1, refresh: 1, retry: 1, expire: 1, minimum };
}

function setup(opts: { serveStale?: number; eligible?: boolean; staleAnswerTimeoutMs?: number; staleRecheck?: number } = {}) {
  let now = 1_000_000;
  const registry = new Registry();
  const cache = new CacheHandler({
    maxEntries: 100,
    minTtl: 0,
    maxTtl: 3600,
    negativeTtl: 300,
    serveStale: opts.serveStale ?? 0,
    staleTtl: 30,
    ...(opts.staleAnswerTimeoutMs !== undefined && { staleAnswerTimeoutMs: opts.staleAnswerTimeoutMs }),
    ...(opts.staleRecheck !== undefined && { staleRecheck: opts.staleRecheck }),
    maxUdpSize: 1232,
    metrics: new DnsMetrics(
      registry,
      () => 0,
      () => 0,
    ),
    ...(opts.eligible === false && { fastEligible: () => false }),
    now: () => now,
  });
  const fill = async (q: Query, message: Buffer) => {
    const out = await cache.handle(q, () => ({ kind: 'answer', message, by: 'forward' }));
    t.equal(out.kind, 'answer');
  };
  return { cache, registry, fill, advance: (ms: number) => (now += ms) };
}

t.test('a hit is the whole reply: client ID, question case, RD, TTLs aged per record', async (t) => {
  const { cache, fill, advance } = setup();
  const name = 'www.example.test';
  await fill(
    query(name),
    upstream(name, 0, [
      { type: 'A', name, ttl: 100, address: '198.18.5.1' },
      { type: 'A', name, ttl: 40, address: '198.18.5.2' },
    ]),
  );
  advance(10_500);
  const reply = cache.reply(query('WWW.Example.TEST', { id: 0xbeef }));
  const d = reply && decodeMessage(reply);
  if (!reply || !d) throw new Error('no reply');
  t.equal(d.id, 0xbeef, 'client ID');
  t.equal(reply.toString('latin1', 13, 16), 'WWW', 'client case echoed');
  t.equal(d.question?.name.toLowerCase(), name);
  t.equal((reply[2] as number) & 0x81, 0x81, 'QR and RD set');
  t.equal((reply[2] as number) & 0x04, 0, 'not authoritative');
  t.same(
    d.answer.map((rr) => rr.ttl),
    [29, 29],
    'each TTL aged by 10 s, none above the entry lifetime (the lowest TTL, 40 s)',
  );
  t.equal(d.additional.length, 0, 'no OPT for a client without EDNS');
  advance(30_000);
  t.equal(cache.reply(query(name)), undefined, 'expired: no fast answer, the chain decides');
});

t.test('TTLs never go below 0 and entries stay fresh no longer than their TTL', async (t) => {
  const { cache, fill, advance } = setup();
  const name = 'short.example.test';
  await fill(query(name), upstream(name, 0, [{ type: 'A', name, ttl: 2, address: '198.18.5.3' }]));
  advance(1999);
  const d = decodeMessage(cache.reply(query(name)) ?? Buffer.alloc(0));
  t.same(
    d?.answer.map((rr) => rr.ttl),
    [0],
  );
  advance(1);
  t.equal(cache.reply(query(name)), undefined);
});

t.test('EDNS: OPT with the DO bit echoed; too large for 512 bytes without EDNS: TC', async (t) => {
  const { cache, fill } = setup();
  const name = 'big.example.test';
  const answer: RR[] = Array.from({ length: 40 }, (_, i) => ({ type: 'A', name, ttl: 60, address: `198.18.7.${i}` }));
  await fill(query(name), upstream(name, 0, answer));
  const edns = cache.reply(query(name, { edns: 4096, dnssecOk: true }));
  const d = edns && decodeMessage(edns);
  t.equal(d?.answer.length, 40, 'fits the EDNS buffer');
  const opt = d?.additional[0];
  t.equal(opt?.type === 'RAW' && opt.rtype, 41, 'OPT record');
  t.equal(opt?.type === 'RAW' && opt.rclass, 1232, "meshlet's buffer size");
  t.equal(opt?.type === 'RAW' && opt.ttl & 0x8000, 0x8000, 'DO bit copied back');
  t.same(
    d?.answer.map((rr) => rr.ttl),
    Array(40).fill(60),
  );
  const classic = cache.reply(query(name));
  const c = classic && decodeMessage(classic);
  t.equal((classic?.[2] ?? 0) & 0x02, 0x02, 'TC set');
  t.equal(c?.answer.length, 0, 'question only: the client retries over TCP');
});

t.test('negative answers: the SOA TTL is aged, capped by MINIMUM (RFC 2308)', async (t) => {
  const { cache, fill, advance } = setup();
  const name = 'gone.example.test';
  await fill(query(name), upstream(name, 3, [], [soa(60, 20)]));
  advance(5000);
  const reply = cache.reply(query(name, { id: 7 }));
  const d = reply && decodeMessage(reply);
  t.equal(d?.rcode, 3, 'NXDOMAIN');
  t.equal(d?.id, 7);
  t.equal(d?.authority[0]?.ttl, 15, 'min(SOA TTL, MINIMUM) less 5 s');
  advance(15_000);
  t.equal(cache.reply(query(name)), undefined, 'expired after MINIMUM');
  const nodata = 'empty.example.test';
  await fill(query(nodata), upstream(nodata, 0, [], [soa(10, 300)]));
  advance(4000);
  const n = decodeMessage(cache.reply(query(nodata)) ?? Buffer.alloc(0));
  t.equal(n?.rcode, 0, 'NODATA');
  t.equal(n?.answer.length, 0);
  t.equal(n?.authority[0]?.ttl, 6, 'SOA TTL aged');
});

t.test('stale entries are never served by the fast path; the chain serves them when forwarding fails', async (t) => {
  const { cache, registry, fill, advance } = setup({ serveStale: 3600 });
  const name = 'old.example.test';
  await fill(query(name), upstream(name, 0, [{ type: 'A', name, ttl: 5, address: '198.18.5.7' }]));
  advance(6000);
  t.equal(cache.reply(query(name)), undefined, 'expired: not from the fast path');
  const fail: Outcome = { kind: 'fail', rcode: 2, by: 'forward', reason: 'unreachable' };
  const out = await cache.handle(query(name), () => fail);
  t.equal(out.kind, 'answer');
  const d = out.kind === 'answer' ? decodeMessage(out.message) : undefined;
  t.same(
    d?.answer.map((rr) => rr.ttl),
    [30],
    'stale answer with TTL staleTtl (RFC 8767)',
  );
  t.equal(cache.reply(query(name)), undefined, 'still not fresh after serving stale');
  t.equal(await metricValue(registry, 'meshlet_dns_cache_lookups_total', { result: 'stale' }), 1);
});

t.test('RFC 8767 client response timer: a slow upstream gets the stale answer, and its late answer refreshes', async (t) => {
  const { cache, registry, fill, advance } = setup({ serveStale: 3600, staleAnswerTimeoutMs: 30 });
  const name = 'slow.example.test';
  await fill(query(name), upstream(name, 0, [{ type: 'A', name, ttl: 5, address: '198.18.5.7' }]));
  advance(6000);
  let release: (o: Outcome) => void = () => {};
  let asked = 0;
  const slow = () => {
    asked++;
    return new Promise<Outcome>((resolve) => {
      release = resolve;
    });
  };
  const started = Date.now();
  const first = await cache.handle(query(name), slow);
  t.ok(Date.now() - started < 1000, 'answered without waiting for the upstream');
  const d = first.kind === 'answer' ? decodeMessage(first.message) : undefined;
  t.same(
    d?.answer.map((rr) => [rr.ttl, rr.type === 'A' ? rr.address : '']),
    [[30, '198.18.5.7']],
    'the stale answer, TTL staleTtl',
  );
  const second = await cache.handle(query(name), slow);
  t.equal(second.kind, 'answer', 'a second client in the meantime: stale too');
  t.equal(asked, 1, 'one refresh in flight for both');
  release({ kind: 'answer', message: upstream(name, 0, [{ type: 'A', name, ttl: 60, address: '198.18.5.8' }]), by: 'forward' });
  await new Promise((r) => setImmediate(r));
  const fresh = cache.reply(query(name));
  t.ok(fresh, 'the late answer refreshed the entry');
  t.same(
    decodeMessage(fresh ?? Buffer.alloc(0))?.answer.map((rr) => (rr.type === 'A' ? rr.address : '')),
    ['198.18.5.8'],
  );
  t.equal(await metricValue(registry, 'meshlet_dns_cache_lookups_total', { result: 'stale' }), 2);
});

t.test(
  'RFC 8767 client response timer: an upstream faster than the timer answers itself; no stale entry, no timer',
  async (t) => {
    const { cache, fill, advance } = setup({ serveStale: 3600, staleAnswerTimeoutMs: 200 });
    const name = 'quick.example.test';
    await fill(query(name), upstream(name, 0, [{ type: 'A', name, ttl: 5, address: '198.18.5.7' }]));
    advance(6000);
    const fresh = upstream(name, 0, [{ type: 'A', name, ttl: 60, address: '198.18.5.9' }]);
    const out = await cache.handle(query(name), async () => ({ kind: 'answer', message: fresh, by: 'forward' }));
    t.same(out.kind === 'answer' ? decodeMessage(out.message)?.answer.map((rr) => rr.ttl) : [], [60], 'the upstream answer');
    const other = 'never.example.test';
    const started = Date.now();
    const failed = await cache.handle(
      query(other),
      () => new Promise<Outcome>((r) => setTimeout(() => r({ kind: 'fail', rcode: 2, by: 'forward', reason: 'x' }), 300)),
    );
    t.equal(failed.kind, 'fail', 'nothing stale to give: the failure');
    t.ok(Date.now() - started >= 250, 'and the client waited for the upstream');
  },
);

t.test('RFC 8767 failure recheck timer: after a failed refresh, stale answers come without asking upstream', async (t) => {
  const { cache, fill, advance } = setup({ serveStale: 3600, staleRecheck: 30 });
  const name = 'down.example.test';
  await fill(query(name), upstream(name, 0, [{ type: 'A', name, ttl: 5, address: '198.18.5.7' }]));
  advance(6000);
  let asked = 0;
  const failing = (): Outcome => {
    asked++;
    return { kind: 'fail', rcode: 2, by: 'forward', reason: 'unreachable' };
  };
  t.equal((await cache.handle(query(name), failing)).kind, 'answer', 'stale after the failure');
  t.equal(asked, 1);
  advance(10_000);
  t.equal((await cache.handle(query(name), failing)).kind, 'answer', 'stale again');
  t.equal(asked, 1, 'within 30 s: upstream not asked');
  advance(21_000);
  await cache.handle(query(name), failing);
  t.equal(asked, 2, 'after 30 s: asked again');
});

t.test('CD=1 answers are cached apart; ineligible names are left to the chain', async (t) => {
  const { cache, fill } = setup();
  const name = 'cd.example.test';
  await fill(query(name, { cd: true }), upstream(name, 0, [{ type: 'A', name, ttl: 60, address: '198.18.5.8' }]));
  t.equal(cache.reply(query(name)), undefined, 'a CD=1 answer does not answer CD=0');
  t.ok(cache.reply(query(name, { cd: true })), 'it answers CD=1');
  const other = setup({ eligible: false });
  await other.fill(query(name), upstream(name, 0, [{ type: 'A', name, ttl: 60, address: '198.18.5.8' }]));
  t.equal(other.cache.reply(query(name)), undefined, 'not eligible: no fast answer');
  const viaChain = await other.cache.handle(query(name), () => {
    throw new Error('must not forward');
  });
  t.equal(viaChain.kind, 'answer', 'the chain still answers it from the cache');
});

if (requireOrSkip(t, { commands: ['dig'] })) {
  t.test('through the server: the second query is a fast cache hit, aged per record', async (t) => {
    const fake = await startFakeUpstream(t, (q) => {
      const name = q.question?.name ?? '';
      return new MessageWriter(q.id, 0x8180)
        .question(name, A, IN)
        .record('answer', { type: 'CNAME', name, ttl: 300, target: 'target.example.test' })
        .record('answer', { type: 'A', name: 'target.example.test', ttl: 60, address: '198.18.5.9' })
        .finish();
    });
    const { port, metrics } = await startDns(t, { services: [] }, { upstreams: [`127.0.0.1:${fake.port}`] });
    t.equal((await dig(port, 'alias.example.test')).answer.length, 2);
    const second = await dig(port, 'ALIAS.example.TEST', '+dnssec');
    // Names compressed against the question take its case too (equal names, RFC 4343).
    t.match(second.answer[0], /^ALIAS\.example\.TEST\. (59|60) IN CNAME target\.example\.test\.$/i);
    t.ok(second.answer[0]?.startsWith('ALIAS.example.TEST.'), 'question case echoed');
    t.match(second.answer[1], /^target\.example\.test\. (59|60) IN A 198\.18\.5\.9$/i);
    t.match(second.raw, /flags: do;/, 'DO echoed in the OPT');
    t.equal(fake.queries.length, 1, 'upstream asked once');
    t.equal(await metricValue(metrics, 'meshlet_dns_answers_total', { by: 'cache' }), 1);
    t.equal(await metricValue(metrics, 'meshlet_dns_cache_lookups_total', { result: 'hit' }), 1);
    const tcp = await dig(port, '+tcp', 'alias.example.test');
    t.equal(tcp.answer.length, 2, 'TCP answers from the cache through the chain');
    t.equal(fake.queries.length, 1);
  });
}
