import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeMachine, gitRevision } from './machine.ts';
import type { DebianTool } from './peers.ts';
import type { BenchResult, ContenderResult, MetricSpec, RatioResult } from './result.ts';
import { pairedRatio, schedule, summarize } from './stats.ts';

export interface BenchContext {
  repo: string;
  quick: boolean;
  /** Where this benchmark writes configs, generated files and raw logs (git-ignored). */
  rawDir: string;
  /** Path of the pinned CoreDNS, when the benchmark asked for it. */
  coredns?: string;
  /** Progress line on stderr, prefixed with the benchmark's name and the elapsed time. */
  log(msg: string): void;
}

/** One running contender. */
export interface Instance {
  /** The exact commands that started it. */
  commands: string[];
  /** Measures once; figures by metric key (a contender may leave some metrics out). */
  measure(round: number, warmup: boolean): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export interface ContenderDef {
  name: string;
  label: string;
  start(): Promise<Instance>;
}

/** What a benchmark sets up for one run: its contenders and how to read the figures. */
export interface Plan {
  description: string;
  metrics: MetricSpec[];
  contenders: ContenderDef[];
  /** [metric, a, b]: report the median of a/b per round. */
  ratios: [string, string, string][];
  loadCommands: string[];
  versions: Record<string, string>;
  notes: string[];
  rounds: number;
  warmup: number;
  /** Stops shared backends; called whatever happened. */
  teardown(): Promise<void>;
}

export interface Benchmark {
  name: string;
  title: string;
  debian: DebianTool[];
  coredns: boolean;
  /** Undefined when it can run; else why not, e.g. "meshlet has no dns module yet". */
  unavailable(repo: string): string | undefined;
  plan(ctx: BenchContext): Promise<Plan>;
}

export function resultsDir(repo: string): string {
  return join(repo, 'bench', 'results');
}

function baseResult(bench: Benchmark, ctx: BenchContext, startedAt: Date): BenchResult {
  const rev = gitRevision(ctx.repo);
  return {
    name: bench.name,
    title: bench.title,
    description: '',
    date: startedAt.toISOString(),
    commit: rev.commit,
    dirty: rev.dirty,
    quick: ctx.quick,
    durationSeconds: 0,
    machine: describeMachine(),
    versions: {},
    loadCommands: [],
    rounds: 0,
    warmup: 0,
    order: [],
    metrics: [],
    contenders: [],
    ratios: [],
    notes: [],
  };
}

/**
 * Runs one benchmark: sets up its plan, starts every contender, measures them in the order of
 * schedule() (A B C A B C … after the warm-up), and writes bench/results/<name>.json.
 * A benchmark that cannot run is written as skipped, with the reason, never with a number.
 */
export async function runBenchmark(bench: Benchmark, ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const t0 = performance.now();
  const result = baseResult(bench, ctx, startedAt);
  const why = bench.unavailable(ctx.repo);
  if (why !== undefined) {
    ctx.log(`skipped: ${why}`);
    result.skipped = why;
    return write(ctx.repo, result);
  }
  mkdirSync(ctx.rawDir, { recursive: true });
  const plan = await bench.plan(ctx);
  const instances = new Map<string, Instance>();
  try {
    Object.assign(result, {
      description: plan.description,
      metrics: plan.metrics,
      versions: plan.versions,
      loadCommands: plan.loadCommands,
      notes: plan.notes,
      rounds: plan.rounds,
      warmup: plan.warmup,
      order: plan.contenders.map((c) => c.name),
    });
    for (const c of plan.contenders) {
      ctx.log(`starting ${c.label}`);
      instances.set(c.name, await c.start());
    }
    const figures = new Map<string, Record<string, number>[]>(plan.contenders.map((c) => [c.name, []]));
    const slots = schedule(
      plan.contenders.map((c) => c.name),
      plan.rounds,
      plan.warmup,
    );
    for (const [i, slot] of slots.entries()) {
      const instance = instances.get(slot.contender) as Instance;
      const tag = slot.warmup
        ? `warm-up ${slot.round + 1}/${plan.warmup}`
        : `round ${slot.round - plan.warmup + 1}/${plan.rounds}`;
      const got = await instance.measure(slot.round, slot.warmup);
      ctx.log(`[${i + 1}/${slots.length}] ${tag} ${slot.contender}: ${formatFigures(got, plan.metrics)}`);
      if (!slot.warmup) figures.get(slot.contender)?.push(got);
    }
    result.contenders = plan.contenders.map((c): ContenderResult => {
      const rounds = figures.get(c.name) ?? [];
      const summaries: ContenderResult['figures'] = {};
      for (const m of plan.metrics) {
        const values = rounds.map((r) => r[m.key]).filter((v): v is number => v !== undefined && !Number.isNaN(v));
        if (values.length > 0) summaries[m.key] = summarize(values);
      }
      return { name: c.name, label: c.label, commands: instances.get(c.name)?.commands ?? [], figures: summaries };
    });
    result.ratios = plan.ratios.flatMap(([metric, a, b]): RatioResult[] => {
      const per = (name: string) => (figures.get(name) ?? []).map((r) => r[metric]);
      const ratio = pairedRatio(per(a), per(b));
      return ratio === undefined ? [] : [{ metric, a, b, ratio }];
    });
  } finally {
    for (const [name, instance] of [...instances].reverse()) {
      await instance.stop().catch((err: unknown) => ctx.log(`stopping ${name} failed: ${String(err)}`));
    }
    await plan.teardown().catch((err: unknown) => ctx.log(`teardown failed: ${String(err)}`));
  }
  result.durationSeconds = Math.round((performance.now() - t0) / 1000);
  return write(ctx.repo, result);
}

/**
 * A benchmark that failed is recorded in raw/ only: the last good bench/results/<name>.json
 * (which carries its own date and commit) stays, so a transient failure never erases it.
 */
export function failedResult(bench: Benchmark, ctx: BenchContext, err: unknown): BenchResult {
  const result = baseResult(bench, ctx, new Date());
  result.skipped = `failed: ${err instanceof Error ? err.message : String(err)}`;
  mkdirSync(ctx.rawDir, { recursive: true });
  writeFileSync(join(ctx.rawDir, 'failed.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

function write(repo: string, result: BenchResult): BenchResult {
  const dir = resultsDir(repo);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${result.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

export function formatNumber(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function formatFigures(got: Record<string, number>, metrics: readonly MetricSpec[]): string {
  return metrics
    .filter((m) => got[m.key] !== undefined && !Number.isNaN(got[m.key]))
    .map((m) => `${m.key} ${formatNumber(got[m.key] as number, m.digits ?? 0)}${m.unit === '' ? '' : ` ${m.unit}`}`)
    .join(', ');
}
