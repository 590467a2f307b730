// The plain-TypeScript backend: the reference kernels behind the backend contract. Obviously correct,
// f32 accumulation in the products, float64 in the attention loops; the yardstick for the others.
import { linear, sddmm, spmm } from '../kernels/reference.js';
import type { DenseMatrix, SparseMatrix } from '../types.js';
import { attention } from './attention.js';
import type { AttentionArgs, Backend, GatherGemvArgs, MatmulOptions } from './contract.js';
import { cachedGatherGemv, matmulOnLinear } from './products.js';

class ReferenceBackend implements Backend {
  readonly name = 'reference';
  readonly flavour = 'sync';
  private readonly columns = new WeakMap<DenseMatrix, Float32Array>();

  linear = linear;
  spmm = spmm;
  sddmm = sddmm;

  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, options?: MatmulOptions) {
    return matmulOnLinear(linear, a, b, m, k, n, options);
  }

  attention(args: AttentionArgs): Float32Array {
    return attention(args, linear);
  }

  gatherGemv(args: GatherGemvArgs): Float32Array {
    return cachedGatherGemv(this.columns, args);
  }

  release(matrix: SparseMatrix): void {
    if (matrix.format === 'dense') this.columns.delete(matrix);
  }
}

/** The reference backend (one per process is enough; it keeps only gather-GEMV column copies). */
export const referenceBackend: Backend = new ReferenceBackend();

/** A new reference backend with its own caches. */
export function createReferenceBackend(): Backend {
  return new ReferenceBackend();
}
