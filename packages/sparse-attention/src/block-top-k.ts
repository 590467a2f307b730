// Block top-k (MInference's block_sparse, Sparse Frontier's defaults): mean-pool queries and keys per
// block, score the pooled pairs, and let each query block read its top-k key blocks.
import { InvalidArgumentError } from '@sparsekit/core';
import { highestIndices } from '@sparsekit/sparse-formats';
import type { BlockKind, MaskMod } from './mask-mods.js';
import { checkInteger, checkQk, countInRange, headOf, lowerBound, type QkShape } from './pattern-helpers.js';

export interface BlockTopKOptions extends QkShape {
  /** Tokens per block (default 16, Sparse Frontier's chunk size). */
  blockSize?: number;
  /** Key blocks kept per query block, the diagonal block included (default 64, Sparse Frontier's top_chunks). */
  topK?: number;
  /** Causal (default true): a query block chooses among key blocks up to its own, and kv <= q inside. */
  causal?: boolean;
}

export interface BlockTopK {
  /** Query q attends key kv of head h iff (not causal or kv <= q) and kv's block is chosen for q's block. */
  mask: MaskMod;
  /** The chosen key blocks per head and query block, ascending: blocks[h][row]. */
  blocks: Int32Array[][];
  blockSize: number;
}

/**
 * Choose key blocks per query block from q and k, Float32Arrays laid out [heads, seqLen, headDim]:
 * each block's queries and keys are mean-pooled (over the tokens the block holds; the last block may
 * be shorter), a query block scores key block c by pooled q . pooled k, always keeps its own
 * (diagonal) block and fills up to `topK` with the best others (ties to the lower index).
 */
export function blockTopK(q: Float32Array, k: Float32Array, options: BlockTopKOptions): BlockTopK {
  checkQk(q, k, options);
  const { heads, seqLen, headDim } = options;
  const { blockSize = 16, topK = 64, causal = true } = options;
  checkInteger('blockSize', blockSize, 1);
  checkInteger('topK', topK, 1);
  if (typeof causal !== 'boolean') throw new InvalidArgumentError('causal', causal, 'must be a boolean');
  const rows = Math.ceil(seqLen / blockSize);
  const pool = (x: Float32Array, h: number) => {
    const out = new Float64Array(rows * headDim);
    for (let r = 0; r < rows; r++) {
      const start = r * blockSize;
      const end = Math.min(seqLen, start + blockSize);
      for (let t = start; t < end; t++) {
        const o = (h * seqLen + t) * headDim;
        for (let d = 0; d < headDim; d++) out[r * headDim + d]! += x[o + d]!;
      }
      for (let d = 0; d < headDim; d++) out[r * headDim + d]! /= end - start;
    }
    return out;
  };
  const blocks: Int32Array[][] = [];
  for (let h = 0; h < heads; h++) {
    const pq = pool(q, h);
    const pk = pool(k, h);
    const perRow: Int32Array[] = [];
    for (let r = 0; r < rows; r++) {
      const scores = new Float64Array(causal ? r + 1 : rows);
      for (let c = 0; c < scores.length; c++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += pq[r * headDim + d]! * pk[c * headDim + d]!;
        scores[c] = dot;
      }
      scores[r] = Number.POSITIVE_INFINITY;
      perRow.push(highestIndices(scores, Math.min(topK, scores.length)));
    }
    blocks.push(perRow);
  }
  return { mask: blockListMask(blocks, blockSize, causal), blocks, blockSize };
}

/**
 * The mask of per-head, per-query-block lists of key blocks (ascending, without repeats) on blocks of
 * `blockSize` tokens. Its block rule is exact at any block size of `createBlockMask`: per pattern row
 * the rectangle touches, two binary searches.
 */
export function blockListMask(blocks: Int32Array[][], blockSize: number, causal: boolean): MaskMod {
  const heads = blocks.length;
  const has = (sorted: Int32Array | undefined, x: number) =>
    sorted !== undefined && countInRange(sorted, x, x) === 1;
  const pair = (_b: number, h: number, q: number, kv: number) =>
    (!causal || kv <= q) &&
    has(blocks[headOf(h, heads)]![Math.floor(q / blockSize)], Math.floor(kv / blockSize));
  const block = (_b: number, h: number, q0: number, q1: number, kv0: number, kv1: number): BlockKind => {
    const lists = blocks[headOf(h, heads)]!;
    const qLast = q1 - 1;
    const kvLast = kv1 - 1;
    if (causal && kv0 > qLast) return 'empty';
    const c0 = Math.floor(kv0 / blockSize);
    const c1 = Math.floor(kvLast / blockSize);
    let full = !causal || kvLast <= q0;
    let any = false;
    for (let r = Math.floor(q0 / blockSize); r <= Math.floor(qLast / blockSize); r++) {
      const list = lists[r];
      if (list === undefined) {
        full = false; // queries past the pattern read nothing
        continue;
      }
      const i = lowerBound(list, c0);
      // The first chosen block in [c0, c1] holds the earliest key this row can read.
      if (!any && i < list.length && list[i]! <= c1) {
        const qb = Math.min(qLast, (r + 1) * blockSize - 1);
        if (!causal || Math.max(kv0, list[i]! * blockSize) <= qb) any = true;
      }
      if (full && lowerBound(list, c1 + 1) - i !== c1 - c0 + 1) full = false;
      if (any && !full) return 'partial';
    }
    return full ? 'full' : any ? 'partial' : 'empty';
  };
  return Object.assign(pair, { block, label: `block top-k (block ${blockSize}${causal ? ', causal' : ''})` });
}
