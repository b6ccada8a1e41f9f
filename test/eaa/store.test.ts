import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { EaaCore } from '../../src/eaa/core.ts';
import { type EaaRecord, FileRecordStore, MemoryRecordStore } from '../../src/eaa/store.ts';
import { silentLogger } from '../../src/log.ts';
import { tempDir } from './helpers.ts';

const svc = (cn: string, description: string) => ({
  urn: { namespace: cn.split(':')[0] as string, id: cn.split(':')[1] as string },
  description,
  endpointUri: '',
  status: '',
  notifications: [],
  info: undefined,
});

const rec = (version: number, writer: string, description: string | null): EaaRecord => ({
  kind: 'service',
  cn: 'n:p',
  node: writer,
  version,
  writer,
  updatedAt: Date.now(),
  service: description === null ? null : svc('n:p', description),
});

t.test('records merge last-writer-wins, in any order, idempotently', async (t) => {
  const writes = [rec(1, 'a', 'one'), rec(3, 'a', null), rec(2, 'b', 'two'), rec(3, 'b', 'three-b')];
  const orders = [writes, [...writes].reverse(), [writes[2], writes[0], writes[3], writes[1], writes[3]]];
  for (const order of orders) {
    const s = new MemoryRecordStore();
    for (const r of order) s.merge(r as EaaRecord);
    const got = s.get('service', 'n:p');
    t.equal(got?.kind === 'service' ? got.service?.description : 'missing', 'three-b', 'version 3 from b wins (writer tiebreak)');
    t.equal(s.clock(), 3);
  }
});

t.test('the file store survives a restart; a corrupt file is moved aside', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'state.json');
  const log = silentLogger();
  const first = new FileRecordStore({ path, logger: log });
  await first.load();
  const core = new EaaCore({ node: 'a', store: first, logger: log });
  await core.register('n:p', svc('n:p', 'persisted'));
  await core.subscribe('n:c', { namespace: 'n', id: '' }, [{ name: 'e', version: '1', description: '' }]);
  const second = new FileRecordStore({ path, logger: log });
  await second.load();
  const again = new EaaCore({ node: 'a', store: second, logger: log });
  t.same(
    again.services().map((s) => s.description),
    ['persisted'],
  );
  t.same(again.recipients({ namespace: 'n', id: 'p' }, 'e', '1'), new Map([['a', ['n:c']]]));
  t.ok(second.clock() >= 2, 'the Lamport clock continues from disk');

  await writeFile(path, '{"format":"meshlet.eaa/v1","records":[{"kind":"service"}]}');
  const third = new FileRecordStore({ path, logger: log });
  await third.load();
  t.equal([...third.all()].length, 0, 'starts empty');
  t.ok(
    (await readdir(dir)).some((f) => f.startsWith('state.json.corrupt-')),
    'the bad file is kept aside',
  );
  await new EaaCore({ node: 'a', store: third, logger: log }).register('n:p', svc('n:p', 'fresh'));
  t.match(await readFile(path, 'utf8'), /"fresh"/);
});

t.test('tombstones expire', async (t) => {
  const s = new MemoryRecordStore();
  s.merge({ ...rec(1, 'a', null), updatedAt: 0 });
  s.merge(rec(2, 'a', 'live'));
  t.equal(s.expire(Date.now() - 1000), 0, 'a live record is kept');
  const s2 = new MemoryRecordStore();
  s2.merge({ ...rec(1, 'a', null), updatedAt: 0 });
  t.equal(s2.expire(Date.now() - 1000), 1);
});
