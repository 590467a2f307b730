import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hooks, InvalidArgumentError, Rng, type Router, Tensor } from '@sparsekit/core';
import { readSafetensors, writeSafetensors } from '@sparsekit/core/node';
import { referenceBackend } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
import { saveModel } from '../hf/save.js';
import { denseMatrix, Linear } from './linear.js';
import { type GatedMlp, type MlpHooks, type MoeMlp, mlpSteps, TopKRouter } from './mlp.js';
import { backendRef, runSync } from './steps.js';

const backends = backendRef();
const noHooks = {
  linearInput: (x: Float32Array) => x,
  gate: (x: Float32Array) => x,
  up: (x: Float32Array) => x,
  hidden: (x: Float32Array) => x,
};
const silu = (v: number) => v / (1 + Math.exp(-v));

function randomLinear(rng: Rng, name: string, rows: number, cols: number): Linear {
  return new Linear(name, denseMatrix(rng.normalArray(rows * cols, 0, 0.5), rows, cols), undefined, backends);
}

function gated(rng: Rng, name: string, hidden: number, inner: number): GatedMlp {
  return {
    kind: 'gated',
    gate: randomLinear(rng, `${name}.gate_proj`, inner, hidden),
    up: randomLinear(rng, `${name}.up_proj`, inner, hidden),
    down: randomLinear(rng, `${name}.down_proj`, hidden, inner),
  };
}

/** y = x W^T in float64. */
function dot(x: ArrayLike<number>, l: Linear): Float64Array {
  const w = l.getWeight().data;
  const y = new Float64Array(l.outFeatures);
  for (let o = 0; o < l.outFeatures; o++)
    for (let i = 0; i < l.inFeatures; i++) y[o]! += x[i]! * w[o * l.inFeatures + i]!;
  return y;
}

/** Plain float64 Mixtral MoE for one token: softmax top-k of the gate, renormalised, SwiGLU experts. */
function referenceMoe(x: ArrayLike<number>, moe: MoeMlp, k: number): Float64Array {
  const logits = dot(x, moe.gate);
  const max = Math.max(...logits);
  const p = logits.map((v) => Math.exp(v - max));
  const order = [...p.keys()].sort((a, b) => p[b]! - p[a]! || a - b).slice(0, k);
  const kept = order.reduce((s, e) => s + p[e]!, 0);
  const out = new Float64Array(moe.gate.inFeatures);
  for (const e of order) {
    const expert = moe.experts[e] as GatedMlp;
    const g = dot(x, expert.gate);
    const u = dot(x, expert.up);
    const y = dot(
      g.map((v, i) => silu(v) * u[i]!),
      expert.down,
    );
    for (let d = 0; d < out.length; d++) out[d]! += (p[e]! / kept) * y[d]!;
  }
  return out;
}

describe('mixture-of-experts MLP slot', () => {
  it('one expert and a router that always picks it reproduce the dense model exactly', async () => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    const want = hfTinyExpected('llama');
    const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
    const dense = model.logits(ids).data.slice();
    const always: Router = {
      numExperts: 1,
      route: ({ logits }) => ({
        k: 1,
        experts: new Int32Array(logits.size),
        weights: new Float32Array(logits.size).fill(1),
      }),
    };
    model.params.blocks.forEach((b, i) => {
      const H = b.q.inFeatures;
      const gate = new Linear(
        `layers.${i}.mlp.gate`,
        denseMatrix(new Float32Array(H), 1, H),
        undefined,
        backends,
      );
      b.mlp = { kind: 'moe', gate, router: always, experts: [b.mlp as GatedMlp] };
    });
    expect(model.logits(ids).data).toEqual(dense);
    const names = model.modules().map((m) => `${m.kind}:${m.name}`);
    expect(names).toContain('router:layers.0.mlp.router');
    expect(names).toContain('expert:layers.0.mlp.experts.0');
    expect(names).toContain('linear:layers.0.mlp.gate');
  });

  it('four experts with top-2 routing match a plain float64 reference, and dropped slots add nothing', () => {
    const rng = new Rng(11);
    const [H, I, E, tokens] = [8, 6, 4, 5];
    const moe: MoeMlp = {
      kind: 'moe',
      gate: randomLinear(rng, 'gate', E, H),
      router: new TopKRouter(E, 2),
      experts: Array.from({ length: E }, (_, e) => gated(rng, `experts.${e}`, H, I)),
    };
    const x = rng.normalArray(tokens * H);
    const config = { activation: 'silu' } as Parameters<typeof mlpSteps>[0];
    const out = runSync(referenceBackend, mlpSteps(config, moe, x, tokens, 0, noHooks), 'test');
    const want = new Float64Array(tokens * H);
    for (let t = 0; t < tokens; t++) want.set(referenceMoe(x.subarray(t * H, (t + 1) * H), moe, 2), t * H);
    expect(out).toAllClose(want, { atol: 1e-5, rtol: 1e-5 });
    // Every slot dropped: the MLP adds nothing (the token rides the residual).
    const dropAll: Router = {
      numExperts: E,
      route: ({ logits }) => ({
        k: 2,
        experts: new Int32Array((logits.size / E) * 2).fill(-1),
        weights: new Float32Array((logits.size / E) * 2),
      }),
    };
    const dropped = runSync(
      referenceBackend,
      mlpSteps(config, { ...moe, router: dropAll }, x, tokens, 0, noHooks),
      'test',
    );
    expect(Array.from(dropped).every((v) => v === 0)).toBe(true);
    // Inside the mixture, expert hooks name the expert and the token of each row.
    const rowsSeen: Array<[number, number[]]> = [];
    const expertHooks: MlpHooks = {
      linearInput: (v: Float32Array) => v,
      gate: (v: Float32Array) => v,
      up: (v: Float32Array) => v,
      hidden: (v: Float32Array, _n: number, expert?: { id: number; tokens: Int32Array }) => {
        rowsSeen.push([expert!.id, Array.from(expert!.tokens)]);
        return v;
      },
    };
    runSync(referenceBackend, mlpSteps(config, moe, x, tokens, 0, expertHooks), 'test');
    const gateLogits = new Float32Array(tokens * E);
    for (let t = 0; t < tokens; t++) gateLogits.set(dot(x.subarray(t * H, (t + 1) * H), moe.gate), t * E);
    const routed = moe.router.route({
      hidden: new Tensor('f32', [tokens, H], x),
      logits: new Tensor('f32', [tokens, E], gateLogits),
      block: 0,
    });
    for (const [id, rows] of rowsSeen)
      for (const t of rows) expect([routed.experts[2 * t], routed.experts[2 * t + 1]]).toContain(id);
    expect(rowsSeen.reduce((n, [, rows]) => n + rows.length, 0)).toBe(2 * tokens);
    const bad: Router = {
      numExperts: E,
      route: () => ({ k: 1, experts: Int32Array.of(9, 0, 0, 0, 0), weights: new Float32Array(5) }),
    };
    expect(() =>
      runSync(referenceBackend, mlpSteps(config, { ...moe, router: bad }, x, tokens, 0, noHooks), 'test'),
    ).toThrow(InvalidArgumentError);
  });

  it("loads and saves Mixtral's Hugging Face layout (block_sparse_moe.gate, experts.N.w1/w2/w3)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sparsekit-mixtral-'));
    try {
      const [H, I, E, V, L] = [16, 12, 4, 40, 2];
      const config = {
        architectures: ['MixtralForCausalLM'],
        model_type: 'mixtral',
        vocab_size: V,
        hidden_size: H,
        intermediate_size: I,
        num_hidden_layers: L,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 32,
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
        num_local_experts: E,
        num_experts_per_tok: 2,
        tie_word_embeddings: false,
      };
      const rng = new Rng(5);
      const t = (...shape: number[]) =>
        new Tensor(
          'f32',
          shape,
          rng.normalArray(
            shape.reduce((a, b) => a * b),
            0,
            0.3,
          ),
        );
      const tensors: Record<string, Tensor> = {
        'model.embed_tokens.weight': t(V, H),
        'model.norm.weight': new Tensor('f32', [H], new Float32Array(H).fill(1)),
        'lm_head.weight': t(V, H),
      };
      for (let l = 0; l < L; l++) {
        const p = `model.layers.${l}.`;
        tensors[`${p}input_layernorm.weight`] = new Tensor('f32', [H], new Float32Array(H).fill(1));
        tensors[`${p}post_attention_layernorm.weight`] = new Tensor('f32', [H], new Float32Array(H).fill(1));
        tensors[`${p}self_attn.q_proj.weight`] = t(H, H);
        tensors[`${p}self_attn.k_proj.weight`] = t(8, H);
        tensors[`${p}self_attn.v_proj.weight`] = t(8, H);
        tensors[`${p}self_attn.o_proj.weight`] = t(H, H);
        tensors[`${p}block_sparse_moe.gate.weight`] = t(E, H);
        for (let e = 0; e < E; e++) {
          tensors[`${p}block_sparse_moe.experts.${e}.w1.weight`] = t(I, H);
          tensors[`${p}block_sparse_moe.experts.${e}.w2.weight`] = t(H, I);
          tensors[`${p}block_sparse_moe.experts.${e}.w3.weight`] = t(I, H);
        }
      }
      await writeFile(join(dir, 'config.json'), JSON.stringify(config));
      await writeSafetensors(join(dir, 'model.safetensors'), tensors);
      const { model } = await loadHfModel(dir);
      expect(model.config.moe).toEqual({ numExperts: E, expertsPerToken: 2 });
      const mlp = model.params.blocks[1]!.mlp as MoeMlp;
      expect(mlp.kind).toBe('moe');
      // w1 is the gate projection, w3 the up projection, w2 the down projection.
      const expert = mlp.experts[2] as GatedMlp;
      expect(expert.gate.getWeight().data).toEqual(
        tensors['model.layers.1.block_sparse_moe.experts.2.w1.weight']!.data,
      );
      expect(expert.up.getWeight().data).toEqual(
        tensors['model.layers.1.block_sparse_moe.experts.2.w3.weight']!.data,
      );
      expect(expert.down.getWeight().data).toEqual(
        tensors['model.layers.1.block_sparse_moe.experts.2.w2.weight']!.data,
      );
      expect(mlp.gate.getWeight().data).toEqual(tensors['model.layers.1.block_sparse_moe.gate.weight']!.data);
      // Block 1's MLP, seen through hooks, equals the plain reference on its input.
      const ids = new Tensor('i32', [1, 6], Int32Array.of(1, 7, 3, 30, 2, 9));
      const seen: Record<string, Float32Array> = {};
      const hooks = new Hooks();
      hooks.add(
        'mlp.input',
        (x) => {
          seen.input = x.data.slice();
        },
        { blocks: [1] },
      );
      hooks.add(
        'stream',
        (x, c) => {
          seen[c.point!.at] = x.data.slice();
        },
        { blocks: [1] },
      );
      const logits = model.logits(ids, { hooks }).data.slice();
      const moeOut = seen.mlp!.map((v, i) => v - seen.attention![i]!);
      const want = new Float64Array(6 * H);
      for (let tok = 0; tok < 6; tok++)
        want.set(referenceMoe(seen.input!.subarray(tok * H, (tok + 1) * H), mlp, 2), tok * H);
      expect(moeOut).toAllClose(want, { atol: 1e-4, rtol: 1e-4 });
      expect(logits.every(Number.isFinite)).toBe(true);
      const saved = join(dir, 'saved');
      await saveModel(model, saved);
      const back = await readSafetensors(join(saved, 'model.safetensors'));
      expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(tensors).sort());
      for (const [name, tensor] of Object.entries(tensors))
        expect(back.tensors[name]!.data).toEqual(tensor.data);
      const savedConfig = JSON.parse(await readFile(join(saved, 'config.json'), 'utf8'));
      expect(savedConfig).toMatchObject({
        model_type: 'mixtral',
        num_local_experts: E,
        num_experts_per_tok: 2,
      });
      expect((await loadHfModel(saved)).model.logits(ids).data).toEqual(logits);
      // Parameters: every expert counted.
      const perBlock = 4 * H * H - 2 * (H - 8) * H + H * E + E * 3 * H * I + 2 * H;
      expect(model.parameterCount()).toBe(2 * V * H + H + L * perBlock);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
