import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { run, runOk } from '../../bench/lib/proc.ts';

t.test('run: stdout through a pipe, stderr apart', async (t) => {
  const r = await run('sh', ['-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: 10_000 });
  t.same(r, { code: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false });
});

t.test('run: stdoutFile takes stdout, truncated first, read back after exit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'out.txt');
  writeFileSync(file, 'left over from an earlier run, longer than the new output\n');
  const out = await runOk('sh', ['-c', 'seq 1 3; echo err >&2'], { timeoutMs: 10_000, stdoutFile: file });
  t.equal(out, '1\n2\n3\n');
  t.equal(readFileSync(file, 'utf8'), '1\n2\n3\n');
});

t.test('run: a command past its timeout is killed and says so', async (t) => {
  const r = await run('sleep', ['5'], { timeoutMs: 100 });
  t.equal(r.timedOut, true);
  await t.rejects(runOk('sleep', ['5'], { timeoutMs: 100 }), /timed out after 100 ms/);
});
