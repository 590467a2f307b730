// Block-sparse masks: weights pruned in rectangles of R output rows x C inputs, so a kernel can read
// each kept block as one contiguous run of inputs with one index (BSR). 1 x k blocks run along the
// inputs of a row, k x 1 along the outputs of a column. A block is scored by the sum of its
// weights' scores and kept or pruned whole.
import { InvalidArgumentError } from '@sparsekit/core';

/** A block of `rows` outputs x `cols` inputs. */
export interface BlockShape {
  rows: number;
  cols: number;
}

/** "1x8" (or "1X8"): 1 output row x 8 inputs. */
export function parseBlockShape(text: string, what = 'blocks'): BlockShape {
  const match = /^\s*(\d+)\s*[xX]\s*(\d+)\s*$/.exec(text);
  if (match === null)
    throw new InvalidArgumentError(what, text, 'must be ROWSxCOLS, e.g. "1x8" (8 inputs of a row) or "8x1"');
  const block = { rows: Number(match[1]), cols: Number(match[2]) };
  checkBlockShape(block, undefined, undefined, what);
  return block;
}

/** "1x8". */
export function blockText(block: BlockShape): string {
  return `${block.rows}x${block.cols}`;
}

/** Check a block shape (positive integers) and, when given, that it tiles a [rows, cols] weight. */
export function checkBlockShape(block: BlockShape, rows?: number, cols?: number, what = 'blocks'): void {
  const ok = (v: unknown) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 4096;
  if (!ok(block.rows) || !ok(block.cols))
    throw new InvalidArgumentError(
      what,
      `${block.rows}x${block.cols}`,
      'needs whole numbers of rows and inputs, 1 to 4096',
    );
  if (rows !== undefined && rows % block.rows !== 0)
    throw new InvalidArgumentError(
      what,
      blockText(block),
      `needs the output width (${rows}) to be a multiple of the block's ${block.rows} rows`,
    );
  if (cols !== undefined && cols % block.cols !== 0)
    throw new InvalidArgumentError(
      what,
      blockText(block),
      `needs the input width (${cols}) to be a multiple of the block's ${block.cols} inputs`,
    );
}

/** Whether the block is a single weight (the unstructured case). */
export function isUnitBlock(block: BlockShape | undefined): boolean {
  return block === undefined || (block.rows === 1 && block.cols === 1);
}

/** The sum of each block's scores: [rows / R, cols / C], row-major, from per-weight scores [rows, cols]. */
export function blockScores(
  scores: ArrayLike<number>,
  rows: number,
  cols: number,
  block: BlockShape,
): Float64Array {
  checkBlockShape(block, rows, cols);
  const gridCols = cols / block.cols;
  const out = new Float64Array((rows / block.rows) * gridCols);
  for (let r = 0; r < rows; r++) {
    const g = Math.floor(r / block.rows) * gridCols;
    for (let c = 0; c < cols; c++) out[g + Math.floor(c / block.cols)]! += scores[r * cols + c]!;
  }
  return out;
}

/** A mask over blocks [rows / R, cols / C] (1 = pruned) as a mask over weights [rows, cols]. */
export function expandBlockMask(grid: Uint8Array, rows: number, cols: number, block: BlockShape): Uint8Array {
  const gridCols = cols / block.cols;
  const mask = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const g = Math.floor(r / block.rows) * gridCols;
    for (let c = 0; c < cols; c++) mask[r * cols + c] = grid[g + Math.floor(c / block.cols)]!;
  }
  return mask;
}

/**
 * A mask from per-weight `scores` [rows, cols]: `select` (a mask from scores over a [r, c] grid) on
 * the scores themselves, or with a block shape on the blocks' summed scores, expanded to weights.
 */
export function blockMaskOf(
  scores: ArrayLike<number>,
  rows: number,
  cols: number,
  block: BlockShape | undefined,
  select: (scores: ArrayLike<number>, rows: number, cols: number) => Uint8Array,
): Uint8Array {
  if (isUnitBlock(block)) return select(scores, rows, cols);
  const grid = blockScores(scores, rows, cols, block!);
  return expandBlockMask(select(grid, rows / block!.rows, cols / block!.cols), rows, cols, block!);
}
