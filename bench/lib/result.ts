import type { RatioSummary, Summary } from './stats.ts';

/** Which chart a figure goes into. */
export type ChartKind = 'throughput' | 'latency' | 'memory' | 'time' | 'cpu';

export interface MetricSpec {
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  chart: ChartKind;
  /** Decimals shown in the table. */
  digits?: number;
}

export interface ContenderResult {
  name: string;
  label: string;
  /** Exact commands that started the contender (server side). */
  commands: string[];
  figures: Record<string, Summary>;
}

export interface RatioResult {
  metric: string;
  /** `a / b`, contender names. */
  a: string;
  b: string;
  ratio: RatioSummary;
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  kernel: string;
  os: string;
  memTotalMiB: number;
}

export interface BenchResult {
  name: string;
  title: string;
  description: string;
  /** ISO date of the run. */
  date: string;
  commit: string;
  /** The work tree had uncommitted changes when the run was made. */
  dirty: boolean;
  quick: boolean;
  durationSeconds: number;
  machine: Machine;
  versions: Record<string, string>;
  /** Load-generator commands, with placeholders for ports where they differ per contender. */
  loadCommands: string[];
  rounds: number;
  warmup: number;
  /** Measuring order of one round. */
  order: string[];
  metrics: MetricSpec[];
  contenders: ContenderResult[];
  ratios: RatioResult[];
  notes: string[];
  /** Set when the benchmark could not run; nothing else is then meaningful. */
  skipped?: string;
}
