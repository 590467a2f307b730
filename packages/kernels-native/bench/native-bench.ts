/**
 * y = x W^T on the CPU: the native kernels against the wasm kernels and the dense baselines
 * onnxruntime-node MatMul (all threads) and tfjs-wasm matMul, on the same weights, in one run:
 *
 *   pnpm --filter @sparsekit/kernels-native bench
 *   node bench-build/native-bench.js [--shape 4096x4096] [--batches 1,8,128] [--budget-ms 1000]
 *     [--threads N] [--only "csr 90%,dense f32"] [--kernels avx512,avx2] [--out bench-results]
 *
 * Weights: normal random values; unstructured sparsity zeroes each entry with probability s (seeded);
 * 2:4 keeps the two largest |w| of every four; R x C blocks (1x8 and 1x4 along inputs, 8x1 and 4x1 along outputs) are
 * dropped whole with probability s. Calls rotate through copies of the weight beyond the
 * last-level cache ("cold", as decoding reads each layer once per token). The native kernels run
 * as the best build the CPU has ("native") and, where that is AVX-512, as the AVX2 build too
 * ("native-avx2"). Prints a table and writes DIR/native-kernels.{json,md}.
 */
import * as os from 'node:os';
import { join } from 'node:path';
import {
  copiesFor,
  lastLevelCacheBytes,
  machineFacts,
  markdownTable,
  measure,
  onnxMatmulSubject,
  option,
  ratio,
  type Subject,
  tfjsMatmulSubject,
  transposed,
  withCopies,
  workingSetBytes,
  writeJsonAtomic,
  writeTextAtomic,
} from '@sparsekit/bench';
import { Rng, Tensor } from '@sparsekit/core';
import { createNativeBackend } from '@sparsekit/kernels-native';
import {
  type Backend,
  byteSize,
  createWasmBackend,
  type FormatName,
  fromDense,
  type SparseMatrix,
  sparsity,
} from '@sparsekit/sparse-formats';

const [outF, inF] = option('shape', '4096x4096').split('x').map(Number) as [number, number];
const batches = option('batches', '1,8,128').split(',').map(Number);
const budgetMs = Number(option('budget-ms', '1000'));
const threads = Number(option('threads', String(os.availableParallelism())));
const outDir = option('out', 'bench-results');
const only = option('only', '')
  .split(',')
  .filter((x) => x !== '');
const llc = lastLevelCacheBytes();
const workingSet = workingSetBytes(llc);
const timing = { budgetMs, minReps: 5, maxReps: 61 };

const rng = new Rng(1);
const dense = rng.normalArray(outF * inF);
function pruned(s: number | '2:4', block?: [number, number]): Float32Array {
  const v = Float32Array.from(dense);
  const r = new Rng(2);
  if (block !== undefined) {
    // Whole R x C blocks dropped with probability s.
    const [R, C] = block;
    for (let br = 0; br < outF; br += R)
      for (let bc = 0; bc < inF; bc += C)
        if (r.uniform() < (s as number))
          for (let i = 0; i < R; i++) v.fill(0, (br + i) * inF + bc, (br + i) * inF + bc + C);
  } else if (s === '2:4') {
    for (let g = 0; g < v.length; g += 4) {
      const order = [0, 1, 2, 3].sort((a, b) => Math.abs(v[g + a]!) - Math.abs(v[g + b]!));
      v[g + order[0]!] = 0;
      v[g + order[1]!] = 0;
    }
  } else for (let i = 0; i < v.length; i++) if (r.uniform() < s) v[i] = 0;
  return v;
}

interface Case {
  label: string;
  values: () => Float32Array;
  format: FormatName;
  options?: object;
}
/** BSR with R x C blocks dropped whole with probability s, f32 values. */
function blockCase(s: number, [R, C]: [number, number]): Case {
  return {
    label: `bsr ${R}x${C} ${Math.round(100 * s)}% f32`,
    values: () => pruned(s, [R, C]),
    format: 'bsr',
    options: { blockShape: [R, C] },
  };
}
const cases: Case[] = [
  { label: 'dense f32', values: () => dense, format: 'dense' },
  { label: 'dense f16', values: () => dense, format: 'dense', options: { dtype: 'f16' } },
  { label: '2:4 f32', values: () => pruned('2:4'), format: 'nm', options: { n: 2, m: 4 } },
  {
    label: '2:4 f16',
    values: () => pruned('2:4'),
    format: 'nm',
    options: { n: 2, m: 4, dtype: 'f16' },
  },
  { label: 'csr 70% f32', values: () => pruned(0.7), format: 'csr' },
  { label: 'csr 90% f32', values: () => pruned(0.9), format: 'csr' },
  blockCase(0.9, [1, 8]),
  blockCase(0.9, [8, 1]),
  blockCase(0.9, [1, 4]),
  blockCase(0.9, [2, 1]),
  blockCase(0.9, [4, 1]),
  blockCase(0.9, [2, 2]),
  blockCase(0.9, [4, 4]),
  blockCase(0.7, [1, 8]),
  {
    label: 'csr 70% u16 f16',
    values: () => pruned(0.7),
    format: 'csr',
    options: { indexType: 'u16', dtype: 'f16' },
  },
  {
    label: 'csr 90% u16 f16',
    values: () => pruned(0.9),
    format: 'csr',
    options: { indexType: 'u16', dtype: 'f16' },
  },
];

function backendSubject(backend: Backend, name: string, label: string, matrix: SparseMatrix, copies: number) {
  const list = Array.from({ length: copies }, () => ({ ...matrix }) as SparseMatrix);
  let x: Float32Array = new Float32Array(0);
  let batch = 0;
  let out: Float32Array = new Float32Array(0);
  return {
    kernel: `${name} ${label}`,
    dtype: matrix.dtype,
    threads,
    weightBytes: byteSize(matrix),
    copies,
    setBatch(b: number, input: Float32Array) {
      batch = b;
      x = input;
      out = new Float32Array(b * matrix.rows);
      for (const m of list) backend.linear(x, batch, m, { out }); // (prepares every copy)
    },
    call(i: number) {
      return backend.linear(x, batch, list[i]!, { out });
    },
    dispose() {
      for (const m of list) backend.release(m);
    },
  };
}

const wasm = await createWasmBackend({ threads });
const native = createNativeBackend({ threads });
// The AVX2 build beside the AVX-512 one, where the CPU runs both.
const natives: Array<[string, Backend]> = [['native', native]];
if (native.kernels === 'avx512')
  natives.push(['native-avx2', createNativeBackend({ threads, kernels: 'avx2' })]);
const backends: Array<[string, Backend]> = [...natives, ['wasm', wasm]];
const triad = wasm.triad(Math.ceil(workingSet / 12), 5);
console.log(
  `${os.cpus()[0]?.model ?? 'cpu'}, ${threads} threads, native kernels ${native.kernels}, BLAS ${native.blas ?? 'none'}, W ${outF}x${inF}, ` +
    `working set ${(workingSet / 2 ** 20).toFixed(0)} MiB, triad ${triad.toFixed(1)} GB/s`,
);

type Row = { kernel: string; batch: number; sparsity: number; coldMs: number; gbs: number };
const rows: Row[] = [];
async function run(subject: Subject & { setBatch(b: number, x: Float32Array): void }, s: number) {
  for (const batch of batches) {
    subject.setBatch(batch, new Rng(batch).normalArray(batch * inF));
    const t = await measure(subject, timing);
    const gbs = (subject.weightBytes + 4 * batch * (inF + outF)) / (t.coldMs / 1000) / 1e9;
    rows.push({ kernel: subject.kernel, batch, sparsity: s, coldMs: t.coldMs, gbs });
    console.log(`  b=${batch} ${subject.kernel}: ${t.coldMs.toFixed(3)} ms`);
  }
}

const wt = transposed(dense, outF, inF);
const onnx = await withCopies(
  (c) => onnxMatmulSubject({ wt, inFeatures: inF, outFeatures: outF, copies: c, threads }),
  copiesFor(outF * inF * 4, workingSet),
);
await run(onnx, 0);
onnx.dispose();
const tfjs = await withCopies(
  (c) => tfjsMatmulSubject({ wt, inFeatures: inF, outFeatures: outF, copies: c }),
  copiesFor(outF * inF * 4, workingSet),
);
await run(tfjs, 0);
tfjs.dispose();
for (const c of cases.filter((c) => only.length === 0 || only.some((o) => c.label.includes(o)))) {
  const matrix = fromDense(new Tensor('f32', [outF, inF], c.values()), c.format, c.options ?? {});
  const s = c.format === 'dense' ? 0 : sparsity(matrix);
  for (const [name, backend] of backends) {
    const subject = backendSubject(backend, name, c.label, matrix, copiesFor(byteSize(matrix), workingSet));
    await run(subject, s);
    subject.dispose();
  }
}
await wasm.dispose();

const fastestDense = (batch: number) =>
  Math.min(
    ...rows
      .filter((r) => r.batch === batch && r.sparsity === 0 && !r.kernel.includes('f16'))
      .map((r) => r.coldMs),
  );
const table = markdownTable(
  ['kernel', 'batch', 'sparsity', 'ms', 'vs fastest f32 dense', 'GB/s', 'of triad'],
  rows.map((r) => [
    r.kernel,
    String(r.batch),
    `${(100 * r.sparsity).toFixed(0)}%`,
    r.coldMs.toFixed(3),
    ratio(fastestDense(r.batch) / r.coldMs),
    r.gbs.toFixed(1),
    `${((100 * r.gbs) / triad).toFixed(0)}%`,
  ]),
);
// The README's layout: one row per weight, native (AVX2 too) and wasm side by side per batch.
const names = backends.map(([name]) => name);
const pivot = markdownTable(
  ['weight', ...batches.flatMap((b) => names.map((name, i) => (i === 0 ? `batch ${b}: ${name}` : name)))],
  cases
    .filter((c) => rows.some((r) => r.kernel === `native ${c.label}`))
    .map((c) => [
      c.label,
      ...batches.flatMap((b) =>
        names.map((name) => {
          const r = rows.find((x) => x.kernel === `${name} ${c.label}` && x.batch === b);
          return r === undefined ? '' : ratio(fastestDense(b) / r.coldMs);
        }),
      ),
    ]),
);
console.log(`\n${table}\n\n${pivot}`);
const command = `node bench-build/native-bench.js ${process.argv.slice(2).join(' ')}`.trim();
writeJsonAtomic(join(outDir, 'native-kernels.json'), {
  command,
  date: new Date().toISOString(),
  machine: machineFacts(llc),
  threads,
  kernels: native.kernels,
  blas: native.blas,
  triadGBs: triad,
  rows,
});
writeTextAtomic(join(outDir, 'native-kernels.md'), `${command}\n\n${table}\n\n${pivot}\n`);
