/**
 * Prefill and decode tokens/s of tiny-lm, dense vs packed, measured in one run:
 *
 *   pnpm --filter @sparsekit/models bench  [--threads N] [--prompt 64] [--new 64] [--reps 5]
 *
 * Every decoder linear layer is pruned by magnitude (per layer: 50% unstructured, 2:4 per group of
 * 4, 90% unstructured) and packed (CSR for unstructured, N:M for 2:4); the dense model runs our wasm
 * dense kernel; 'dense+hooks' is the dense model with an observing hook at every hook site (the cost
 * of hooks that look at every tensor; with none registered the model pays one check per site).
 * Only speed is measured here: quality of pruning methods is the pruners' business.
 * Prints a table and writes bench-results/tokens.json.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { median, option } from '@sparsekit/bench';
import { HOOK_SITES, type Tensor } from '@sparsekit/core';
import { generationSpeed } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { createWasmBackend, fromDense, type SparseMatrix, sparsity } from '@sparsekit/sparse-formats';

const threads = Number(option('threads', String(os.availableParallelism())));
const promptLength = Number(option('prompt', '64'));
const newTokens = Number(option('new', '64'));
const reps = Number(option('reps', '5'));

type Variant = {
  label: string;
  pack: (w: Tensor<'f32'>) => SparseMatrix | undefined;
  /** Register an observing hook (it reads nothing, returns nothing) at every hook site. */
  hooks?: boolean;
};

function magnitudeKeep(values: Float32Array, sparsityTarget: number): Uint8Array {
  const sorted = Float32Array.from(values, Math.abs).sort();
  const threshold = sorted[Math.floor(sparsityTarget * sorted.length)]!;
  return Uint8Array.from(values, (v) => (Math.abs(v) > threshold ? 1 : 0));
}

function nmKeep(values: Float32Array, n: number, m: number): Uint8Array {
  const keep = new Uint8Array(values.length);
  for (let g = 0; g < values.length; g += m) {
    const order = Array.from({ length: m }, (_, i) => i).sort(
      (a, b) => Math.abs(values[g + b]!) - Math.abs(values[g + a]!),
    );
    for (let i = 0; i < n; i++) keep[g + order[i]!] = 1;
  }
  return keep;
}

const VARIANTS: Variant[] = [
  { label: 'dense f32', pack: () => undefined },
  { label: 'dense+hooks', pack: () => undefined, hooks: true },
  {
    label: '50% csr',
    pack: (w) => fromDense(w, 'csr', { keep: magnitudeKeep(w.data, 0.5), indexType: 'u16' }),
  },
  { label: '2:4 nm', pack: (w) => fromDense(w, 'nm', { keep: nmKeep(w.data, 2, 4), n: 2, m: 4 }) },
  {
    label: '90% csr',
    pack: (w) => fromDense(w, 'csr', { keep: magnitudeKeep(w.data, 0.9), indexType: 'u16' }),
  },
];

const backend = await createWasmBackend({ threads });
// All variants are loaded first and measured round-robin, one run each per round, so that drift in
// the machine's speed (a shared VM) hits every variant alike; the medians over rounds are reported.
const models = [];
for (const variant of VARIANTS) {
  const { model } = await loadHfModel(tinyLmPath(), { backend });
  let zeros = 0;
  let total = 0;
  for (const layer of model.linearLayers()) {
    const packed = variant.pack(layer.getWeight());
    if (packed !== undefined) layer.setMatrix(packed);
    zeros += sparsity(layer.matrix) * layer.inFeatures * layer.outFeatures;
    total += layer.inFeatures * layer.outFeatures;
  }
  if (variant.hooks === true) model.hooks.add(HOOK_SITES, () => undefined);
  models.push({ variant, model, sparsity: zeros / total, prefill: [] as number[], decode: [] as number[] });
}
for (let r = 0; r < reps; r++) {
  for (const m of models) {
    const speed = generationSpeed(m.model, { promptLength, newTokens, reps: 1 });
    m.prefill.push(speed.prefillTokensPerSecond);
    m.decode.push(speed.decodeTokensPerSecond);
  }
}
const rows: Array<Record<string, number | string>> = models.map((m) => ({
  variant: m.variant.label,
  sparsity: m.sparsity,
  prefillTokensPerSecond: median(m.prefill),
  decodeTokensPerSecond: median(m.decode),
}));
await backend.dispose();
const dense = rows[0]!;
console.log(
  `tiny-lm, prompt ${promptLength} tokens, ${newTokens} new tokens, ${threads} threads, median of ${reps} rounds (variants interleaved)`,
);
console.log('variant     sparsity  prefill tok/s  vs dense  decode tok/s  vs dense');
for (const r of rows) {
  r.prefillVsDense = (r.prefillTokensPerSecond as number) / (dense.prefillTokensPerSecond as number);
  r.decodeVsDense = (r.decodeTokensPerSecond as number) / (dense.decodeTokensPerSecond as number);
  console.log(
    `${String(r.variant).padEnd(10)} ${(100 * (r.sparsity as number)).toFixed(1).padStart(8)}% ${(r.prefillTokensPerSecond as number).toFixed(0).padStart(14)} ${(r.prefillVsDense as number).toFixed(2).padStart(8)}x ${(r.decodeTokensPerSecond as number).toFixed(0).padStart(13)} ${(r.decodeVsDense as number).toFixed(2).padStart(8)}x`,
  );
}
mkdirSync('bench-results', { recursive: true });
const path = join('bench-results', 'tokens.json');
writeFileSync(
  `${path}.tmp`,
  `${JSON.stringify({ date: new Date().toISOString(), cpu: os.cpus()[0]?.model, threads, promptLength, newTokens, reps, rows }, null, 2)}\n`,
);
renameSync(`${path}.tmp`, path);
console.log(`wrote ${path}`);
