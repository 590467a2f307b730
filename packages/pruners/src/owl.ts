// OWL (Yin et al., 2023, "Outlier Weighed Layerwise Sparsity"), after the reference
// `prune_wanda_outlier`: a first pass measures, per decoder block, the share of Wanda scores above M
// times the block's mean score; blocks with more outliers get lower sparsity, within +-lambda of the
// target, and the average stays at the target.
import { type BlockwiseLM, InvalidArgumentError, type LinearLayer, type Tensor } from '@sparsekit/core';
import { InputNormAccumulator } from './calibration.js';
import { checkSparsity } from './masks.js';
import { wandaScores } from './methods/wanda.js';

export interface OwlOptions {
  /** Outlier threshold as a multiple of the block's mean score (the paper's M, default 5). */
  m?: number;
  /** Half-width of the sparsity range around the target (the paper's lambda, default 0.08). */
  lambda?: number;
}

export interface OwlAllocation {
  outlierRatios: number[];
  /** Sparsity per block. */
  sparsities: number[];
}

/** Outlier ratios of each block (dense model, calibration `batches`) and the resulting sparsities. */
export function owlSparsities(
  model: BlockwiseLM,
  batches: readonly Tensor<'i32'>[],
  sparsity: number,
  options: OwlOptions = {},
): OwlAllocation {
  checkSparsity(sparsity);
  const m = options.m ?? 5;
  const lambda = options.lambda ?? 0.08;
  if (!(lambda >= 0 && lambda <= Math.min(sparsity, 1 - sparsity))) {
    throw new InvalidArgumentError(
      'lambda',
      lambda,
      `must keep every block's sparsity in [0, 1): at most ${Math.min(sparsity, 1 - sparsity)}`,
    );
  }
  if (batches.length === 0) throw new InvalidArgumentError('calibration', 0, 'OWL needs calibration batches');
  let hidden = batches.map((b) => model.embed(b));
  const ratios: number[] = [];
  for (let block = 0; block < model.numBlocks; block++) {
    const layers = model.blockLinearLayers(block);
    const norms = new Map<LinearLayer, InputNormAccumulator>(
      layers.map((l) => [l, new InputNormAccumulator(l.inFeatures)]),
    );
    for (const h of hidden) model.runBlock(block, h, (layer, x) => norms.get(layer)?.add(x));
    const scores = layers.map((l) =>
      wandaScores(l.getWeight().data, l.outFeatures, l.inFeatures, norms.get(l)!.scalerRow),
    );
    let sum = 0;
    let count = 0;
    for (const s of scores)
      for (const v of s) {
        sum += v;
        count++;
      }
    const threshold = (sum / count) * m;
    let outliers = 0;
    for (const s of scores) for (const v of s) if (v > threshold) outliers++;
    ratios.push(outliers / count);
    hidden = hidden.map((h) => model.runBlock(block, h));
  }
  const min = Math.min(...ratios);
  const max = Math.max(...ratios);
  const spread = ratios.map((r) => (max === min ? 0 : ((r - min) / (max - min)) * lambda * 2));
  const mean = spread.reduce((a, b) => a + b, 0) / spread.length;
  const densities = spread.map((d) => d - mean + (1 - sparsity));
  return { outlierRatios: ratios, sparsities: densities.map((d) => 1 - d) };
}
