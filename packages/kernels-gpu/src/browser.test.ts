// The WebGPU kernels through navigator.gpu in headless Chromium (its SwiftShader adapter, with
// --enable-unsafe-webgpu): the built packages load through an import map and each kernel is checked
// against the CPU reference in the page. Skipped, with a message, where no Chromium is installed.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeInChromium, noWebGpuAdapter } from '@sparsekit/test-utils';
import { expect, it } from 'vitest';

const packages = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const PAGE = `<!doctype html>
<script type="importmap">
{ "imports": {
  "@sparsekit/core": "/core/dist/index.js",
  "@sparsekit/sparse-formats": "/sparse-formats/dist/index.js",
  "@sparsekit/kernels-gpu": "/kernels-gpu/dist/index.js"
} }
</script>
<body>running</body>
<script type="module">
import { Rng, Tensor } from '@sparsekit/core';
import { fromDense, linear, referenceBackend } from '@sparsekit/sparse-formats';
import { createGpuBackend, blockSparseAttention, blockSparseAttentionReference } from '@sparsekit/kernels-gpu';
try {
  const gpu = await createGpuBackend();
  const rng = new Rng(3);
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
    const a = await gpu.linear(x, batch, w), b = linear(x, batch, w);
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  }
  // gatherGemv on the dense f32 and f16 weights, 17 of the 48 inputs active (split-K forced on one call).
  let gather = 0;
  const active = rng.sample(cols, 17), xg = rng.normalArray(cols);
  for (const w of cases.slice(0, 2)) for (const splits of [undefined, 3]) {
    const a = await gpu.gatherGemv({ w, x: xg, active, splits }), b = referenceBackend.gatherGemv({ w, x: xg, active });
    for (let i = 0; i < a.length; i++) gather = Math.max(gather, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  }
  const opts = { heads: 2, seq: 40, headDim: 16, blockSize: 16 };
  const q = rng.normalArray(2 * 40 * 16), k = rng.normalArray(2 * 40 * 16), v = rng.normalArray(2 * 40 * 16);
  const got = await blockSparseAttention(gpu, q, k, v, opts), want = blockSparseAttentionReference(q, k, v, opts);
  let attention = 0;
  for (let i = 0; i < got.length; i++) attention = Math.max(attention, Math.abs(got[i] - want[i]));
  report({ adapter: gpu.adapter, worst, attention, gather });
  gpu.dispose();
} catch (error) {
  report({ error: String(error && error.stack || error) });
}
</script>`;

describeInChromium('WebGPU kernels in headless Chromium (navigator.gpu)', packages, PAGE, (server) => {
  it('match the CPU reference kernels', async () => {
    const result = await server().run('', ['--enable-unsafe-webgpu']);
    if (noWebGpuAdapter(result, 'browser.test.ts')) return;
    expect(result.error).toBeUndefined();
    expect(result.worst as number).toBeLessThan(1e-4);
    expect(result.attention as number).toBeLessThan(1e-4);
    expect(result.gather as number).toBeLessThan(1e-5);
  }, 90_000);
});
