import { Rng, Tensor } from '@sparsekit/core';
import { createNativeBackend } from '@sparsekit/kernels-native';
import { fromDense } from '@sparsekit/sparse-formats';

const N = 4096,
  B = 128,
  rng = new Rng(1);
const v = rng.normalArray(N * N);
const x = rng.normalArray(B * N),
  out = new Float32Array(B * N);
for (const d of [0.3, 0.001]) {
  const s = Float32Array.from(v);
  const r = new Rng(2);
  for (let i = 0; i < s.length; i++) if (r.uniform() > d) s[i] = 0;
  const m = fromDense(new Tensor('f32', [N, N], s), 'csr', {});
  for (const kernels of ['avx512', 'avx2']) {
    const b = createNativeBackend({ threads: 2, kernels });
    b.linear(x, B, m, { out });
    const ts = [];
    for (let i = 0; i < 8; i++) {
      const t = performance.now();
      b.linear(x, B, m, { out });
      ts.push(performance.now() - t);
    }
    ts.sort((a, b) => a - b);
    console.log(`density ${d} ${kernels} b${B} min ${ts[0].toFixed(2)} med ${ts[4].toFixed(2)} ms`);
  }
}
