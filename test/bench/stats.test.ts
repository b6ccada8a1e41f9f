import t from 'tap';
import { parseDnsperf, parseWrk } from '../../bench/lib/load.ts';
import { median, pairedRatio, schedule, summarize } from '../../bench/lib/stats.ts';
import { compact, niceStep } from '../../bench/lib/svg.ts';

t.test('median of odd and even counts, whatever the order', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.equal(median([7]), 7);
  t.throws(() => median([]));
});

t.test('summarize reports median, range and relative spread', async (t) => {
  const s = summarize([90, 100, 110]);
  t.equal(s.median, 100);
  t.equal(s.min, 90);
  t.equal(s.max, 110);
  t.equal(s.spread, 0.2);
  t.equal(s.n, 3);
  t.equal(summarize([0, 0]).spread, 0, 'no division by a zero median');
});

t.test('pairedRatio is the median of the per-round ratios', async (t) => {
  // Per round: 2, 0.5, 1 → median 1 (the median of the raw values would give 2/3 here).
  const r = pairedRatio([10, 1, 5], [5, 2, 5]);
  t.same(r, { median: 1, min: 0.5, max: 2, n: 3 });
  t.same(pairedRatio([1, Number.NaN, 3, 4], [1, 2, undefined, 0])?.n, 1, 'missing, NaN and zero rounds are left out');
  t.equal(pairedRatio([1], [0]), undefined);
});

t.test('schedule alternates the contenders round by round after the warm-up', async (t) => {
  const slots = schedule(['A', 'B'], 2, 1);
  t.same(
    slots.map((s) => `${s.warmup ? 'w' : ''}${s.contender}${s.round}`),
    ['wA0', 'wB0', 'A1', 'B1', 'A2', 'B2'],
  );
  t.same(
    schedule(['A', 'B', 'C'], 2, 0).map((s) => s.contender),
    ['A', 'B', 'C', 'A', 'B', 'C'],
  );
  t.throws(() => schedule([], 1, 0));
  t.throws(() => schedule(['A'], 0, 0));
});

t.test('parses dnsperf and wrk output', async (t) => {
  const dns = parseDnsperf(`Statistics:

  Queries sent:         365000
  Queries completed:    364990 (100.00%)
  Queries lost:         10 (0.00%)

  Response codes:       NOERROR 364990 (100.00%)
  Run time (s):         5.000108
  Queries per second:   72998.42

  Average Latency (s):  0.000133 (min 0.000011, max 0.003052)
`);
  t.same(dns, { qps: 72998.42, avgLatencyMs: 0.133, lostPercent: 0, noerrorPercent: 100 });
  const w = parseWrk(`Running 3s test @ http://127.0.0.1:1/
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    2.50ms
     99%    1.20s
  600000 requests in 3.00s, 90.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
Requests/sec: 200000.50
`);
  t.same(w, { rps: 200000.5, p50Ms: 0.812, p90Ms: 2.5, p99Ms: 1200, errors: 2 });
});

t.test('chart helpers: tick steps and compact labels', async (t) => {
  t.equal(niceStep(100), 20);
  t.equal(niceStep(12), 2.5);
  t.equal(compact(135_113), '135k');
  t.equal(compact(6.52), '6.52');
  t.equal(compact(2500), '2.5k');
});
