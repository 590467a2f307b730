import { Hooks, Rng } from '@sparsekit/core';
import { attention, type Backend, createWasmBackend, referenceBackend } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../config.js';
import { attendSteps } from './attention.js';
import { KvCache, type KvCacheOptions } from './kv-cache.js';
import type { Pass } from './pass.js';
import { runSync } from './steps.js';

const config = { numHeads: 4, numKvHeads: 2, headDim: 8 } as ModelConfig;
const [batch, cached, seq] = [2, 5, 9];

function inputs() {
  const rng = new Rng(3);
  const qkv = (tokens: number) => ({
    q: rng.normalArray(tokens * 4 * 8),
    k: rng.normalArray(tokens * 2 * 8),
    v: rng.normalArray(tokens * 2 * 8),
  });
  return { first: qkv(batch * cached), next: qkv(batch * seq) };
}

/** Attention of `seq` tokens after `cached` ones, on `backend`, with optional hooks. */
function run(backend: Backend, hooks?: Hooks, options: KvCacheOptions = {}): Float32Array {
  const { first, next } = inputs();
  const cache = new KvCache(1, batch, 2, 32, 8, options);
  const call = (s: number, position: number): Pass => ({
    hooks: [hooks],
    hooked: hooks !== undefined,
    batch,
    seq: s,
    position,
  });
  runSync(
    backend,
    attendSteps(config, 0, first.q, first.k, first.v, cache, undefined, call(cached, 0), 0),
    'test',
  );
  cache.length = cached;
  return runSync(
    backend,
    attendSteps(config, 0, next.q, next.k, next.v, cache, undefined, call(seq, cached), 0),
    'test',
  );
}

/** The reference backend with its attention forced onto the float64 loops. */
const loopsBackend: Backend = { ...referenceBackend, attention: (args) => attention(args) } as Backend;

describe('attention', () => {
  it('gives the same output on the products path (reference, wasm) as in loops (GQA, batch 2, after cached positions)', async () => {
    const loops = run(loopsBackend);
    expect(run(referenceBackend)).toAllClose(loops, { atol: 1e-5, rtol: 1e-5 });
    const backend = await createWasmBackend({ threads: 2 });
    try {
      expect(run(backend)).toAllClose(loops, { atol: 1e-5, rtol: 1e-5 });
    } finally {
      await backend.dispose();
    }
  });

  it('reads a cache kept in wasm memory in place, decoding under a policy as the loops do', async () => {
    const backend = await createWasmBackend({ threads: 2, minParallelWork: 0 });
    try {
      const storage = {
        allocate: (n: number) => backend.allocate(n),
        free: (a: Float32Array) => backend.free(a),
      };
      // Prefill, then tokens one at a time reading every other entry (a decode-time selection).
      const { first, next } = inputs();
      const decode = (b: Backend, options: KvCacheOptions) => {
        const cache = new KvCache(1, batch, 2, 32, 8, { ...options, initialEntries: 4 });
        const pass = (s: number, position: number): Pass => ({
          hooks: [],
          hooked: false,
          batch,
          seq: s,
          position,
          kvPolicy: {
            select: (lane) => Int32Array.from({ length: Math.ceil(lane.length / 2) }, (_, i) => 2 * i),
          },
        });
        runSync(
          b,
          attendSteps(config, 0, first.q, first.k, first.v, cache, undefined, pass(cached, 0), 0),
          't',
        );
        cache.length = cached;
        const outs: number[] = [];
        for (let s = 0; s < seq; s++) {
          const one = (a: Float32Array, w: number) => {
            const o = new Float32Array(batch * w);
            for (let t = 0; t < batch; t++)
              o.set(a.subarray((t * seq + s) * w, (t * seq + s + 1) * w), t * w);
            return o;
          };
          const o = runSync(
            b,
            attendSteps(
              config,
              0,
              one(next.q, 32),
              one(next.k, 16),
              one(next.v, 16),
              cache,
              undefined,
              pass(1, cached + s),
              0,
            ),
            't',
          );
          cache.length++;
          outs.push(...o);
        }
        // The cache grew from 4 entries by doubling; its arrays still live in wasm memory.
        if (options.storage !== undefined) expect(cache.keys[0]!.buffer).toBeInstanceOf(SharedArrayBuffer);
        cache.dispose();
        return Float32Array.from(outs);
      };
      expect(decode(backend, { storage })).toAllClose(decode(loopsBackend, {}), { atol: 2e-5, rtol: 2e-4 });
    } finally {
      await backend.dispose();
    }
  });

  it('shows attention probabilities to a hook, and recomputes the output from a replacement', () => {
    const plain = run(referenceBackend);
    const seen: number[][] = [];
    const observe = new Hooks();
    observe.add('attention.probs', (p, ctx) => {
      expect(p.shape).toEqual([2, ctx.seq, ctx.position + ctx.seq]);
      const total = p.shape[2]!;
      // Every row sums to 1 over the keys it may read, and is zero after its own position.
      for (let r = 0; r < p.shape[0]! * ctx.seq; r++) {
        let sum = 0;
        for (let k = 0; k < total; k++) sum += p.data[r * total + k]!;
        expect(sum).toBeCloseTo(1, 5);
        const s = r % ctx.seq;
        for (let k = ctx.position + s + 1; k < total; k++) expect(p.data[r * total + k]).toBe(0);
      }
      seen.push([ctx.sequence!, ctx.kvHead!, ctx.position]);
    });
    expect(run(referenceBackend, observe)).toAllClose(plain, { atol: 1e-5, rtol: 1e-5 });
    expect(seen).toEqual([
      [0, 0, 0],
      [0, 1, 0],
      [1, 0, 0],
      [1, 1, 0],
      [0, 0, cached],
      [0, 1, cached],
      [1, 0, cached],
      [1, 1, cached],
    ]);
    // Uniform weights over the first key only: every output is that key's value row.
    const replace = new Hooks();
    replace.add('attention.probs', (p) => {
      const total = p.shape[2]!;
      const q = new Float32Array(p.size);
      for (let r = 0; r < p.size / total; r++) q[r * total] = 1;
      return q;
    });
    const out = run(referenceBackend, replace);
    const { first } = inputs();
    // Sequence 0, head 0 (key/value head 0) reads value row 0 of sequence 0.
    expect(Array.from(out.subarray(0, 8))).toEqual(Array.from(first.v.subarray(0, 8)));
  });
});
