// Line charts and heatmaps as self-contained SVG (no fonts or scripts to fetch), beside the bar
// charts of chart.ts: curves of a measure against a setting (perplexity vs sparsity, recall vs
// budget, a histogram's counts), and a grid of values (an attention mask, a routing table).
import { escapeXml } from './chart.js';

export interface LineSeries {
  name: string;
  /** [x, y] points, drawn in the order given; non-finite values are skipped. */
  points: readonly (readonly [number, number])[];
}

export interface LineChart {
  title: string;
  x: { label: string; log?: boolean };
  y: { label: string; log?: boolean };
  series: readonly LineSeries[];
  width?: number;
  height?: number;
}

const COLOURS = ['#2e86c1', '#c0392b', '#27ae60', '#8e44ad', '#d35400', '#16a085', '#7f8c8d', '#f1c40f'];

/** Five round tick values spanning [lo, hi]. */
function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    // Decades, and 2 and 5 within them when the range spans less than two decades.
    const fine = Math.log10(hi / lo) < 2;
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
      for (const m of fine ? [1, 2, 5] : [1]) out.push(+(m * 10 ** e).toPrecision(12));
    const inside = out.filter((t) => t >= lo * 0.999 && t <= hi * 1.001);
    // A range too short for those (29 to 92): round values, placed on the log scale.
    return inside.length >= 3 ? inside : ticks(lo, hi, false).filter((t) => t > 0);
  }
  const step = 10 ** Math.floor(Math.log10((hi - lo) / 4 || 1));
  const unit = [1, 2, 5, 10].map((m) => m * step).find((s) => (hi - lo) / s <= 6) ?? 10 * step;
  const out: number[] = [];
  for (let t = Math.ceil(lo / unit) * unit; t <= hi + unit * 1e-9; t += unit) out.push(+t.toPrecision(12));
  return out;
}

const label = (v: number) =>
  Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(0) : String(+v.toPrecision(4));

/** The chart as an SVG document: one polyline with dots per series, axes with ticks, a legend. */
export function lineChart(chart: LineChart): string {
  const width = chart.width ?? 560;
  const height = chart.height ?? 340;
  const left = 64;
  const right = 150;
  const top = 40;
  const bottom = 48;
  const pts = chart.series.flatMap((s) =>
    s.points.filter(
      ([x, y]) =>
        Number.isFinite(x) && Number.isFinite(y) && (!chart.x.log || x > 0) && (!chart.y.log || y > 0),
    ),
  );
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (!(x1 > x0)) [x0, x1] = [x0 - 1, x0 + 1];
  if (!(y1 > y0)) [y0, y1] = [y0 - 1, y0 + 1];
  if (!chart.y.log) [y0, y1] = [y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0)];
  const f = (v: number, log?: boolean) => (log ? Math.log10(v) : v);
  const sx = (v: number) =>
    left +
    ((f(v, chart.x.log) - f(x0, chart.x.log)) / (f(x1, chart.x.log) - f(x0, chart.x.log))) *
      (width - left - right);
  const sy = (v: number) =>
    height -
    bottom -
    ((f(v, chart.y.log) - f(y0, chart.y.log)) / (f(y1, chart.y.log) - f(y0, chart.y.log))) *
      (height - top - bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(chart.title)}</title>`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="10" y="24" font-size="15" font-weight="bold">${escapeXml(chart.title)}</text>`,
    `<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="black"/>`,
  ];
  if (pts.length > 0) {
    for (const t of ticks(x0, x1, chart.x.log === true))
      parts.push(
        `<line x1="${sx(t).toFixed(1)}" y1="${height - bottom}" x2="${sx(t).toFixed(1)}" y2="${height - bottom + 5}" stroke="black"/>`,
        `<text x="${sx(t).toFixed(1)}" y="${height - bottom + 18}" text-anchor="middle">${label(t)}</text>`,
      );
    for (const t of ticks(y0, y1, chart.y.log === true))
      parts.push(
        `<line x1="${left - 5}" y1="${sy(t).toFixed(1)}" x2="${width - right}" y2="${sy(t).toFixed(1)}" stroke="#e5e5e5"/>`,
        `<text x="${left - 8}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end">${label(t)}</text>`,
      );
  }
  parts.push(
    `<text x="${(left + width - right) / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(chart.x.label)}</text>`,
    `<text x="14" y="${(top + height - bottom) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(top + height - bottom) / 2})">${escapeXml(chart.y.label)}</text>`,
  );
  chart.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const drawn = s.points.filter(
      ([x, y]) =>
        Number.isFinite(x) && Number.isFinite(y) && (!chart.x.log || x > 0) && (!chart.y.log || y > 0),
    );
    const path = drawn.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    if (drawn.length > 1)
      parts.push(`<polyline points="${path}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    for (const [x, y] of drawn)
      parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${colour}"/>`);
    const ly = top + 10 + i * 18;
    parts.push(
      `<rect x="${width - right + 12}" y="${ly - 9}" width="12" height="12" fill="${colour}"/>`,
      `<text x="${width - right + 30}" y="${ly + 1}">${escapeXml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export interface Heatmap {
  title: string;
  /** Row-major values, `rows` x `cols`; NaN draws an empty cell. */
  values: ArrayLike<number>;
  rows: number;
  cols: number;
  /** Pixels per cell (default: fits 400 px, at least 2). */
  cell?: number;
  rowLabel?: string;
  colLabel?: string;
}

/** A grid of cells shaded from white (the smallest value) to dark blue (the largest). */
export function heatmap(map: Heatmap): string {
  const cell = map.cell ?? Math.max(2, Math.floor(400 / Math.max(map.rows, map.cols)));
  const left = 40;
  const top = 40;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < map.rows * map.cols; i++) {
    const v = map.values[i]!;
    if (Number.isFinite(v)) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  }
  const width = left + map.cols * cell + 20;
  const height = top + map.rows * cell + 30;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(map.title)}</title>`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="10" y="24" font-size="15" font-weight="bold">${escapeXml(map.title)}</text>`,
  ];
  for (let r = 0; r < map.rows; r++)
    for (let c = 0; c < map.cols; c++) {
      const v = map.values[r * map.cols + c]!;
      if (!Number.isFinite(v)) continue;
      const t = hi > lo ? (v - lo) / (hi - lo) : 1;
      const shade = (a: number, b: number) => Math.round(a + (b - a) * t);
      parts.push(
        `<rect x="${left + c * cell}" y="${top + r * cell}" width="${cell}" height="${cell}" fill="rgb(${shade(255, 21)},${shade(255, 67)},${shade(255, 136)})"/>`,
      );
    }
  parts.push(
    `<rect x="${left}" y="${top}" width="${map.cols * cell}" height="${map.rows * cell}" fill="none" stroke="#999"/>`,
  );
  if (map.colLabel !== undefined)
    parts.push(
      `<text x="${left + (map.cols * cell) / 2}" y="${height - 8}" text-anchor="middle">${escapeXml(map.colLabel)}</text>`,
    );
  if (map.rowLabel !== undefined)
    parts.push(
      `<text x="14" y="${top + (map.rows * cell) / 2}" text-anchor="middle" transform="rotate(-90 14 ${top + (map.rows * cell) / 2})">${escapeXml(map.rowLabel)}</text>`,
    );
  parts.push('</svg>');
  return parts.join('\n');
}
