import { describe, expect, it } from 'vitest';
import { heatmap, lineChart } from './plot.js';

describe('line charts and heatmaps', () => {
  it('draws each series as a polyline through its points, with a legend, axis labels and ticks', () => {
    const svg = lineChart({
      title: 'perplexity vs sparsity',
      x: { label: 'sparsity' },
      y: { label: 'perplexity', log: true },
      series: [
        {
          name: 'wanda',
          points: [
            [0.1, 20],
            [0.5, 25],
            [0.9, 900],
          ],
        },
        {
          name: 'a <b>',
          points: [
            [0.5, Number.NaN],
            [0.7, 40],
          ],
        },
      ],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(1); // the second series has one finite point
    expect(svg.match(/<circle /g)).toHaveLength(4);
    expect(svg).toContain('a &lt;b&gt;');
    expect(svg).toContain('>sparsity</text>');
    // Log ticks at the decades inside the range.
    expect(svg).toContain('>100</text>');
    // The largest y is drawn highest (smallest SVG y).
    const cy = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(cy[2]).toBeLessThan(cy[0]!);
  });

  it('puts 2 and 5 between the decades of a log axis that spans less than two', () => {
    const svg = lineChart({
      title: 't',
      x: { label: 'x', log: true },
      y: { label: 'y' },
      series: [
        {
          name: 's',
          points: [
            [0.5, 1],
            [8, 2],
          ],
        },
      ],
    });
    for (const t of ['0.5', '1', '2', '5']) expect(svg).toContain(`>${t}</text>`);
  });

  it('shades a grid from the smallest value (white) to the largest, skipping NaN cells', () => {
    const svg = heatmap({ title: 'mask', values: [0, 1, Number.NaN, 0.5], rows: 2, cols: 2, cell: 10 });
    const fills = [...svg.matchAll(/fill="rgb\((\d+),(\d+),(\d+)\)"/g)].map((m) => m.slice(1).map(Number));
    expect(fills).toEqual([
      [255, 255, 255],
      [21, 67, 136],
      [138, 161, 196],
    ]);
  });
});
