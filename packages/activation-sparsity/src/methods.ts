// The method table: every way this package makes activation-sparsity rules, with the calibration
// each needs, so apps (the CLI, the server) offer them by name and make them with one call.
import { type BlockwiseLM, InvalidArgumentError, type ProgressOptions, type Tensor } from '@sparsekit/core';
import {
  ActivationCalibration,
  type CalibrationKind,
  calibrateActivations,
  calibrateDeltas,
} from './calibrate.js';
import { calibrateChess, chessThresholds } from './chess.js';
import { greedyThresholds } from './greedy.js';
import { ACTIVATION_SITES, type ActivationSite, type HookableLM } from './sites.js';
import {
  catsThresholds,
  deltaThresholds,
  type Thresholds,
  tealThresholds,
  topKSparsity,
} from './thresholds.js';

export interface ActivationMethod {
  name: string;
  summary: string;
  /** The calibration it reads (`none`: it needs none). CHESS+ also reads a magnitude one. */
  calibration: CalibrationKind | 'none';
  /** The sites its rules act at. */
  sites: readonly ActivationSite[];
}

export const ACTIVATION_METHODS = [
  {
    name: 'teal',
    summary: "TEAL: one magnitude threshold per (block, site) at TEAL's four sites, uniform sparsity",
    calibration: 'magnitude',
    sites: ACTIVATION_SITES,
  },
  {
    name: 'teal-greedy',
    summary: "TEAL's greedy per-block allocation to a target effective sparsity",
    calibration: 'magnitude',
    sites: ACTIVATION_SITES,
  },
  {
    name: 'cats',
    summary: 'CATS: one threshold per block on |act(gate)| (gated MLPs)',
    calibration: 'magnitude',
    sites: ['mlp.gate'],
  },
  {
    name: 'chess',
    summary: 'CHESS: channel-wise thresholds on act(gate), weighted by mean |up| (gated MLPs)',
    calibration: 'chess',
    sites: ['mlp.gate'],
  },
  {
    name: 'chess+',
    summary: 'CHESS+: CHESS, plus scalar thresholds at the attention input and before o_proj',
    calibration: 'chess',
    sites: ['attention.input', 'attention.output', 'mlp.gate'],
  },
  {
    name: 'top-k',
    summary: "top-k per token at TEAL's four sites (the lazy-neuron view; no calibration)",
    calibration: 'none',
    sites: ACTIVATION_SITES,
  },
  {
    name: 'delta',
    summary: "delta sparsity at TEAL's four sites: a channel updates only when it moved by more than t",
    calibration: 'delta',
    sites: ACTIVATION_SITES,
  },
] as const satisfies readonly ActivationMethod[];
export type ActivationMethodName = (typeof ACTIVATION_METHODS)[number]['name'];

export interface MakeRulesOptions extends ProgressOptions {
  /** A calibration computed before (`calibrateActivations`, `calibrateChess`, `calibrateDeltas`). */
  calibration?: ActivationCalibration;
  /** CHESS+: the magnitude calibration of the attention sites (computed when not given). */
  attentionCalibration?: ActivationCalibration;
  /** Greedy: how many of `batches` measure the block errors (default 8). */
  greedyBatches?: number;
}

/** The calibration `method` needs, computed from `batches` (undefined for methods that need none). */
export async function calibrateFor(
  model: HookableLM,
  method: ActivationMethodName,
  batches: readonly Tensor<'i32'>[],
  options: ProgressOptions = {},
): Promise<ActivationCalibration | undefined> {
  const m = activationMethod(method);
  if (m.calibration === 'none') return undefined;
  if (m.calibration === 'chess') return calibrateChess(model, batches, options);
  if (m.calibration === 'delta') return calibrateDeltas(model, batches, { ...options, sites: m.sites });
  return calibrateActivations(model, batches, { ...options, sites: m.sites });
}

/**
 * The rules of `method` at `sparsity` for `model`: from `options.calibration` when given (it must be
 * of the method's kind), else calibrated on `batches`.
 */
export async function makeRules(
  model: HookableLM & BlockwiseLM,
  method: ActivationMethodName,
  sparsity: number,
  batches: readonly Tensor<'i32'>[],
  options: MakeRulesOptions = {},
): Promise<Thresholds> {
  const m = activationMethod(method);
  if (m.calibration !== 'none' && options.calibration === undefined && batches.length === 0)
    throw new InvalidArgumentError('batches', 0, `${method} needs calibration batches (or a calibration)`);
  const calibration = options.calibration ?? (await calibrateFor(model, method, batches, options));
  switch (method) {
    case 'teal':
      return tealThresholds(only(calibration!, ACTIVATION_SITES), sparsity);
    case 'teal-greedy':
      return (
        await greedyThresholds(
          model,
          only(calibration!, ACTIVATION_SITES),
          batches.slice(0, options.greedyBatches ?? 8),
          {
            target: sparsity,
            ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
          },
        )
      ).thresholds;
    case 'cats':
      return catsThresholds(calibration!, sparsity);
    case 'chess':
      return chessThresholds(calibration!, sparsity);
    case 'chess+': {
      const attention =
        options.attentionCalibration ??
        (await calibrateActivations(model, batches, {
          ...options,
          sites: ['attention.input', 'attention.output'],
        }));
      return chessThresholds(calibration!, sparsity, { attention });
    }
    case 'top-k':
      return topKSparsity(model.numBlocks, sparsity, ACTIVATION_SITES);
    case 'delta':
      return deltaThresholds(calibration!, sparsity);
  }
}

export function activationMethod(name: string): ActivationMethod {
  const m = ACTIVATION_METHODS.find((x) => x.name === name);
  if (m === undefined)
    throw new InvalidArgumentError(
      'method',
      name,
      `must be one of ${ACTIVATION_METHODS.map((x) => x.name).join(', ')}`,
    );
  return m;
}

/** The calibration restricted to `sites` (each must be calibrated). */
function only(calibration: ActivationCalibration, sites: readonly ActivationSite[]): ActivationCalibration {
  if (sites.every((s) => calibration.sites.includes(s)) && calibration.sites.length === sites.length)
    return calibration;
  for (const s of sites) calibration.histogram(0, s); // a typed error when one is missing
  return new ActivationCalibration(
    sites,
    calibration.numBlocks,
    calibration.histograms,
    calibration.tokens,
    calibration.kind,
  );
}
