import { describe, expect, it } from 'vitest';
import { addToEntry, comparisonChart, comparisonHtml, comparisonMarkdown } from './compare.js';

const lmEval = (acc: number) => ({
  results: {
    nextsent: { alias: 'nextsent', 'acc,none': acc, 'acc_stderr,none': 0.02, 'acc_norm,none': acc + 0.1 },
  },
  'n-samples': { nextsent: { original: 10, effective: 10 } },
});

describe('comparison reports', () => {
  it('merges lm-eval results, perplexity and speed JSON into rows, and tabulates them', () => {
    let dense = addToEntry({ name: 'dense' }, lmEval(0.5));
    dense = addToEntry(dense, { perplexity: 20.72, protocol: { name: 'sparsegpt' } });
    dense = addToEntry(dense, {
      benchmark: 'model',
      speed: {
        decodeTokensPerSecond: 100,
        prefillTokensPerSecond: 900,
        timeToFirstTokenMs: 12.5,
        modelBytes: 2 ** 21,
        sparsity: 0,
      },
    });
    const pruned = addToEntry({ name: 'wanda <50%>' }, lmEval(0.4));
    expect(dense).toEqual({
      name: 'dense',
      tasks: { nextsent: { acc: 0.5, acc_norm: 0.6 } },
      perplexity: 20.72,
      decodeTokensPerSecond: 100,
      prefillTokensPerSecond: 900,
      timeToFirstTokenMs: 12.5,
      modelBytes: 2 ** 21,
      sparsity: 0,
    });
    const md = comparisonMarkdown([dense, pruned]);
    expect(md.split('\n')[0]).toBe(
      '| model | sparsity % | perplexity | model MiB | prefill tok/s | decode tok/s | first token ms | nextsent acc | nextsent acc_norm |',
    );
    expect(md).toContain('| dense | 0.0 | 20.72 | 2.00 | 900 | 100.0 | 12.5 | 0.5000 | 0.6000 |');
    expect(md).toContain('| wanda <50%> |  |  |  |  |  |  | 0.4000 | 0.5000 |');
    const svg = comparisonChart([dense, pruned], 'a & b');
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('a &amp; b');
    expect(svg).toContain('nextsent acc_norm');
    expect(svg).toContain('wanda &lt;50%&gt;'); // labels are escaped
    const html = comparisonHtml([dense, pruned], 'T');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<td>wanda &lt;50%&gt;</td>');
  });

  it('refuses JSON it does not know, and a report with nothing to chart', () => {
    expect(() => addToEntry({ name: 'x' }, { hello: 1 }, 'x.json')).toThrow(
      /x\.json: not an lm-eval results file/,
    );
    expect(() => comparisonChart([{ name: 'x' }], 't')).toThrow(/no figures to chart/);
  });
});
