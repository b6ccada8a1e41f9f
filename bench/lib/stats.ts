/**
 * The statistics every benchmark reports: the median of each figure over the measured rounds,
 * its spread, and the median of the per-round ratios between two contenders. A ratio taken
 * round by round (both contenders measured back to back) cancels most of the drift of a
 * shared, noisy machine; the median of those ratios ignores the odd disturbed round.
 */

export interface Summary {
  /** Measured rounds (warm-up excluded). */
  n: number;
  median: number;
  min: number;
  max: number;
  /** (max − min) / median: 0.1 means the rounds spread over 10 % of the median. */
  spread: number;
  values: number[];
}

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of an empty list');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const upper = sorted[mid] as number;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] as number) + upper) / 2;
}

/**
 * Nearest-rank percentile (p in 0..100) of a list: the smallest value with at least p % of the
 * values at or below it. NaN for an empty list.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

export function summarize(values: readonly number[]): Summary {
  const m = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { n: values.length, median: m, min, max, spread: m === 0 ? 0 : (max - min) / Math.abs(m), values: [...values] };
}

export interface RatioSummary {
  /** Median of a[i] / b[i] over the rounds where both were measured. */
  median: number;
  min: number;
  max: number;
  n: number;
}

/**
 * Median of the per-round ratios a[i] / b[i]. Rounds where either side is missing (undefined,
 * NaN) or b is zero are left out; undefined when no round is left.
 */
export function pairedRatio(a: readonly (number | undefined)[], b: readonly (number | undefined)[]): RatioSummary | undefined {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined || Number.isNaN(x) || Number.isNaN(y) || y === 0) continue;
    ratios.push(x / y);
  }
  if (ratios.length === 0) return undefined;
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), n: ratios.length };
}

export interface Slot {
  /** 0-based; warm-up rounds come first and have round < warmup. */
  round: number;
  warmup: boolean;
  contender: string;
}

/**
 * The order in which contenders are measured: every round runs each contender once, in the
 * same order (A B C A B C …), after `warmup` rounds whose figures are discarded.
 */
export function schedule(contenders: readonly string[], rounds: number, warmup: number): Slot[] {
  if (contenders.length === 0) throw new Error('no contenders');
  if (rounds < 1 || warmup < 0) throw new Error(`bad round counts: rounds=${rounds} warmup=${warmup}`);
  const slots: Slot[] = [];
  for (let round = 0; round < warmup + rounds; round++) {
    for (const contender of contenders) slots.push({ round, warmup: round < warmup, contender });
  }
  return slots;
}
