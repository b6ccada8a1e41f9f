import t from 'tap';
import { CoalescePool, freeNow } from '../../src/apicache/coalesce.ts';

t.test('CoalescePool hands out pieces of one arena and reuses it once every piece is back', async (t) => {
  const pool = new CoalescePool(4096, 1024, 2048);
  const a = pool.take();
  const b = pool.take();
  t.equal(a.arena, b.arena, 'one arena');
  t.equal(a.buf.buffer, b.buf.buffer);
  t.same([a.buf.byteOffset, b.buf.byteOffset, a.buf.length], [0, 1024, 1024], 'pieces one after the other');
  pool.give(a);
  const c = pool.take();
  t.equal(c.buf.byteOffset, 2048, 'not reused while a piece is still out');
  pool.give(b);
  pool.give(c);
  // 3 KiB were written (> keepBytes 2 KiB): the arena was freed, the next piece maps a new one.
  t.equal(a.buf.length, 0, 'a large use is given back to the OS (views read as empty)');
  const d = pool.take();
  t.not(d.arena, a.arena);
  t.equal(pool.arenas, 2);
  pool.give(d);
  const e = pool.take();
  t.same([e.arena, e.buf.byteOffset], [d.arena, 0], 'a small use is reused from the start');
  t.equal(d.buf.length, 1024, 'and not freed');
  pool.give(e);
});

t.test('CoalescePool opens a new arena when one is full and frees the old one when its pieces are back', async (t) => {
  const pool = new CoalescePool(2048, 1024, 1 << 20);
  const p = [pool.take(), pool.take()];
  const q = pool.take();
  t.not(q.arena, p[0]?.arena, 'full: a new arena');
  for (const x of p) pool.give(x);
  t.equal(p[0]?.buf.length, 0, 'the replaced arena is freed once its pieces are back');
  pool.give(q);
  t.equal(q.buf.length, 1024, 'the current one is kept for reuse');
  t.equal(pool.take().buf.byteOffset, 0);
});

t.test('freeNow detaches only a whole buffer', async (t) => {
  const whole = Buffer.allocUnsafeSlow(64);
  const view = whole.subarray(8, 16);
  freeNow(view);
  t.equal(whole.length, 64, 'a view does not free its buffer');
  freeNow(whole);
  t.equal(whole.length, 0);
  t.equal(view.length, 0, 'every view reads as empty afterwards');
  freeNow(whole);
  t.pass('freeing twice is harmless');
});
