/**
 * Seconds SparseGPT takes on one layer, with its matrix products (Cholesky trailing updates, the
 * triangular inverse, the batched weight update) in plain TypeScript float64 vs on the wasm dense
 * kernel (f32), and its factor of H^-1 by torch's three steps vs one factorisation, in one run:
 *
 *   pnpm --filter @sparsekit/pruners bench [--shapes 1024x1024,2048x2048] [--threads N]
 *
 * W ~ N(0, 0.02), H = (2/n) X^T X for n = 2 * cols random tokens (seed 0); 50% unstructured.
 * Prints a table and writes bench-results/sparsegpt.json.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { option } from '@sparsekit/bench';
import { Rng, Tensor } from '@sparsekit/core';
import {
  cholesky,
  choleskyInverse,
  HessianAccumulator,
  inverseUpperFactor,
  sparseGpt,
  upperCholesky,
} from '@sparsekit/pruners';
import { createWasmBackend } from '@sparsekit/sparse-formats';

const shapes = option('shapes', '1024x1024,2048x2048')
  .split(',')
  .map((s) => s.split('x').map(Number) as [number, number]);
const threads = Number(option('threads', String(availableParallelism())));
const backend = await createWasmBackend({ threads });
const rows: Array<Record<string, number | string>> = [];
for (const [R, C] of shapes) {
  const rng = new Rng(0);
  const w = rng.normalArray(R * C, 0, 0.02);
  const h = new HessianAccumulator(C);
  h.add(new Tensor('f32', [2 * C, C], rng.normalArray(2 * C * C)));
  const H = h.matrix();
  const damped = new Float64Array(H);
  for (let j = 0; j < C; j++) damped[j * C + j]! += 0.01;
  const time = (f: () => unknown) => {
    const t0 = performance.now();
    f();
    return (performance.now() - t0) / 1000;
  };
  // The upper factor of H^-1: torch's three steps (cholesky, cholesky_inverse, upper cholesky) as
  // the reference takes them, and the one factorisation sparseGpt uses; each in TypeScript float64
  // and with the products on the wasm kernel.
  const threeSteps = time(() => upperCholesky(choleskyInverse(cholesky(damped, C), C), C));
  const threeStepsWasm = time(() =>
    upperCholesky(
      choleskyInverse(cholesky(damped, C, 'Hessian', backend), C, backend),
      C,
      'inverse Hessian',
      backend,
    ),
  );
  const oneFactor = time(() => inverseUpperFactor(damped, C));
  const oneFactorWasm = time(() => inverseUpperFactor(damped, C, 'Hessian', backend));
  const plain = time(() => sparseGpt(w, R, C, H, { sparsity: 0.5 }));
  const wasm = time(() => sparseGpt(w, R, C, H, { sparsity: 0.5, backend }));
  rows.push({
    shape: `${R}x${C}`,
    threeStepsSeconds: threeSteps,
    threeStepsWasmSeconds: threeStepsWasm,
    oneFactorSeconds: oneFactor,
    oneFactorWasmSeconds: oneFactorWasm,
    plainSeconds: plain,
    wasmSeconds: wasm,
    speedup: plain / wasm,
  });
  console.log(
    `${R}x${C}: upper factor of H^-1: three steps ${threeSteps.toFixed(2)} s (TypeScript) / ${threeStepsWasm.toFixed(2)} s (wasm); one factorisation ${oneFactor.toFixed(2)} s / ${oneFactorWasm.toFixed(2)} s; whole layer ${plain.toFixed(2)} s (TypeScript f64) vs ${wasm.toFixed(2)} s (products on wasm, ${threads} threads): ${(plain / wasm).toFixed(2)}x`,
  );
}
await backend.dispose();
mkdirSync('bench-results', { recursive: true });
const path = join('bench-results', 'sparsegpt.json');
writeFileSync(
  `${path}.tmp`,
  `${JSON.stringify({ date: new Date().toISOString(), threads, rows }, null, 2)}\n`,
);
renameSync(`${path}.tmp`, path);
console.log(`wrote ${path}`);
