// Deja Vu's MLP predictors (FMInference/DejaVu sparse_predictor): per block a low-rank classifier
// Linear(d -> D, no bias) -> Linear(D -> intermediate) that reads the MLP's input and says which
// hidden channels will be active, before gate/up are computed. Inference, labels, metrics and the
// hooks that apply predictions (simulate path) live here; training is predictor-train.ts.
import {
  type HookHandle,
  type Hooks,
  InvalidArgumentError,
  type ProgressOptions,
  ShapeMismatchError,
  type Tensor,
} from '@sparsekit/core';
import type { ApplyOptions } from './apply.js';
import { type HookableLM, runWithHooks } from './sites.js';

/**
 * Which hidden channels (the `mlp.hidden` site: act(fc1) of a plain MLP, act(gate) * up of a gated
 * one) count as active, the labels a predictor learns:
 * - `positive`: hidden > 0, the reference's `fc1 > 0` (exact for ReLU, GELU and SiLU plain MLPs,
 *   whose activation is positive exactly where its input is);
 * - `magnitude`: |hidden| > threshold (TEAL's keep rule at that block's mlp.hidden; `sparsity`
 *   records the target the threshold was calibrated at, when it was);
 * - `top-k`: the k largest |hidden| of each token (ties to the lower channel).
 */
export type LabelRule =
  | { rule: 'positive' }
  | { rule: 'magnitude'; threshold: number; sparsity?: number }
  | { rule: 'top-k'; k: number };

export function checkLabelRule(label: LabelRule, hiddenSize: number, what = 'label rule'): LabelRule {
  switch (label?.rule) {
    case 'positive':
      return { rule: 'positive' };
    case 'magnitude':
      if (!(typeof label.threshold === 'number' && label.threshold >= 0 && Number.isFinite(label.threshold)))
        throw new InvalidArgumentError(`${what} threshold`, label.threshold, 'must be a finite number >= 0');
      if (label.sparsity !== undefined && !(label.sparsity >= 0 && label.sparsity < 1))
        throw new InvalidArgumentError(`${what} sparsity`, label.sparsity, 'must be in [0, 1)');
      return label.sparsity === undefined
        ? { rule: 'magnitude', threshold: label.threshold }
        : { rule: 'magnitude', threshold: label.threshold, sparsity: label.sparsity };
    case 'top-k':
      if (!(Number.isInteger(label.k) && label.k >= 0 && label.k <= hiddenSize))
        throw new InvalidArgumentError(`${what} k`, label.k, `must be an integer in [0, ${hiddenSize}]`);
      return { rule: 'top-k', k: label.k };
    default:
      throw new InvalidArgumentError(
        `${what}`,
        (label as { rule?: unknown } | undefined)?.rule,
        "must be 'positive', 'magnitude' or 'top-k'",
      );
  }
}

/**
 * The labels of `tokens` rows of hidden activations ([tokens, width]) under `rule`: 1 where the
 * channel is active. Written into `out` when given.
 */
export function activeLabels(
  hidden: Float32Array,
  width: number,
  rule: LabelRule,
  out: Uint8Array = new Uint8Array(hidden.length),
): Uint8Array {
  if (hidden.length % width !== 0) throw new ShapeMismatchError([-1, width], [hidden.length], 'hidden rows');
  if (out.length < hidden.length) throw new ShapeMismatchError([hidden.length], [out.length], 'label buffer');
  const n = hidden.length;
  if (rule.rule === 'positive') {
    for (let i = 0; i < n; i++) out[i] = hidden[i]! > 0 ? 1 : 0;
  } else if (rule.rule === 'magnitude') {
    const t = rule.threshold;
    for (let i = 0; i < n; i++) out[i] = Math.abs(hidden[i]!) > t ? 1 : 0;
  } else {
    const k = rule.k;
    const magnitudes = new Float32Array(width);
    for (let base = 0; base < n; base += width) {
      out.fill(0, base, base + width);
      if (k === 0) continue;
      for (let c = 0; c < width; c++) magnitudes[c] = Math.abs(hidden[base + c]!);
      const kth = magnitudes.slice().sort()[width - k]!; // the k-th largest magnitude
      let taken = 0;
      for (let c = 0; c < width; c++) {
        if (magnitudes[c]! > kth) {
          out[base + c] = 1;
          taken++;
        }
      }
      for (let c = 0; c < width && taken < k; c++) {
        if (magnitudes[c] === kth) {
          out[base + c] = 1;
          taken++;
        }
      }
    }
  }
  return out;
}

export interface MlpPredictorInit {
  block: number;
  /** d: the width of the MLP input (the model's hidden size). */
  inputSize: number;
  /** D: the low rank. */
  rank: number;
  /** The MLP's hidden width (intermediate size): one logit per channel. */
  hiddenSize: number;
  /** [rank, inputSize], row-major (the layout of a torch Linear's weight). */
  fc1: Float32Array;
  /** [hiddenSize, rank], row-major. */
  fc2: Float32Array;
  /** A channel fires when sigmoid(logit) >= threshold (default 0.5, as the reference). */
  threshold?: number;
  /** The rule its labels were made with (what "active" means for it). */
  label: LabelRule;
}

/**
 * One block's predictor: logits = fc2 (fc1 x), no biases. `predictActive(x)` gives the channels it
 * predicts active for one token (what a kernel computing only those rows of gate/up needs);
 * `predictMask` does many tokens.
 */
export class MlpPredictor {
  readonly block: number;
  readonly inputSize: number;
  readonly rank: number;
  readonly hiddenSize: number;
  readonly fc1: Float32Array;
  readonly fc2: Float32Array;
  readonly label: LabelRule;
  private probability = 0.5;
  private logitThreshold = 0;
  private readonly h: Float64Array;

  constructor(init: MlpPredictorInit) {
    const { block, inputSize, rank, hiddenSize } = init;
    for (const [name, v] of [
      ['inputSize', inputSize],
      ['rank', rank],
      ['hiddenSize', hiddenSize],
    ] as const)
      if (!(Number.isInteger(v) && v >= 1))
        throw new InvalidArgumentError(name, v, 'must be a positive integer');
    if (!(Number.isInteger(block) && block >= 0))
      throw new InvalidArgumentError('block', block, 'must be a non-negative integer');
    if (init.fc1.length !== rank * inputSize)
      throw new ShapeMismatchError([rank, inputSize], [init.fc1.length], `fc1 of block ${block}'s predictor`);
    if (init.fc2.length !== hiddenSize * rank)
      throw new ShapeMismatchError(
        [hiddenSize, rank],
        [init.fc2.length],
        `fc2 of block ${block}'s predictor`,
      );
    this.block = block;
    this.inputSize = inputSize;
    this.rank = rank;
    this.hiddenSize = hiddenSize;
    this.fc1 = init.fc1;
    this.fc2 = init.fc2;
    this.label = checkLabelRule(init.label, hiddenSize);
    this.h = new Float64Array(rank);
    this.threshold = init.threshold ?? 0.5;
  }

  /** The firing probability: a channel is predicted active when sigmoid(logit) >= it. */
  get threshold(): number {
    return this.probability;
  }

  set threshold(p: number) {
    if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError('predictor threshold', p, 'must be in [0, 1]');
    this.probability = p;
    // sigmoid(z) >= p  <=>  z >= log(p / (1 - p)): -Infinity at 0 (every channel fires), +Infinity at 1.
    this.logitThreshold = Math.log(p / (1 - p));
  }

  /** Logits of `rows` inputs ([tokens, inputSize]): [tokens, hiddenSize]. */
  logits(rows: Float32Array, out: Float32Array = new Float32Array(this.rowsOf(rows) * this.hiddenSize)) {
    const tokens = this.rowsOf(rows);
    if (out.length < tokens * this.hiddenSize)
      throw new ShapeMismatchError([tokens, this.hiddenSize], [out.length], 'logits buffer');
    for (let t = 0; t < tokens; t++) this.rowLogits(rows, t * this.inputSize, out, t * this.hiddenSize);
    return out;
  }

  /** 1 where a channel is predicted active, for `rows` inputs ([tokens, inputSize]). */
  predictMask(rows: Float32Array, out: Uint8Array = new Uint8Array(this.rowsOf(rows) * this.hiddenSize)) {
    const tokens = this.rowsOf(rows);
    if (out.length < tokens * this.hiddenSize)
      throw new ShapeMismatchError([tokens, this.hiddenSize], [out.length], 'mask buffer');
    const z = new Float32Array(this.hiddenSize);
    const zt = this.logitThreshold;
    for (let t = 0; t < tokens; t++) {
      this.rowLogits(rows, t * this.inputSize, z, 0);
      const base = t * this.hiddenSize;
      for (let c = 0; c < this.hiddenSize; c++) out[base + c] = z[c]! >= zt ? 1 : 0;
    }
    return out;
  }

  /** The channels predicted active for one token's MLP input `x` [inputSize], ascending. */
  predictActive(x: Float32Array): Int32Array {
    if (x.length !== this.inputSize)
      throw new ShapeMismatchError([this.inputSize], [x.length], `block ${this.block}'s MLP input`);
    const z = new Float32Array(this.hiddenSize);
    this.rowLogits(x, 0, z, 0);
    const zt = this.logitThreshold;
    let n = 0;
    for (let c = 0; c < this.hiddenSize; c++) if (z[c]! >= zt) n++;
    const active = new Int32Array(n);
    n = 0;
    for (let c = 0; c < this.hiddenSize; c++) if (z[c]! >= zt) active[n++] = c;
    return active;
  }

  private rowsOf(rows: Float32Array): number {
    if (rows.length % this.inputSize !== 0)
      throw new ShapeMismatchError([-1, this.inputSize], [rows.length], `block ${this.block}'s MLP input`);
    return rows.length / this.inputSize;
  }

  private rowLogits(x: Float32Array, at: number, out: Float32Array, to: number): void {
    const { inputSize: d, rank: r, hiddenSize: m, fc1, fc2, h } = this;
    for (let j = 0; j < r; j++) {
      let s = 0;
      const w = j * d;
      for (let i = 0; i < d; i++) s += fc1[w + i]! * x[at + i]!;
      h[j] = s;
    }
    for (let c = 0; c < m; c++) {
      let s = 0;
      const w = c * r;
      for (let j = 0; j < r; j++) s += fc2[w + j]! * h[j]!;
      out[to + c] = s;
    }
  }
}

/** The reference's metrics of one block's predictor on some tokens. */
export interface PredictorMetrics {
  block: number;
  tokens: number;
  channels: number;
  /** Truly active channels predicted active, over truly active channels (1 when none is active). */
  recall: number;
  /** Predicted-active channels that are truly active, over predicted-active ones (1 when none is predicted). */
  precision: number;
  /** Channels predicted inactive, over all (the share of gate/up rows a kernel may skip). */
  classifierSparsity: number;
  /** Channels truly inactive, over all. */
  trueSparsity: number;
}

/** Counts of predictions against labels, turned into `PredictorMetrics`. */
export class MetricCounts {
  tokens = 0;
  truePositive = 0;
  predicted = 0;
  actual = 0;

  constructor(
    readonly block: number,
    readonly channels: number,
  ) {}

  /** Add `predicted` and `actual` masks of [tokens, channels] (1 = active). */
  add(predicted: Uint8Array, actual: Uint8Array, values = actual.length): void {
    if (values % this.channels !== 0 || predicted.length < values || actual.length < values)
      throw new ShapeMismatchError(
        [-1, this.channels],
        [predicted.length, actual.length],
        'prediction masks',
      );
    for (let i = 0; i < values; i++) {
      const p = predicted[i]!;
      const a = actual[i]!;
      this.predicted += p;
      this.actual += a;
      this.truePositive += p & a;
    }
    this.tokens += values / this.channels;
  }

  metrics(): PredictorMetrics {
    const values = this.tokens * this.channels;
    return {
      block: this.block,
      tokens: this.tokens,
      channels: this.channels,
      recall: this.actual === 0 ? 1 : this.truePositive / this.actual,
      precision: this.predicted === 0 ? 1 : this.truePositive / this.predicted,
      classifierSparsity: values === 0 ? 0 : 1 - this.predicted / values,
      trueSparsity: values === 0 ? 0 : 1 - this.actual / values,
    };
  }
}

/** The metrics of `predicted` against `actual` masks ([tokens, channels], 1 = active). */
export function predictorMetrics(
  predicted: Uint8Array,
  actual: Uint8Array,
  channels: number,
  block = 0,
): PredictorMetrics {
  if (predicted.length !== actual.length)
    throw new ShapeMismatchError([actual.length], [predicted.length], 'predicted mask');
  const counts = new MetricCounts(block, channels);
  counts.add(predicted, actual);
  return counts.metrics();
}

function byBlock(predictors: readonly MlpPredictor[]): Map<number, MlpPredictor> {
  const map = new Map<number, MlpPredictor>();
  for (const p of predictors) {
    if (map.has(p.block))
      throw new InvalidArgumentError('predictors', p.block, 'hold two predictors for one block');
    map.set(p.block, p);
  }
  return map;
}

/**
 * Hooks that, per block with a predictor, read the MLP input (`mlp.input`), predict, and pass
 * every token's MLP input and hidden activations to `visit` at `mlp.hidden` (which may return a
 * replacement of the hidden rows). A block's `mlp.hidden` must follow its `mlp.input` in one call.
 */
function predictorHooks(
  hooks: Hooks,
  predictors: readonly MlpPredictor[],
  visit: (
    predictor: MlpPredictor,
    input: Float32Array,
    hidden: Tensor<'f32'>,
    seq: number,
  ) => Float32Array | undefined,
): HookHandle {
  const map = byBlock(predictors);
  const blocks = [...map.keys()];
  const pending = new Map<number, Float32Array>();
  const input = hooks.add(
    'mlp.input',
    (tensor, context) => {
      const p = map.get(context.block)!;
      if (tensor.shape.at(-1) !== p.inputSize)
        throw new ShapeMismatchError(
          [-1, p.inputSize],
          tensor.shape,
          `block ${context.block}'s MLP input (its predictor's width)`,
        );
      pending.set(context.block, tensor.data.slice());
    },
    { blocks },
  );
  const hidden = hooks.add(
    'mlp.hidden',
    (tensor, context) => {
      const p = map.get(context.block)!;
      if (context.expert !== undefined)
        throw new InvalidArgumentError(
          `block ${context.block}'s MLP`,
          'a mixture of experts',
          'Deja Vu predictors are for dense and gated MLPs',
        );
      const x = pending.get(context.block);
      pending.delete(context.block);
      if (x === undefined)
        throw new InvalidArgumentError(
          `block ${context.block}'s mlp.hidden`,
          'seen before its mlp.input',
          'predictors need both sites of a block in one call',
        );
      if (tensor.shape.at(-1) !== p.hiddenSize || x.length / p.inputSize !== tensor.size / p.hiddenSize)
        throw new ShapeMismatchError(
          [x.length / p.inputSize, p.hiddenSize],
          tensor.shape,
          `block ${context.block}'s MLP hidden activations (its predictor's width)`,
        );
      return visit(p, x, tensor, context.seq);
    },
    { blocks },
  );
  return {
    remove: () => {
      input.remove();
      hidden.remove();
      pending.clear();
    },
  };
}

/** Channels dropped at each block while predictors are applied. */
export interface AppliedPrediction {
  block: number;
  /** Channels predicted inactive (zeroed), over `values` channels of sparsified tokens. */
  zeros: number;
  values: number;
}

export interface AppliedPredictors extends HookHandle {
  /** Per block, the channels the predictor dropped since it was applied. */
  measured(): AppliedPrediction[];
  /** Dropped over considered channels across every block. */
  overall(): number;
}

/**
 * Apply predictors as hooks (simulate path): at each block with a predictor, the hidden channels
 * (`mlp.hidden`, before down_proj) it predicts inactive from that token's MLP input are zeroed.
 * Where it predicts every channel active the model's outputs are unchanged, bit for bit. The
 * accelerate path computes only the predicted rows of gate/up instead (`predictActive`).
 * `tokens: 'last-half'` predicts only for the last floor(seq / 2) tokens of a call, as TEAL's prefill.
 */
export function applyPredictors(
  hooks: Hooks,
  predictors: readonly MlpPredictor[],
  options: ApplyOptions = {},
): AppliedPredictors {
  const lastHalf = options.tokens === 'last-half';
  const stats = new Map<number, AppliedPrediction>();
  for (const p of predictors) stats.set(p.block, { block: p.block, zeros: 0, values: 0 });
  const handle = predictorHooks(hooks, predictors, (p, x, hidden, seq) => {
    const m = p.hiddenSize;
    const tokens = hidden.size / m;
    const mask = p.predictMask(x);
    const out = hidden.data.slice();
    const s = stats.get(p.block)!;
    let zeros = 0;
    let changed = false;
    for (let t = 0; t < tokens; t++) {
      if (lastHalf && seq > 1 && t % seq < seq - Math.floor(seq / 2)) continue;
      s.values += m;
      for (let c = t * m; c < (t + 1) * m; c++) {
        if (mask[c] === 0) {
          zeros++;
          if (out[c] !== 0) {
            out[c] = 0;
            changed = true;
          }
        }
      }
    }
    s.zeros += zeros;
    return changed ? out : undefined;
  });
  const measured = () => [...stats.values()].map((s) => ({ ...s }));
  return {
    remove: () => handle.remove(),
    measured,
    overall: () => {
      const m = measured();
      const values = m.reduce((a, s) => a + s.values, 0);
      return values === 0 ? 0 : m.reduce((a, s) => a + s.zeros, 0) / values;
    },
  };
}

/**
 * The metrics of `predictors` on the tokens of `batches` ([batch, seq] ids) run through the dense
 * `model` (no predictions applied): per block, each predictor's masks against its own label rule.
 */
export async function measurePredictors(
  model: HookableLM,
  predictors: readonly MlpPredictor[],
  batches: readonly Tensor<'i32'>[],
  options: ProgressOptions = {},
): Promise<PredictorMetrics[]> {
  const counts = new Map<number, MetricCounts>();
  for (const p of predictors) counts.set(p.block, new MetricCounts(p.block, p.hiddenSize));
  await runWithHooks(
    model,
    batches,
    () =>
      predictorHooks(model.hooks, predictors, (p, x, hidden) => {
        counts.get(p.block)!.add(p.predictMask(x), activeLabels(hidden.data, p.hiddenSize, p.label));
        return undefined;
      }),
    'measure-predictors',
    options,
  );
  return [...counts.values()].sort((a, b) => a.block - b.block).map((c) => c.metrics());
}

/**
 * The predictors as a sparse decode row chooser (models' `SparseDecode.mlpRows`): for block b's MLP
 * input of one token, the channels its predictor marks active, so only those rows of gate and up
 * are computed (blocks without a predictor compute all).
 */
export function predictorRows(
  predictors: readonly MlpPredictor[],
): (block: number, input: Float32Array) => Int32Array | undefined {
  const byBlock = new Map(predictors.map((p) => [p.block, p]));
  return (block, input) => byBlock.get(block)?.predictActive(input);
}
