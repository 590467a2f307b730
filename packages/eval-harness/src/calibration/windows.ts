// Calibration windows: the token windows one-shot pruning methods collect their statistics on.
import { InvalidArgumentError, MAX_CALIBRATION_SAMPLES, Rng, Tensor } from '@sparsekit/core';

export interface CalibrationWindowOptions {
  /** How many windows (default 128, as SparseGPT and Wanda). */
  samples?: number;
  /** Tokens per window, prefix included (default 2048, the references' for their models). */
  seqLen?: number;
  /**
   * 'random' (default): each window starts at a seeded uniform position, as the references'
   * `get_c4` / `get_wikitext2` draw them (windows may overlap). 'consecutive': non-overlapping
   * windows from the start of the text, as many as fit up to `samples`.
   */
  mode?: 'random' | 'consecutive';
  /** Seed of the random draw (default 0). */
  seed?: number;
  /** Token ids put before every window (e.g. the end-of-text token of a model trained with one). */
  prefix?: readonly number[];
  /** Told when random windows must overlap (the text is shorter than all of them together). */
  onWarning?: (message: string) => void;
}

/**
 * Calibration batches from a tokenized text: `samples` windows of `seqLen` tokens, each its own
 * [1, seqLen] batch. One implementation for the CLI, the demo and the quality scripts, so a recipe's
 * `calibration: { samples, seqLen, seed }` means the same windows everywhere.
 */
export function calibrationWindows(
  tokens: ArrayLike<number>,
  options: CalibrationWindowOptions = {},
): Tensor<'i32'>[] {
  const samples = options.samples ?? 128;
  const seqLen = options.seqLen ?? 2048;
  const prefix = options.prefix ?? [];
  if (!Number.isInteger(samples) || samples < 1 || samples > MAX_CALIBRATION_SAMPLES)
    throw new InvalidArgumentError(
      'samples',
      samples,
      `must be an integer in [1, ${MAX_CALIBRATION_SAMPLES}]`,
    );
  if (!Number.isInteger(seqLen) || seqLen < 2)
    throw new InvalidArgumentError(
      'seqLen',
      seqLen,
      'must be an integer >= 2 (a window predicts its next tokens)',
    );
  const span = seqLen - prefix.length;
  if (span < 1)
    throw new InvalidArgumentError('prefix', prefix.length, `must be shorter than seqLen (${seqLen})`);
  const n = tokens.length;
  if (n < span + (options.mode === 'consecutive' ? 0 : 1))
    throw new InvalidArgumentError(
      'calibration text',
      `${n} tokens`,
      `is shorter than one window of ${span}: give a longer text or a smaller seqLen`,
    );
  const window = (start: number) => {
    const ids = new Int32Array(seqLen);
    ids.set(prefix);
    for (let i = 0; i < span; i++) ids[prefix.length + i] = tokens[start + i]!;
    return new Tensor('i32', [1, seqLen], ids);
  };
  if (options.mode === 'consecutive') {
    const count = Math.min(samples, Math.floor(n / span));
    return Array.from({ length: count }, (_, w) => window(w * span));
  }
  if (samples * span > n)
    options.onWarning?.(
      `the calibration text has ${n} tokens, so ${samples} windows of ${span} (${samples * span} tokens) overlap`,
    );
  const rng = new Rng(options.seed ?? 0);
  return Array.from({ length: samples }, () => window(rng.int(n - span)));
}
