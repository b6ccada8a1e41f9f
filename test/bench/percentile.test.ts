import t from 'tap';
import { percentile } from '../../bench/lib/stats.ts';

t.test('nearest-rank percentile', async (t) => {
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1, unsorted on purpose
  t.equal(percentile(hundred, 50), 50);
  t.equal(percentile(hundred, 99), 99);
  t.equal(percentile(hundred, 100), 100);
  t.equal(percentile(hundred, 0), 1, 'p0 is the minimum');
  t.equal(percentile([5], 99), 5);
  t.equal(percentile([1, 2, 3, 4], 50), 2);
  t.ok(Number.isNaN(percentile([], 50)));
});
