// Horizontal bar charts as self-contained SVG (no fonts or scripts to fetch): one panel per measure,
// the rows' labels on the left, the baseline row grey.

export const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export interface ChartPanel {
  heading: string;
  /** One value per label; NaN draws no bar (a measure the row does not have). */
  values: readonly number[];
  digits: number;
}

export interface BarChart {
  title: string;
  labels: readonly string[];
  panels: readonly ChartPanel[];
  /** Rows drawn grey (the baseline); default the row labelled 'dense'. */
  baseline?: (label: string, index: number) => boolean;
  /** Panels per row of panels (default: all in one row). */
  columns?: number;
}

/** The chart as an SVG document. */
export function barChart(chart: BarChart): string {
  // Wide enough for the longest label (about 7 px per character at 12 px).
  const labelWidth = Math.max(170, 16 + 7 * Math.max(0, ...chart.labels.map((l) => l.length)));
  const barWidth = 240;
  const gap = 70;
  const rowHeight = 26;
  const rows = chart.labels.length;
  const columns = Math.max(1, Math.min(chart.columns ?? chart.panels.length, chart.panels.length));
  const bandHeight = 50 + rows * rowHeight + 20;
  const bands = Math.ceil(chart.panels.length / columns);
  const width = labelWidth + columns * (barWidth + gap) + 20;
  const height = 40 + bands * bandHeight;
  const baseline = chart.baseline ?? ((label: string) => label === 'dense');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<title>${escapeXml(chart.title)}</title>`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="10" y="24" font-size="15" font-weight="bold">${escapeXml(chart.title)}</text>`,
  ];
  for (let band = 0; band < bands; band++) {
    const top = 40 + band * bandHeight + 40;
    chart.labels.forEach((label, i) => {
      parts.push(
        `<text x="${labelWidth - 8}" y="${top + i * rowHeight + rowHeight - 13}" font-size="12" text-anchor="end">${escapeXml(label)}</text>`,
      );
    });
    chart.panels.slice(band * columns, (band + 1) * columns).forEach((panel, p) => {
      const x0 = labelWidth + p * (barWidth + gap);
      const finite = panel.values.filter(Number.isFinite);
      const max = Math.max(0, ...finite);
      parts.push(
        `<text x="${x0}" y="${top - 12}" font-size="13" font-weight="bold">${escapeXml(panel.heading)}</text>`,
      );
      panel.values.forEach((v, i) => {
        if (!Number.isFinite(v)) return;
        const y = top + i * rowHeight;
        const w = max > 0 ? (barWidth * v) / max : 0;
        const fill = baseline(chart.labels[i]!, i) ? '#7f8c8d' : '#2e86c1';
        parts.push(
          `<rect x="${x0}" y="${y}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="${fill}"/>`,
          `<text x="${(x0 + w + 4).toFixed(1)}" y="${y + rowHeight - 13}" font-size="12">${v.toFixed(panel.digits)}</text>`,
        );
      });
    });
  }
  parts.push('</svg>');
  return parts.join('\n');
}
