// Training Deja Vu predictors with TensorFlow.js (sparse_predictor/trainer_mlp.py): weighted BCE
// (w = mean(y) + 0.005, weight = y (1 - w) + w), AdamW, batches of 1024, up to 20 epochs, early
// stopping with patience 5 on the held-out split, the best epoch kept. The two-layer network's
// gradients are written out (matMuls on explicit transposes: on tfjs-wasm a matMul with transpose
// flags is several times slower), so no tape is recorded.
import {
  InvalidArgumentError,
  loadTfjs,
  type ProgressOptions,
  Rng,
  reportProgress,
  type TfjsBackendName,
  transposeValues,
} from '@sparsekit/core';
import type * as TF from '@tensorflow/tfjs-core';
import { SiteHistogram } from './histogram.js';
import {
  activeLabels,
  checkLabelRule,
  type LabelRule,
  MetricCounts,
  MlpPredictor,
  type PredictorMetrics,
} from './predictor.js';
import { type BlockPredictorData, type PredictorData, splitRows } from './predictor-data.js';

/**
 * How labels are chosen, before training: a `LabelRule`, a magnitude threshold per block, or
 * `sparsity`: |hidden| > the TEAL threshold at that sparsity of the block's training rows
 * (`SiteHistogram`: their exact quantile for small data). 'auto' (default): gated MLPs
 * `{ rule: 'sparsity', sparsity: 0.5 }`, plain ones `{ rule: 'positive' }` (the reference's fc1 > 0).
 */
export type LabelChoice =
  | LabelRule
  | { rule: 'magnitude'; threshold: (block: number) => number }
  | { rule: 'sparsity'; sparsity: number }
  | 'auto';

export interface TrainPredictorOptions extends ProgressOptions {
  /** D, the low rank (default `defaultRank(hiddenSize)`: min(1000, hiddenSize / 8 to a multiple of 8)). */
  rank?: number | ((block: BlockPredictorData) => number);
  label?: LabelChoice;
  /** Firing probability of the trained predictors (default 0.5). */
  threshold?: number;
  /**
   * AdamW step size (default 1e-2). The reference's 1e-4 is for 400k rows (390 steps an epoch); on
   * the tiny-lm's 7k rows (7 steps an epoch) 1e-3 was still far from converged after 20 epochs
   * (block 1, D = 96: validation loss 0.165 against 0.100 at 1e-2), and 3e-2 was no better.
   */
  learningRate?: number;
  /** AdamW's decoupled weight decay (default 0.01). */
  weightDecay?: number;
  /** Rows per step (default 1024). */
  batchSize?: number;
  /** At most this many passes over the training rows (default 20). */
  epochs?: number;
  /** Stop after this many epochs without a better validation score (default 5). */
  patience?: number;
  /**
   * The validation score that picks the kept epoch and stops early: 'loss' (default: the weighted
   * BCE, lower is better) or 'recall' (the reference's: higher is better, and it stops above 0.99).
   */
  monitor?: 'loss' | 'recall';
  /** Seed of the initial weights and of the batch order (default 0). */
  seed?: number;
  /** A TensorFlow.js backend to prefer (core's `loadTfjs`; default: the best installed). */
  backend?: TfjsBackendName;
}

/** One epoch's validation scores (epoch 0: before training). */
export interface EpochScores {
  epoch: number;
  /** Mean weighted BCE over the epoch's training steps (NaN for epoch 0). */
  trainLoss: number;
  validationLoss: number;
  recall: number;
  classifierSparsity: number;
}

export interface PredictorTrainReport {
  block: number;
  rank: number;
  label: LabelRule;
  trainRows: number;
  validationRows: number;
  /** Epochs run, and the one kept (0: the initial weights were never beaten). */
  epochs: number;
  bestEpoch: number;
  stopped: 'epochs' | 'patience' | 'recall';
  history: EpochScores[];
  /** The kept predictor's metrics on the validation rows (its own inference code, at its threshold). */
  metrics: PredictorMetrics;
  seconds: number;
}

export interface TrainedPredictors {
  predictors: MlpPredictor[];
  reports: PredictorTrainReport[];
  /** The TensorFlow.js backend that trained them. */
  backend: TfjsBackendName;
}

/**
 * The default low rank D for an MLP of `hiddenSize` channels: min(1000, hiddenSize / 8, to a
 * multiple of 8, at least 8). The reference's 1000 for OPT-175B (hiddenSize 49152) is the cap; a
 * predictor costs D (d + hiddenSize) multiply-adds a token, so on the tiny-lm (d 128, hiddenSize
 * 384) D = 48 is 17% of its gated MLP's 3 d hiddenSize, and D = 96 (hiddenSize / 4) 33% for
 * held-out recall at most 0.02 higher and the same perplexity.
 */
export function defaultRank(hiddenSize: number): number {
  return Math.min(1000, Math.max(8, Math.round(hiddenSize / 64) * 8));
}

function positive(name: string, v: number, integer: boolean): number {
  if (!(v > 0 && Number.isFinite(v) && (!integer || Number.isInteger(v))))
    throw new InvalidArgumentError(name, v, `must be a positive ${integer ? 'integer' : 'number'}`);
  return v;
}

/** The label rule of one block, resolving 'auto', 'sparsity' and per-block thresholds. */
function resolveLabel(choice: LabelChoice, d: BlockPredictorData): LabelRule {
  const c: LabelChoice =
    choice === 'auto' ? (d.gated ? { rule: 'sparsity', sparsity: 0.5 } : { rule: 'positive' }) : choice;
  if (c.rule === 'sparsity') {
    if (!(c.sparsity >= 0 && c.sparsity < 1))
      throw new InvalidArgumentError('label sparsity', c.sparsity, 'must be in [0, 1)');
    const h = new SiteHistogram();
    for (const rows of d.train.batches(Math.max(1, Math.min(4096, Math.floor(d.train.capacityRows / 2)))))
      h.add(splitRows(rows, d.inputSize, d.hiddenSize).hidden);
    return { rule: 'magnitude', threshold: h.threshold(c.sparsity), sparsity: c.sparsity };
  }
  if (c.rule === 'magnitude' && typeof c.threshold === 'function')
    return checkLabelRule({ rule: 'magnitude', threshold: c.threshold(d.block) }, d.hiddenSize);
  return checkLabelRule(c as LabelRule, d.hiddenSize, `block ${d.block}'s label rule`);
}

/**
 * Train one predictor per block of `data` (collectPredictorData). Each block's network starts from
 * torch's Linear initialisation (uniform in +-1/sqrt(fan_in)) drawn from the seed, trains on its
 * training rows in seeded shuffled batches, and keeps the epoch with the best validation score.
 */
export async function trainPredictors(
  data: PredictorData,
  options: TrainPredictorOptions = {},
): Promise<TrainedPredictors> {
  const lr = positive('learningRate', options.learningRate ?? 1e-2, false);
  const weightDecay = options.weightDecay ?? 0.01;
  if (!(weightDecay >= 0 && Number.isFinite(weightDecay)))
    throw new InvalidArgumentError('weightDecay', weightDecay, 'must be a finite number >= 0');
  const batchSize = positive('batchSize', options.batchSize ?? 1024, true);
  const epochs = positive('epochs', options.epochs ?? 20, true);
  const patience = positive('patience', options.patience ?? 5, true);
  const monitor = options.monitor ?? 'loss';
  if (monitor !== 'loss' && monitor !== 'recall')
    throw new InvalidArgumentError('monitor', monitor, "must be 'loss' or 'recall'");
  const threshold = options.threshold ?? 0.5;
  if (!(threshold >= 0 && threshold <= 1))
    throw new InvalidArgumentError('threshold', threshold, 'must be in [0, 1]');
  const seed = options.seed ?? 0;
  const { tf, backend } = await loadTfjs(options.backend);
  const predictors: MlpPredictor[] = [];
  const reports: PredictorTrainReport[] = [];
  for (const [i, d] of data.blocks.entries()) {
    if (d.train.rows === 0)
      throw new InvalidArgumentError(`block ${d.block}'s training rows`, 0, 'must not be empty');
    if (d.validation.rows === 0)
      throw new InvalidArgumentError(
        `block ${d.block}'s validation rows`,
        0,
        'must not be empty: collect with validation > 0',
      );
    const rank = positive(
      'rank',
      typeof options.rank === 'function' ? options.rank(d) : (options.rank ?? defaultRank(d.hiddenSize)),
      true,
    );
    const label = resolveLabel(options.label ?? 'auto', d);
    const trained = trainBlock(tf, d, {
      rank,
      label,
      threshold,
      lr,
      weightDecay,
      batchSize,
      epochs,
      patience,
      monitor,
      seed: seed + 7919 * d.block,
      progress: options,
    });
    predictors.push(trained.predictor);
    reports.push(trained.report);
    reportProgress(options, {
      stage: 'train-predictors',
      current: i + 1,
      total: data.blocks.length,
      unit: 'block',
      message: `block ${d.block}: recall ${trained.report.metrics.recall.toFixed(3)}`,
    });
  }
  return { predictors, reports, backend };
}

interface BlockSettings {
  rank: number;
  label: LabelRule;
  threshold: number;
  lr: number;
  weightDecay: number;
  batchSize: number;
  epochs: number;
  patience: number;
  monitor: 'loss' | 'recall';
  seed: number;
  progress: ProgressOptions;
}

/** AdamW (torch's: decoupled decay p -= lr wd p, bias-corrected moments, eps 1e-8) on one variable. */
class AdamW {
  private readonly m: TF.Variable;
  private readonly v: TF.Variable;
  private t = 0;

  constructor(
    private readonly tf: typeof TF,
    private readonly p: TF.Variable,
    private readonly lr: number,
    private readonly wd: number,
  ) {
    this.m = tf.variable(tf.zerosLike(p));
    this.v = tf.variable(tf.zerosLike(p));
  }

  step(g: TF.Tensor): void {
    const { tf, p, m, v, lr, wd } = this;
    this.t++;
    const b1 = 0.9;
    const b2 = 0.999;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    tf.tidy(() => {
      m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
      v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
      const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), 1e-8));
      p.assign(tf.sub(tf.mul(p, 1 - lr * wd), tf.mul(update, lr)));
    });
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
  }
}

function trainBlock(
  tf: typeof TF,
  d: BlockPredictorData,
  s: BlockSettings,
): { predictor: MlpPredictor; report: PredictorTrainReport } {
  const started = performance.now();
  const { inputSize, hiddenSize } = d;
  const { rank } = s;
  const rng = new Rng(s.seed);
  // Kept transposed, [in, out], so the forward pass is two plain matMuls.
  const a0 = rng.uniformArray(inputSize * rank, -1 / Math.sqrt(inputSize), 1 / Math.sqrt(inputSize));
  const b0 = rng.uniformArray(rank * hiddenSize, -1 / Math.sqrt(rank), 1 / Math.sqrt(rank));
  const A = tf.variable(tf.tensor2d(a0, [inputSize, rank]));
  const B = tf.variable(tf.tensor2d(b0, [rank, hiddenSize]));
  const optA = new AdamW(tf, A, s.lr, s.weightDecay);
  const optB = new AdamW(tf, B, s.lr, s.weightDecay);
  const logitThreshold = Math.log(s.threshold / (1 - s.threshold));
  const labels = new Float32Array(s.batchSize * hiddenSize);
  const labelBytes = new Uint8Array(s.batchSize * hiddenSize);

  /** x [n, inputSize] and y [n, hiddenSize] of a batch of store rows. */
  const tensors = (rows: Parameters<typeof splitRows>[0]) => {
    const { inputs, hidden, tokens } = splitRows(rows, inputSize, hiddenSize);
    const y = activeLabels(hidden, hiddenSize, s.label, labelBytes.subarray(0, hidden.length));
    const yf = labels.subarray(0, hidden.length);
    for (let i = 0; i < y.length; i++) yf[i] = y[i]!;
    return { x: tf.tensor2d(inputs, [tokens, inputSize]), y: tf.tensor2d(yf, [tokens, hiddenSize]) };
  };
  /**
   * The reference's loss of probabilities p against labels y: torch's binary_cross_entropy (logs
   * clamped at -100) weighted by y (1 - w) + w, w = mean(y) + 0.005; and those weights.
   */
  const weighted = (p: TF.Tensor, y: TF.Tensor) => {
    const w = tf.add(tf.mean(y), 0.005);
    const weight = tf.add(tf.mul(y, tf.sub(1, w)), w); // 1 for active channels, w for inactive ones
    // -(y log p + (1 - y) log(1 - p)) = -log(q), q = p where y = 1 and 1 - p where y = 0: one log.
    const q = tf.add(tf.sub(1, y), tf.mul(p, tf.sub(tf.mul(y, 2), 1)));
    return { weight, loss: tf.neg(tf.mean(tf.mul(weight, tf.maximum(tf.log(q), -100)))) };
  };

  const evaluate = () => {
    let loss = 0;
    let batches = 0;
    let tp = 0;
    let predicted = 0;
    let actual = 0;
    let values = 0;
    for (const rows of d.validation.batches(s.batchSize)) {
      const [l, t, p, a, n] = tf.tidy(() => {
        const { x, y } = tensors(rows);
        const z = tf.matMul(tf.matMul(x, A), B);
        const fire = tf.cast(tf.greaterEqual(z, logitThreshold), 'float32');
        return [
          weighted(tf.sigmoid(z), y).loss,
          tf.sum(tf.mul(fire, y)),
          tf.sum(fire),
          tf.sum(y),
          tf.scalar(y.size),
        ];
      });
      loss += l!.dataSync()[0]!;
      tp += t!.dataSync()[0]!;
      predicted += p!.dataSync()[0]!;
      actual += a!.dataSync()[0]!;
      values += n!.dataSync()[0]!;
      tf.dispose([l!, t!, p!, a!, n!]);
      batches++;
    }
    return {
      validationLoss: loss / batches,
      recall: actual === 0 ? 1 : tp / actual,
      classifierSparsity: 1 - predicted / values,
    };
  };

  const history: EpochScores[] = [{ epoch: 0, trainLoss: Number.NaN, ...evaluate() }];
  const score = (e: EpochScores) => (s.monitor === 'loss' ? -e.validationLoss : e.recall);
  let best = {
    epoch: 0,
    score: score(history[0]!),
    a: A.dataSync().slice() as Float32Array,
    b: B.dataSync().slice() as Float32Array,
  };
  let stopped: PredictorTrainReport['stopped'] = 'epochs';
  let sinceBest = 0;
  let epoch = 0;
  try {
    while (epoch < s.epochs) {
      epoch++;
      let trainLoss = 0;
      let steps = 0;
      for (const rows of d.train.batches(s.batchSize)) {
        const [gA, gB, loss] = tf.tidy(() => {
          const { x, y } = tensors(rows);
          const h = tf.matMul(x, A);
          const z = tf.matMul(h, B);
          const p = tf.sigmoid(z);
          const { weight, loss } = weighted(p, y);
          // d loss / dz of the mean of weight * bce(sigmoid(z), y): weight (p - y) / values.
          const g = tf.mul(weight, tf.mul(tf.sub(p, y), 1 / y.size));
          const gB = tf.matMul(tf.transpose(h), g);
          const gh = tf.matMul(g, tf.transpose(B));
          const gA = tf.matMul(tf.transpose(x), gh);
          return [gA, gB, loss];
        });
        optA.step(gA!);
        optB.step(gB!);
        trainLoss += loss!.dataSync()[0]!;
        tf.dispose([gA!, gB!, loss!]);
        steps++;
        s.progress.signal?.throwIfAborted();
      }
      const scores: EpochScores = { epoch, trainLoss: trainLoss / steps, ...evaluate() };
      history.push(scores);
      reportProgress(s.progress, {
        stage: 'train-predictor',
        current: epoch,
        total: s.epochs,
        unit: 'epoch',
        message: `block ${d.block}: validation loss ${scores.validationLoss.toFixed(4)}, recall ${scores.recall.toFixed(3)}`,
      });
      if (score(scores) > best.score) {
        best = {
          epoch,
          score: score(scores),
          a: A.dataSync().slice() as Float32Array,
          b: B.dataSync().slice() as Float32Array,
        };
        sinceBest = 0;
      } else sinceBest++;
      if (s.monitor === 'recall' && best.score > 0.99) {
        stopped = 'recall';
        break;
      }
      if (sinceBest >= s.patience) {
        stopped = 'patience';
        break;
      }
    }
  } finally {
    optA.dispose();
    optB.dispose();
    A.dispose();
    B.dispose();
  }
  const predictor = new MlpPredictor({
    block: d.block,
    inputSize,
    rank,
    hiddenSize,
    fc1: transposeValues(best.a, inputSize, rank),
    fc2: transposeValues(best.b, rank, hiddenSize),
    threshold: s.threshold,
    label: s.label,
  });
  const counts = new MetricCounts(d.block, hiddenSize);
  for (const rows of d.validation.batches(s.batchSize)) {
    const { inputs, hidden } = splitRows(rows, inputSize, hiddenSize);
    counts.add(predictor.predictMask(inputs), activeLabels(hidden, hiddenSize, s.label));
  }
  return {
    predictor,
    report: {
      block: d.block,
      rank,
      label: s.label,
      trainRows: d.train.rows,
      validationRows: d.validation.rows,
      epochs: epoch,
      bestEpoch: best.epoch,
      stopped,
      history,
      metrics: counts.metrics(),
      seconds: (performance.now() - started) / 1000,
    },
  };
}
