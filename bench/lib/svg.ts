/**
 * Grouped bar charts as plain SVG: one group per figure, one bar per contender at its median,
 * with a whisker from the lowest to the highest round. No charting dependency.
 */

export interface BarSeries {
  label: string;
  /** One per group; undefined when the contender has no such figure. */
  values: ({ median: number; min: number; max: number } | undefined)[];
}

export interface BarChart {
  title: string;
  unit: string;
  groups: string[];
  series: BarSeries[];
  /** Small line under the title. */
  note?: string;
}

const COLORS = ['#2f6fba', '#e07b39', '#4a9a5b', '#9b59b6', '#c0392b', '#7f8c8d'];
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

export function escapeXml(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** 1, 2, 2.5 or 5 × 10^k: the tick step for about `count` ticks up to max. */
export function niceStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nice * pow;
}

/** 135113 → "135k", 6.52 → "6.52", 0.0451 → "0.045". */
export function compact(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${trim(v / 1e6, a >= 1e8 ? 0 : 1)}M`;
  if (a >= 1e4) return `${trim(v / 1e3, 0)}k`;
  if (a >= 1e3) return `${trim(v / 1e3, 1)}k`;
  if (a >= 100) return trim(v, 0);
  if (a >= 10) return trim(v, 1);
  if (a >= 1) return trim(v, 2);
  return trim(v, 3);
}

function trim(v: number, digits: number): string {
  return v
    .toFixed(digits)
    .replace(/(\.\d*?)0+$/, '$1')
    .replace(/\.$/, '');
}

export function barChart(chart: BarChart): string {
  const width = 760;
  const height = 340;
  const left = 72;
  const right = 16;
  const top = chart.note === undefined ? 44 : 58;
  // Legend columns: as many as the longest label allows (about 7 px per character).
  const longest = Math.max(...chart.series.map((s) => s.label.length), 1);
  const legendCols = Math.max(1, Math.min(chart.series.length, Math.floor((width - 88) / (longest * 7 + 30))));
  const legendRows = Math.ceil(chart.series.length / legendCols);
  const bottom = 42 + legendRows * 20;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  let max = 0;
  for (const s of chart.series) for (const v of s.values) if (v) max = Math.max(max, v.max, v.median);
  const step = niceStep(max * 1.08);
  const yMax = Math.max(step, Math.ceil((max * 1.08) / step) * step);
  const y = (v: number) => top + plotH - (v / yMax) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(chart.title)}</text>`,
  );
  if (chart.note !== undefined) {
    out.push(`<text x="${width / 2}" y="42" text-anchor="middle" font-size="11" fill="#555">${escapeXml(chart.note)}</text>`);
  }
  // Grid and y axis.
  for (let v = 0; v <= yMax + step / 2; v += step) {
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${left}" y1="${yy}" x2="${width - right}" y2="${yy}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${left - 6}" y="${yy}" dy="4" text-anchor="end" fill="#444">${compact(v)}</text>`);
  }
  out.push(
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#444">${escapeXml(chart.unit)}</text>`,
  );
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${width - right}" y2="${top + plotH}" stroke="#888"/>`);
  // Bars.
  const groupW = plotW / Math.max(1, chart.groups.length);
  const barW = Math.min(64, (groupW * 0.8) / Math.max(1, chart.series.length));
  for (const [g, group] of chart.groups.entries()) {
    const x0 = left + g * groupW + (groupW - barW * chart.series.length) / 2;
    for (const [i, s] of chart.series.entries()) {
      const v = s.values[g];
      if (!v) continue;
      const x = x0 + i * barW;
      const color = COLORS[i % COLORS.length] as string;
      const yTop = y(v.median);
      out.push(
        `<rect x="${(x + 2).toFixed(1)}" y="${yTop.toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${(top + plotH - yTop).toFixed(1)}" fill="${color}"><title>${escapeXml(`${s.label}: ${compact(v.median)} ${chart.unit} (${compact(v.min)}–${compact(v.max)})`)}</title></rect>`,
      );
      const cx = (x + barW / 2).toFixed(1);
      if (v.max > v.min) {
        const cap = Math.min(8, barW / 4);
        out.push(
          `<path d="M${cx} ${y(v.min).toFixed(1)}V${y(v.max).toFixed(1)}M${(x + barW / 2 - cap).toFixed(1)} ${y(v.min).toFixed(1)}h${2 * cap}M${(x + barW / 2 - cap).toFixed(1)} ${y(v.max).toFixed(1)}h${2 * cap}" stroke="#222" stroke-width="1.2" fill="none"/>`,
        );
      }
      out.push(
        `<text x="${cx}" y="${(Math.min(yTop, y(v.max)) - 5).toFixed(1)}" text-anchor="middle" font-size="11" fill="#222">${compact(v.median)}</text>`,
      );
    }
    out.push(
      `<text x="${(left + g * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle" fill="#222">${escapeXml(group)}</text>`,
    );
  }
  // Legend.
  for (const [i, s] of chart.series.entries()) {
    const col = i % legendCols;
    const row = Math.floor(i / legendCols);
    const lx = left + col * (plotW / legendCols);
    const ly = top + plotH + 38 + row * 20;
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${lx + 18}" y="${ly}" fill="#222">${escapeXml(s.label)}</text>`);
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
