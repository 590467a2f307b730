// From a BlockMask to what the backends' attention kernels read: the contract's `blocks` mask (per
// query block, the key blocks to compute). Kernels read listed blocks whole, applying only causality
// (and a window with sinks) inside them, so the result is exact where the mask's partial blocks are
// partial for those reasons only (causal, sliding window, sinks); for other mods (documents, globals,
// vertical-slash lines) a partial block is read whole, a superset of the mask.
import { InvalidArgumentError } from '@sparsekit/core';
import type { AttentionMask } from '@sparsekit/sparse-formats';
import type { BlockMask } from './block-mask.js';

export interface KernelMaskOptions {
  /** Sequence and head of the mask (default 0, 0). */
  b?: number;
  h?: number;
  /** Applied inside listed blocks: causality (default true), a window and sinks (as `causal`). */
  causal?: boolean;
  window?: number;
  sinks?: number;
}

/** The key blocks (partial and full, merged and sorted) of every query block of (b, h). */
export function kernelBlockLists(bm: BlockMask, b = 0, h = 0): Int32Array[] {
  const lists: Int32Array[] = [];
  for (let row = 0; row < bm.rows; row++) {
    const { partial, full } = bm.at(b, h, row);
    const list = new Int32Array(partial.length + full.length);
    list.set(partial);
    list.set(full, partial.length);
    list.sort();
    lists.push(list);
  }
  return lists;
}

/** The contract's `blocks` mask of a BlockMask with square blocks, for `backend.attention`. */
export function toAttentionMask(bm: BlockMask, options: KernelMaskOptions = {}): AttentionMask {
  const [bq, bkv] = bm.blockSize;
  if (bq !== bkv)
    throw new InvalidArgumentError('blockSize', `${bq}x${bkv}`, 'must be square for the attention kernels');
  return {
    kind: 'blocks',
    blockSize: bq,
    kvBlocks: kernelBlockLists(bm, options.b ?? 0, options.h ?? 0),
    causal: options.causal ?? true,
    ...(options.window === undefined ? {} : { window: options.window }),
    ...(options.sinks === undefined ? {} : { sinks: options.sinks }),
  };
}
