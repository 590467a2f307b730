/**
 * The sparse formats. Every matrix is a plain, immutable-by-convention data object (typed arrays and
 * numbers only), so it can be sent to workers, written to safetensors and compared field by field.
 * All are 2-D, row-major in meaning: element (i, j) is row i, column j.
 */

export type FormatName = 'dense' | 'coo' | 'csr' | 'csc' | 'bsr' | 'nm' | 'bitmask';

export const FORMAT_NAMES: readonly FormatName[] = ['dense', 'coo', 'csr', 'csc', 'bsr', 'nm', 'bitmask'];

/** Value storage: f32, or f16 as bit patterns (half the bytes; kernels accumulate in f32). */
export type ValueDType = 'f32' | 'f16';
export type Values = Float32Array | Uint16Array;

/** Column (or row) indices: 32-bit, or 16-bit when the indexed dimension is at most 65536. */
export type Indices = Int32Array | Uint16Array;

interface MatrixBase {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: ValueDType;
  readonly values: Values;
}

/** Row-major dense storage: values[i * cols + j]. */
export interface DenseMatrix extends MatrixBase {
  readonly format: 'dense';
}

/** Coordinate list, canonical: sorted by (row, col), no duplicates. */
export interface CooMatrix extends MatrixBase {
  readonly format: 'coo';
  readonly rowIndices: Int32Array;
  readonly colIndices: Int32Array;
}

/** Compressed sparse rows: row i holds indices/values[indptr[i] .. indptr[i+1]), columns sorted, unique. */
export interface CsrMatrix extends MatrixBase {
  readonly format: 'csr';
  readonly indptr: Int32Array;
  readonly indices: Indices;
}

/** Compressed sparse columns: column j holds indices (rows)/values[indptr[j] .. indptr[j+1]), sorted, unique. */
export interface CscMatrix extends MatrixBase {
  readonly format: 'csc';
  readonly indptr: Int32Array;
  readonly indices: Indices;
}

/**
 * Block sparse rows with blocks of blockRows x blockCols (both dividing the shape). Block row b holds
 * blocks indptr[b] .. indptr[b+1]) with block-column indices sorted and unique; block k's values are
 * values[k*R*C .. (k+1)*R*C) in row-major order inside the block.
 */
export interface BsrMatrix extends MatrixBase {
  readonly format: 'bsr';
  readonly blockRows: number;
  readonly blockCols: number;
  readonly indptr: Int32Array;
  readonly indices: Indices;
}

/**
 * N:M semi-structured: each row is cut into groups of m consecutive columns (m divides cols), and each
 * group keeps n slots. Slot s of group g in row i is values[(i * groups + g) * n + s], at column
 * g * m + position, where positions are packed little-endian, `indexBits` bits each, in the same order,
 * strictly increasing within a group. Groups with fewer than n nonzeros pad with zero-valued slots.
 */
export interface NmMatrix extends MatrixBase {
  readonly format: 'nm';
  readonly n: number;
  readonly m: number;
  readonly indexBits: number;
  readonly indices: Uint8Array;
}

/**
 * One bit per element (the layout of compressed-tensors' "sparse-bitmask"): row i's bits are bytes
 * bitmask[i * ceil(cols/8) ..], bit b of byte k (least significant first) is column 8k + b; values hold
 * the nonzeros in row-major order; rowOffsets[i] is where row i starts in values.
 */
export interface BitmaskMatrix extends MatrixBase {
  readonly format: 'bitmask';
  readonly bitmask: Uint8Array;
  readonly rowOffsets: Int32Array;
}

export type SparseMatrix =
  | DenseMatrix
  | CooMatrix
  | CsrMatrix
  | CscMatrix
  | BsrMatrix
  | NmMatrix
  | BitmaskMatrix;

export type MatrixOf<F extends FormatName> = Extract<SparseMatrix, { format: F }>;
