// Double Sparsity's offline calibration (andy-yang-1/DoubleSparse config/offline_calibration.py):
// per head, the mean over calibration tokens of |q ⊙ k| channel by channel (each token's query with
// its own key, after rotary positions), and of |q| and |k| (after projection); channels sorted by it
// become the label channels. Files keep the reference's layout: one JSON object whose key
// `model.layers.<i>.self_attn.qk_proj` (and `.q_proj`, `.k_proj`) holds each head's channel indices,
// most important first.
import {
  type Hooks,
  InvalidArgumentError,
  InvalidFormatError,
  type ProgressOptions,
  reportProgress,
  type Tensor,
} from '@sparsekit/core';
import { LABEL_SOURCES, type LabelChannels, type LabelSource } from './double-sparsity.js';

/** A model whose forward passes run its hooks and that names its attention shape (models' `TransformerLM`). */
export interface QkHookableLM {
  readonly hooks: Hooks;
  readonly numBlocks: number;
  readonly blockShape: { readonly heads: number; readonly kvHeads: number; readonly headDim: number };
  logits(tokenIds: Tensor<'i32'>): unknown;
}

/** Mean channel magnitudes per layer: qk and q [heads * headDim], k [kvHeads * headDim]. */
export interface ChannelImportance {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Calibration tokens the means are over. */
  readonly tokens: number;
  readonly layers: readonly {
    readonly qk: Float64Array;
    readonly q: Float64Array;
    readonly k: Float64Array;
  }[];
}

/**
 * Run the calibration batches ([batch, seq] token ids) through `model` and measure, per layer and
 * head, the mean |q ⊙ k| of every channel (q and k after rotary positions: the hook sites
 * `attention.q.rotated` / `attention.k.rotated`; models without rotary positions use `attention.q`
 * / `attention.k`), with mean |q| and |k| after projection. A query head reads the key/value head
 * of its group.
 */
export async function calibrateDoubleSparsity(
  model: QkHookableLM,
  batches: readonly Tensor<'i32'>[],
  options: ProgressOptions = {},
): Promise<ChannelImportance> {
  const { heads, kvHeads, headDim: d } = model.blockShape;
  const group = heads / kvHeads;
  if (!Number.isInteger(group) || group < 1)
    throw new InvalidArgumentError('blockShape', model.blockShape, 'heads must be a multiple of kvHeads');
  const layers = Array.from({ length: model.numBlocks }, () => ({
    qk: new Float64Array(heads * d),
    q: new Float64Array(heads * d),
    k: new Float64Array(kvHeads * d),
  }));
  // Per block, the call's q and k as last seen (the rotated ones replace the projected ones).
  const pending = new Map<number, { q?: Float32Array; k?: Float32Array }>();
  const sums = (block: number) => {
    const layer = layers[block];
    if (layer === undefined) throw new InvalidArgumentError('block', block, 'is not a block of the model');
    return layer;
  };
  const handle = model.hooks.add(
    ['attention.q', 'attention.k', 'attention.q.rotated', 'attention.k.rotated', 'attention.output'],
    (tensor, context) => {
      const block = context.block;
      const seen = pending.get(block) ?? {};
      pending.set(block, seen);
      const x = tensor.data;
      switch (context.site) {
        case 'attention.q':
          addAbs(sums(block).q, x, heads * d);
          seen.q = x.slice();
          return;
        case 'attention.k':
          addAbs(sums(block).k, x, kvHeads * d);
          seen.k = x.slice();
          return;
        case 'attention.q.rotated':
          seen.q = x.slice();
          return;
        case 'attention.k.rotated':
          seen.k = x.slice();
          return;
        default: {
          const { q, k } = seen;
          pending.delete(block);
          if (q === undefined || k === undefined) return;
          const qk = sums(block).qk;
          const tokens = q.length / (heads * d);
          for (let t = 0; t < tokens; t++)
            for (let h = 0; h < heads; h++) {
              const qo = (t * heads + h) * d;
              const ko = (t * kvHeads + Math.floor(h / group)) * d;
              for (let c = 0; c < d; c++) qk[h * d + c] = qk[h * d + c]! + Math.abs(q[qo + c]! * k[ko + c]!);
            }
        }
      }
    },
  );
  let tokens = 0;
  try {
    for (const [i, batch] of batches.entries()) {
      await model.logits(batch);
      tokens += batch.size;
      reportProgress(options, {
        stage: 'calibrate double sparsity',
        current: i + 1,
        total: batches.length,
        unit: 'batch',
      });
    }
  } finally {
    handle.remove();
  }
  if (tokens === 0) throw new InvalidArgumentError('batches', batches.length, 'must hold at least one token');
  for (const layer of layers)
    for (const sum of [layer.qk, layer.q, layer.k]) for (let i = 0; i < sum.length; i++) sum[i]! /= tokens;
  return { heads, kvHeads, headDim: d, tokens, layers };
}

/** sums[c] += |x[t * width + c]| over the rows of x. */
function addAbs(sums: Float64Array, x: Float32Array, width: number): void {
  for (let o = 0; o < x.length; o += width)
    for (let c = 0; c < width; c++) sums[c] = sums[c]! + Math.abs(x[o + c]!);
}

/** Each head's channels by decreasing mean (ties: lower channel first), from one statistic. */
export function labelChannels(importance: ChannelImportance, source: LabelSource = 'qk'): LabelChannels {
  checkSource(source);
  const d = importance.headDim;
  const layers = importance.layers.map((layer) => {
    const means = layer[source];
    return Array.from({ length: means.length / d }, (_, h) => {
      const row = means.subarray(h * d, (h + 1) * d);
      return Int32Array.from({ length: d }, (_, c) => c).sort((a, b) => row[b]! - row[a]! || a - b);
    });
  });
  return { source, headDim: d, layers };
}

function checkSource(source: string): asserts source is LabelSource {
  if (!(LABEL_SOURCES as readonly string[]).includes(source))
    throw new InvalidArgumentError('source', source, `must be one of ${LABEL_SOURCES.join(', ')}`);
}

/** The key of a layer's channels in a channel file: `model.layers.<layer>.self_attn.<source>_proj`. */
export function channelFileKey(layer: number, source: LabelSource): string {
  return `model.layers.${layer}.self_attn.${source}_proj`;
}

/** The channel file of a calibration (the reference's layout): every layer's q, k and qk orders. */
export function channelFileContents(importance: ChannelImportance): Record<string, number[][]> {
  const out: Record<string, number[][]> = {};
  for (const source of ['q', 'k', 'qk'] as const) {
    const { layers } = labelChannels(importance, source);
    for (const [l, rows] of layers.entries())
      out[channelFileKey(l, source)] = rows!.map((r) => Array.from(r));
  }
  return out;
}

const KEY = /^model\.layers\.(\d+)\.self_attn\.(qk|q|k)_proj$/;

/**
 * The label channels of one statistic in a parsed channel file (`where` names it in errors). Other
 * keys (the reference's files also hold v_proj, o_proj, mlp entries) are ignored; every row of the
 * chosen entries must be a permutation of [0, headDim), every layer with the same number of rows.
 */
export function parseChannelFile(
  value: unknown,
  source: LabelSource = 'qk',
  where = 'channel file',
): LabelChannels {
  checkSource(source);
  const bad = (reason: string): never => {
    throw new InvalidFormatError('Double Sparsity channel file', `${where}: ${reason}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    bad('must be a JSON object of `model.layers.<i>.self_attn.<q|k|qk>_proj` entries');
  const layers: Int32Array[][] = [];
  let headDim = -1;
  let rowCount = -1;
  for (const [key, entry] of Object.entries(value as Record<string, unknown>)) {
    const m = KEY.exec(key);
    if (m === null || m[2] !== source) continue;
    const layer = Number(m[1]);
    if (!Number.isSafeInteger(layer)) bad(`${key}: layer index out of range`);
    if (!Array.isArray(entry) || entry.length === 0) bad(`${key} must be a non-empty list of per-head lists`);
    const rows = (entry as unknown[]).map((row, h) => {
      if (!Array.isArray(row) || row.length === 0)
        return bad(`${key}[${h}] must be a non-empty list of channels`);
      if (headDim < 0) headDim = row.length;
      if (row.length !== headDim) bad(`${key}[${h}] has ${row.length} channels, others ${headDim}`);
      const seen = new Uint8Array(headDim);
      for (const c of row as unknown[]) {
        if (typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c >= headDim || seen[c] === 1)
          bad(
            `${key}[${h}] must be a permutation of the channels 0..${headDim - 1} (found ${JSON.stringify(c)})`,
          );
        seen[c as number] = 1;
      }
      return Int32Array.from(row as number[]);
    });
    if (rowCount < 0) rowCount = rows.length;
    if (rows.length !== rowCount) bad(`${key} has ${rows.length} heads, other layers ${rowCount}`);
    layers[layer] = rows;
  }
  if (layers.length === 0) bad(`no \`model.layers.<i>.self_attn.${source}_proj\` entries`);
  return { source, headDim, layers: Array.from({ length: layers.length }, (_, l) => layers[l]) };
}
