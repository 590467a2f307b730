// FlexAttention's BlockMask: per (sequence, head, query block) the key blocks to compute, split into
// partial blocks (the mask mod is applied inside) and full blocks (it is skipped), with the
// transposes for the other direction. Built block by block: never a (query x key) mask.
import { InvalidArgumentError } from '@sparsekit/core';
import type { BlockKind, MaskMod } from './mask-mods.js';

export interface BlockMaskOptions {
  /** Sequences (default 1: the mask is the same for every sequence, FlexAttention's B = None). */
  B?: number;
  /** Heads (default 1: the same for every head, H = None). */
  H?: number;
  qLen: number;
  kvLen: number;
  /** Block size, or [query block, key block] (default 128, as FlexAttention). */
  blockSize?: number | [number, number];
}

/**
 * One direction's block lists, compact: counts [B, H, rows], offsets [B * H * rows + 1] into
 * `flat`, which holds each row's block indices (ascending) one row after another. Memory grows with
 * the blocks listed, not with rows x cols.
 */
interface Lists {
  num: Int32Array;
  offsets: Int32Array;
  flat: Int32Array;
}

function listsFrom(num: Int32Array, flat: Int32Array): Lists {
  const offsets = new Int32Array(num.length + 1);
  for (let i = 0; i < num.length; i++) offsets[i + 1] = offsets[i]! + num[i]!;
  return { num, offsets, flat };
}

/** FlexAttention's padded layout [B, H, rows, width] of compact lists (entries past a count are 0). */
function padded(lists: Lists, width: number): Int32Array {
  if (lists.num.length * width > 2 ** 31 - 1)
    throw new InvalidArgumentError(
      'blocks',
      lists.num.length * width,
      'too many for the padded layout: use at()',
    );
  const out = new Int32Array(lists.num.length * width);
  for (let r = 0; r < lists.num.length; r++)
    out.set(lists.flat.subarray(lists.offsets[r]!, lists.offsets[r + 1]!), r * width);
  return out;
}

export class BlockMask {
  /** [qLen, kvLen]. */
  readonly seqLengths: [number, number];
  readonly blockSize: [number, number];
  readonly B: number;
  readonly H: number;
  /** Query blocks and key blocks. */
  readonly rows: number;
  readonly cols: number;
  private readonly partial: Lists;
  private readonly full: Lists;
  private readonly partialT: Lists;
  private readonly fullT: Lists;
  private readonly layouts = new Map<string, Int32Array>();

  constructor(
    options: Required<Omit<BlockMaskOptions, 'blockSize'>> & { blockSize: [number, number] },
    /** Partial key blocks per query block: counts [B, H, rows] and the lists one after another. */
    kvNumBlocks: Int32Array,
    kvFlat: Int32Array,
    /** Full key blocks per query block (the mask mod is not applied to them), likewise. */
    fullKvNumBlocks: Int32Array,
    fullKvFlat: Int32Array,
    readonly maskMod: MaskMod,
  ) {
    this.seqLengths = [options.qLen, options.kvLen];
    this.blockSize = options.blockSize;
    this.B = options.B;
    this.H = options.H;
    this.rows = Math.ceil(options.qLen / options.blockSize[0]);
    this.cols = Math.ceil(options.kvLen / options.blockSize[1]);
    this.partial = listsFrom(kvNumBlocks, kvFlat);
    this.full = listsFrom(fullKvNumBlocks, fullKvFlat);
    this.partialT = transpose(this, this.partial);
    this.fullT = transpose(this, this.full);
  }

  /** Partial key blocks per query block: counts [B, H, rows]. */
  get kvNumBlocks(): Int32Array {
    return this.partial.num;
  }
  /** Full key blocks per query block: counts [B, H, rows]. */
  get fullKvNumBlocks(): Int32Array {
    return this.full.num;
  }
  /** The transposes' counts: per key block, the query blocks reading it partially / fully [B, H, cols]. */
  get qNumBlocks(): Int32Array {
    return this.partialT.num;
  }
  get fullQNumBlocks(): Int32Array {
    return this.fullT.num;
  }

  /**
   * FlexAttention's padded index layouts, [B, H, rows, cols] (kv) or [B, H, cols, rows] (q); entries
   * past a row's count are 0. Made on first use and kept: they cost rows x cols entries, which the
   * mask itself does not (use `at` and the counts for large masks).
   */
  get kvIndices(): Int32Array {
    return this.layout('kv', this.partial, this.cols);
  }
  get fullKvIndices(): Int32Array {
    return this.layout('fullKv', this.full, this.cols);
  }
  get qIndices(): Int32Array {
    return this.layout('q', this.partialT, this.rows);
  }
  get fullQIndices(): Int32Array {
    return this.layout('fullQ', this.fullT, this.rows);
  }

  private layout(name: string, lists: Lists, width: number): Int32Array {
    let a = this.layouts.get(name);
    if (a === undefined) {
      a = padded(lists, width);
      this.layouts.set(name, a);
    }
    return a;
  }

  /** The key blocks of query block `row` of sequence b and head h (FlexAttention's `bm[b, h, q]`). */
  at(b: number, h: number, row: number): { partial: Int32Array; full: Int32Array } {
    for (const [name, v, n] of [
      ['b', b, this.B],
      ['h', h, this.H],
      ['row', row, this.rows],
    ] as const)
      if (!Number.isInteger(v) || v < 0 || v >= n)
        throw new InvalidArgumentError(name, v, `must be an integer in [0, ${n})`);
    const r = (b * this.H + h) * this.rows + row;
    const { partial, full } = this;
    return {
      partial: partial.flat.subarray(partial.offsets[r]!, partial.offsets[r + 1]!),
      full: full.flat.subarray(full.offsets[r]!, full.offsets[r + 1]!),
    };
  }

  /** The kind of block (row, col) of sequence b and head h. */
  kind(b: number, h: number, row: number, col: number): BlockKind {
    const { partial, full } = this.at(b, h, row);
    if (full.includes(col)) return 'full';
    return partial.includes(col) ? 'partial' : 'empty';
  }

  /**
   * FlexAttention's `sparsity()`: 100 (1 - computed / total), computed = the blocks read (partial and
   * full) times the block area, total = B H qLen kvLen.
   */
  sparsity(): number {
    const blocks = this.partial.flat.length + this.full.flat.length;
    const [bq, bkv] = this.blockSize;
    const total = this.B * this.H * this.seqLengths[0] * this.seqLengths[1];
    return 100 * (1 - (blocks * bq * bkv) / total);
  }

  /** Bytes the block lists hold, both directions (what building it cost in memory). */
  get bytes(): number {
    let n = 0;
    for (const l of [this.partial, this.full, this.partialT, this.fullT])
      n += l.num.length + l.offsets.length + l.flat.length;
    return 4 * n;
  }

  /**
   * A drawing per (sequence, head), one character per block: full, partial or blank (as
   * FlexAttention's `to_string`); at most `maxBlocks` per side, larger masks are sampled.
   */
  toString(maxBlocks = 64): string {
    const step = (n: number) => Math.max(1, Math.ceil(n / maxBlocks));
    const [sr, sc] = [step(this.rows), step(this.cols)];
    const out: string[] = [];
    for (let b = 0; b < this.B; b++)
      for (let h = 0; h < this.H; h++) {
        out.push(`b=${b}, h=${h} (${this.maskMod.label ?? 'mask'}; sparsity ${this.sparsity().toFixed(2)}%)`);
        for (let r = 0; r < this.rows; r += sr) {
          let line = '';
          for (let c = 0; c < this.cols; c += sc) {
            const k = this.kind(b, h, r, c);
            line += k === 'full' ? '█' : k === 'partial' ? '░' : ' ';
          }
          out.push(line.trimEnd());
        }
      }
    return out.join('\n');
  }
}

/** Most blocks one mask lists (each direction; 1 GiB of indices). */
export const MAX_LISTED_BLOCKS = 2 ** 28;

/** A growable list of int32. */
class IntList {
  data = new Int32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      if (this.length >= MAX_LISTED_BLOCKS)
        throw new InvalidArgumentError(
          'blockSize',
          'too small',
          `the mask would list more than ${MAX_LISTED_BLOCKS} blocks: use larger blocks`,
        );
      const grown = new Int32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }
  done(): Int32Array {
    return this.data.slice(0, this.length);
  }
}

/**
 * FlexAttention's `create_block_mask`: classify every (query block, key block) of every sequence and
 * head as empty, partial or full (with the mod's `keyRanges`, only the key blocks they meet are asked:
 * the others are empty). A mod with a block rule (every mod of this package) is asked once
 * per block; other mods are evaluated pair by pair inside the block, stopping as soon as it is mixed.
 * Memory is the listed blocks only, never a (query x key) mask nor a (query block x key block) grid.
 */
export function createBlockMask(maskMod: MaskMod, options: BlockMaskOptions): BlockMask {
  const B = options.B ?? 1;
  const H = options.H ?? 1;
  const { qLen, kvLen } = options;
  const size = options.blockSize ?? 128;
  const [bq, bkv] = typeof size === 'number' ? [size, size] : size;
  for (const [name, v] of [
    ['B', B],
    ['H', H],
    ['qLen', qLen],
    ['kvLen', kvLen],
    ['query block size', bq],
    ['key block size', bkv],
  ] as const)
    if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(name, v, 'must be a positive integer');
  const rows = Math.ceil(qLen / bq);
  const cols = Math.ceil(kvLen / bkv);
  const kvNum = new Int32Array(B * H * rows);
  const fullNum = new Int32Array(B * H * rows);
  const partialList = new IntList();
  const fullList = new IntList();
  const kindOf = maskMod.block ?? ((b, h, q0, q1, kv0, kv1) => pairwiseKind(maskMod, b, h, q0, q1, kv0, kv1));
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let r = 0; r < rows; r++) {
        const q0 = r * bq;
        const q1 = Math.min(qLen, q0 + bq);
        const row = (b * H + h) * rows + r;
        let np = 0;
        let nf = 0;
        // Only key blocks that meet the mod's key ranges can be nonempty (every block without them).
        const ranges = maskMod.keyRanges?.(b, h, q0, q1) ?? [0, kvLen];
        let c = 0;
        for (let i = 0; i < ranges.length; i += 2) {
          const start = Math.max(0, ranges[i]!);
          const end = Math.min(kvLen, ranges[i + 1]!);
          if (start >= end) continue;
          for (c = Math.max(c, Math.floor(start / bkv)); c < cols && c * bkv < end; c++) {
            const kv0 = c * bkv;
            const k = kindOf(b, h, q0, q1, kv0, Math.min(kvLen, kv0 + bkv));
            if (k === 'full') {
              fullList.push(c);
              nf++;
            } else if (k === 'partial') {
              partialList.push(c);
              np++;
            }
          }
        }
        kvNum[row] = np;
        fullNum[row] = nf;
      }
  return new BlockMask(
    { B, H, qLen, kvLen, blockSize: [bq, bkv] },
    kvNum,
    partialList.done(),
    fullNum,
    fullList.done(),
    maskMod,
  );
}

/** A block's kind from the pairs themselves, stopping once both an allowed and a masked pair are seen. */
function pairwiseKind(
  m: MaskMod,
  b: number,
  h: number,
  q0: number,
  q1: number,
  kv0: number,
  kv1: number,
): BlockKind {
  let any = false;
  let all = true;
  for (let q = q0; q < q1; q++)
    for (let kv = kv0; kv < kv1; kv++) {
      if (m(b, h, q, kv)) any = true;
      else all = false;
      if (any && !all) return 'partial';
    }
  return all ? 'full' : 'empty';
}

/** The other direction: per key block, the query blocks listing it (ascending). */
function transpose(m: BlockMask, lists: Lists): Lists {
  const { B, H, rows, cols } = m;
  const num = new Int32Array(B * H * cols);
  for (let bh = 0; bh < B * H; bh++)
    for (let r = 0; r < rows; r++) {
      const row = bh * rows + r;
      for (let i = lists.offsets[row]!; i < lists.offsets[row + 1]!; i++) num[bh * cols + lists.flat[i]!]!++;
    }
  const out = listsFrom(num, new Int32Array(lists.flat.length));
  const fill = out.offsets.slice(0, num.length);
  for (let bh = 0; bh < B * H; bh++)
    for (let r = 0; r < rows; r++) {
      const row = bh * rows + r;
      for (let i = lists.offsets[row]!; i < lists.offsets[row + 1]!; i++) {
        const col = bh * cols + lists.flat[i]!;
        out.flat[fill[col]!++] = r;
      }
    }
  return out;
}
