import { Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { createWasmBackend } from '../wasm/backend.js';
import {
  cholesky,
  choleskyInverse,
  inverseUpperFactor,
  lowerTriangularInverse,
  symmetricEigen,
  upperCholesky,
} from './linalg.js';

function randomSpd(n: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const x = rng.normalArray(n * (n + 3));
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n + 3; k++) s += x[i * (n + 3) + k]! * x[j * (n + 3) + k]!;
      a[i * n + j] = s;
    }
  return a;
}

function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) c[i * n + j]! += a[i * n + k]! * b[k * n + j]!;
  return c;
}

/** Both matrices divided by the largest entry of `reference`, so one absolute tolerance fits any scale. */
function relativeToMax(actual: Float64Array, reference: Float64Array): [Float64Array, Float64Array] {
  const top = Math.max(...reference.map(Math.abs));
  return [actual.map((v) => v / top), reference.map((v) => v / top)];
}

describe('linear algebra', () => {
  it('with a kernel: blocked Cholesky, inverse and upper factor agree with the float64 ones (f32 products)', async () => {
    const n = 300; // two full panels of 128 and a partial one
    const a = randomSpd(n, 4);
    for (let i = 0; i < n; i++) a[i * n + i]! += n; // well conditioned, as a dampened Hessian
    const backend = await createWasmBackend({ threads: 1 });
    try {
      const l = cholesky(a, n);
      const lk = cholesky(a, n, 'Hessian', backend);
      const [lkScaled, lScaled] = relativeToMax(lk, l);
      expect(lkScaled).toAllClose(lScaled, { atol: 1e-5, rtol: 0 });
      const inv = choleskyInverse(l, n);
      const invK = choleskyInverse(lk, n, backend);
      const [invKScaled, invScaled] = relativeToMax(invK, inv);
      expect(invKScaled).toAllClose(invScaled, { atol: 1e-5, rtol: 0 });
      const u = upperCholesky(inv, n);
      const uK = upperCholesky(invK, n, 'inverse Hessian', backend);
      const [uKScaled, uScaled] = relativeToMax(uK, u);
      expect(uKScaled).toAllClose(uScaled, { atol: 1e-4, rtol: 0 });
    } finally {
      await backend.dispose();
    }
  });

  it('Cholesky, its inverse and the upper factor agree with the definitions', () => {
    const n = 9;
    const a = randomSpd(n, 1);
    const l = cholesky(a, n);
    const lt = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) lt[j * n + i] = l[i * n + j]!;
    expect(matmul(l, lt, n)).toAllClose(a, { atol: 1e-9, rtol: 1e-9 });
    const inv = choleskyInverse(l, n);
    const identity = Float64Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));
    expect(matmul(a, inv, n)).toAllClose(identity, { atol: 1e-9, rtol: 0 });
    const u = upperCholesky(inv, n);
    const ut = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) ut[j * n + i] = u[i * n + j]!;
    expect(matmul(ut, u, n)).toAllClose(inv, { atol: 1e-9, rtol: 1e-9 });
    expect(() => cholesky(Float64Array.of(1, 2, 2, 1), 2)).toThrow(/positive definite/);
    // The one-factorisation route to the upper factor of A^-1 gives the same (unique) factor.
    expect(inverseUpperFactor(a, n)).toAllClose(u, { atol: 1e-9, rtol: 1e-9 });
    expect(matmul(lowerTriangularInverse(l, n), l, n)).toAllClose(identity, { atol: 1e-9, rtol: 0 });
  });

  it('with a kernel: the recursive triangular inverse and the upper factor of A^-1 agree with float64', async () => {
    const n = 300; // halves of 256 (128 + 128) and 44
    const a = randomSpd(n, 5);
    for (let i = 0; i < n; i++) a[i * n + i]! += n;
    const backend = await createWasmBackend({ threads: 1 });
    try {
      const l = cholesky(a, n);
      const [inverse, inverseRef] = relativeToMax(
        lowerTriangularInverse(l, n, backend),
        lowerTriangularInverse(l, n),
      );
      expect(inverse).toAllClose(inverseRef, { atol: 1e-5, rtol: 0 });
      const [factor, factorRef] = relativeToMax(
        inverseUpperFactor(a, n, 'Hessian', backend),
        upperCholesky(choleskyInverse(l, n), n),
      );
      expect(factor).toAllClose(factorRef, { atol: 1e-4, rtol: 0 });
    } finally {
      await backend.dispose();
    }
  });

  it('symmetric eigen-decomposition: A V = V diag(values), V orthonormal, values descending', () => {
    const n = 12;
    const a = randomSpd(n, 2);
    const { values, vectors } = symmetricEigen(a, n);
    for (let i = 1; i < n; i++) expect(values[i]!).toBeLessThanOrEqual(values[i - 1]!);
    const av = matmul(a, vectors, n);
    const vl = Float64Array.from(vectors, (v, i) => v * values[i % n]!);
    expect(av).toAllClose(vl, { atol: 1e-8, rtol: 1e-8 });
    const vt = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vt[j * n + i] = vectors[i * n + j]!;
    const identity = Float64Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));
    expect(matmul(vt, vectors, n)).toAllClose(identity, { atol: 1e-10, rtol: 0 });
  });
});
