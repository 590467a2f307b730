// Block-sparse attention forward: a mask over (query block, key block) pairs says which blocks are
// computed; the GPU kernel visits only those, with an online softmax (as FlexAttention's block mask).
import { InvalidArgumentError, ShapeMismatchError } from '@sparsekit/core';
import type { GpuBackend } from './backend.js';
import { attentionKernel } from './wgsl.js';

export interface BlockSparseAttentionOptions {
  heads: number;
  /** Key/value heads (grouped-query attention when fewer than heads; default heads). */
  kvHeads?: number;
  /** Queries per head. */
  seq: number;
  headDim: number;
  /** Keys per key/value head (default seq: prefill; more when the queries follow a cache). */
  keyLength?: number;
  /** Position of query 0 among the keys, for causality (default keyLength - seq). */
  queryOffset?: number;
  /** Edge of the square blocks of the mask (default 32). */
  blockSize?: number;
  /**
   * [qBlocks * kBlocks], 1 = compute the block, with qBlocks = ceil(seq / blockSize) (blocks of the
   * call's queries, from query 0) and kBlocks = ceil(keyLength / blockSize). Default: every block
   * some query may read causally (with `causal`) or every block.
   */
  blockMask?: Uint8Array;
  /** Also mask keys after the query inside blocks (default true). */
  causal?: boolean;
  /** Score scale (default 1 / sqrt(headDim)). */
  scale?: number;
}

interface Resolved {
  heads: number;
  kvHeads: number;
  seq: number;
  dim: number;
  keys: number;
  offset: number;
  blockSize: number;
  /** Query blocks and key blocks. */
  blocks: number;
  keyBlocks: number;
  mask: Uint8Array;
  causal: boolean;
  scale: number;
}

function resolve(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  o: BlockSparseAttentionOptions,
): Resolved {
  const kvHeads = o.kvHeads ?? o.heads;
  const blockSize = o.blockSize ?? 32;
  for (const [name, value] of Object.entries({
    heads: o.heads,
    kvHeads,
    seq: o.seq,
    headDim: o.headDim,
    blockSize,
  })) {
    if (!Number.isInteger(value) || value < 1)
      throw new InvalidArgumentError(name, value, 'must be a positive integer');
  }
  if (o.heads % kvHeads !== 0)
    throw new InvalidArgumentError('kvHeads', kvHeads, `must divide heads (${o.heads})`);
  if (q.length !== o.heads * o.seq * o.headDim)
    throw new ShapeMismatchError([o.heads, o.seq, o.headDim], [q.length], 'q');
  const keys = o.keyLength ?? o.seq;
  const offset = o.queryOffset ?? keys - o.seq;
  if (!Number.isInteger(keys) || keys < 1)
    throw new InvalidArgumentError('keyLength', keys, 'must be a positive integer');
  if (!Number.isInteger(offset) || offset < 0)
    throw new InvalidArgumentError('queryOffset', offset, 'must be a non-negative integer');
  for (const [name, t] of [
    ['k', k],
    ['v', v],
  ] as const) {
    if (t.length !== kvHeads * keys * o.headDim)
      throw new ShapeMismatchError([kvHeads, keys, o.headDim], [t.length], name);
  }
  const blocks = Math.ceil(o.seq / blockSize);
  const keyBlocks = Math.ceil(keys / blockSize);
  const causal = o.causal ?? true;
  // Key block kb is read causally by query block qb when its first key is at or before qb's last query.
  const mask =
    o.blockMask ??
    Uint8Array.from({ length: blocks * keyBlocks }, (_, i) => {
      const [qb, kb] = [Math.floor(i / keyBlocks), i % keyBlocks];
      return !causal || kb * blockSize <= offset + Math.min(o.seq, (qb + 1) * blockSize) - 1 ? 1 : 0;
    });
  if (mask.length !== blocks * keyBlocks)
    throw new ShapeMismatchError([blocks, keyBlocks], [mask.length], 'blockMask');
  return {
    heads: o.heads,
    kvHeads,
    seq: o.seq,
    dim: o.headDim,
    keys,
    offset,
    blockSize,
    blocks,
    keyBlocks,
    mask,
    causal,
    scale: o.scale ?? 1 / Math.sqrt(o.headDim),
  };
}

/** Plain CPU reference: softmax(q k^T * scale + mask) v per head, float64 accumulation; q [heads, seq, dim], k, v [kvHeads, keyLength, dim]. */
export function blockSparseAttentionReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  options: BlockSparseAttentionOptions,
): Float32Array {
  const r = resolve(q, k, v, options);
  const out = new Float32Array(q.length);
  const group = r.heads / r.kvHeads;
  const scores = new Float64Array(r.keys);
  for (let h = 0; h < r.heads; h++) {
    const kh = Math.floor(h / group);
    for (let i = 0; i < r.seq; i++) {
      let max = -Infinity;
      for (let j = 0; j < r.keys; j++) {
        const allowed =
          r.mask[Math.floor(i / r.blockSize) * r.keyBlocks + Math.floor(j / r.blockSize)] === 1 &&
          (!r.causal || j <= i + r.offset);
        let s = -Infinity;
        if (allowed) {
          s = 0;
          for (let d = 0; d < r.dim; d++)
            s += q[(h * r.seq + i) * r.dim + d]! * k[(kh * r.keys + j) * r.dim + d]!;
          s *= r.scale;
        }
        scores[j] = s;
        max = Math.max(max, s);
      }
      if (max === -Infinity) continue;
      let total = 0;
      for (let j = 0; j < r.keys; j++) total += scores[j] === -Infinity ? 0 : Math.exp(scores[j]! - max);
      for (let d = 0; d < r.dim; d++) {
        let acc = 0;
        for (let j = 0; j < r.keys; j++) {
          if (scores[j] !== -Infinity) acc += Math.exp(scores[j]! - max) * v[(kh * r.keys + j) * r.dim + d]!;
        }
        out[(h * r.seq + i) * r.dim + d] = acc / total;
      }
    }
  }
  return out;
}

/** The fraction of (query block, key block) pairs a mask computes. */
export function blockDensity(mask: Uint8Array): number {
  return mask.reduce((s, x) => s + (x === 0 ? 0 : 1), 0) / mask.length;
}

/** Block-sparse attention forward on the GPU: q [heads, seq, dim], k and v [kvHeads, keyLength, dim]. */
export function blockSparseAttention(
  backend: GpuBackend,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  options: BlockSparseAttentionOptions,
): Promise<Float32Array> {
  return runAttention(backend, q, k, v, options) as Promise<Float32Array>;
}

/** Kernel milliseconds of `blockSparseAttention` (inputs resident; see `GpuBackend.timeDispatch`). */
export async function timeBlockSparseAttention(
  backend: GpuBackend,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  options: BlockSparseAttentionOptions & { reps?: number; trials?: number },
): Promise<number> {
  return runAttention(backend, q, k, v, options, options) as Promise<number>;
}

async function runAttention(
  backend: GpuBackend,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  options: BlockSparseAttentionOptions,
  timing?: { reps?: number; trials?: number },
): Promise<Float32Array | number> {
  const r = resolve(q, k, v, options);
  if (r.dim > 256) throw new InvalidArgumentError('headDim', r.dim, 'must be at most 256 for the GPU kernel');
  if (r.blockSize > 256) throw new InvalidArgumentError('blockSize', r.blockSize, 'must be at most 256');
  // The mask as CSR over query blocks: the key blocks each query block visits.
  const ptr = new Uint32Array(r.blocks + 1);
  const cols: number[] = [];
  for (let i = 0; i < r.blocks; i++) {
    for (let j = 0; j < r.keyBlocks; j++) if (r.mask[i * r.keyBlocks + j] !== 0) cols.push(j);
    ptr[i + 1] = cols.length;
  }
  const maxDim = r.dim <= 64 ? 64 : r.dim <= 128 ? 128 : 256;
  const pipeline = backend.pipeline(
    `attention-${r.blockSize}-${maxDim}`,
    attentionKernel(r.blockSize, maxDim),
  );
  const out = backend.device.createBuffer({
    size: Math.max(4, q.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
  });
  const buffers = [
    backend.buffer(q),
    backend.buffer(k),
    backend.buffer(v),
    out,
    backend.uniform([r.heads, r.seq, r.dim, r.causal ? 1 : 0, r.scale, r.kvHeads, r.keys, r.offset], [4]),
    backend.buffer(ptr),
    backend.buffer(Uint32Array.from(cols.length === 0 ? [0] : cols)),
  ];
  try {
    if (timing !== undefined)
      return await backend.timeDispatch(pipeline, buffers, [r.blocks, r.heads, 1], timing);
    backend.dispatch(pipeline, buffers, [r.blocks, r.heads, 1]);
    return await backend.read(out, q.length);
  } finally {
    for (const b of buffers) b.destroy();
  }
}
