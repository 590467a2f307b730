// A sweep's report: a Markdown table and an SVG chart of perplexity and decode speed by method.
import { barChart } from '../report/chart.js';

/** One point of a pruning sweep, measured: the baseline row has method 'dense'. */
export interface SweepRow {
  method: string;
  sparsity: number;
  perplexity: number;
  bytes: number;
  decodeTokensPerSecond: number;
  pruneSeconds: number;
}

/**
 * Two horizontal bar charts side by side: perplexity (lower is better) and decode tokens/s. A
 * self-contained SVG: no fonts or scripts to fetch.
 */
export function sweepChart(rows: readonly SweepRow[], title: string): string {
  return barChart({
    title,
    labels: rows.map((r) => r.method),
    panels: [
      { heading: 'test perplexity (lower is better)', values: rows.map((r) => r.perplexity), digits: 2 },
      {
        heading: 'decode tokens/s (higher is better)',
        values: rows.map((r) => r.decodeTokensPerSecond),
        digits: 0,
      },
    ],
  });
}

export function sweepMarkdown(
  rows: readonly SweepRow[],
  context: {
    /** The report's heading (default "Pruning sweep"). */
    title?: string;
    model: string;
    windows: number;
    tokens: number;
    calibration: string;
    threads: number;
    /** The kernels decode ran on (default 'wasm'). */
    backend?: string;
    date: string;
  },
): string {
  const dense = rows.find((r) => r.method === 'dense') ?? rows[0]!;
  const lines = [
    `# ${context.title ?? 'Pruning sweep'}`,
    '',
    `Model: ${context.model}. Perplexity: SparseGPT protocol, ${context.windows} windows (${context.tokens} tokens) of the held-out test text. Calibration: ${context.calibration}. Decode: ${context.backend ?? 'wasm'} kernels, ${context.threads} threads, median of 5 runs of 64 tokens. Run: ${context.date}.`,
    '',
    '| method | sparsity | perplexity | vs dense | linear bytes | decode tokens/s | vs dense | prune s |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map(
      (r) =>
        `| ${r.method} | ${(100 * r.sparsity).toFixed(1)}% | ${r.perplexity.toFixed(2)} | ${(r.perplexity / dense.perplexity).toFixed(3)}x | ${r.bytes} | ${r.decodeTokensPerSecond.toFixed(0)} | ${(r.decodeTokensPerSecond / dense.decodeTokensPerSecond).toFixed(2)}x | ${r.pruneSeconds.toFixed(1)} |`,
    ),
    '',
    '![perplexity and decode speed by method](report.svg)',
    '',
    'Sparsity is counted from the stored weights of the decoder linear layers; bytes are those of their',
    'arrays as packed (CSR for unstructured, N:M for 2:4). Speeds are measured on this machine in this run.',
    '',
  ];
  return lines.join('\n');
}
