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

/** One direction's block lists: counts [B, H, rows] and indices [B, H, rows, cols]. */
interface Lists {
  num: Int32Array;
  indices: Int32Array;
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

  constructor(
    options: Required<Omit<BlockMaskOptions, 'blockSize'>> & { blockSize: [number, number] },
    /** Partial key blocks per query block: kvNumBlocks [B, H, rows], kvIndices [B, H, rows, cols]. */
    readonly kvNumBlocks: Int32Array,
    readonly kvIndices: Int32Array,
    /** Full key blocks per query block (the mask mod is not applied to them). */
    readonly fullKvNumBlocks: Int32Array,
    readonly fullKvIndices: Int32Array,
    readonly maskMod: MaskMod,
  ) {
    this.seqLengths = [options.qLen, options.kvLen];
    this.blockSize = options.blockSize;
    this.B = options.B;
    this.H = options.H;
    this.rows = Math.ceil(options.qLen / options.blockSize[0]);
    this.cols = Math.ceil(options.kvLen / options.blockSize[1]);
    const q = transpose(this, kvNumBlocks, kvIndices);
    const fq = transpose(this, fullKvNumBlocks, fullKvIndices);
    this.qNumBlocks = q.num;
    this.qIndices = q.indices;
    this.fullQNumBlocks = fq.num;
    this.fullQIndices = fq.indices;
  }

  /** The transposes: per key block, the query blocks that read it partially / fully. */
  readonly qNumBlocks: Int32Array;
  readonly qIndices: Int32Array;
  readonly fullQNumBlocks: Int32Array;
  readonly fullQIndices: Int32Array;

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
    const base = r * this.cols;
    return {
      partial: this.kvIndices.subarray(base, base + this.kvNumBlocks[r]!),
      full: this.fullKvIndices.subarray(base, base + this.fullKvNumBlocks[r]!),
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
    let blocks = 0;
    for (let i = 0; i < this.kvNumBlocks.length; i++)
      blocks += this.kvNumBlocks[i]! + this.fullKvNumBlocks[i]!;
    const [bq, bkv] = this.blockSize;
    const total = this.B * this.H * this.seqLengths[0] * this.seqLengths[1];
    return 100 * (1 - (blocks * bq * bkv) / total);
  }

  /** Bytes the block lists hold (what building it cost in memory, against 4 B per pair densely). */
  get bytes(): number {
    return (
      4 *
      (this.kvNumBlocks.length * 4 +
        this.kvIndices.length +
        this.fullKvIndices.length +
        this.qIndices.length +
        this.fullQIndices.length)
    );
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

/**
 * FlexAttention's `create_block_mask`: classify every (query block, key block) of every sequence and
 * head as empty, partial or full. A mod with a block rule (every mod of this package) is asked once
 * per block; other mods are evaluated pair by pair inside the block, stopping as soon as it is mixed.
 * Memory is the block lists only (O(blocks)), never a (query x key) mask.
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
  if (B * H * rows * cols > 2 ** 31 - 1)
    throw new InvalidArgumentError('blocks', B * H * rows * cols, 'must fit in 2^31: use larger blocks');
  const kvNum = new Int32Array(B * H * rows);
  const fullNum = new Int32Array(B * H * rows);
  // Indices are written compactly per row first, then placed at row * cols (FlexAttention's layout).
  const kvIdx = new Int32Array(B * H * rows * cols);
  const fullIdx = new Int32Array(B * H * rows * cols);
  const kindOf = maskMod.block ?? ((b, h, q0, q1, kv0, kv1) => pairwiseKind(maskMod, b, h, q0, q1, kv0, kv1));
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let r = 0; r < rows; r++) {
        const q0 = r * bq;
        const q1 = Math.min(qLen, q0 + bq);
        const row = (b * H + h) * rows + r;
        let np = 0;
        let nf = 0;
        for (let c = 0; c < cols; c++) {
          const kv0 = c * bkv;
          const k = kindOf(b, h, q0, q1, kv0, Math.min(kvLen, kv0 + bkv));
          if (k === 'full') fullIdx[row * cols + nf++] = c;
          else if (k === 'partial') kvIdx[row * cols + np++] = c;
        }
        kvNum[row] = np;
        fullNum[row] = nf;
      }
  return new BlockMask({ B, H, qLen, kvLen, blockSize: [bq, bkv] }, kvNum, kvIdx, fullNum, fullIdx, maskMod);
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

/** The other direction: per key block, the query blocks listing it. */
function transpose(m: BlockMask, num: Int32Array, indices: Int32Array): Lists {
  const { B, H, rows, cols } = m;
  const outNum = new Int32Array(B * H * cols);
  const outIdx = new Int32Array(B * H * cols * rows);
  for (let bh = 0; bh < B * H; bh++)
    for (let r = 0; r < rows; r++) {
      const row = bh * rows + r;
      for (let i = 0; i < num[row]!; i++) {
        const c = indices[row * cols + i]!;
        const col = bh * cols + c;
        outIdx[col * rows + outNum[col]!++] = r;
      }
    }
  return { num: outNum, indices: outIdx };
}
