import { readFileSync } from 'node:fs';
import { Rng } from '@sparsekit/core';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { fixturePath } from '@sparsekit/test-utils';
import { describe, expect, it } from 'vitest';
import { auxKLoss, nmse, reconstructionMetrics } from './metrics.js';
import { Sae, type SaeArchitecture } from './sae.js';

interface TopkCase {
  x: number[][];
  W_enc: number[][];
  b_enc: number[];
  W_dec: number[][];
  b_dec: number[];
  k: number;
  dead: (boolean | number)[];
  k_aux: number;
  latents_nonzero: number[][];
  mse: number;
  nmse: number;
  aux_k_loss: number;
  l0: number;
  explained_variance: number;
}

const fixture: TopkCase = JSON.parse(
  readFileSync(fixturePath(import.meta.url, 'topk-sae-seed5.json'), 'utf8'),
).topk_sae;
const f32 = (a: number[][] | number[]) => Float32Array.from(a.flat());

describe('the topk_sae reference case (reference-seed5.json)', () => {
  const [rows, dIn] = [fixture.x.length, fixture.x[0]!.length];
  const dSae = fixture.b_enc.length;
  const sae = new Sae(
    { architecture: 'topk', dIn, dSae, k: fixture.k },
    {
      wEnc: f32(fixture.W_enc),
      bEnc: f32(fixture.b_enc),
      wDec: f32(fixture.W_dec),
      bDec: f32(fixture.b_dec),
    },
  );
  const x = f32(fixture.x);
  const out = sae.forward(x);

  it('keeps the same latents, and reproduces mse, nmse, explained variance and l0', () => {
    for (let r = 0; r < rows; r++) {
      const nonzero: number[] = [];
      for (let j = 0; j < dSae; j++) if (out.latents[r * dSae + j] !== 0) nonzero.push(j);
      expect(nonzero).toEqual([...fixture.latents_nonzero[r]!].sort((a, b) => a - b));
    }
    const m = reconstructionMetrics(x, out.reconstruction, out.latents, rows);
    expect(m.mse).toBeCloseTo(fixture.mse, 5);
    expect(nmse(x, out.reconstruction, rows)).toBeCloseTo(fixture.nmse, 5);
    expect(m.explained_variance).toBeCloseTo(fixture.explained_variance, 5);
    expect(m.l0).toBe(fixture.l0);
  });

  it('reproduces the AuxK loss over the dead latents', () => {
    const residual = x.map((v, i) => v - out.reconstruction[i]!);
    const aux = auxKLoss(out.pre, residual, fixture.dead, fixture.k_aux, sae.params.wDec, rows);
    expect(aux.loss).toBeCloseTo(fixture.aux_k_loss, 5);
    // Only dead latents are used.
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < dSae; j++) if (!fixture.dead[j]) expect(aux.latents[r * dSae + j]).toBe(0);
  });
});

describe('architectures against plain per-row references', () => {
  const [rows, dIn, dSae] = [16, 6, 24];
  const rng = new Rng(11);
  const params = () => ({
    wEnc: rng.normalArray(dIn * dSae),
    bEnc: rng.normalArray(dSae, 0, 0.1),
    wDec: rng.normalArray(dSae * dIn),
    bDec: rng.normalArray(dIn, 0, 0.1),
    threshold: rng.uniformArray(dSae, 0, 1),
    bGate: rng.normalArray(dSae, 0, 0.1),
    rMag: rng.normalArray(dSae, 0, 0.1),
    bMag: rng.normalArray(dSae, 0, 0.1),
  });
  const x = rng.normalArray(rows * dIn);
  const pre = (p: ReturnType<typeof params>, r: number, j: number, w = p.wEnc, b = p.bEnc) => {
    let s = b[j]!;
    for (let d = 0; d < dIn; d++) s += (x[r * dIn + d]! - p.bDec[d]!) * w[d * dSae + j]!;
    return s;
  };
  const count = (z: Float32Array) => z.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0);

  it.each([
    'standard',
    'topk',
    'batchtopk',
    'jumprelu',
    'gated',
    'feature-choice',
    'mutual-choice',
  ] as SaeArchitecture[])('%s', (architecture) => {
    const p = params();
    const k = 3;
    const sae = new Sae({ architecture, dIn, dSae, k }, p);
    const { latents, pre: got } = sae.encode(x, { training: true });
    const P = Array.from({ length: rows * dSae }, (_, i) => pre(p, Math.floor(i / dSae), i % dSae));
    if (architecture !== 'gated') expect(got).toAllClose(P, { atol: 1e-5, rtol: 1e-5 });
    const want = new Float64Array(rows * dSae);
    const order = (vals: number[]) =>
      vals.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < dSae; j++) {
        const v = P[r * dSae + j]!;
        if (architecture === 'standard') want[r * dSae + j] = Math.max(0, v);
        if (architecture === 'jumprelu') want[r * dSae + j] = v > p.threshold[j]! && v > 0 ? v : 0;
        if (architecture === 'gated') {
          const gate = pre(p, r, j, p.wEnc, p.bGate);
          const scaled = p.wEnc.map((w, i) => w * Math.exp(p.rMag[i % dSae]!));
          want[r * dSae + j] = gate > 0 ? Math.max(0, pre(p, r, j, scaled, p.bMag)) : 0;
        }
      }
    if (architecture === 'topk')
      for (let r = 0; r < rows; r++)
        for (const [v, j] of order(P.slice(r * dSae, (r + 1) * dSae)).slice(0, k))
          want[r * dSae + j] = Math.max(0, v);
    if (architecture === 'batchtopk' || architecture === 'mutual-choice')
      for (const [v, i] of order(P).slice(0, k * rows)) want[i] = Math.max(0, v);
    if (architecture === 'feature-choice') {
      const m = Math.round((k * rows) / dSae);
      for (let j = 0; j < dSae; j++) {
        const col = Array.from({ length: rows }, (_, r) => P[r * dSae + j]!);
        for (const [v, r] of order(col).slice(0, m)) want[r * dSae + j] = Math.max(0, v);
      }
    }
    expect(latents).toAllClose(want, { atol: 1e-5, rtol: 1e-5 });
    if (architecture === 'topk') expect(count(latents)).toBeLessThanOrEqual(rows * k);
    // Decoding: latents W_dec + b_dec.
    const xHat = sae.decode(latents);
    for (let r = 0; r < rows; r++)
      for (let d = 0; d < dIn; d++) {
        let s = p.bDec[d]!;
        for (let j = 0; j < dSae; j++) s += latents[r * dSae + j]! * p.wDec[j * dIn + d]!;
        expect(xHat[r * dIn + d]).toBeCloseTo(s, 4);
      }
  });

  it('decodes CSR latents through spmm (reference and wasm backends) as the dense decode does', async () => {
    const p = params();
    const sae = new Sae({ architecture: 'topk', dIn, dSae, k: 3 }, p);
    const { latents } = sae.encode(x);
    const csr = sae.sparseLatents(latents);
    expect(csr.indices.length).toBeLessThanOrEqual(rows * 3);
    const dense = sae.decode(latents);
    expect(sae.decodeSparse(csr)).toAllClose(dense, { atol: 1e-5, rtol: 1e-5 });
    const wasm = await createWasmBackend({ threads: 1 });
    try {
      expect(sae.decodeSparse(csr, { backend: wasm })).toAllClose(dense, { atol: 1e-4, rtol: 1e-4 });
      expect(sae.encode(x, { backend: wasm }).latents).toAllClose(latents, { atol: 1e-4, rtol: 1e-4 });
    } finally {
      await wasm.dispose();
    }
  });

  it('batchtopk runs with its threshold at inference (as JumpReLU)', () => {
    const p = params();
    const sae = new Sae({ architecture: 'batchtopk', dIn, dSae, k: 3 }, p);
    const jump = new Sae({ architecture: 'jumprelu', dIn, dSae }, p);
    expect(sae.encode(x).latents).toEqual(jump.encode(x).latents);
  });

  it('refuses bad shapes, NaN weights and inputs, and impossible k with typed errors', () => {
    const p = params();
    expect(() => new Sae({ architecture: 'topk', dIn, dSae, k: 0 }, p)).toThrow(/k/);
    expect(() => new Sae({ architecture: 'topk', dIn, dSae, k: dSae + 1 }, p)).toThrow(/k/);
    expect(() => new Sae({ architecture: 'fancy' as SaeArchitecture, dIn, dSae }, p)).toThrow(/architecture/);
    expect(() => new Sae({ architecture: 'standard', dIn, dSae: dSae + 1 }, p)).toThrow(/W_enc/);
    expect(() => new Sae({ architecture: 'jumprelu', dIn, dSae }, { ...p, threshold: undefined })).toThrow(
      /threshold/,
    );
    const bad = Float32Array.from(p.wDec);
    bad[3] = Number.NaN;
    expect(() => new Sae({ architecture: 'standard', dIn, dSae }, { ...p, wDec: bad })).toThrow(/finite/);
    const sae = new Sae({ architecture: 'standard', dIn, dSae }, p);
    expect(() => sae.encode(new Float32Array(dIn + 1))).toThrow(/d_in/);
    const nan = new Float32Array(dIn).fill(Number.NaN);
    expect(() => sae.encode(nan)).toThrow(/finite/);
  });
});
