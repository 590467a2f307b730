// The backend-contract operations of the WebGPU backend that are built from its kernels: attention
// on the block-sparse kernel where the call fits it, and the dense products on the linear kernel.
import {
  type AttentionArgs,
  attention as cpuAttention,
  keySegments,
  type MatmulOptions,
  matmulWeight,
  resolveAttention,
  type SparseMatrix,
  spmmInput,
  spmmOutput,
} from '@sparsekit/sparse-formats';
import { blockSparseAttention } from './attention.js';
import type { GpuBackend } from './backend.js';

/** Largest head width and block edge the attention kernel takes. */
const KERNEL_MAX = 256;

/**
 * The block mask [qBlocks * kBlocks] for a prefill call (queries at positions 0..seq-1 over the same
 * keys), or undefined when the call does not fit the kernel: decoding after a cache, a window with
 * sinks, selected positions, or a head wider than it takes.
 */
function kernelPlan(
  args: AttentionArgs,
): { blockSize: number; blockMask?: Uint8Array; causal: boolean } | undefined {
  const r = resolveAttention(args);
  if (r.offset !== 0 || r.keyLength !== r.seq || r.seq === 0 || r.dim > KERNEL_MAX) return undefined;
  const mask = r.mask;
  if (mask.kind === 'full') return { blockSize: 32, causal: false };
  if (mask.kind === 'causal') return mask.window === undefined ? { blockSize: 32, causal: true } : undefined;
  if (mask.kind === 'blocks') {
    // The kernel applies causality inside blocks, not a window: windowed block lists run on the CPU.
    if (mask.blockSize > KERNEL_MAX || mask.window !== undefined) return undefined;
    const blocks = Math.ceil(r.seq / mask.blockSize);
    const blockMask = new Uint8Array(blocks * blocks);
    for (let i = 0; i < blocks; i++) for (const j of mask.kvBlocks[i]!) blockMask[i * blocks + j] = 1;
    return { blockSize: mask.blockSize, blockMask, causal: mask.causal === true };
  }
  return undefined;
}

/**
 * A decode step (one query per head) on the kernel: the key rows its mask lets it read are gathered
 * (the KV cache lives in host memory) and only they are uploaded and attended, every block of them.
 */
async function decodeOnKernel(backend: GpuBackend, args: AttentionArgs): Promise<Float32Array> {
  const r = resolveAttention(args);
  const segments = new Int32Array(2 * (r.keyLength + 2));
  const count = keySegments(r.mask, r.offset, r.keyLength, segments);
  let rows = 0;
  for (let g = 0; g < count; g++) rows += segments[2 * g + 1]! - segments[2 * g]!;
  const out = args.out ?? new Float32Array(args.q.length);
  if (rows === 0) return out.fill(0);
  const keys = new Float32Array(rows * r.dim);
  const values = new Float32Array(rows * r.dim);
  let at = 0;
  for (let g = 0; g < count; g++) {
    const [from, to] = [segments[2 * g]! * r.dim, segments[2 * g + 1]! * r.dim];
    keys.set(args.keys.subarray(from, to), at);
    values.set(args.values.subarray(from, to), at);
    at += to - from;
  }
  const result = await blockSparseAttention(backend, args.q, keys, values, {
    heads: r.heads,
    kvHeads: 1,
    seq: 1,
    headDim: r.dim,
    keyLength: rows,
    blockSize: 32,
    causal: false,
    scale: r.scale,
  });
  out.set(result);
  return out;
}

/**
 * Attention for one key/value head's query group. Prefill calls run on the block-sparse kernel (only
 * the listed blocks are computed); decode steps (one query per head) too, over the key rows their
 * mask selects (gathered from the host's KV cache, so only they are uploaded); other calls that read
 * a cache (several new tokens), and block lists with a window, run the reference loops on the CPU.
 */
export async function gpuAttention(backend: GpuBackend, args: AttentionArgs): Promise<Float32Array> {
  const plan = kernelPlan(args);
  if (plan === undefined) {
    if (args.seq === 1 && args.headDim <= KERNEL_MAX) {
      backend.stats.attentionOnKernel++;
      return decodeOnKernel(backend, args);
    }
    backend.stats.attentionOnCpu++;
    return cpuAttention(args);
  }
  backend.stats.attentionOnKernel++;
  const { heads, seq, headDim } = args;
  const out = await blockSparseAttention(
    backend,
    args.q,
    args.keys.subarray(0, seq * headDim),
    args.values.subarray(0, seq * headDim),
    {
      heads,
      kvHeads: 1,
      seq,
      headDim,
      blockSize: plan.blockSize,
      causal: plan.causal,
      ...(plan.blockMask === undefined ? {} : { blockMask: plan.blockMask }),
      ...(args.scale === undefined ? {} : { scale: args.scale }),
    },
  );
  if (args.out === undefined) return out;
  args.out.set(out);
  return args.out;
}

/** C = A B (or A B^T) on the linear kernel; B is uploaded for the call and freed after it. */
export async function gpuMatmul(
  backend: GpuBackend,
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  options: MatmulOptions = {},
): Promise<Float32Array> {
  const w = matmulWeight(a, b, m, k, n, options);
  try {
    const c = await backend.linear(a, m, w);
    if (options.out === undefined) return c;
    options.out.set(c);
    return options.out;
  } finally {
    backend.release(w);
  }
}

/** C [rows, n] = A B for B [cols, n] dense: C^T = B^T A^T on the linear kernel. */
export async function gpuSpmm(
  backend: GpuBackend,
  a: SparseMatrix,
  b: Float32Array,
  n: number,
  out?: Float32Array,
): Promise<Float32Array> {
  const { bt, c } = spmmInput(a, b, n, out);
  return spmmOutput(await backend.linear(bt, n, a), c, a.rows, n);
}
