// Running token sequences through a model in batches of equal length (what the perplexity windows
// and the task requests both need): sequences grouped by length, each group in batches of
// `batchSize`, one logits call per batch, progress after each.
import {
  type CausalLM,
  InvalidArgumentError,
  type ProgressOptions,
  reportProgress,
  ShapeMismatchError,
  Tensor,
} from '@sparsekit/core';

export interface LengthBatchOptions extends ProgressOptions {
  /** Sequences of one length per model call (default 1). */
  batchSize?: number;
  /** Longest lengths first (lm-eval's order); default: lengths in the order first seen. */
  longestFirst?: boolean;
  /** What progress events say. */
  stage: string;
  unit: string;
}

/**
 * Call `visit(item, logits, base)` for every item once its batch has run: `logits` holds the
 * batch's [batch, length, vocab] logits and row `base + t` is the prediction after the item's
 * token t. Items keep their order within a length.
 */
export async function forEachLengthBatch<T extends { input: ArrayLike<number> }>(
  model: CausalLM,
  items: readonly T[],
  options: LengthBatchOptions,
  visit: (item: T, logits: Float32Array, base: number) => void,
): Promise<void> {
  const batchSize = options.batchSize ?? 1;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new InvalidArgumentError('batchSize', batchSize, 'must be a positive integer');
  }
  const byLength = new Map<number, T[]>();
  for (const item of items) {
    const group = byLength.get(item.input.length);
    if (group === undefined) byLength.set(item.input.length, [item]);
    else group.push(item);
  }
  const lengths = [...byLength.keys()];
  if (options.longestFirst === true) lengths.sort((a, b) => b - a);
  const vocab = model.vocabSize;
  let done = 0;
  reportProgress(options, { stage: options.stage, current: 0, total: items.length, unit: options.unit });
  for (const length of lengths) {
    const group = byLength.get(length)!;
    for (let i = 0; i < group.length; i += batchSize) {
      const batch = group.slice(i, i + batchSize);
      const ids = new Int32Array(batch.length * length);
      batch.forEach((item, b) => {
        ids.set(item.input, b * length);
      });
      const logits = await model.logits(new Tensor('i32', [batch.length, length], ids));
      if (logits.size !== batch.length * length * vocab) {
        throw new ShapeMismatchError([batch.length, length, vocab], logits.shape, 'logits');
      }
      batch.forEach((item, b) => {
        visit(item, logits.data, b * length);
      });
      done += batch.length;
      reportProgress(options, {
        stage: options.stage,
        current: done,
        total: items.length,
        unit: options.unit,
      });
    }
  }
}
