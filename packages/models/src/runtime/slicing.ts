// Computational invariance for SliceGPT: fold the norms into the layers around them, then rotate
// (and slice) the residual stream at any point by an orthonormal basis. The algorithm that picks
// the bases (PCA of calibration signals) lives in @sparsekit/pruners; this is the model surgery.

import { assertFinite, InvalidArgumentError, type StreamPoint, type Tensor } from '@sparsekit/core';
import type { ModelConfig } from '../config.js';
import { UnsupportedModelError } from '../errors.js';
import { denseMatrix, Linear } from './linear.js';
import { mlpOutputWidth, mlpReaders, mlpWriters } from './mlp.js';
import type { ModelParams, NormParams } from './params.js';
import type { BackendRef } from './steps.js';

const ones = (n: number) => new Float32Array(n).fill(1);

/** Width of the embeddings' rows (the stream entering block 0). */
export function embeddingWidth(config: ModelConfig, p: ModelParams): number {
  return p.projectIn?.outFeatures ?? p.embedTokens.length / config.vocabSize;
}

/** Width of the residual stream at `point`. */
export function streamWidth(config: ModelConfig, p: ModelParams, point: StreamPoint): number {
  if (point.at === 'embeddings') return embeddingWidth(config, p);
  const b = p.blocks[point.block];
  if (b === undefined) {
    throw new InvalidArgumentError('stream point block', point.block, `must be in [0, ${p.blocks.length})`);
  }
  return point.at === 'attention' ? b.o.outFeatures : mlpOutputWidth(b.mlp);
}

/**
 * Fold norms into the layers that read them (returns the new config; `p` is edited in place):
 * reader W -> W diag(g), b -> b + W beta. LayerNorm models first make every write to the stream
 * mean-free (embeddings, positions, o_proj and down_proj outputs), so LayerNorm equals RMSNorm.
 * Tied embeddings are untied (the head and the embeddings are rotated differently later).
 */
export function foldNorms(config: ModelConfig, p: ModelParams): ModelConfig {
  if (config.normWidth !== undefined) return config;
  if (!config.preNorm) {
    throw new UnsupportedModelError(
      'norm placement',
      'folding norms needs pre-norm blocks; this model is post-norm',
    );
  }
  if (p.projectIn !== undefined || p.projectOut !== undefined) {
    throw new UnsupportedModelError('project_in/project_out', 'folding norms with embedding projections');
  }
  const width = config.hiddenSize;
  if (config.norm === 'layernorm') {
    p.embedTokens = centerRows(p.embedTokens, width);
    if (p.embedPositions !== undefined) p.embedPositions = centerRows(p.embedPositions, width);
    for (const b of p.blocks) for (const writer of [b.o, ...mlpWriters(b.mlp)]) centerOutputs(writer);
  }
  // The head gets its own copy of the weights before anything scales them.
  p.lmHead.reshape(
    p.lmHead.getWeight().data.slice(),
    p.lmHead.outFeatures,
    p.lmHead.inFeatures,
    p.lmHead.bias,
  );
  for (const b of p.blocks) {
    foldInto(b.attentionNorm, [b.q, b.k, b.v]);
    foldInto(b.mlpNorm, mlpReaders(b.mlp));
    b.attentionNorm = { weight: ones(width) };
    b.mlpNorm = { weight: ones(width) };
  }
  if (p.finalNorm !== undefined) {
    foldInto(p.finalNorm, [p.lmHead]);
    p.finalNorm = { weight: ones(width) };
  }
  return { ...config, norm: 'rmsnorm', normWidth: width, tieEmbeddings: false };
}

function foldInto(norm: NormParams, readers: Linear[]): void {
  const g = norm.weight;
  const beta = norm.bias;
  for (const layer of readers) {
    const { outFeatures: rows, inFeatures: cols } = layer;
    const w = layer.getWeight().data;
    const folded = new Float32Array(rows * cols);
    let bias = layer.bias;
    if (beta !== undefined) {
      bias = new Float32Array(rows);
      for (let r = 0; r < rows; r++) {
        let s = layer.bias?.[r] ?? 0;
        for (let c = 0; c < cols; c++) s += w[r * cols + c]! * beta[c]!;
        bias[r] = s;
      }
    }
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) folded[r * cols + c] = w[r * cols + c]! * g[c]!;
    layer.reshape(folded, rows, cols, bias);
  }
}

function centerRows(x: Float32Array, width: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length; r += width) {
    let mean = 0;
    for (let i = 0; i < width; i++) mean += x[r + i]!;
    mean /= width;
    for (let i = 0; i < width; i++) out[r + i] = x[r + i]! - mean;
  }
  return out;
}

/** W -> (I - 11^T / rows) W, b -> b - mean(b): the layer's outputs become mean-free. */
function centerOutputs(layer: Linear): void {
  const { outFeatures: rows, inFeatures: cols } = layer;
  const w = layer.getWeight().data;
  const out = new Float32Array(rows * cols);
  for (let c = 0; c < cols; c++) {
    let mean = 0;
    for (let r = 0; r < rows; r++) mean += w[r * cols + c]!;
    mean /= rows;
    for (let r = 0; r < rows; r++) out[r * cols + c] = w[r * cols + c]! - mean;
  }
  let bias = layer.bias;
  if (bias !== undefined) {
    const mean = bias.reduce((s, v) => s + v, 0) / rows;
    bias = bias.map((v) => v - mean);
  }
  layer.reshape(out, rows, cols, bias);
}

/** x [rows, width] -> x Q [rows, kept]. */
function timesQ(x: Float32Array, rows: number, q: Tensor<'f32'>): Float32Array {
  const [width, kept] = q.shape as [number, number];
  const out = new Float32Array(rows * kept);
  const acc = new Float64Array(kept);
  for (let r = 0; r < rows; r++) {
    acc.fill(0);
    for (let i = 0; i < width; i++) {
      const v = x[r * width + i]!;
      if (v === 0) continue;
      for (let j = 0; j < kept; j++) acc[j]! += v * q.data[i * kept + j]!;
    }
    out.set(acc, r * kept);
  }
  return out;
}

/** Q^T x for x [width, cols] -> [kept, cols]. */
function qTransposeTimes(q: Tensor<'f32'>, x: Float32Array, cols: number): Float32Array {
  const [width, kept] = q.shape as [number, number];
  const acc = new Float64Array(kept * cols);
  for (let i = 0; i < width; i++) {
    for (let j = 0; j < kept; j++) {
      const qij = q.data[i * kept + j]!;
      if (qij === 0) continue;
      for (let c = 0; c < cols; c++) acc[j * cols + c]! += qij * x[i * cols + c]!;
    }
  }
  return Float32Array.from(acc);
}

/** A layer reading the stream: W [out, width] -> W Q. */
function rotateReader(layer: Linear, q: Tensor<'f32'>): void {
  layer.reshape(
    timesQ(layer.getWeight().data, layer.outFeatures, q),
    layer.outFeatures,
    q.shape[1]!,
    layer.bias,
  );
}

/** A layer writing to the stream: W [width, in] -> Q^T W, b -> Q^T b. */
function rotateWriter(layer: Linear, q: Tensor<'f32'>): void {
  const cols = layer.inFeatures;
  const bias = layer.bias === undefined ? undefined : qTransposeTimes(q, layer.bias, 1);
  layer.reshape(qTransposeTimes(q, layer.getWeight().data, cols), q.shape[1]!, cols, bias);
}

function identity(name: string, width: number, kernels: BackendRef): Linear {
  const values = new Float32Array(width * width);
  for (let i = 0; i < width; i++) values[i * width + i] = 1;
  return new Linear(name, denseMatrix(values, width, width), undefined, kernels);
}

/**
 * Re-express the stream at `point` as x Q (see `SliceableLM.rotateStream`), editing `p` in place.
 * Returns the config, with `hiddenSize` updated once every point of the stream has the same width.
 */
export function rotateStream(
  config: ModelConfig,
  p: ModelParams,
  point: StreamPoint,
  q: Tensor<'f32'>,
  kernels: BackendRef,
): ModelConfig {
  if (config.normWidth === undefined) {
    throw new InvalidArgumentError('rotateStream', 'unfolded norms', 'call foldNorms() first');
  }
  const width = streamWidth(config, p, point);
  const [rows, kept] = q.shape as [number, number];
  if (q.shape.length !== 2 || rows !== width || kept < 1 || kept > width) {
    throw new InvalidArgumentError(
      'rotation shape',
      q.shape,
      `must be [${width}, k] with 1 <= k <= ${width}`,
    );
  }
  assertFinite(q.data, 'rotation');
  const blocks = p.blocks;
  const shortcut = (i: number, which: 'attentionShortcut' | 'mlpShortcut') => {
    const b = blocks[i]!;
    b[which] ??= identity(
      `layers.${i}.${which === 'attentionShortcut' ? 'attn' : 'mlp'}_shortcut`,
      width,
      kernels,
    );
    return b[which]!;
  };
  // Writers.
  if (point.at === 'embeddings') {
    p.embedTokens = timesQ(p.embedTokens, config.vocabSize, q);
    if (p.embedPositions !== undefined)
      p.embedPositions = timesQ(p.embedPositions, p.embedPositions.length / width, q);
  } else {
    const b = blocks[point.block]!;
    for (const writer of point.at === 'attention' ? [b.o] : mlpWriters(b.mlp)) rotateWriter(writer, q);
    rotateWriter(shortcut(point.block, point.at === 'attention' ? 'attentionShortcut' : 'mlpShortcut'), q);
  }
  // Readers, and the norm in front of them.
  const next = point.at === 'embeddings' ? 0 : point.at === 'mlp' ? point.block + 1 : undefined;
  if (point.at === 'attention') {
    const b = blocks[point.block]!;
    for (const layer of mlpReaders(b.mlp)) rotateReader(layer, q);
    rotateReader(shortcut(point.block, 'mlpShortcut'), q);
    b.mlpNorm = { weight: ones(kept) };
  } else if (next !== undefined && next < blocks.length) {
    const b = blocks[next]!;
    for (const layer of [b.q, b.k, b.v]) rotateReader(layer, q);
    rotateReader(shortcut(next, 'attentionShortcut'), q);
    b.attentionNorm = { weight: ones(kept) };
  } else {
    rotateReader(p.lmHead, q);
    if (p.finalNorm !== undefined) p.finalNorm = { weight: ones(kept) };
  }
  // The config follows once the stream has one width (the last block's output may differ: head not sliced).
  const widths = [
    embeddingWidth(config, p),
    ...blocks.flatMap((b) => [b.o.outFeatures, mlpOutputWidth(b.mlp)]),
  ];
  const output = widths.pop()!;
  if (!widths.every((w) => w === widths[0])) return config;
  const { outputWidth: _, ...rest } = config;
  return {
    ...rest,
    hiddenSize: widths[0]!,
    wordEmbedDim: widths[0]!,
    ...(output === widths[0] ? {} : { outputWidth: output }),
  };
}
