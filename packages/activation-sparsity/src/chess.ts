// CHESS (junhuihe-hjh/CHESS): channel-wise thresholds on act(gate), each channel weighted by the mean
// |up| it is multiplied with, so channels whose products are small are dropped more often.
import { InvalidArgumentError, type Tensor } from '@sparsekit/core';
import { ActivationCalibration, type CalibrateOptions } from './calibrate.js';
import { SiteHistogram } from './histogram.js';
import { type HookableLM, runWithHooks, siteKey } from './sites.js';
import { type ThresholdEntry, type Thresholds, tealThresholds } from './thresholds.js';

/** The largest finite f32: the threshold of a channel whose |up| is always 0 (it never matters). */
const NEVER = 3.4028234663852886e38;

/**
 * CHESS' calibration of a gated model, in two passes over `batches`: the mean |up| of each MLP
 * channel (hook `mlp.up`), then the distribution of |act(gate)_c| * mean|up|_c over every token and
 * channel of each block (a non-negative histogram at site `mlp.gate`). Gated MLPs only.
 */
export async function calibrateChess(
  model: HookableLM,
  batches: readonly Tensor<'i32'>[],
  options: Omit<CalibrateOptions, 'sites'> = {},
): Promise<ActivationCalibration> {
  const sums: Float64Array[] = [];
  let rows = 0;
  await runWithHooks(
    model,
    batches,
    () =>
      model.hooks.add('mlp.up', (tensor, context) => {
        if (context.expert !== undefined) return;
        const width = tensor.shape.at(-1)!;
        if (sums[context.block] === undefined) sums[context.block] = new Float64Array(width);
        const sum = sums[context.block]!;
        const x = tensor.data;
        for (let i = 0; i < x.length; i++) sum[i % width]! += Math.abs(x[i]!);
        if (context.block === 0) rows += x.length / width;
      }),
    'calibrate chess: mean |up|',
    options,
  );
  if (sums.length !== model.numBlocks || rows === 0)
    throw new InvalidArgumentError(
      'model',
      'no gated MLP',
      'CHESS needs gated MLPs (act(gate) * up) in every block, and calibration tokens',
    );
  const scales = new Map<string, Float32Array>();
  const histograms = new Map<string, SiteHistogram>();
  for (let b = 0; b < model.numBlocks; b++) {
    scales.set(
      siteKey(b, 'mlp.gate'),
      Float32Array.from(sums[b]!, (s) => s / rows),
    );
    histograms.set(siteKey(b, 'mlp.gate'), new SiteHistogram({ ...options, nonNegative: true }));
  }
  const tokens = await runWithHooks(
    model,
    batches,
    () =>
      model.hooks.add('mlp.gate', (tensor, context) => {
        if (context.expert !== undefined) return;
        const key = siteKey(context.block, 'mlp.gate');
        const scale = scales.get(key)!;
        const x = tensor.data;
        const weighted = new Float32Array(x.length);
        for (let i = 0; i < x.length; i++) weighted[i] = Math.abs(x[i]!) * scale[i % scale.length]!;
        histograms.get(key)!.add(weighted);
      }),
    'calibrate chess: weighted act(gate)',
    options,
  );
  return new ActivationCalibration(['mlp.gate'], model.numBlocks, histograms, tokens, 'chess', scales);
}

export interface ChessOptions {
  /**
   * CHESS+: also TEAL-style scalar thresholds at the attention input and the input of o_proj, from
   * this (magnitude) calibration of `attention.input` and `attention.output`, at the same sparsity.
   */
  attention?: ActivationCalibration;
}

/**
 * CHESS' channel-wise thresholds at `sparsity`: per block, T is the `sparsity` quantile of
 * |act(gate)_c| * mean|up|_c over tokens and channels, and channel c keeps act(gate)_c when
 * |act(gate)_c| > t_c = T / mean|up|_c. On the calibration data a share `sparsity` is dropped per
 * block, unevenly across channels.
 */
export function chessThresholds(
  calibration: ActivationCalibration,
  sparsity: number,
  options: ChessOptions = {},
): Thresholds {
  calibration.expectKind('chess', 'chessThresholds');
  if (!(sparsity >= 0 && sparsity < 1))
    throw new InvalidArgumentError('sparsity', sparsity, 'must be in [0, 1)');
  const entries: ThresholdEntry[] = [];
  for (let block = 0; block < calibration.numBlocks; block++) {
    const key = siteKey(block, 'mlp.gate');
    const t = calibration.histogram(block, 'mlp.gate').threshold(sparsity);
    const scale = calibration.channelScales.get(key);
    if (scale === undefined)
      throw new InvalidArgumentError('calibration', key, 'has no channel scales (mean |up|)');
    const channels = Array.from(scale, (m) => (m > 0 ? Math.fround(t / m) : NEVER));
    entries.push({ block, site: 'mlp.gate', sparsity, threshold: t, channels });
  }
  if (options.attention !== undefined) {
    const attention = options.attention;
    for (const site of ['attention.input', 'attention.output'] as const)
      if (!attention.sites.includes(site))
        throw new InvalidArgumentError(
          'attention calibration sites',
          attention.sites.join(', '),
          `CHESS+ needs '${site}'`,
        );
    const teal = tealThresholds(attention, sparsity);
    entries.unshift(
      ...teal.entries.filter((e) => e.site === 'attention.input' || e.site === 'attention.output'),
    );
  }
  return { method: options.attention === undefined ? 'chess' : 'chess+', sparsity, entries };
}
