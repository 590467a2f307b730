import { execFileSync } from 'node:child_process';
import { Rng, Tensor } from '@sparsekit/core';
import { fromDense, linear } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { createCpuBackend } from './cpu-backend.js';
import { NativeUnavailableError } from './load.js';

function check(backend: { linear: typeof linear }) {
  const rng = new Rng(3);
  const w = new Float32Array(24 * 40).map(() => (rng.uniform() < 0.7 ? 0 : rng.normal()));
  const x = new Float32Array(2 * 40).map(() => rng.normal());
  const m = fromDense(new Tensor('f32', [24, 40], w), 'csr');
  expect(backend.linear(x, 2, m)).toAllClose(linear(x, 2, m), { atol: 1e-5, rtol: 1e-5 });
}

describe('createCpuBackend', () => {
  it('auto picks the native kernels where the addon loads, with no fallback line', async () => {
    const { backend, fallback } = await createCpuBackend({ threads: 2 });
    expect(backend.name).toBe('native');
    expect(backend.threads).toBe(2);
    expect(fallback).toBeUndefined();
    check(backend);
    await backend.dispose();
  });

  it('opens a named backend, and the reference kernels on request', async () => {
    for (const name of ['native', 'wasm', 'reference'] as const) {
      const { backend, fallback } = await createCpuBackend({ backend: name, threads: 1 });
      expect(backend.name).toBe(name);
      expect(fallback).toBeUndefined();
      check(backend);
      await backend.dispose();
    }
  });

  it('refuses an unknown backend with a typed error', async () => {
    await expect(createCpuBackend({ backend: 'gpu' as 'auto' })).rejects.toMatchObject({
      code: 'core/invalid-argument',
    });
  });

  it('without the addon, auto says why in one line and runs on wasm; native by name is a typed error', () => {
    const script = `
      import { createCpuBackend } from './dist/index.js';
      const { backend, fallback } = await createCpuBackend({ threads: 1 });
      let code = '';
      try { await createCpuBackend({ backend: 'native' }); } catch (e) { code = e.code; }
      console.log(JSON.stringify({ name: backend.name, fallback, code }));
      await backend.dispose();`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, SPARSEKIT_NATIVE: '0' },
      encoding: 'utf8',
    });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({
      name: 'wasm',
      fallback: 'native kernels unavailable (hidden by SPARSEKIT_NATIVE=0): using wasm',
      code: NativeUnavailableError.code,
    });
  });
});
