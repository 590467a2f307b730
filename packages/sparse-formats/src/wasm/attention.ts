// The wasm backend's attention: SIMD kernels (asm/attention.ts) that read only the keys a mask lets
// a query read. Decode calls (few queries) run `attend_rows` over the listed key rows, split across
// threads as partial softmaxes merged here; prefill calls under a block list, or a causal window,
// run `attend_blocks` over (head, query block) items. Keys and values that live in the backend's
// memory (`WasmBackend.allocate`, e.g. a KV cache) are read in place; others are copied in, and a
// selective decode mask copies only the rows it reads.
import {
  keySegments,
  attention as loopAttention,
  PRODUCT_MIN_SEQ,
  resolveAttention,
} from '../backend/attention.js';
import type { AttentionArgs, AttentionMask } from '../backend/contract.js';
import type { WasmAllocator } from './allocator.js';
import type { ThreadPool } from './pool.js';
import { KERNEL_NAMES, partition } from './prepare.js';

type LinearFn = Parameters<typeof loopAttention>[1];

/** What the attention path needs of its backend. */
export interface AttentionHost {
  readonly memory: WebAssembly.Memory;
  readonly allocator: WasmAllocator;
  readonly pool: ThreadPool;
  readonly threads: number;
  readonly minParallelWork: number;
  /** A scratch region of at least `bytes` (reused between calls). */
  region(bytes: number): number;
  /** The byte offset of `a` in wasm memory, or -1 when it lives elsewhere. */
  residentOffset(a: Float32Array): number;
  readonly linear: LinearFn;
}

/** Scores kept per head of a tile in attend_rows (asm/attention.ts TILE). */
const TILE = 64;
/** Query/key block edge of the block kernel for a causal window mask. */
const WINDOW_BLOCK = 64;
const ROWS = KERNEL_NAMES.indexOf('attend_rows_f32');
const BLOCKS = KERNEL_NAMES.indexOf('attend_blocks_f32');

/** Counters of which path calls took (for tests and benchmarks). */
export const attentionPaths = { rows: 0, blocks: 0, products: 0, loops: 0 };

export function wasmAttention(host: AttentionHost, args: AttentionArgs): Float32Array {
  const r = resolveAttention(args);
  const out = args.out ?? new Float32Array(args.q.length);
  if (r.seq === 0) return out;
  const { mask } = r;
  const plain = mask.kind === 'full' || (mask.kind === 'causal' && mask.window === undefined);
  if (r.dim % 4 !== 0 || r.keyLength === 0) {
    attentionPaths.loops++;
    return loopAttention({ ...args, out });
  }
  if (r.seq >= PRODUCT_MIN_SEQ) {
    if (plain) {
      attentionPaths.products++;
      return loopAttention({ ...args, out }, host.linear);
    }
    if (mask.kind === 'blocks' || mask.kind === 'causal') {
      attentionPaths.blocks++;
      blockAttention(host, args, r, blockLists(mask, r.offset, r.seq, r.keyLength), out);
      return out;
    }
  }
  attentionPaths.rows++;
  rowsAttention(host, args, r, out);
  return out;
}

type Resolved = ReturnType<typeof resolveAttention>;

/** Scratch of the row lists, grown on demand and reused (calls are synchronous). */
const scratch = { segments: new Int32Array(64), rows: new Int32Array(256) };

/** The key rows query position `p` reads, as a sorted list (a view valid until the next call). */
function visibleRows(mask: AttentionMask, p: number, keyLength: number): Int32Array {
  if (mask.kind === 'positions') return mask.positions;
  const capacity = mask.kind === 'blocks' ? 2 * mask.kvBlocks[Math.floor(p / mask.blockSize)]!.length + 2 : 2;
  if (scratch.segments.length < 2 * capacity) scratch.segments = new Int32Array(2 * capacity);
  const segments = scratch.segments;
  const count = keySegments(mask, p, keyLength, segments);
  let n = 0;
  for (let g = 0; g < count; g++) n += segments[2 * g + 1]! - segments[2 * g]!;
  if (scratch.rows.length < n) scratch.rows = new Int32Array(Math.max(n, 2 * scratch.rows.length));
  const rows = scratch.rows;
  let i = 0;
  for (let g = 0; g < count; g++) for (let k = segments[2 * g]!; k < segments[2 * g + 1]!; k++) rows[i++] = k;
  return rows.subarray(0, n);
}

/** The rows query position `p` reads as one range [start, end), when they are one (else undefined). */
function visibleRun(mask: AttentionMask, p: number, keyLength: number): [number, number] | undefined {
  if (mask.kind === 'positions') {
    const list = mask.positions;
    const n = list.length;
    return n > 0 && list[n - 1]! - list[0]! === n - 1 ? [list[0]!, list[n - 1]! + 1] : undefined;
  }
  if (mask.kind === 'blocks') return undefined;
  const count = keySegments(mask, p, keyLength, scratch.segments);
  return count === 1 ? [scratch.segments[0]!, scratch.segments[1]!] : undefined;
}

/** A resident list 0, 1, ..., n - 1 per backend (grown by doubling, never rewritten). */
const identities = new WeakMap<AttentionHost, { ptr: number; length: number }>();
function identityList(host: AttentionHost, n: number): number {
  let id = identities.get(host);
  if (id === undefined || id.length < n) {
    if (id !== undefined) host.allocator.release(id.ptr);
    const length = Math.max(n, 2 * (id?.length ?? 512));
    const ptr = host.allocator.alloc(length * 4 + 16);
    const view = new Int32Array(host.memory.buffer, ptr, length);
    for (let i = 0; i < length; i++) view[i] = i;
    id = { ptr, length };
    identities.set(host, id);
  }
  return id.ptr;
}

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}

/** Decode-style attention: per query token, attend_rows over the rows its mask reads. */
function rowsAttention(host: AttentionHost, args: AttentionArgs, r: Resolved, out: Float32Array): void {
  const { heads, seq, dim, keyLength, scale, mask } = r;
  const keysAt = host.residentOffset(args.keys);
  const valuesAt = host.residentOffset(args.values);
  const resident = keysAt >= 0 && valuesAt >= 0;
  const partStride = align64((2 * heads + heads * dim + heads * TILE) * 4);
  for (let s = 0; s < seq; s++) {
    // A contiguous run of rows (a causal mask, a window without sinks, adjacent positions) is read
    // from its first row through the resident identity list: nothing is listed or copied per call.
    const range = visibleRun(mask, r.offset + s, keyLength);
    const rows = range === undefined ? visibleRows(mask, r.offset + s, keyLength) : undefined;
    const count = range === undefined ? rows!.length : range[1] - range[0];
    if (count === 0) {
      for (let h = 0; h < heads; h++) out.fill(0, (h * seq + s) * dim, (h * seq + s + 1) * dim);
      continue;
    }
    const work = count * heads * dim;
    const parts =
      work < host.minParallelWork ? Int32Array.of(0, count) : partition(count, host.threads, undefined, 16);
    const threads = parts.length - 1;
    const identity = range === undefined ? -1 : identityList(host, count); // may grow the memory: first
    const qBytes = align64(heads * dim * 4);
    const listBytes = align64(count * 4 + 16);
    const copyBytes = resident ? 0 : align64(count * dim * 4);
    const base = align64(host.region(qBytes + listBytes + 2 * copyBytes + threads * partStride + 64));
    const listPtr = base + qBytes;
    const keysPtr = resident ? keysAt : listPtr + listBytes;
    const valuesPtr = resident ? valuesAt : keysPtr + copyBytes;
    const partPtr = resident ? listPtr + listBytes : valuesPtr + copyBytes;
    const buffer = host.memory.buffer;
    const q = new Float32Array(buffer, base, heads * dim);
    for (let h = 0; h < heads; h++) {
      const from = (h * seq + s) * dim;
      for (let d = 0; d < dim; d++) q[h * dim + d] = args.q[from + d]! * scale;
    }
    let first = 0;
    if (range !== undefined) {
      if (resident) first = range[0] * dim * 4;
      else {
        new Float32Array(buffer, keysPtr, count * dim).set(
          args.keys.subarray(range[0] * dim, range[1] * dim),
        );
        new Float32Array(buffer, valuesPtr, count * dim).set(
          args.values.subarray(range[0] * dim, range[1] * dim),
        );
      }
    } else if (resident) new Int32Array(buffer, listPtr, count).set(rows!);
    else {
      const list = new Int32Array(buffer, listPtr, count);
      // Only the rows read are copied in (compacted), so the kernel reads them as 0..count-1.
      const k = new Float32Array(buffer, keysPtr, count * dim);
      const v = new Float32Array(buffer, valuesPtr, count * dim);
      for (let i = 0; i < count; i++) {
        const row = rows![i]!;
        k.set(args.keys.subarray(row * dim, row * dim + dim), i * dim);
        v.set(args.values.subarray(row * dim, row * dim + dim), i * dim);
        list[i] = i;
      }
    }
    host.pool.run({
      op: ROWS,
      // attend_rows_f32(q, heads, dim, keys, values, rows, part, i0, i1)
      args: [
        base,
        heads,
        dim,
        keysPtr + first,
        valuesPtr + first,
        identity >= 0 ? identity : listPtr,
        0,
        0,
        0,
      ],
      r0Position: 7,
      r1Position: 8,
      parts,
      scratchPosition: 6,
      scratchBase: partPtr,
      scratchStride: partStride,
    });
    mergePartials(
      new Float32Array(host.memory.buffer, partPtr, (threads * partStride) / 4),
      partStride / 4,
      threads,
      heads,
      dim,
      seq,
      s,
      parts,
      out,
    );
  }
}

/** out[h, s] = the softmax-weighted values from the threads' partials (running max, sum, acc). */
function mergePartials(
  partials: Float32Array,
  stride: number,
  threads: number,
  heads: number,
  dim: number,
  seq: number,
  s: number,
  parts: Int32Array,
  out: Float32Array,
): void {
  for (let h = 0; h < heads; h++) {
    let m = Number.NEGATIVE_INFINITY;
    for (let t = 0; t < threads; t++) {
      if (parts[t]! < parts[t + 1]!) m = Math.max(m, partials[t * stride + h]!);
    }
    const o = (h * seq + s) * dim;
    out.fill(0, o, o + dim);
    let sum = 0;
    for (let t = 0; t < threads; t++) {
      if (parts[t]! >= parts[t + 1]!) continue;
      const base = t * stride;
      const c = Math.exp(partials[base + h]! - m);
      sum += c * partials[base + heads + h]!;
      const acc = base + 2 * heads + h * dim;
      for (let d = 0; d < dim; d++) out[o + d]! += c * partials[acc + d]!;
    }
    for (let d = 0; d < dim; d++) out[o + d] = out[o + d]! / sum;
  }
}

interface BlockLists {
  blockSize: number;
  firstBlock: number;
  /** Per query block of the call: the key blocks it reads. */
  lists: Int32Array[];
  causal: boolean;
  window: number;
  sinks: number;
}

/** The key blocks of each query block of a call, from a block mask or a causal window. */
export function blockLists(mask: AttentionMask, offset: number, seq: number, keyLength: number): BlockLists {
  if (mask.kind === 'blocks') {
    const B = mask.blockSize;
    const first = Math.floor(offset / B);
    const last = Math.floor((offset + seq - 1) / B);
    const lists: Int32Array[] = [];
    for (let qb = first; qb <= last; qb++) lists.push(mask.kvBlocks[qb]!);
    return {
      blockSize: B,
      firstBlock: first,
      lists,
      causal: mask.causal === true,
      window: mask.window ?? 0,
      sinks: mask.sinks ?? 0,
    };
  }
  if (mask.kind !== 'causal') throw new Error(`blockLists: unexpected mask ${mask.kind}`);
  const B = WINDOW_BLOCK;
  const window = mask.window ?? 0;
  const sinks = window > 0 ? (mask.sinks ?? 0) : 0;
  const first = Math.floor(offset / B);
  const last = Math.floor((offset + seq - 1) / B);
  const keyBlocks = Math.ceil(keyLength / B);
  const lists: Int32Array[] = [];
  for (let qb = first; qb <= last; qb++) {
    const qStart = Math.max(offset, qb * B);
    const qEnd = Math.min(offset + seq, (qb + 1) * B) - 1;
    const hiBlock = Math.min(keyBlocks - 1, Math.floor(qEnd / B));
    const loBlock = window > 0 ? Math.max(0, Math.floor((qStart - window + 1) / B)) : 0;
    const sinkBlocks = sinks > 0 ? Math.min(loBlock, Math.ceil(sinks / B)) : 0;
    const list: number[] = [];
    for (let kb = 0; kb < sinkBlocks; kb++) list.push(kb);
    for (let kb = loBlock; kb <= hiBlock; kb++) list.push(kb);
    lists.push(Int32Array.from(list));
  }
  return { blockSize: B, firstBlock: first, lists, causal: true, window, sinks };
}

/** Prefill-style attention on attend_blocks: each (head, query block) reads only its listed key blocks. */
function blockAttention(
  host: AttentionHost,
  args: AttentionArgs,
  r: Resolved,
  plan: BlockLists,
  out: Float32Array,
): void {
  const { heads, seq, dim, keyLength, scale } = r;
  const B = plan.blockSize;
  const queryBlocks = plan.lists.length;
  let listLength = 0;
  for (const l of plan.lists) listLength += l.length;
  const keysAt = host.residentOffset(args.keys);
  const valuesAt = host.residentOffset(args.values);
  const resident = keysAt >= 0 && valuesAt >= 0;
  const qBytes = align64(heads * seq * dim * 4);
  const kvBytes = resident ? 0 : align64(keyLength * dim * 4);
  const listBytes = align64(listLength * 4 + 16);
  const offsetBytes = align64((queryBlocks + 1) * 4);
  const scratchStride = align64((B * dim + 2 * B + B * B) * 4);
  const base = align64(
    host.region(128 + qBytes + 3 * kvBytes + listBytes + offsetBytes + host.threads * scratchStride + 64),
  );
  const qPtr = base + 128;
  const outPtr = qPtr + qBytes;
  const keysPtr = resident ? keysAt : outPtr + qBytes;
  const valuesPtr = resident ? valuesAt : keysPtr + kvBytes;
  const listPtr = (resident ? outPtr + qBytes : valuesPtr + kvBytes) + 0;
  const offsetPtr = listPtr + listBytes;
  const scratchPtr = offsetPtr + offsetBytes;
  const buffer = host.memory.buffer;
  const q = new Float32Array(buffer, qPtr, heads * seq * dim);
  for (let i = 0; i < q.length; i++) q[i] = args.q[i]! * scale;
  if (!resident) {
    new Float32Array(buffer, keysPtr, keyLength * dim).set(args.keys.subarray(0, keyLength * dim));
    new Float32Array(buffer, valuesPtr, keyLength * dim).set(args.values.subarray(0, keyLength * dim));
  }
  const lists = new Int32Array(buffer, listPtr, listLength);
  const offsets = new Int32Array(buffer, offsetPtr, queryBlocks + 1);
  let at = 0;
  for (let i = 0; i < queryBlocks; i++) {
    offsets[i] = at;
    lists.set(plan.lists[i]!, at);
    at += plan.lists[i]!.length;
  }
  offsets[queryBlocks] = at;
  new Int32Array(buffer, base, 17).set([
    qPtr,
    heads,
    seq,
    dim,
    keysPtr,
    valuesPtr,
    keyLength,
    r.offset,
    B,
    plan.firstBlock,
    queryBlocks,
    listPtr,
    offsetPtr,
    plan.causal ? 1 : 0,
    plan.window,
    plan.sinks,
    outPtr,
  ]);
  // Items (head, query block) split across threads by the key blocks they read.
  const items = heads * queryBlocks;
  const prefix = new Float64Array(items + 1);
  for (let w = 0; w < items; w++) prefix[w + 1] = prefix[w]! + plan.lists[w % queryBlocks]!.length + 1;
  const work = listLength * heads * B * B * dim;
  const parts =
    work < host.minParallelWork ? Int32Array.of(0, items) : partition(items, host.threads, prefix);
  host.pool.run({
    op: BLOCKS,
    // attend_blocks_f32(params, scratch, r0, r1)
    args: [base, 0, 0, 0],
    r0Position: 2,
    r1Position: 3,
    parts,
    scratchPosition: 1,
    scratchBase: scratchPtr,
    scratchStride,
  });
  out.set(new Float32Array(host.memory.buffer, outPtr, heads * seq * dim));
}
