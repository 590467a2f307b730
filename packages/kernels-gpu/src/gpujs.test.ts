import { Rng, Tensor } from '@sparsekit/core';
import { fromDense, linear as referenceLinear } from '@sparsekit/sparse-formats';
import { afterAll, describe, expect, it } from 'vitest';
import { tfjsNodeGpuBaseline } from './baseline.js';
import { GpuJsBackend } from './gpujs.js';

// gpu.js in its cpu mode runs the same kernel functions it would compile to GLSL on WebGL.
const backend = await GpuJsBackend.create({ mode: 'cpu' });
afterAll(() => backend.dispose());
const rng = new Rng(5);

describe('gpu.js backend (cpu mode) vs the CPU reference', () => {
  const w = rng.normalArray(23 * 40).map((v) => (rng.uniform() < 0.3 ? v : 0));
  const weight = new Tensor('f32', [23, 40], w);
  it.each([
    ['dense', fromDense(weight, 'dense')],
    ['csr', fromDense(weight, 'csr')],
    ['bitmask f16 (through CSR)', fromDense(weight, 'bitmask', { dtype: 'f16' })],
  ])('%s at batch 1 and 3 (1e-5)', (_, matrix) => {
    expect(backend.mode).toBe('cpu');
    for (const batch of [1, 3]) {
      const x = rng.normalArray(batch * 40);
      expect(backend.linear(x, batch, matrix)).toAllClose(referenceLinear(x, batch, matrix), {
        atol: 1e-5,
        rtol: 1e-5,
      });
    }
  });
});

describe('tfjs-node-gpu dense baseline', () => {
  it('is offered only when @tensorflow/tfjs-node-gpu is installed, and then computes x W^T', async () => {
    const baseline = await tfjsNodeGpuBaseline();
    let installed = true;
    try {
      await import('@tensorflow/tfjs-node-gpu' as string);
    } catch {
      installed = false;
    }
    expect(baseline !== undefined).toBe(installed);
    if (baseline === undefined) return;
    const w = rng.normalArray(8 * 16);
    const x = rng.normalArray(2 * 16);
    const want = referenceLinear(x, 2, fromDense(new Tensor('f32', [8, 16], w), 'dense'));
    expect(await baseline.linear(x, 2, w, 8, 16)).toAllClose(want, { atol: 1e-4, rtol: 1e-4 });
  });
});
