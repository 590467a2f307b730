/**
 * Perplexity of tiny-lm on its test text after one-shot pruning, every method and pattern of the
 * pruners README, measured in one run:
 *
 *   node tooling/tiny-lm/dist/quality.js [--model DIR] [--calib-windows 32] [--out bench-results/pruning-quality.json]
 *
 * Calibration: `--calib-windows` windows of 128 tokens from tiny-lm/calibration.txt. Evaluation:
 * the SparseGPT protocol (windows of 128 tokens) over tiny-lm/test.txt.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tensor } from '@sparsekit/core';
import { perplexity } from '@sparsekit/eval-harness';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { essentialSparsity, type PruneModelOptions, pruneModel } from '@sparsekit/pruners';
import { createWasmBackend } from '@sparsekit/sparse-formats';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const calibWindows = Number(option('calib-windows', '32'));
const outPath = option('out', join('bench-results', 'pruning-quality.json'));
const dir = option('model', tinyLmPath());
// The evaluation and calibration text ship with the bundled model (the same split for any retraining).
const testText = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8');
const calibText = readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8');
const backend = await createWasmBackend();

type Config = { label: string; options?: Omit<PruneModelOptions, 'onProgress'> };
const configs: Config[] = [{ label: 'dense' }];
for (const method of ['magnitude', 'wanda', 'sparsegpt'] as const) {
  configs.push({ label: `${method} 50%`, options: { method, sparsity: 0.5 } });
  configs.push({ label: `${method} 4:8`, options: { method, n: 4, m: 8 } });
  configs.push({ label: `${method} 2:4`, options: { method, n: 2, m: 4 } });
}
for (const method of ['wanda', 'sparsegpt'] as const) {
  for (const s of [0.6, 0.7, 0.8])
    configs.push({ label: `${method} ${s * 100}%`, options: { method, sparsity: s } });
}

const rows: Array<Record<string, unknown>> = [];
for (const config of configs) {
  const { model, tokenizer } = await loadHfModel(dir, { kernel: backend });
  const calibIds = tokenizer!.encode(calibText);
  const batches: Tensor<'i32'>[] = [];
  for (let w = 0; w < calibWindows && (w + 1) * 128 <= calibIds.length; w++) {
    batches.push(new Tensor('i32', [1, 128], Int32Array.from(calibIds.slice(w * 128, (w + 1) * 128))));
  }
  let report: Awaited<ReturnType<typeof pruneModel>> | undefined;
  if (config.options !== undefined) report = await pruneModel(model, batches, config.options);
  const ppl = await perplexity(model, tokenizer!, testText, { maxLength: 128 });
  const perLayer =
    report === undefined ? 0 : report.layers.reduce((s, l) => s + l.seconds, 0) / report.layers.length;
  rows.push({
    config: config.label,
    sparsity: report?.sparsity ?? 0,
    perplexity: ppl.perplexity,
    pruneSeconds: report?.seconds ?? 0,
    secondsPerLayer: perLayer,
    protocol: ppl.protocol,
  });
  console.log(
    `${config.label.padEnd(16)} sparsity ${((report?.sparsity ?? 0) * 100).toFixed(1).padStart(5)}%  ppl ${ppl.perplexity.toFixed(2).padStart(8)}  prune ${(report?.seconds ?? 0).toFixed(1)} s (${(perLayer * 1000).toFixed(0)} ms/layer)`,
  );
}
// Essential sparsity: one-shot magnitude (one threshold per layer) at rising sparsity.
const sweep = await essentialSparsity([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], async (s) => {
  const { model, tokenizer } = await loadHfModel(dir, { kernel: backend });
  if (s > 0) await pruneModel(model, [], { method: 'magnitude', sparsity: s });
  return (await perplexity(model, tokenizer!, testText, { maxLength: 128 })).perplexity;
});
console.log(
  `essential sparsity (magnitude, within 5% of dense perplexity): ${sweep.essential}; knee at ${sweep.knee}; ` +
    sweep.points.map((p) => `${p.sparsity}: ${p.value.toFixed(1)}`).join(', '),
);
await backend.dispose();
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(
  `${outPath}.tmp`,
  `${JSON.stringify({ date: new Date().toISOString(), calibWindows, rows, essentialSparsity: sweep }, null, 2)}\n`,
);
renameSync(`${outPath}.tmp`, outPath);
console.log(`wrote ${outPath}`);
