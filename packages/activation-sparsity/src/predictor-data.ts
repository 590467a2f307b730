// Training data of Deja Vu predictors: per block, each token's MLP input (`mlp.input`, after the
// norm) next to its hidden activations (`mlp.hidden`), collected with hooks from a calibration
// stream into core's bounded, seeded activation stores, whole sequences held out for validation.
import {
  ActivationStore,
  InvalidArgumentError,
  type ProgressOptions,
  Rng,
  reportProgress,
  ShapeMismatchError,
  type ShardSink,
  type Tensor,
} from '@sparsekit/core';
import type { HookableLM } from './sites.js';

export interface PredictorDataOptions extends ProgressOptions {
  /** Blocks to collect (default all). */
  blocks?: readonly number[];
  /** Share of the sequences held out for validation (default 0.1; at least one when > 0). */
  validation?: number;
  /** Seed of the held-out choice, the stores' shuffles and reservoirs (default 0). */
  seed?: number;
  /**
   * Bytes of rows each block may hold in memory (default 64 MiB), shared between its training and
   * validation stores in proportion to the split. Rows past it are kept as a uniform reservoir
   * sample, or spill to `shards`.
   */
  memoryBudgetBytes?: number;
  /** Where a block's full buffers spill (core/node's `diskShards`); without it, a reservoir sample is kept. */
  shards?: (block: number, split: 'train' | 'validation') => ShardSink;
}

/** One block's rows: [inputSize MLP input floats, hiddenSize hidden floats] per token. */
export interface BlockPredictorData {
  block: number;
  inputSize: number;
  hiddenSize: number;
  /** Whether the block's MLP is gated (its `mlp.gate` site fired): act(gate) * up, rather than act(fc1). */
  gated: boolean;
  train: ActivationStore;
  validation: ActivationStore;
}

export interface PredictorData {
  blocks: BlockPredictorData[];
  /** Tokens run through the model. */
  tokens: number;
  sequences: number;
  /** Sequences held out (their tokens are in the validation stores). */
  validationSequences: number;
}

/** Split a store's [tokens, inputSize + hiddenSize] rows into the inputs and the hidden activations. */
export function splitRows(
  rows: Tensor<'f32'>,
  inputSize: number,
  hiddenSize: number,
): { inputs: Float32Array; hidden: Float32Array; tokens: number } {
  const width = inputSize + hiddenSize;
  if (rows.shape.at(-1) !== width)
    throw new ShapeMismatchError([-1, width], rows.shape, 'predictor data rows');
  const tokens = rows.size / width;
  const inputs = new Float32Array(tokens * inputSize);
  const hidden = new Float32Array(tokens * hiddenSize);
  const data = rows.data;
  for (let t = 0; t < tokens; t++) {
    inputs.set(data.subarray(t * width, t * width + inputSize), t * inputSize);
    hidden.set(data.subarray(t * width + inputSize, (t + 1) * width), t * hiddenSize);
  }
  return { inputs, hidden, tokens };
}

/**
 * Run `batches` ([batch, seq] token ids) through `model` and collect, per chosen block, every
 * token's MLP input and hidden activations. Whole sequences (rows of a batch) go to validation:
 * a seeded choice of round(validation * sequences) of them, so held-out tokens never share a
 * sequence with training ones.
 */
export async function collectPredictorData(
  model: HookableLM,
  batches: readonly Tensor<'i32'>[],
  options: PredictorDataOptions = {},
): Promise<PredictorData> {
  const blocks = [...new Set(options.blocks ?? Array.from({ length: model.numBlocks }, (_, b) => b))];
  for (const b of blocks)
    if (!(Number.isInteger(b) && b >= 0 && b < model.numBlocks))
      throw new InvalidArgumentError('block', b, `must be an integer in [0, ${model.numBlocks})`);
  const validation = options.validation ?? 0.1;
  if (!(validation >= 0 && validation < 1))
    throw new InvalidArgumentError('validation', validation, 'must be in [0, 1)');
  const budget = options.memoryBudgetBytes ?? 64 * 2 ** 20;
  const seed = options.seed ?? 0;
  const rng = new Rng(seed);
  const sequences = batches.reduce((n, b) => n + (b.shape[0] ?? 0), 0);
  const held = validation === 0 ? 0 : Math.max(1, Math.round(validation * sequences));
  if (held >= sequences)
    throw new InvalidArgumentError(
      'batches',
      `${sequences} sequences`,
      `leave none to train on after holding out ${held} for validation: give more sequences or a smaller validation share`,
    );
  const heldOut = new Set(rng.sample(sequences, held));

  const data = new Map<number, BlockPredictorData>();
  const pending = new Map<number, Float32Array>();
  const gated = new Set<number>();
  let first = 0; // the global index of the current batch's first sequence
  const store = (block: number, width: number, split: 'train' | 'validation') => {
    const share = split === 'train' ? 1 - validation : validation;
    return new ActivationStore({
      width,
      memoryBudgetBytes: Math.max(Math.floor(budget * share), 6 * 4 * width),
      seed: seed + 1 + 2 * block + (split === 'train' ? 0 : 1),
      whenFull: 'reservoir',
      ...(options.shards === undefined ? {} : { shards: options.shards(block, split) }),
    });
  };

  const handles = [
    model.hooks.add(
      'mlp.input',
      (tensor, context) => {
        pending.set(context.block, tensor.data.slice());
      },
      { blocks },
    ),
    model.hooks.add(
      'mlp.gate',
      (_tensor, context) => {
        gated.add(context.block);
      },
      { blocks },
    ),
    model.hooks.add(
      'mlp.hidden',
      (tensor, context) => {
        const block = context.block;
        if (context.expert !== undefined)
          throw new InvalidArgumentError(
            `block ${block}'s MLP`,
            'a mixture of experts',
            'Deja Vu predictors are for dense and gated MLPs',
          );
        const x = pending.get(block);
        pending.delete(block);
        if (x === undefined)
          throw new InvalidArgumentError(
            `block ${block}'s mlp.hidden`,
            'seen before its mlp.input',
            'the model must run both sites of a block in one call',
          );
        const hiddenSize = tensor.shape.at(-1)!;
        const tokens = tensor.size / hiddenSize;
        const inputSize = x.length / tokens;
        let d = data.get(block);
        if (d === undefined) {
          const width = inputSize + hiddenSize;
          d = {
            block,
            inputSize,
            hiddenSize,
            gated: false,
            train: store(block, width, 'train'),
            validation: store(block, width, 'validation'),
          };
          data.set(block, d);
        } else if (d.inputSize !== inputSize || d.hiddenSize !== hiddenSize)
          throw new ShapeMismatchError(
            [d.inputSize, d.hiddenSize],
            [inputSize, hiddenSize],
            `block ${block}'s MLP input and hidden widths`,
          );
        const width = inputSize + hiddenSize;
        const seq = context.seq;
        const rows = {
          train: new Float32Array(tokens * width),
          validation: new Float32Array(tokens * width),
        };
        const used = { train: 0, validation: 0 };
        for (let t = 0; t < tokens; t++) {
          const split = heldOut.has(first + Math.floor(t / seq)) ? 'validation' : 'train';
          const at = used[split]++ * width;
          rows[split].set(x.subarray(t * inputSize, (t + 1) * inputSize), at);
          rows[split].set(tensor.data.subarray(t * hiddenSize, (t + 1) * hiddenSize), at + inputSize);
        }
        if (used.train > 0) d.train.add(rows.train.subarray(0, used.train * width));
        if (used.validation > 0) d.validation.add(rows.validation.subarray(0, used.validation * width));
      },
      { blocks },
    ),
  ];
  let tokens = 0;
  try {
    for (const [i, batch] of batches.entries()) {
      await model.logits(batch);
      first += batch.shape[0] ?? 0;
      tokens += batch.size;
      reportProgress(options, {
        stage: 'predictor-data',
        current: i + 1,
        total: batches.length,
        unit: 'batch',
      });
    }
  } finally {
    for (const h of handles) h.remove();
  }
  for (const [b, d] of data) d.gated = gated.has(b);
  const missing = blocks.filter((b) => !data.has(b));
  if (missing.length > 0)
    throw new InvalidArgumentError(
      'blocks',
      missing.join(', '),
      'never ran their mlp.hidden site: the model must call its hooks (and batches must not be empty)',
    );
  return {
    blocks: blocks.sort((a, b) => a - b).map((b) => data.get(b)!),
    tokens,
    sequences,
    validationSequences: held,
  };
}
