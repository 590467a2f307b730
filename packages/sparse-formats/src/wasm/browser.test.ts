// The wasm backend in a real browser: headless Chromium loads the built package (dist/) through an
// import map, runs the kernels against the reference kernels, and reports the verdict back.
// Skipped, with a message, where no Chromium is installed (.ci/run installs one).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeInChromium } from '@sparsekit/test-utils';
import { expect, it } from 'vitest';

const packages = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const PAGE = `<!doctype html>
<script type="importmap">
{ "imports": { "@sparsekit/core": "/core/dist/index.js", "@sparsekit/sparse-formats": "/sparse-formats/dist/index.js" } }
</script>
<body>running</body>
<script type="module">
import { Rng, Tensor } from '@sparsekit/core';
import { createWasmBackend, fromDense, linear } from '@sparsekit/sparse-formats';
try {
  const backend = await createWasmBackend();
  const rng = new Rng(7);
  const rows = 37, cols = 48;
  const t = new Tensor('f32', [rows, cols], rng.normalArray(rows * cols));
  const keep = new Uint8Array(rows * cols);
  for (let g = 0; g < keep.length; g += 4) { keep[g] = 1; keep[g + 2] = 1; }
  const cases = [
    fromDense(t, 'dense'), fromDense(t, 'dense', { dtype: 'f16' }),
    fromDense(t, 'csr', { threshold: 0.8, indexType: 'u16', dtype: 'f16' }),
    fromDense(t, 'nm', { keep, n: 2, m: 4 }), fromDense(t, 'bitmask', { threshold: 0.5 }),
  ];
  let worst = 0;
  for (const w of cases) for (const batch of [1, 5, 33]) {
    const x = rng.normalArray(batch * cols);
    const a = backend.linear(x, batch, w), b = linear(x, batch, w);
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  }
  report({ threads: backend.threads, shared: typeof SharedArrayBuffer !== 'undefined' && backend.memory.buffer instanceof SharedArrayBuffer, crossOriginIsolated: self.crossOriginIsolated, worst });
} catch (error) {
  report({ error: String(error && error.stack || error) });
}
</script>`;

describeInChromium('wasm backend in headless Chromium', packages, PAGE, (server) => {
  it('runs on a plain page (no SharedArrayBuffer: plain memory, one thread) and matches the reference', async () => {
    const result = await server().run('');
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({ threads: 1, shared: false, crossOriginIsolated: false });
    expect(result.worst as number).toBeLessThan(1e-4);
  }, 90_000);

  it('runs on a cross-origin-isolated page with shared memory', async () => {
    const result = await server().run('?isolated');
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({ shared: true, crossOriginIsolated: true });
    expect(result.worst as number).toBeLessThan(1e-4);
  }, 90_000);
});
