/**
 * Pruning during fine-tuning against one-shot pruning on tiny-lm, and recovery after one-shot
 * pruning, all through the tfjs twin; test perplexity and the sparsity counted from the weights:
 *
 *   node tooling/tiny-lm/dist/sparse-finetune.js [--steps 100] [--lr 1e-3] [--only REGEX]
 *     [--dir tooling/tiny-lm/results/sparse-finetune]
 *
 * Rows: the bundled model; the same fine-tuning without pruning (control: the bundled model has seen
 * part of its training data only, so extra steps alone lower its perplexity); one-shot Wanda and
 * SparseGPT at 50% and 2:4 (32 calibration windows of 128 tokens, as the pruners table); gradual
 * magnitude pruning to 50% during fine-tuning (Zhu-Gupta cubic PolynomialDecay 0 -> 0.5 over the
 * first 60% of the steps, every steps/15); 2:4 trained dynamically with SR-STE (lambda 2e-4); and
 * after one-shot Wanda 50% / SparseGPT 2:4: fine-tuning with the mask kept, PERP (only the norm
 * gains train; tiny-lm has no biases) and SquareHead distillation from the dense model (cross-entropy
 * + logit KL + the SquareHead feature loss on every block's output, weights 1, 1, 1).
 *
 * Every fine-tuning run: `--steps` steps of 16 x 128 tokens from tiny-lm's training split, Adam
 * (0.9, 0.95) at --lr after 20 warm-up steps, cosine to 10%, gradient norm clipped at 1. Evaluation:
 * the SparseGPT protocol over tiny-lm/test.txt (as the one-shot pruning table). Each row is written
 * to its own JSON file in --dir (a rerun with --only replaces those rows), then the Markdown table of
 * every row there (table.md).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { numberOption, option, writeJsonAtomic } from '@sparsekit/bench';
import { loadTfjs } from '@sparsekit/core';
import { calibrationWindows, perplexity } from '@sparsekit/eval-harness';
import { backendRef, type Linear, TransformerLM } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { LlamaTwin } from '@sparsekit/models/tfjs';
import { PolynomialDecay, type PruneModelOptions, pruneModel, zeroShare } from '@sparsekit/pruners';
import { logitDistillationLoss, squareHeadLoss, VariablePruner } from '@sparsekit/pruners/tfjs';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import type * as TF from '@tensorflow/tfjs-core';
import { fineTuneTwin, trainingTokens } from './fine-tune.js';

const steps = numberOption('steps', 100);
const lr = numberOption('lr', 1e-3);
const only = new RegExp(option('only', '.'));
const dir = option('dir', join('tooling', 'tiny-lm', 'results', 'sparse-finetune'));
const seqLen = 128;

const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const wasm = await createWasmBackend();
const testText = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8');
const calibText = readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8');
const bundled = await loadHfModel(tinyLmPath(), { backend: wasm });
const tokenizer = bundled.tokenizer!;
const config = bundled.config;
const calibration = calibrationWindows(tokenizer.encode(calibText), {
  samples: 32,
  seqLen,
  mode: 'consecutive',
});
const { tf } = await loadTfjs();

type OneShot = Omit<PruneModelOptions, 'onProgress'>;
type Recovery = 'mask' | 'perp' | 'squarehead';
interface Row {
  label: string;
  oneShot?: OneShot;
  train?: 'dense' | 'gradual' | 'srste' | Recovery;
}
const wanda50: OneShot = { method: 'wanda', sparsity: 0.5 };
const sparsegpt24: OneShot = { method: 'sparsegpt', n: 2, m: 4 };
const rows: Row[] = [
  { label: 'dense (bundled)' },
  { label: `dense, fine-tuned (control)`, train: 'dense' },
  { label: 'wanda 50% one-shot', oneShot: wanda50 },
  { label: 'sparsegpt 50% one-shot', oneShot: { method: 'sparsegpt', sparsity: 0.5 } },
  { label: 'wanda 2:4 one-shot', oneShot: { method: 'wanda', n: 2, m: 4 } },
  { label: 'sparsegpt 2:4 one-shot', oneShot: sparsegpt24 },
  { label: 'gradual magnitude 50% during fine-tuning', train: 'gradual' },
  { label: '2:4 SR-STE during fine-tuning', train: 'srste' },
  { label: 'wanda 50% + fine-tuning (mask kept)', oneShot: wanda50, train: 'mask' },
  { label: 'wanda 50% + PERP (norms only)', oneShot: wanda50, train: 'perp' },
  { label: 'wanda 50% + SquareHead', oneShot: wanda50, train: 'squarehead' },
  { label: 'sparsegpt 2:4 + fine-tuning (mask kept)', oneShot: sparsegpt24, train: 'mask' },
  { label: 'sparsegpt 2:4 + PERP (norms only)', oneShot: sparsegpt24, train: 'perp' },
  { label: 'sparsegpt 2:4 + SquareHead', oneShot: sparsegpt24, train: 'squarehead' },
];

const chosen = rows.filter((r) => only.test(r.label));
const train = chosen.some((r) => r.train !== undefined) ? trainingTokens(tokenizer) : new Int32Array(0);
if (train.length > 0) console.log(`training tokens: ${train.length} (${elapsed().toFixed(0)} s)`);

/** The twin's block matrices (q, k, v, o, gate, up, down): what one-shot pruning prunes. */
const blockMatrices = (twin: LlamaTwin) => twin.variables().filter((v, i) => v.rank === 2 && i > 0);
/** Zeros / size over every block linear layer of a runtime model, counted from its weights. */
function blockSparsity(model: TransformerLM): number {
  const weights = model.params.blocks.flatMap((b) => {
    const mlp = b.mlp as { gate?: Linear; up: Linear; down: Linear };
    return [b.q, b.k, b.v, b.o, mlp.gate, mlp.up, mlp.down].flatMap((l) =>
      l === undefined ? [] : [(l as Linear).getWeight().data],
    );
  });
  return zeroShare(weights);
}

function fineTune(row: Row, twin: LlamaTwin): void {
  const matrices = blockMatrices(twin);
  let pruner: VariablePruner | undefined;
  let trainable: TF.Variable[] | undefined;
  let loss: ((x: TF.Tensor2D, y: TF.Tensor2D) => TF.Scalar) | undefined;
  let teacher: LlamaTwin | undefined;
  if (row.train === 'gradual') {
    const frequency = Math.max(1, Math.round(steps / 15));
    const end = Math.round(0.6 * steps);
    pruner = new VariablePruner(matrices, {
      pruningSchedule: new PolynomialDecay(0, 0.5, 0, end - (end % frequency), 3, frequency),
    });
  } else if (row.train === 'srste') {
    pruner = new VariablePruner(matrices, {
      nm: [2, 4],
      nmTraining: { method: 'srste', learningRate: lr, lambda: 2e-4 },
    });
  } else if (row.train === 'mask' || row.train === 'squarehead') {
    pruner = VariablePruner.keepingZeros(matrices);
  } else if (row.train === 'perp') {
    trainable = twin.variables().filter((v) => v.rank === 1);
  }
  if (row.train === 'squarehead') {
    teacher = LlamaTwin.fromParams(tf, config, bundled.model.params);
    const t = teacher;
    loss = (x, y) => {
      // (Inside the gradient's scope, which frees every intermediate; the teacher's weights get no gradient.)
      const teacherHidden: TF.Tensor[] = [];
      const teacherLogits = t.logits(x, undefined, undefined, teacherHidden);
      const hidden: TF.Tensor[] = [];
      const logits = twin.logits(x, undefined, undefined, hidden);
      const labels = tf.cast(tf.oneHot(tf.reshape(y, [-1]), logits.shape[1]), 'float32');
      const ce = tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(logits)), -1)));
      return tf.addN([
        ce,
        logitDistillationLoss(logits, teacherLogits),
        squareHeadLoss(hidden, teacherHidden),
      ]) as TF.Scalar;
    };
  }
  fineTuneTwin({
    tf,
    twin,
    train,
    steps,
    lr,
    schedule: 'cosine',
    ...(trainable === undefined ? {} : { trainable }),
    ...(loss === undefined ? {} : { loss }),
    ...(pruner === undefined ? {} : { beforeStep: () => pruner.beforeStep() }),
    label: `${row.label}: `,
  });
  pruner?.apply();
  teacher?.dispose();
}

mkdirSync(dir, { recursive: true });
const slug = (label: string) =>
  label
    .replace(/[^a-z0-9]+/gi, '-')
    .replace(/^-|-$/g, '')
    .toLowerCase();
for (const row of chosen) {
  const t0 = elapsed();
  const { model } = await loadHfModel(tinyLmPath(), { backend: wasm });
  let oneShotSeconds = 0;
  if (row.oneShot !== undefined) {
    const report = await pruneModel(model, calibration, {
      ...row.oneShot,
      reconstructionError: false,
      backend: wasm,
    });
    oneShotSeconds = report.seconds;
  }
  let evaluated: TransformerLM = model;
  if (row.train !== undefined) {
    const twin = LlamaTwin.fromParams(tf, config, model.params);
    fineTune(row, twin);
    const backends = backendRef(wasm);
    evaluated = new TransformerLM(config, twin.toParams(backends), backends);
    twin.dispose();
  }
  const ppl = (await perplexity(evaluated, tokenizer, testText, { maxLength: seqLen })).perplexity;
  const sparsity = blockSparsity(evaluated);
  const result = {
    label: row.label,
    order: rows.indexOf(row),
    ...(row.oneShot === undefined ? {} : { oneShot: row.oneShot }),
    ...(row.train === undefined ? {} : { train: row.train, steps, lr }),
    sparsity,
    perplexity: ppl,
    oneShotSeconds,
    seconds: elapsed() - t0,
    date: new Date().toISOString(),
  };
  writeJsonAtomic(join(dir, `${slug(row.label)}.json`), result);
  console.log(
    `${row.label.padEnd(44)} sparsity ${(100 * sparsity).toFixed(1).padStart(5)}%  ppl ${ppl.toFixed(2).padStart(8)}  (${result.seconds.toFixed(0)} s)`,
  );
}
await wasm.dispose();

// The table of every row in the folder.
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .map(
    (f) =>
      JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
        label: string;
        order: number;
        sparsity: number;
        perplexity: number;
        steps?: number;
      },
  )
  .sort((a, b) => a.order - b.order);
const md = [
  '| model | block sparsity | test perplexity | fine-tuning steps |',
  '|---|--:|--:|--:|',
  ...all.map(
    (r) =>
      `| ${r.label} | ${(100 * r.sparsity).toFixed(1)}% | ${r.perplexity.toFixed(2)} | ${r.steps ?? 0} |`,
  ),
].join('\n');
const mdPath = join(dir, 'table.md');
writeFileSync(`${mdPath}.tmp`, `${md}\n`);
renameSync(`${mdPath}.tmp`, mdPath);
console.log(md);
