/**
 * The perplexity cost of pruning in blocks: tiny-lm after one-shot magnitude, Wanda and SparseGPT at
 * 50%, 70% and 90%, unstructured and in blocks of 1 x 4 / 8 / 16 inputs and 4 / 8 / 16 x 1 outputs,
 * measured in one run:
 *
 *   node tooling/tiny-lm/dist/block-quality.js [--calib-windows 64] [--only REGEX]
 *     [--out tooling/tiny-lm/results/block-quality.json]
 *
 * Same protocol as quality.js (calibration: `--calib-windows` consecutive windows of 128 tokens of
 * calibration.txt; evaluation: the SparseGPT protocol over test.txt). The JSON is rewritten after
 * every row, and a Markdown table (one row per method and sparsity, one column per block shape) is
 * written next to it at the end.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { option, writeJsonAtomic, writeTextAtomic } from '@sparsekit/bench';
import { calibrationWindows, perplexity } from '@sparsekit/eval-harness';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { type BlockShape, blockText, pruneModel } from '@sparsekit/pruners';
import { createWasmBackend } from '@sparsekit/sparse-formats';

const calibWindows = Number(option('calib-windows', '64'));
const outPath = option('out', join('tooling', 'tiny-lm', 'results', 'block-quality.json'));
const only = new RegExp(option('only', '.'));
const dir = tinyLmPath();
const testText = readFileSync(join(dir, 'test.txt'), 'utf8');
const calibText = readFileSync(join(dir, 'calibration.txt'), 'utf8');
const backend = await createWasmBackend();

const METHODS = ['magnitude', 'wanda', 'sparsegpt'] as const;
const SPARSITIES = [0.5, 0.7, 0.9];
const SHAPES: (BlockShape | undefined)[] = [
  undefined,
  { rows: 1, cols: 4 },
  { rows: 1, cols: 8 },
  { rows: 1, cols: 16 },
  { rows: 4, cols: 1 },
  { rows: 8, cols: 1 },
  { rows: 16, cols: 1 },
];
const shapeLabel = (b: BlockShape | undefined) => (b === undefined ? 'unstructured' : blockText(b));

interface Row {
  method: string;
  target: number;
  blocks: string;
  sparsity: number;
  perplexity: number;
  seconds: number;
}
const rows: Row[] = [];
const started = new Date().toISOString();
const save = () => writeJsonAtomic(outPath, { date: started, calibWindows, rows });

const { model: denseModel, tokenizer } = await loadHfModel(dir, { backend });
{
  const dense = await perplexity(denseModel, tokenizer!, testText, { maxLength: 128 });
  rows.push({
    method: 'dense',
    target: 0,
    blocks: '-',
    sparsity: 0,
    perplexity: dense.perplexity,
    seconds: 0,
  });
  console.log(`dense  ppl ${dense.perplexity.toFixed(2)}`);
}
// The same calibration windows for every configuration (tokenized once).
const batches = calibrationWindows(tokenizer!.encode(calibText), {
  samples: calibWindows,
  seqLen: 128,
  mode: 'consecutive',
});
for (const method of METHODS) {
  for (const target of SPARSITIES) {
    for (const shape of SHAPES) {
      const label = `${method} ${target} ${shapeLabel(shape)}`;
      if (!only.test(label)) continue;
      const { model } = await loadHfModel(dir, { backend, tokenizer: false });
      const report = await pruneModel(model, method === 'magnitude' ? [] : batches, {
        method,
        sparsity: target,
        ...(shape === undefined ? {} : { blocks: shape }),
        reconstructionError: false,
        backend,
      });
      const ppl = await perplexity(model, tokenizer!, testText, { maxLength: 128 });
      rows.push({
        method,
        target,
        blocks: shapeLabel(shape),
        sparsity: report.sparsity,
        perplexity: ppl.perplexity,
        seconds: report.seconds,
      });
      save();
      console.log(
        `${label.padEnd(30)} sparsity ${(100 * report.sparsity).toFixed(1).padStart(5)}%  ppl ${ppl.perplexity.toFixed(2).padStart(9)}  ${report.seconds.toFixed(1)} s`,
      );
    }
  }
}
await backend.dispose();
save();

const cell = (method: string, target: number, blocks: string) => {
  const r = rows.find((x) => x.method === method && x.target === target && x.blocks === blocks);
  return r === undefined ? '' : r.perplexity < 1000 ? r.perplexity.toFixed(2) : r.perplexity.toExponential(1);
};
const labels = SHAPES.map(shapeLabel);
const md = [
  `dense: ${rows[0]!.perplexity.toFixed(2)}`,
  '',
  `| method | sparsity | ${labels.join(' | ')} |`,
  `|---|--:|${labels.map(() => '--:').join('|')}|`,
  ...METHODS.flatMap((m) =>
    SPARSITIES.map(
      (t) => `| ${m} | ${Math.round(t * 100)}% | ${labels.map((b) => cell(m, t, b)).join(' | ')} |`,
    ),
  ),
].join('\n');
writeTextAtomic(outPath.replace(/\.json$/, '.md'), `${md}\n`);
console.log(md);
console.log(`wrote ${outPath}`);
