/**
 * `npm run bench [-- --only <name>[,<name>…]] [-- --quick] [-- --list] [-- --no-render]`
 *
 * Installs or builds the peers the chosen benchmarks need, runs each benchmark (contenders
 * alternated round by round, see lib/harness.ts), writes bench/results/<name>.json and
 * regenerates bench/README.md and its SVG charts (render.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { apicacheBenchmark } from './apicache.ts';
import { dnsBenchmark, dnsK8sBenchmark } from './dns.ts';
import { eaaBenchmark } from './eaa.ts';
import { l4Benchmark } from './l4.ts';
import { l7Benchmark } from './l7.ts';
import { type BenchContext, type Benchmark, failedResult, resultsDir, runBenchmark } from './lib/harness.ts';
import { gitRevision } from './lib/machine.ts';
import { ensureCoreDNS, ensureDebianTools } from './lib/peers.ts';
import { memoryBenchmark } from './memory.ts';
import { renderReadme } from './render.ts';

export const BENCHMARKS: Benchmark[] = [
  memoryBenchmark,
  dnsBenchmark,
  dnsK8sBenchmark,
  l4Benchmark,
  l7Benchmark,
  apicacheBenchmark,
  eaaBenchmark,
];

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

function elapsed(t0: number): string {
  const s = Math.round((performance.now() - t0) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      'no-render': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npm run bench -- [--only name[,name]] [--quick] [--list] [--no-render]');
    console.log(`benchmarks: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
    return 0;
  }
  if (values.list) {
    for (const b of BENCHMARKS)
      console.log(`${b.name.padEnd(8)} ${b.title}${b.unavailable(repo) ? ` (${b.unavailable(repo)})` : ''}`);
    return 0;
  }
  const only = values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((n) => !BENCHMARKS.some((b) => b.name === n)) ?? [];
  if (unknown.length > 0) {
    console.error(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
    return 2;
  }
  const chosen = BENCHMARKS.filter((b) => only === undefined || only.includes(b.name));
  const quick = values.quick;
  const t0 = performance.now();
  const log = (scope: string) => (msg: string) => console.error(`[${elapsed(t0)}] ${scope}: ${msg}`);

  // Peers first, for every benchmark that can run, so a missing tool fails before any measuring.
  const runnable = chosen.filter((b) => b.unavailable(repo) === undefined);
  await ensureDebianTools(
    runnable.flatMap((b) => b.debian),
    log('setup'),
  );
  const coredns = runnable.some((b) => b.coredns) ? await ensureCoreDNS(repo, log('setup')) : undefined;

  let failed = 0;
  const summary: { name: string; seconds: number; status: string }[] = [];
  for (const bench of chosen) {
    const b0 = performance.now();
    const ctx: BenchContext = {
      repo,
      quick,
      rawDir: join(resultsDir(repo), 'raw', bench.name),
      ...(coredns !== undefined && { coredns }),
      log: log(bench.name),
    };
    mkdirSync(ctx.rawDir, { recursive: true });
    ctx.log(`${bench.title}${quick ? ' (quick)' : ''}`);
    let status = 'ok';
    try {
      const result = await runBenchmark(bench, ctx);
      if (result.skipped !== undefined) status = `skipped: ${result.skipped}`;
    } catch (err) {
      failed++;
      status = `failed: ${err instanceof Error ? err.message : String(err)}`;
      ctx.log(status);
      failedResult(bench, ctx, err);
    }
    summary.push({ name: bench.name, seconds: Math.round((performance.now() - b0) / 1000), status });
  }
  const rev = gitRevision(repo);
  const total = Math.round((performance.now() - t0) / 1000);
  // The run's duration is recorded only for a complete run of every benchmark.
  if (only === undefined && failed === 0) {
    writeFileSync(
      join(resultsDir(repo), `run-${quick ? 'quick' : 'full'}.json`),
      `${JSON.stringify({ date: new Date().toISOString(), commit: rev.commit, dirty: rev.dirty, quick, durationSeconds: total, benchmarks: summary }, null, 2)}\n`,
    );
  }
  if (!values['no-render']) {
    renderReadme(repo);
    log('render')('bench/README.md and bench/results/*.svg regenerated');
  }
  for (const s of summary) console.error(`  ${s.name.padEnd(8)} ${String(s.seconds).padStart(4)} s  ${s.status}`);
  console.error(`total ${elapsed(t0)} (${quick ? 'quick' : 'full'} run)`);
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
});
