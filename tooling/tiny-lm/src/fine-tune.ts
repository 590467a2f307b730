// Fine-tuning the bundled tiny-lm through its tfjs twin, shared by the scripts that start from the
// bundled weights (relufy.ts, sparse-finetune.ts): its training split tokenized with its own
// tokenizer, and a training loop with hooks for pruning (before each step) and for other losses.
import { type LoadedTfjs, Rng } from '@sparsekit/core';
import type { HfTokenizer } from '@sparsekit/models';
import type { LlamaTwin } from '@sparsekit/models/tfjs';
import type * as TF from '@tensorflow/tfjs-core';
import { loadCorpus, splitCorpus } from './corpus.js';
import { applyClipped, SEED } from './training.js';

type Tf = LoadedTfjs['tf'];

/** The training split of train.ts (same corpus, split and seed), tokenized, <|endoftext|> after each document. */
export function trainingTokens(tokenizer: HfTokenizer): Int32Array {
  const eot = tokenizer.eosTokenId!;
  const ids: number[] = [];
  for (const d of splitCorpus(loadCorpus(), SEED).train) {
    for (const id of tokenizer.encode(d.text)) ids.push(id);
    ids.push(eot);
  }
  return Int32Array.from(ids);
}

export interface FineTuneOptions {
  tf: Tf;
  twin: LlamaTwin;
  train: Int32Array;
  steps: number;
  /** Peak learning rate of Adam (0.9, 0.95). */
  lr: number;
  /** Linear warm-up steps (default 20), then the learning rate `schedule` gives. */
  warmup?: number;
  /** 'constant' (default) or 'cosine' (down to 10% of lr at the last step). */
  schedule?: 'constant' | 'cosine';
  batchSize?: number;
  seqLen?: number;
  /** An optimizer to continue with (default a fresh Adam (0.9, 0.95), disposed at the end). */
  optimizer?: TF.Optimizer;
  /** Steps already taken by earlier calls (the warm-up and schedule continue from there; default 0). */
  firstStep?: number;
  /** The rng drawing the windows (default seeded with SEED); share one to continue a sequence over calls. */
  rng?: Rng;
  /** The variables the optimizer updates (default all the twin's). */
  trainable?: TF.Variable[];
  /** The loss of one batch (default the twin's cross-entropy); `step` counts from 0. */
  loss?: (inputs: TF.Tensor2D, targets: TF.Tensor2D, step: number) => TF.Scalar;
  /** Runs before each step's forward pass (pruning's `beforeStep`). */
  beforeStep?: (step: number) => void;
  /** Steps between progress lines (default 50). */
  logEvery?: number;
  /** A prefix of the progress lines. */
  label?: string;
}

/** The learning rate at `step` (warm-up, then constant or cosine). */
export function learningRateAt(o: FineTuneOptions, step: number): number {
  const warmup = o.warmup ?? 20;
  const warm = Math.min(1, (step + 1) / warmup);
  if (o.schedule !== 'cosine' || step < warmup) return o.lr * warm;
  const p = (step - warmup) / Math.max(1, o.steps - 1 - warmup);
  return o.lr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * p)));
}

/** Adam on random windows of `train`, the global gradient norm clipped at 1. Returns the last step's loss. */
export function fineTuneTwin(o: FineTuneOptions): number {
  const { tf, twin, train } = o;
  const batchSize = o.batchSize ?? 16;
  const seqLen = o.seqLen ?? 128;
  const rng = o.rng ?? new Rng(SEED);
  const trainable = o.trainable ?? twin.variables();
  const lossOf = o.loss ?? ((x, y) => twin.loss(x, y));
  const optimizer = o.optimizer ?? tf.train.adam(o.lr, 0.9, 0.95, 1e-8);
  const first = o.firstStep ?? 0;
  const started = performance.now();
  let loss = Number.NaN;
  for (let step = 0; step < o.steps; step++) {
    (optimizer as unknown as { learningRate: number }).learningRate = learningRateAt(o, first + step);
    o.beforeStep?.(step);
    const inputs = new Int32Array(batchSize * seqLen);
    const targets = new Int32Array(batchSize * seqLen);
    for (let b = 0; b < batchSize; b++) {
      const s = rng.int(train.length - seqLen - 1);
      inputs.set(train.subarray(s, s + seqLen), b * seqLen);
      targets.set(train.subarray(s + 1, s + seqLen + 1), b * seqLen);
    }
    const x = tf.tensor2d(inputs, [batchSize, seqLen], 'int32');
    const y = tf.tensor2d(targets, [batchSize, seqLen], 'int32');
    const { value, grads } = tf.variableGrads(() => lossOf(x, y, step), trainable);
    applyClipped(tf, optimizer, grads);
    loss = value.dataSync()[0]!;
    tf.dispose([x, y, value, ...Object.values(grads)]);
    if ((step + 1) % (o.logEvery ?? 50) === 0)
      console.log(
        `  ${o.label ?? ''}step ${step + 1}/${o.steps}  loss ${loss.toFixed(3)}  (${((performance.now() - started) / 1000).toFixed(0)} s)`,
      );
  }
  if (o.optimizer === undefined) optimizer.dispose();
  return loss;
}
