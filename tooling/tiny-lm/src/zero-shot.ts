/**
 * Zero-shot accuracy of tiny-lm, dense and after one-shot pruning (the pruners' quality table's
 * magnitude, Wanda and SparseGPT at 50% and 2:4), on the tasks bundled with it, in one run:
 *
 *   node tooling/tiny-lm/dist/zero-shot.js [--calib-windows 64] [--out tooling/tiny-lm/results/zero-shot.json]
 *
 * Calibration as quality.js (consecutive windows of 128 tokens of calibration.txt). Writes the JSON
 * (each configuration's lm-eval results) and a Markdown table next to it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { option, writeJsonAtomic, writeTextAtomic } from '@sparsekit/bench';
import { calibrationWindows, evaluateTasks } from '@sparsekit/eval-harness';
import { loadTask } from '@sparsekit/eval-harness/node';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { type PruneModelOptions, pruneModel } from '@sparsekit/pruners';
import { createWasmBackend } from '@sparsekit/sparse-formats';

const calibWindows = Number(option('calib-windows', '64'));
const outPath = option('out', join('tooling', 'tiny-lm', 'results', 'zero-shot.json'));
const dir = tinyLmPath();
const calibText = readFileSync(join(dir, 'calibration.txt'), 'utf8');
const TASKS = ['tinylm_cloze', 'tinylm_nextsent'];
const tasks = TASKS.map((t) => loadTask(join(dir, 'tasks', `${t}.yaml`)));
const backend = await createWasmBackend();

const configs: { label: string; prune?: Omit<PruneModelOptions, 'onProgress'> }[] = [{ label: 'dense' }];
for (const method of ['magnitude', 'wanda', 'sparsegpt'] as const) {
  configs.push({ label: `${method} 50%`, prune: { method, sparsity: 0.5 } });
  configs.push({ label: `${method} 2:4`, prune: { method, n: 2, m: 4 } });
}

// The same calibration windows for every configuration (tokenized once).
const { tokenizer } = await loadHfModel(dir, { backend });
const batches = calibrationWindows(tokenizer!.encode(calibText), {
  samples: calibWindows,
  seqLen: 128,
  mode: 'consecutive',
});

const rows: Record<string, unknown>[] = [];
for (const c of configs) {
  const { model } = await loadHfModel(dir, { backend, tokenizer: false });
  if (c.prune !== undefined) {
    await pruneModel(model, c.prune.method === 'magnitude' ? [] : batches, {
      ...c.prune,
      reconstructionError: false,
      backend,
    });
  }
  const { taskResults: _, ...results } = await evaluateTasks(model, tokenizer!, tasks, {
    batchSize: 8,
    model: `tiny-lm ${c.label}`,
  });
  rows.push({ config: c.label, results });
  writeJsonAtomic(outPath, { date: new Date().toISOString(), calibWindows, rows });
  const r = results.results;
  console.log(
    `${c.label.padEnd(16)} cloze acc ${Number(r.tinylm_cloze!['acc,none']).toFixed(3)} ppl ${Number(r.tinylm_cloze!['perplexity,none']).toFixed(2)}  nextsent acc ${Number(r.tinylm_nextsent!['acc,none']).toFixed(3)} acc_norm ${Number(r.tinylm_nextsent!['acc_norm,none']).toFixed(3)}`,
  );
}
await backend.dispose();

const fmt = (v: unknown, se: unknown, digits = 3) =>
  `${Number(v).toFixed(digits)} ± ${typeof se === 'number' ? se.toFixed(digits) : String(se)}`;
const md = [
  '| model | cloze acc | cloze perplexity | next sentence acc | next sentence acc_norm |',
  '|---|--:|--:|--:|--:|',
  ...rows.map((row) => {
    const r = (row.results as { results: Record<string, Record<string, unknown>> }).results;
    const cloze = r.tinylm_cloze!;
    const next = r.tinylm_nextsent!;
    return `| ${row.config} | ${fmt(cloze['acc,none'], cloze['acc_stderr,none'])} | ${fmt(cloze['perplexity,none'], cloze['perplexity_stderr,none'], 2)} | ${fmt(next['acc,none'], next['acc_stderr,none'])} | ${fmt(next['acc_norm,none'], next['acc_norm_stderr,none'])} |`;
  }),
].join('\n');
writeTextAtomic(outPath.replace(/\.json$/, '.md'), `${md}\n`);
console.log(md);
console.log(`wrote ${outPath}`);
