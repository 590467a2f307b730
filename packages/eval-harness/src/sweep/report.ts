// A sweep's report: a Markdown table and an SVG chart of perplexity and decode speed by method.

/** One point of a pruning sweep, measured: the baseline row has method 'dense'. */
export interface SweepRow {
  method: string;
  sparsity: number;
  perplexity: number;
  bytes: number;
  decodeTokensPerSecond: number;
  pruneSeconds: number;
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Two horizontal bar charts side by side: perplexity (lower is better) and decode tokens/s. A
 * self-contained SVG: no fonts or scripts to fetch.
 */
export function sweepChart(rows: readonly SweepRow[], title: string): string {
  const labelWidth = 150;
  const barWidth = 260;
  const gap = 40;
  const rowHeight = 26;
  const top = 60;
  const height = top + rows.length * rowHeight + 30;
  const width = labelWidth + 2 * barWidth + gap + 80;
  const panel = (x0: number, heading: string, value: (r: SweepRow) => number, digits: number) => {
    const max = Math.max(...rows.map(value));
    const bars = rows.map((r, i) => {
      const y = top + i * rowHeight;
      const w = max > 0 ? (barWidth * value(r)) / max : 0;
      const fill = r.method === 'dense' ? '#7f8c8d' : '#2e86c1';
      return (
        `<rect x="${x0}" y="${y}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="${fill}"/>` +
        `<text x="${(x0 + w + 4).toFixed(1)}" y="${y + rowHeight - 13}" font-size="12">${value(r).toFixed(digits)}</text>`
      );
    });
    return `<text x="${x0}" y="${top - 12}" font-size="13" font-weight="bold">${escapeXml(heading)}</text>${bars.join('')}`;
  };
  const labels = rows
    .map(
      (r, i) =>
        `<text x="${labelWidth - 8}" y="${top + i * rowHeight + rowHeight - 13}" font-size="12" text-anchor="end">${escapeXml(r.method)}</text>`,
    )
    .join('');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="24" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    labels,
    panel(labelWidth, 'test perplexity (lower is better)', (r) => r.perplexity, 2),
    panel(
      labelWidth + barWidth + gap,
      'decode tokens/s (higher is better)',
      (r) => r.decodeTokensPerSecond,
      0,
    ),
    '</svg>',
  ].join('\n');
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
    date: string;
  },
): string {
  const dense = rows.find((r) => r.method === 'dense') ?? rows[0]!;
  const lines = [
    `# ${context.title ?? 'Pruning sweep'}`,
    '',
    `Model: ${context.model}. Perplexity: SparseGPT protocol, ${context.windows} windows (${context.tokens} tokens) of the held-out test text. Calibration: ${context.calibration}. Decode: wasm backend, ${context.threads} threads, median of 5 runs of 64 tokens. Run: ${context.date}.`,
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
