// ProSparse (arXiv 2402.13516): after swapping the MLP activation for ReLU (ReLU-fication), an L1
// penalty on the activations whose factor rises stage by stage along sine curves, then FATReLU
// (ReLU shifted to a small threshold). The schedule and the inference-side FATReLU live here; the
// training itself runs on a tfjs twin of the model (models' `LlamaTwin.loss({ activationL1 })`).
import { InvalidArgumentError } from '@sparsekit/core';
import type { Thresholds } from './thresholds.js';

/** One stage: over `steps` steps the L1 factor rises from the previous stage's to `l1`. */
export interface ProSparseStage {
  steps: number;
  l1: number;
}

/**
 * The L1 factor at `step` (0-based, counted over all stages): within stage i it is
 * l1_{i-1} + (l1_i - l1_{i-1}) * sin(pi / 2 * t / T_i) for its t-th of T_i steps (a sine-shaped rise,
 * steep at first and flat at the end), starting from 0; past the last stage it stays at the last l1.
 */
export function proSparseFactor(step: number, stages: readonly ProSparseStage[]): number {
  if (!Number.isInteger(step) || step < 0)
    throw new InvalidArgumentError('step', step, 'must be a non-negative integer');
  let previous = 0;
  for (const [i, s] of stages.entries()) {
    if (!Number.isInteger(s.steps) || s.steps < 1)
      throw new InvalidArgumentError(`stages[${i}].steps`, s.steps, 'must be a positive integer');
    if (!(s.l1 >= previous && Number.isFinite(s.l1)))
      throw new InvalidArgumentError(
        `stages[${i}].l1`,
        s.l1,
        `must be finite and >= the previous stage's (${previous})`,
      );
    previous = s.l1;
  }
  let from = 0;
  let start = 0;
  for (const s of stages) {
    if (step < start + s.steps)
      return from + (s.l1 - from) * Math.sin(((Math.PI / 2) * (step - start + 1)) / s.steps);
    from = s.l1;
    start += s.steps;
  }
  return from;
}

/**
 * FATReLU at inference on a ReLU model: act(gate) values at or below `threshold` become 0 (the
 * `mlp.gate` site of every block), which is ReLU shifted to the threshold.
 */
export function fatReluThresholds(numBlocks: number, threshold: number): Thresholds {
  if (!(threshold >= 0 && Number.isFinite(threshold)))
    throw new InvalidArgumentError('threshold', threshold, 'must be a finite number >= 0');
  return {
    method: 'fatrelu',
    sparsity: 0,
    entries: Array.from({ length: numBlocks }, (_, block) => ({
      block,
      site: 'mlp.gate' as const,
      sparsity: 0,
      threshold,
    })),
  };
}
