// Comparison reports across models (dense against its pruned variants): perplexity, per-task
// accuracy, speed and bytes side by side, as a Markdown table, an SVG chart and a standalone HTML
// page. Entries are built from the JSON that the evaluations write: lm-eval results files,
// perplexity results, speed results.
import { InvalidFormatError } from '@sparsekit/core';
import { barChart, escapeXml } from './chart.js';

/** One model's measured figures (any may be missing). */
export interface ComparisonEntry {
  /** The row's label ('dense' is drawn as the baseline). */
  name: string;
  perplexity?: number;
  /** Task -> metric -> value (lm-eval results' "acc,none" etc., without the filter suffix). */
  tasks?: Record<string, Record<string, number>>;
  decodeTokensPerSecond?: number;
  prefillTokensPerSecond?: number;
  timeToFirstTokenMs?: number;
  peakRssBytes?: number;
  modelBytes?: number;
  sparsity?: number;
}

/** The metric a task is charted by: acc_norm, else acc, else exact_match, else its first. */
function mainMetric(metrics: Record<string, number>): string | undefined {
  for (const m of ['acc_norm', 'acc', 'exact_match', 'word_perplexity']) if (m in metrics) return m;
  return Object.keys(metrics)[0];
}

/**
 * Merge what one JSON document says into `entry`: an lm-eval results file (`results`,
 * `n-samples`), a perplexity result (`perplexity`, `protocol`), or a speed result (decode tokens/s,
 * and optionally time to first token, peak RSS, model bytes). Unknown documents are a typed error.
 */
export function addToEntry(entry: ComparisonEntry, doc: unknown, where = 'report input'): ComparisonEntry {
  if (doc === null || typeof doc !== 'object')
    throw new InvalidFormatError('report input', `${where}: not a JSON object`);
  const d = doc as Record<string, unknown>;
  if (typeof d.results === 'object' && d.results !== null && 'n-samples' in d) {
    const tasks = { ...(entry.tasks ?? {}) };
    for (const [task, metrics] of Object.entries(d.results as Record<string, Record<string, unknown>>)) {
      const own: Record<string, number> = {};
      for (const [key, value] of Object.entries(metrics)) {
        if (typeof value !== 'number' || key.includes('_stderr')) continue;
        own[key.split(',')[0]!] = value;
      }
      tasks[task] = own;
    }
    return { ...entry, tasks };
  }
  if (typeof d.perplexity === 'number' && typeof d.protocol === 'object')
    return { ...entry, perplexity: d.perplexity };
  const speed = (d.speed ?? d) as Record<string, unknown>;
  if (typeof speed.decodeTokensPerSecond === 'number') {
    const num = (k: string) => (typeof speed[k] === 'number' ? { [k]: speed[k] as number } : {});
    return {
      ...entry,
      decodeTokensPerSecond: speed.decodeTokensPerSecond,
      ...num('prefillTokensPerSecond'),
      ...num('timeToFirstTokenMs'),
      ...num('peakRssBytes'),
      ...num('modelBytes'),
      ...num('sparsity'),
    };
  }
  throw new InvalidFormatError(
    'report input',
    `${where}: not an lm-eval results file, a perplexity result or a speed result`,
  );
}

const COLUMNS: { key: keyof ComparisonEntry; heading: string; digits: number; scale?: number }[] = [
  { key: 'sparsity', heading: 'sparsity %', digits: 1, scale: 100 },
  { key: 'perplexity', heading: 'perplexity', digits: 2 },
  { key: 'modelBytes', heading: 'model MiB', digits: 2, scale: 1 / 2 ** 20 },
  { key: 'prefillTokensPerSecond', heading: 'prefill tok/s', digits: 0 },
  { key: 'decodeTokensPerSecond', heading: 'decode tok/s', digits: 1 },
  { key: 'timeToFirstTokenMs', heading: 'first token ms', digits: 1 },
  { key: 'peakRssBytes', heading: 'peak RSS MiB', digits: 0, scale: 1 / 2 ** 20 },
];

/** Every (task, metric) any entry has, in first-seen order. */
function taskColumns(entries: readonly ComparisonEntry[]): [string, string][] {
  const seen: [string, string][] = [];
  for (const e of entries)
    for (const [task, metrics] of Object.entries(e.tasks ?? {}))
      for (const metric of Object.keys(metrics))
        if (!seen.some(([t, m]) => t === task && m === metric)) seen.push([task, metric]);
  return seen;
}

function cells(entries: readonly ComparisonEntry[]) {
  const present = COLUMNS.filter((c) => entries.some((e) => e[c.key] !== undefined));
  const tasks = taskColumns(entries);
  const headings = ['model', ...present.map((c) => c.heading), ...tasks.map(([t, m]) => `${t} ${m}`)];
  const rows = entries.map((e) => [
    e.name,
    ...present.map((c) => {
      const v = e[c.key] as number | undefined;
      return v === undefined ? '' : (v * (c.scale ?? 1)).toFixed(c.digits);
    }),
    ...tasks.map(([t, m]) => {
      const v = e.tasks?.[t]?.[m];
      return v === undefined ? '' : v.toFixed(m.includes('perplexity') ? 2 : 4);
    }),
  ]);
  return { headings, rows };
}

/** The comparison as a Markdown table. */
export function comparisonMarkdown(entries: readonly ComparisonEntry[]): string {
  const { headings, rows } = cells(entries);
  return [
    `| ${headings.join(' | ')} |`,
    `|${headings.map((_, i) => (i === 0 ? '---' : '--:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** The comparison as an SVG chart: perplexity, each task's main metric, decode speed and bytes. */
export function comparisonChart(entries: readonly ComparisonEntry[], title: string): string {
  const value = (f: (e: ComparisonEntry) => number | undefined) => entries.map((e) => f(e) ?? Number.NaN);
  const panels = [];
  if (entries.some((e) => e.perplexity !== undefined))
    panels.push({ heading: 'perplexity (lower is better)', values: value((e) => e.perplexity), digits: 2 });
  const tasks = [...new Set(entries.flatMap((e) => Object.keys(e.tasks ?? {})))];
  for (const task of tasks) {
    const metric = mainMetric(entries.find((e) => e.tasks?.[task] !== undefined)!.tasks![task]!);
    if (metric === undefined) continue;
    panels.push({ heading: `${task} ${metric}`, values: value((e) => e.tasks?.[task]?.[metric]), digits: 3 });
  }
  if (entries.some((e) => e.decodeTokensPerSecond !== undefined))
    panels.push({
      heading: 'decode tokens/s (higher is better)',
      values: value((e) => e.decodeTokensPerSecond),
      digits: 1,
    });
  if (entries.some((e) => e.modelBytes !== undefined))
    panels.push({
      heading: 'model MiB (lower is better)',
      values: value((e) => (e.modelBytes === undefined ? undefined : e.modelBytes / 2 ** 20)),
      digits: 2,
    });
  if (panels.length === 0) throw new InvalidFormatError('report input', 'no figures to chart');
  return barChart({ title, labels: entries.map((e) => e.name), panels, columns: 2 });
}

/** A standalone HTML page: the title, the chart inline, the table. */
export function comparisonHtml(entries: readonly ComparisonEntry[], title: string, note = ''): string {
  const { headings, rows } = cells(entries);
  const head = headings.map((h) => `<th>${escapeXml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head>
<body>
<h1>${escapeXml(title)}</h1>
${note === '' ? '' : `<p>${escapeXml(note)}</p>\n`}${comparisonChart(entries, title)}
<table>
<thead><tr>${head}</tr></thead>
<tbody>
${body}
</tbody>
</table>
</body>
</html>
`;
}
