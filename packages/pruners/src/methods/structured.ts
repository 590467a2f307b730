// Structured pruning: whole rows (output channels), columns (input channels), blocks, and at model
// level MLP channels and attention heads scored by their activations. The simulate path zeroes them;
// the zeros are whole structures, so a BSR / smaller-matrix path can skip them.
import {
  type BlockwiseLM,
  calibrationHooks,
  InvalidArgumentError,
  type LinearLayer,
  type NarrowableLM,
  type ProgressOptions,
  reportProgress,
  Tensor as T,
  type Tensor,
} from '@sparsekit/core';
import { InputNormAccumulator, lowestIndices } from '@sparsekit/sparse-formats';
import { applyMask, checkInputNorms, checkModelWeights, checkSparsity, checkWeight } from '../masks.js';
import type { PruneResult } from './sparsegpt.js';

/** Prune the floor(rows * fraction) output rows with the smallest L2 norm. */
export function pruneRows(
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  fraction: number,
): PruneResult {
  checkSparsity(fraction);
  checkWeight(weight, rows, cols);
  const norms = Float64Array.from({ length: rows }, (_, r) => {
    let s = 0;
    for (let c = 0; c < cols; c++) s += weight[r * cols + c]! ** 2;
    return s;
  });
  const mask = new Uint8Array(rows * cols);
  for (const r of lowestIndices(norms, Math.floor(rows * fraction))) mask.fill(1, r * cols, (r + 1) * cols);
  return { weight: applyMask(weight, mask), mask };
}

/**
 * Prune the floor(cols * fraction) input columns with the smallest score: the column's L2 norm,
 * times sqrt(mean x_j^2) of its input when `scalerRow` (Wanda's statistic) is given.
 */
export function pruneColumns(
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  fraction: number,
  scalerRow?: Float64Array,
): PruneResult {
  checkSparsity(fraction);
  checkWeight(weight, rows, cols);
  if (scalerRow !== undefined) checkInputNorms(scalerRow, cols);
  const scores = Float64Array.from({ length: cols }, (_, c) => {
    let s = 0;
    for (let r = 0; r < rows; r++) s += weight[r * cols + c]! ** 2;
    return Math.sqrt(s) * (scalerRow === undefined ? 1 : Math.sqrt(scalerRow[c]!));
  });
  const mask = new Uint8Array(rows * cols);
  for (const c of lowestIndices(scores, Math.floor(cols * fraction)))
    for (let r = 0; r < rows; r++) mask[r * cols + c] = 1;
  return { weight: applyMask(weight, mask), mask };
}

/** Prune the floor(blocks * fraction) blocks of R x C with the smallest Frobenius norm. */
export function pruneBlocks(
  weight: ArrayLike<number>,
  rows: number,
  cols: number,
  fraction: number,
  block: readonly [number, number],
): PruneResult {
  checkSparsity(fraction);
  checkWeight(weight, rows, cols);
  const [R, C] = block;
  if (!Number.isInteger(R) || !Number.isInteger(C) || R < 1 || C < 1 || rows % R !== 0 || cols % C !== 0) {
    throw new InvalidArgumentError(
      'block shape',
      `${R}x${C}`,
      `must be positive integers dividing the weight shape ${rows}x${cols}`,
    );
  }
  const br = rows / R;
  const bc = cols / C;
  const norms = Float64Array.from({ length: br * bc }, (_, b) => {
    const r0 = Math.floor(b / bc) * R;
    const c0 = (b % bc) * C;
    let s = 0;
    for (let r = r0; r < r0 + R; r++) for (let c = c0; c < c0 + C; c++) s += weight[r * cols + c]! ** 2;
    return s;
  });
  const mask = new Uint8Array(rows * cols);
  for (const b of lowestIndices(norms, Math.floor(br * bc * fraction))) {
    const r0 = Math.floor(b / bc) * R;
    const c0 = (b % bc) * C;
    for (let r = r0; r < r0 + R; r++) mask.fill(1, r * cols + c0, r * cols + c0 + C);
  }
  return { weight: applyMask(weight, mask), mask };
}

export interface StructuredModelOptions extends ProgressOptions {
  /** Fraction of MLP channels to remove in every block. */
  mlpChannels?: number;
  /**
   * Fraction of attention heads to remove in every block. With grouped-query attention, the same
   * number of query heads, floor(heads * group size), leaves every key/value group (both paths).
   */
  heads?: number;
  /** Head counts, for a model without `blockShape`; a model's own counts are used (and checked). */
  numHeads?: number;
  numKvHeads?: number;
  /**
   * The accelerate path: delete the removed channels and heads, leaving a smaller dense model (the
   * model must be a `NarrowableLM`). Default false: the simulate path, which zeroes them.
   */
  narrow?: boolean;
  /** Recorded in the report (a recipe with `method: structured`). */
  recipe?: unknown;
}

export interface StructuredReport {
  /** Per block: removed MLP channels and attention heads, and the seconds the block took (calibration pass included). */
  blocks: Array<{ channels: number[]; heads: number[]; seconds: number }>;
  /** With `narrow`: the shape of every block afterwards. */
  blockShape?: NarrowableLM['blockShape'];
  /** The recipe the run followed, when it was given one. */
  recipe?: unknown;
}

function narrowable(model: BlockwiseLM): NarrowableLM {
  const m = model as Partial<NarrowableLM>;
  if (
    typeof m.removeMlpChannels !== 'function' ||
    typeof m.removeHeads !== 'function' ||
    m.blockShape === undefined
  ) {
    throw new InvalidArgumentError(
      'narrow',
      true,
      'needs a model that can delete MLP channels and heads (a NarrowableLM, such as @sparsekit/models TransformerLM)',
    );
  }
  return model as NarrowableLM;
}

function find(layers: readonly LinearLayer[], suffix: string): LinearLayer | undefined {
  return layers.find((l) => l.name.endsWith(suffix));
}

/** Zero rows and columns of a layer, keeping a copy of its weight in `originals` the first time. */
function zero(
  layer: LinearLayer,
  rows: Iterable<number> | undefined,
  cols: Iterable<number> | undefined,
  originals: Map<LinearLayer, Tensor<'f32'>>,
): void {
  const w = layer.getWeight();
  if (!originals.has(layer)) originals.set(layer, new T('f32', w.shape, Float32Array.from(w.data)));
  const data = Float32Array.from(w.data);
  const n = layer.inFeatures;
  for (const r of rows ?? []) data.fill(0, r * n, (r + 1) * n);
  for (const c of cols ?? []) for (let r = 0; r < layer.outFeatures; r++) data[r * n + c] = 0;
  layer.setWeight(new T('f32', [layer.outFeatures, n], data));
}

/**
 * Head counts for head pruning: the model's own (`blockShape`) when it has them, else the options'.
 * Counts that disagree with the model, or that do not divide its attention widths, are refused.
 */
function headCounts(
  model: BlockwiseLM,
  options: StructuredModelOptions,
  needed: boolean,
): { numHeads?: number; numKvHeads?: number } {
  const shape = (model as Partial<NarrowableLM>).blockShape;
  for (const [name, given, own] of [
    ['numHeads', options.numHeads, shape?.heads],
    ['numKvHeads', options.numKvHeads, shape?.kvHeads],
  ] as const) {
    if (given !== undefined && own !== undefined && given !== own)
      throw new InvalidArgumentError(name, given, `the model has ${own}`);
  }
  const numHeads = shape?.heads ?? options.numHeads;
  const numKvHeads = shape?.kvHeads ?? options.numKvHeads ?? numHeads;
  if (!needed) return { numHeads, numKvHeads };
  if (numHeads === undefined)
    throw new InvalidArgumentError(
      'numHeads',
      undefined,
      'pruning heads needs the number of attention heads',
    );
  if (!Number.isInteger(numHeads) || numHeads < 1)
    throw new InvalidArgumentError('numHeads', numHeads, 'must be a positive integer');
  if (!Number.isInteger(numKvHeads) || numKvHeads! < 1 || numHeads % numKvHeads! !== 0)
    throw new InvalidArgumentError(
      'numKvHeads',
      numKvHeads,
      `must be a positive integer dividing numHeads (${numHeads})`,
    );
  const layers = model.blockLinearLayers(0);
  const o = find(layers, 'self_attn.o_proj');
  const k = find(layers, 'self_attn.k_proj');
  if (o !== undefined && o.inFeatures % numHeads !== 0)
    throw new InvalidArgumentError('numHeads', numHeads, `does not divide o_proj's ${o.inFeatures} inputs`);
  if (o !== undefined && k !== undefined && k.outFeatures !== (o.inFeatures / numHeads) * numKvHeads!)
    throw new InvalidArgumentError(
      'numKvHeads',
      numKvHeads,
      `k_proj has ${k.outFeatures} outputs, not ${numKvHeads} heads of ${o.inFeatures / numHeads}`,
    );
  return { numHeads, numKvHeads };
}

/**
 * Activation-based structured pruning, block by block on the pruned model's own outputs: an MLP
 * channel c scores ||X_c|| * ||W_down[:, c]|| (X the input of down_proj), a head h scores the same
 * over its columns of o_proj. Removed channels zero their rows of gate/up and column of down;
 * removed heads zero their rows of q (and of k/v when every query head of a KV group goes) and their
 * columns of o. Layer names follow the core spec's convention (`self_attn.o_proj`, `mlp.down_proj`).
 */
export function pruneStructured(
  model: BlockwiseLM,
  batches: readonly Tensor<'i32'>[],
  options: StructuredModelOptions,
): StructuredReport {
  const mlp = options.mlpChannels ?? 0;
  const heads = options.heads ?? 0;
  checkSparsity(mlp);
  checkSparsity(heads);
  const target = options.narrow === true ? narrowable(model) : undefined;
  const { numHeads, numKvHeads } = headCounts(model, options, heads > 0);
  // With GQA both paths take the same number of query heads from every key/value group, so the
  // simulated model is the narrowed one with zeros, and every narrowed block keeps one shape.
  const perGroup = numKvHeads !== numHeads;
  if (perGroup && heads > 0 && Math.floor((heads * numHeads!) / numKvHeads!) === 0) {
    throw new InvalidArgumentError(
      'heads',
      heads,
      `removes no query head from a key/value group of ${numHeads! / numKvHeads!}; pruning heads of a grouped-query model needs heads >= ${numKvHeads! / numHeads!}`,
    );
  }
  if (batches.length === 0)
    throw new InvalidArgumentError('calibration', 0, 'structured pruning needs calibration batches');
  checkModelWeights(model);
  const report: StructuredReport = {
    blocks: [],
    ...(options.recipe === undefined ? {} : { recipe: options.recipe }),
  };
  // Weights as they were, so that a failure (or an abort) part way leaves the model unmodified.
  const originals = new Map<LinearLayer, Tensor<'f32'>>();
  try {
    let hidden = batches.map((b) => model.embed(b));
    for (let block = 0; block < model.numBlocks; block++) {
      const t0 = performance.now();
      const layers = model.blockLinearLayers(block);
      const down = find(layers, 'mlp.down_proj');
      const o = find(layers, 'self_attn.o_proj');
      const norms = new Map<LinearLayer, InputNormAccumulator>();
      for (const l of [down, o]) if (l !== undefined) norms.set(l, new InputNormAccumulator(l.inFeatures));
      for (const h of hidden)
        model.runBlock(block, h, { hooks: calibrationHooks((layer, x) => norms.get(layer)?.add(x)) });
      const columnScore = (l: LinearLayer) => {
        const w = l.getWeight().data;
        const s = norms.get(l)!.scalerRow;
        return Float64Array.from({ length: l.inFeatures }, (_, c) => {
          let sq = 0;
          for (let r = 0; r < l.outFeatures; r++) sq += w[r * l.inFeatures + c]! ** 2;
          return Math.sqrt(sq) * Math.sqrt(s[c]!);
        });
      };
      const removed = { channels: [] as number[], heads: [] as number[] };
      if (mlp > 0 && down !== undefined) {
        const channels = lowestIndices(columnScore(down), Math.floor(down.inFeatures * mlp));
        zero(down, undefined, channels, originals);
        for (const name of ['mlp.up_proj', 'mlp.gate_proj']) {
          const l = find(layers, name);
          if (l !== undefined) zero(l, channels, undefined, originals);
        }
        removed.channels = channels;
      }
      if (heads > 0 && o !== undefined) {
        const nh = numHeads!;
        const nkv = numKvHeads!;
        const hd = o.inFeatures / nh;
        const cols = columnScore(o);
        const headScores = Float64Array.from({ length: nh }, (_, h) => {
          let s = 0;
          for (let d = 0; d < hd; d++) s += cols[h * hd + d]! ** 2;
          return s;
        });
        const group = nh / nkv;
        // Ascending head indices (each group's are ascending, and the groups come in order).
        const gone = perGroup
          ? Array.from({ length: nkv }, (_, g) =>
              lowestIndices(headScores.subarray(g * group, (g + 1) * group), Math.floor(heads * group)).map(
                (h) => g * group + h,
              ),
            ).flat()
          : lowestIndices(headScores, Math.floor(nh * heads));
        const range = (h: number) => Array.from({ length: hd }, (_, d) => h * hd + d);
        zero(o, undefined, gone.flatMap(range), originals);
        const q = find(layers, 'self_attn.q_proj');
        if (q !== undefined) zero(q, gone.flatMap(range), undefined, originals);
        const deadKv = Array.from({ length: nkv }, (_, g) => g).filter((g) =>
          Array.from({ length: group }, (_, i) => g * group + i).every((h) => gone.includes(h)),
        );
        for (const name of ['self_attn.k_proj', 'self_attn.v_proj']) {
          const l = find(layers, name);
          if (l !== undefined && deadKv.length > 0) zero(l, deadKv.flatMap(range), undefined, originals);
        }
        removed.heads = gone;
      }
      hidden = hidden.map((h) => model.runBlock(block, h));
      report.blocks.push({ ...removed, seconds: (performance.now() - t0) / 1000 });
      reportProgress(options, { stage: 'prune', current: block + 1, total: model.numBlocks, unit: 'block' });
    }
  } catch (error) {
    for (const [l, w] of originals) l.setWeight(w);
    throw error;
  }
  if (target !== undefined) {
    // The zeroed structures contribute nothing, so deleting them keeps the outputs.
    if (mlp > 0) target.removeMlpChannels(report.blocks.map((b) => b.channels));
    if (heads > 0) target.removeHeads(report.blocks.map((b) => b.heads));
    report.blockShape = target.blockShape;
  }
  return report;
}
