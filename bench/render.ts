/**
 * Renders bench/results/*.json into bench/README.md and bench/results/<name>-<chart>.svg.
 * Run on its own with `node bench/render.ts`; `npm run bench` calls it after measuring.
 * Everything in the README below the intro comes from the JSON files: edit this script, never
 * the README's tables or the SVGs by hand.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatNumber } from './lib/harness.ts';
import type { BenchResult, ChartKind, MetricSpec } from './lib/result.ts';
import { barChart } from './lib/svg.ts';

const ORDER = ['memory', 'dns', 'dns-k8s', 'l4', 'l7', 'apicache', 'eaa'];
const CHART_TITLES: Record<ChartKind, string> = {
  throughput: 'Throughput',
  latency: 'Latency',
  memory: 'Memory',
  time: 'Time',
  cpu: 'CPU used',
};

interface RunSummary {
  date: string;
  commit: string;
  dirty: boolean;
  quick: boolean;
  durationSeconds: number;
  benchmarks: { name: string; seconds: number; status: string }[];
}

function readJson<T>(path: string): T | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : undefined;
}

export function loadResults(dir: string): BenchResult[] {
  if (!existsSync(dir)) return [];
  const results = readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.startsWith('run-'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as BenchResult);
  const rank = (n: string) => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  return results.sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));
}

function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

/** One chart per (kind, unit): a chart never mixes units. Returns [file name, metrics]. */
function chartsOf(result: BenchResult): { file: string; kind: ChartKind; unit: string; metrics: MetricSpec[] }[] {
  const byKey = new Map<string, MetricSpec[]>();
  for (const m of result.metrics) {
    const key = `${m.chart}|${m.unit}`;
    byKey.set(key, [...(byKey.get(key) ?? []), m]);
  }
  const kinds = new Map<ChartKind, number>();
  for (const key of byKey.keys()) {
    const kind = key.split('|')[0] as ChartKind;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return [...byKey.entries()].map(([key, metrics]) => {
    const [kind, unit] = key.split('|') as [ChartKind, string];
    const file = `${result.name}-${kind}${(kinds.get(kind) ?? 0) > 1 ? `-${slug(unit)}` : ''}.svg`;
    return { file, kind, unit, metrics };
  });
}

function renderCharts(result: BenchResult, dir: string): string[] {
  const lines: string[] = [];
  for (const chart of chartsOf(result)) {
    const series = result.contenders
      .map((c) => ({ label: c.label, values: chart.metrics.map((m) => c.figures[m.key]) }))
      .filter((s) => s.values.some((v) => v !== undefined));
    if (series.length === 0) continue;
    const better = chart.metrics[0]?.better === 'higher' ? 'higher is better' : 'lower is better';
    const svg = barChart({
      title: `${result.title.split(':')[0]}: ${CHART_TITLES[chart.kind].toLowerCase()} (${chart.unit})`,
      unit: chart.unit,
      groups: chart.metrics.map((m) => m.label),
      series,
      note: `median of ${result.rounds} rounds, whiskers min–max; ${better}; ${result.date.slice(0, 10)}, ${result.commit}`,
    });
    writeFileSync(join(dir, chart.file), svg);
    lines.push(`![${result.name} ${chart.kind}](results/${chart.file})`);
  }
  return lines;
}

function cell(result: BenchResult, contender: string, metric: MetricSpec): string {
  const s = result.contenders.find((c) => c.name === contender)?.figures[metric.key];
  if (!s) return '–';
  const spread = s.n > 1 ? ` ±${Math.round((s.spread * 100) / 2)}%` : '';
  return `${formatNumber(s.median, metric.digits ?? 0)}${spread}`;
}

/** Commands as run, with the checkout's path cut so they read as repo-relative. */
function relative(command: string, repo: string): string {
  return command.replaceAll(`${repo}/`, '');
}

function renderResult(result: BenchResult, dir: string, repo: string): string[] {
  const out: string[] = [`### ${result.title}`, ''];
  if (result.skipped !== undefined) {
    out.push(`**Skipped** (${result.date.slice(0, 10)}, commit ${result.commit}): ${result.skipped}`, '');
    return out;
  }
  out.push(
    `_${result.quick ? 'Quick' : 'Full'} run of ${result.date.replace('T', ' ').slice(0, 16)} UTC on commit \`${result.commit}\`${result.dirty ? ' (with uncommitted changes)' : ''}; ` +
      `${result.warmup} warm-up + ${result.rounds} measured rounds, order ${result.order.join(' → ')} each round; took ${result.durationSeconds} s._`,
    '',
    result.description,
    '',
  );
  const metrics = result.metrics.filter((m) => result.contenders.some((c) => c.figures[m.key] !== undefined));
  out.push(`| | ${metrics.map((m) => `${m.label} (${m.unit})`).join(' | ')} |`);
  out.push(`|---|${metrics.map(() => '---:').join('|')}|`);
  for (const c of result.contenders) out.push(`| ${c.label} | ${metrics.map((m) => cell(result, c.name, m)).join(' | ')} |`);
  out.push('', 'Median over the measured rounds; ± is half the range (max − min) relative to the median.', '');
  if (result.ratios.length > 0) {
    const label = (name: string) => result.contenders.find((c) => c.name === name)?.label ?? name;
    out.push('| ratio (median of per-round ratios) | value | range |', '|---|---:|---:|');
    for (const r of result.ratios) {
      const m = result.metrics.find((x) => x.key === r.metric);
      out.push(
        `| ${m?.label ?? r.metric}: ${label(r.a)} / ${label(r.b)} | **${r.ratio.median.toFixed(2)}×** | ${r.ratio.min.toFixed(2)}–${r.ratio.max.toFixed(2)} |`,
      );
    }
    out.push('');
  }
  out.push(...renderCharts(result, dir).flatMap((l) => [l, '']));
  out.push('<details><summary>Machine, versions, exact commands</summary>', '');
  const m = result.machine;
  out.push(`- Machine: ${m.nproc} CPUs, ${m.cpuModel}, kernel ${m.kernel}, ${m.os}, ${formatNumber(m.memTotalMiB)} MiB RAM`);
  out.push(
    `- Versions: ${Object.entries(result.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  out.push('- Load:', ...result.loadCommands.map((c) => `  - \`${relative(c, repo)}\``));
  for (const c of result.contenders) {
    if (c.commands.length > 0) out.push(`- ${c.label}:`, ...c.commands.map((cmd) => `  - \`${relative(cmd, repo)}\``));
  }
  out.push('', '</details>', '');
  if (result.notes.length > 0)
    out.push(
      ...result.notes
        .map((n) => `> ${n}`)
        .flatMap((n) => [n, '>'])
        .slice(0, -1),
      '',
    );
  return out;
}

function runLine(run: RunSummary | undefined, what: string): string {
  if (!run) return `- ${what}: not recorded yet.`;
  const per = run.benchmarks.map((b) => `${b.name} ${b.seconds} s${b.status === 'ok' ? '' : ` (${b.status})`}`).join(', ');
  return `- ${what}: **${Math.floor(run.durationSeconds / 60)} min ${run.durationSeconds % 60} s** on ${run.date.slice(0, 10)}, commit \`${run.commit}\` (${per}).`;
}

export function renderReadme(repo: string): void {
  const dir = join(repo, 'bench', 'results');
  const results = loadResults(dir);
  const full = readJson<RunSummary>(join(dir, 'run-full.json'));
  const quick = readJson<RunSummary>(join(dir, 'run-quick.json'));
  const lines: string[] = [
    '# bench/',
    '',
    '<!-- Generated by bench/render.ts from bench/results/*.json: edit the script, not this file. -->',
    '',
    'Benchmarks that compare meshlet with a peer **side by side in one run**: the figure that matters is the ratio,',
    'which holds on a noisy shared machine where an absolute number does not. Each benchmark starts its contenders,',
    'warms them up, then measures them in turn (A B C A B C …) over several rounds and reports the median, the spread',
    'and the median of the per-round ratios, with the machine, the versions and the exact commands.',
    '',
    '## Running',
    '',
    '```sh',
    'npm run bench                      # everything (see the duration below)',
    'npm run bench -- --quick           # fewer, shorter rounds: every benchmark in a few minutes',
    'npm run bench -- --only dns,l7     # some benchmarks (memory, dns, dns-k8s, l4, l7, apicache, eaa)',
    'npm run bench -- --list            # what exists and what is skipped',
    'node bench/render.ts               # re-render this README and the charts from bench/results/*.json',
    '```',
    '',
    'Peers are installed on first use: nginx-light, haproxy, dnsmasq-base, dnsperf, wrk and iperf3 with `apt-get`',
    '(when running as root; otherwise the run stops and prints the command), CoreDNS 1.15.0 with',
    '`scripts/build-go-tool.sh coredns` (`go install` into `~/.cache/meshlet/bin`, a few minutes the first time) and vegeta',
    '12.13.0, the load generator of `eaa`, with `scripts/build-go-tool.sh vegeta` (the same way, a minute the first time).',
    'meshlet runs as its own process (`bin/meshlet agent`, which execs Node 24 with the process settings of docs/decisions.md), so its CPU and RSS are its own. The bench process itself, which holds the consumer sockets and timestamps what arrives on them, runs with a 2 MiB young generation (`node --max-semi-space-size=2`, the `bench` script in package.json): its own scavenges then take well under a millisecond instead of several, which it would otherwise add to the latencies it measures. Everything',
    'listens on 127.0.0.1; generated service and pod addresses come from 198.18.0.0/15. Every load run is bounded',
    "by its tool's duration flag and killed 30 s past it. A benchmark whose meshlet module has not landed is",
    'reported as skipped, never with a number. Raw tool output goes to `bench/results/raw/` (not committed).',
    '`apicache` runs a real etcd + kube-apiserver (`test/harness/control-plane.ts`, binaries from',
    '`scripts/build-k8s-binaries.sh`); `eaa` compares with a bare `ws` broker (`node bench/eaa.ts --baseline`), as',
    'no OpenNESS EAA runs here, and sends its fixed-rate load with vegeta (a compiled open-loop generator).',
    '',
    'Layout: `main.ts` (entry), one driver per benchmark (`memory.ts`, `dns.ts`, `l4.ts`, `l7.ts`, `apicache.ts`, `eaa.ts`), `lib/`',
    '(harness and statistics, processes, peers, load tools, SVG charts), `render.ts` (this README).',
    '',
    '## Runs',
    '',
    runLine(full, 'Full run (`npm run bench`)'),
    runLine(quick, 'Quick run (`npm run bench -- --quick`)'),
    '',
    '## Results',
    '',
  ];
  for (const r of results) lines.push(...renderResult(r, dir, repo));
  writeFileSync(
    join(repo, 'bench', 'README.md'),
    `${lines
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trimEnd()}\n`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  renderReadme(join(dirname(fileURLToPath(import.meta.url)), '..'));
}
