// Pruning a whole model block by block, as the references' `prune_wanda` / `opt_sequential` do:
// the calibration batches enter block 0; for each block, one pass through the still-dense block
// collects the statistics of all its linear layers, every layer is pruned, and the block runs again
// so that the next block sees the outputs of the pruned ones.
import {
  type BlockwiseLM,
  Hooks,
  InvalidArgumentError,
  type LinearLayer,
  type ProgressOptions,
  reportProgress,
  Tensor,
} from '@sparsekit/core';
import {
  type Backend,
  HessianAccumulator,
  InputNormAccumulator,
  measuredSparsity,
} from '@sparsekit/sparse-formats';
import { type BlockShape, blockText, checkBlockShape, isUnitBlock } from './blocks.js';
import { checkModelWeights, checkNm, checkSparsity } from './masks.js';
import { checkMagnitudeScope, magnitude } from './methods/magnitude.js';
import { checkPercDamp, sparseGpt } from './methods/sparsegpt.js';
import { wanda } from './methods/wanda.js';
import { pqIndex, reconstructionError } from './metrics.js';
import { type OwlAllocation, type OwlOptions, owlSparsities } from './owl.js';

export type PruneMethod = 'magnitude' | 'wanda' | 'sparsegpt';

/**
 * A pruning target: a fraction of weights (unstructured, optionally in whole blocks of R rows x C
 * inputs), or N kept of every M inputs.
 */
export type Pattern = { sparsity: number; block?: BlockShape } | { n: number; m: number };

/** A pattern as people write it: "0.5", "0.5 in 1x8 blocks" or "2:4". */
export function patternText(pattern: Pattern): string {
  if ('n' in pattern) return `${pattern.n}:${pattern.m}`;
  return isUnitBlock(pattern.block)
    ? `${pattern.sparsity}`
    : `${pattern.sparsity} in ${blockText(pattern.block!)} blocks`;
}

/** A copy of the pattern with only its own fields. */
function ownPattern(pattern: Pattern): Pattern {
  if ('n' in pattern) return { n: pattern.n, m: pattern.m };
  return isUnitBlock(pattern.block)
    ? { sparsity: pattern.sparsity }
    : { sparsity: pattern.sparsity, block: { rows: pattern.block!.rows, cols: pattern.block!.cols } };
}

export interface PruneModelOptions extends ProgressOptions {
  method: PruneMethod;
  /** Unstructured target; or give `n` and `m` for N:M (N kept of every M). */
  sparsity?: number;
  n?: number;
  m?: number;
  /**
   * Unstructured targets only: prune whole blocks of R output rows x C inputs (1 x 8: eight
   * consecutive inputs of a row; 8 x 1: eight consecutive outputs of an input), for BSR kernels.
   */
  blocks?: BlockShape;
  /** Which layers to prune (default: every decoder linear layer). */
  filter?: (name: string) => boolean;
  /** Per-layer pattern overrides (a recipe's `overrides`): return a pattern for the layer, or undefined. */
  layerPattern?: (name: string) => Pattern | undefined;
  /**
   * OWL: non-uniform sparsity per block from outlier ratios (unstructured targets only), measured on
   * the same calibration batches before pruning. `true` uses the paper's M = 5, lambda = 0.08.
   */
  owl?: boolean | OwlOptions;
  /** Recorded in the report (see `recipeOptions`). */
  recipe?: unknown;
  /**
   * Measure each layer's reconstruction error on the calibration tokens (default true). It needs
   * every layer's input covariance (rows x cols^2 work per layer); turn it off for speed on Wanda
   * and magnitude, which then skip the covariance altogether.
   */
  reconstructionError?: boolean;
  /**
   * Magnitude's comparison group (unstructured targets): 'layer' (default; one threshold per matrix,
   * as the references' baseline) or 'row' (the same fraction of every output row, Wanda's group).
   */
  magnitudeScope?: 'layer' | 'row';
  /** SparseGPT options (`backend`: see `SparseGptOptions.backend`; also runs the Hessians' X^T X). */
  blockSize?: number;
  percDamp?: number;
  backend?: Backend;
}

export interface LayerReport {
  name: string;
  rows: number;
  cols: number;
  /** The pattern this layer was pruned to (`{ sparsity: 0.5 }` or `{ n: 2, m: 4 }`), after overrides. */
  pattern: Pattern;
  sparsity: number;
  pqIndex: number;
  /** sum over calibration tokens of ||x (W - W')^T||^2 (NaN when not measured). */
  reconstructionError: number;
  seconds: number;
}

export interface PruneReport {
  /** `pruneModel`'s methods, or `pruneAllocation`'s. */
  method: PruneMethod | 'global-magnitude' | 'random';
  /** The default target (layers may differ: overrides, OWL, allocations). */
  pattern: Pattern;
  calibrationTokens: number;
  /** With OWL: the outlier ratio and sparsity chosen per block. */
  owl?: OwlAllocation;
  /** The recipe the run followed, when it was given one. */
  recipe?: unknown;
  layers: LayerReport[];
  /** Zeros over weights, across the pruned layers. */
  sparsity: number;
  seconds: number;
}

/**
 * Prune `model` in place with calibration `batches` ([batch, seq] token ids). If any step fails the
 * weights already replaced are restored, so a failure leaves the model unmodified.
 */
export async function pruneModel(
  model: BlockwiseLM,
  batches: readonly Tensor<'i32'>[],
  options: PruneModelOptions,
): Promise<PruneReport> {
  const nm = options.n !== undefined || options.m !== undefined;
  if (nm) {
    if (options.n === undefined || options.m === undefined) {
      throw new InvalidArgumentError('N:M pattern', `${options.n}:${options.m}`, 'needs both n and m');
    }
  } else checkSparsity(options.sparsity ?? Number.NaN);
  const blocks = isUnitBlock(options.blocks) ? undefined : options.blocks!;
  if (blocks !== undefined) {
    checkBlockShape(blocks);
    if (nm)
      throw new InvalidArgumentError(
        'blocks',
        blockText(blocks),
        'are for unstructured sparsity, not an N:M pattern',
      );
  }
  if (!['magnitude', 'wanda', 'sparsegpt'].includes(options.method)) {
    throw new InvalidArgumentError('method', options.method, "must be 'magnitude', 'wanda' or 'sparsegpt'");
  }
  if (batches.length === 0 && options.method !== 'magnitude') {
    throw new InvalidArgumentError('calibration', 0, `${options.method} needs calibration batches`);
  }
  const start = performance.now();
  const filter = options.filter ?? (() => true);
  // Every weight (and below, every pattern) is checked before anything runs or changes.
  checkModelWeights(model, (l) => filter(l.name));
  if (!model.linearLayers().some((l) => filter(l.name)))
    throw new InvalidArgumentError(
      'layers',
      0,
      'no layer is selected (check the layer filter or recipe.layers)',
    );
  if (options.percDamp !== undefined) checkPercDamp(options.percDamp);
  checkMagnitudeScope(options.magnitudeScope, 'magnitudeScope');
  let owl: OwlAllocation | undefined;
  if (options.owl !== undefined && options.owl !== false) {
    if (nm)
      throw new InvalidArgumentError(
        'owl',
        true,
        'OWL allocates unstructured sparsity; it does not apply to N:M',
      );
    owl = owlSparsities(model, batches, options.sparsity!, options.owl === true ? {} : options.owl);
  }
  const targetsOf = (block: number) => model.blockLinearLayers(block).filter((l) => filter(l.name));
  const patternOf = (l: LinearLayer, block: number): Pattern =>
    options.layerPattern?.(l.name) ??
    (nm
      ? { n: options.n!, m: options.m! }
      : {
          sparsity: owl?.sparsities[block] ?? options.sparsity!,
          ...(blocks === undefined ? {} : { block: blocks }),
        });
  for (let block = 0; block < model.numBlocks; block++) {
    for (const l of targetsOf(block)) {
      const p = patternOf(l, block);
      if ('n' in p) checkNm(p.n, p.m, l.inFeatures);
      else {
        checkSparsity(p.sparsity);
        if (p.block !== undefined)
          checkBlockShape(p.block, l.outFeatures, l.inFeatures, `blocks of ${l.name}`);
      }
    }
  }
  const originals = new Map<LinearLayer, Tensor<'f32'>>();
  const layers: LayerReport[] = [];
  let totalLayers = 0;
  for (let block = 0; block < model.numBlocks; block++) totalLayers += targetsOf(block).length;
  const pattern: Pattern = nm
    ? { n: options.n!, m: options.m! }
    : { sparsity: options.sparsity!, ...(blocks === undefined ? {} : { block: blocks }) };
  let tokens = 0;
  for (const b of batches) tokens += b.size;
  const withError = options.reconstructionError ?? true;
  try {
    // Magnitude without reconstruction errors needs no calibration statistics: no forward passes.
    const needsData = options.method !== 'magnitude' || withError;
    let hidden = needsData ? batches.map((b) => model.embed(b)) : [];
    for (let block = 0; block < model.numBlocks; block++) {
      const targets = targetsOf(block);
      const hessians = new Map<LinearLayer, HessianAccumulator>();
      const norms = new Map<LinearLayer, InputNormAccumulator>();
      for (const l of targets) {
        if (withError || options.method === 'sparsegpt')
          hessians.set(l, new HessianAccumulator(l.inFeatures, options.backend));
        if (options.method === 'wanda') norms.set(l, new InputNormAccumulator(l.inFeatures));
      }
      // Layers that read one tensor (q/k/v, gate/up: the model's groups) share one set of statistics.
      for (const group of model.blockLinearGroups(block)) {
        const [first, ...rest] = group.filter((l) => hessians.has(l) || norms.has(l));
        if (first === undefined) continue;
        for (const l of rest) {
          if (hessians.has(l)) hessians.set(l, hessians.get(first)!);
          if (norms.has(l)) norms.set(l, norms.get(first)!);
        }
      }
      // One accumulation per group and batch: the linear.input hook sees each group's tensor once.
      const hooks = new Hooks();
      hooks.add('linear.input', (x, context) => {
        const first = context.layers?.find((l) => hessians.has(l) || norms.has(l));
        if (first === undefined) return;
        const width = x.shape.at(-1)!;
        const inputs = new Tensor('f32', [x.size / width, width], x.data);
        hessians.get(first)?.add(inputs);
        norms.get(first)?.add(inputs);
      });
      for (const h of hidden) model.runBlock(block, h, { hooks });
      for (const l of targets) {
        const t0 = performance.now();
        const before = l.getWeight();
        const w = before.data;
        const rows = l.outFeatures;
        const cols = l.inFeatures;
        const pattern = patternOf(l, block);
        const H = hessians.get(l);
        if (options.method === 'sparsegpt' && H!.samples < cols) {
          throw new InvalidArgumentError(
            'calibration',
            `${H!.samples} tokens`,
            `is too small for the Hessian of ${l.name} (${cols} inputs): give at least ${cols} calibration tokens`,
          );
        }
        const hessian = H === undefined || H.samples === 0 ? undefined : H.matrix();
        const result =
          options.method === 'sparsegpt'
            ? sparseGpt(w, rows, cols, hessian!, {
                ...pattern,
                ...(options.blockSize === undefined ? {} : { blockSize: options.blockSize }),
                ...(options.percDamp === undefined ? {} : { percDamp: options.percDamp }),
                ...(options.backend === undefined ? {} : { backend: options.backend }),
              })
            : options.method === 'wanda'
              ? wanda(w, rows, cols, norms.get(l)!.scalerRow, pattern)
              : magnitude(w, rows, cols, {
                  ...pattern,
                  ...(options.magnitudeScope === undefined ? {} : { scope: options.magnitudeScope }),
                });
        const seconds = (performance.now() - t0) / 1000;
        originals.set(l, new Tensor('f32', [rows, cols], Float32Array.from(w)));
        l.setWeight(new Tensor('f32', [rows, cols], result.weight));
        layers.push({
          name: l.name,
          rows,
          cols,
          pattern: ownPattern(pattern),
          sparsity: measuredSparsity(result.weight),
          pqIndex: pqIndex(result.weight),
          reconstructionError:
            !withError || hessian === undefined
              ? Number.NaN
              : reconstructionError(w, result.weight, rows, cols, hessian, H!.samples),
          seconds,
        });
        reportProgress(options, {
          stage: 'prune',
          current: layers.length,
          total: totalLayers,
          unit: 'layer',
          message: l.name,
        });
      }
      hidden = hidden.map((h) => model.runBlock(block, h));
    }
  } catch (error) {
    for (const [l, w] of originals) l.setWeight(w);
    throw error;
  }
  let zeros = 0;
  let total = 0;
  for (const r of layers) {
    zeros += r.sparsity * r.rows * r.cols;
    total += r.rows * r.cols;
  }
  return {
    method: options.method,
    pattern,
    calibrationTokens: tokens,
    ...(owl === undefined ? {} : { owl }),
    ...(options.recipe === undefined ? {} : { recipe: options.recipe }),
    layers,
    sparsity: total === 0 ? 0 : zeros / total,
    seconds: (performance.now() - start) / 1000,
  };
}
