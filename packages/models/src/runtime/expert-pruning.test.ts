import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, Rng, type Router, Tensor } from '@sparsekit/core';
import { writeSafetensors } from '@sparsekit/core/node';
import { describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../errors.js';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
import { saveModel } from '../hf/save.js';
import { denseMatrix, Linear } from './linear.js';
import { type GatedMlp, TopKRouter } from './mlp.js';
import { backendRef } from './steps.js';

const backends = backendRef();
const [E, I] = [4, 6];

function randomLinear(rng: Rng, name: string, rows: number, cols: number): Linear {
  return new Linear(name, denseMatrix(rng.normalArray(rows * cols, 0, 0.5), rows, cols), undefined, backends);
}

/** Top-2 over the logits with experts `gone` masked out: the reference for a pruned layer. */
function masked(gone: ReadonlySet<number>): Router {
  const inner = new TopKRouter(E, 2);
  return {
    numExperts: E,
    route: (input) => {
      const data = input.logits.data.slice();
      for (let i = 0; i < data.length; i++) if (gone.has(i % E)) data[i] = Number.NEGATIVE_INFINITY;
      return inner.route({ ...input, logits: new Tensor('f32', input.logits.shape, data) });
    },
  };
}

/** The llama hf-tiny model with every MLP replaced by four random SwiGLU experts, top-2 routed. */
async function moeModel(router: (block: number) => Router = () => new TopKRouter(E, 2)) {
  const { model } = await loadHfModel(hfTinyDir('llama'));
  const rng = new Rng(5);
  model.params.blocks.forEach((b, i) => {
    const H = b.q.inFeatures;
    const experts: GatedMlp[] = Array.from({ length: E }, (_, e) => ({
      kind: 'gated',
      gate: randomLinear(rng, `layers.${i}.mlp.experts.${e}.gate_proj`, I, H),
      up: randomLinear(rng, `layers.${i}.mlp.experts.${e}.up_proj`, I, H),
      down: randomLinear(rng, `layers.${i}.mlp.experts.${e}.down_proj`, H, I),
    }));
    b.mlp = {
      kind: 'moe',
      gate: randomLinear(rng, `layers.${i}.mlp.gate`, E, H),
      router: router(i),
      experts,
    };
  });
  const want = hfTinyExpected('llama');
  const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
  return { model, ids };
}

describe('removing experts (ExpertPrunableLM)', () => {
  it('lists the mixture blocks, their experts and gate rows; removing none changes nothing', async () => {
    const { model, ids } = await moeModel();
    const blocks = model.moeBlocks();
    expect(blocks).toEqual(Array.from({ length: model.numBlocks }, (_, i) => i));
    expect(model.expertCount(0)).toBe(E);
    expect(model.routerWeight(0).shape).toEqual([E, model.hiddenSize]);
    const before = model.logits(ids).data.slice();
    const routers = model.params.blocks.map((b) => (b.mlp.kind === 'moe' ? b.mlp.router : undefined));
    model.removeExperts(blocks.map(() => []));
    expect(model.logits(ids).data).toEqual(before);
    model.params.blocks.forEach((b, i) => {
      expect(b.mlp.kind === 'moe' && b.mlp.router).toBe(routers[i]);
    });
  });

  it('a pruned layer computes what the full layer does with the removed experts masked out', async () => {
    const gone = [new Set([1]), new Set([3])];
    const removed = (i: number) => [...gone[i % 2]!];
    const { model: reference, ids } = await moeModel((i) => masked(gone[i % 2]!));
    const want = reference.logits(ids).data;
    const { model } = await moeModel();
    model.removeExperts(model.moeBlocks().map(removed));
    for (const block of model.moeBlocks()) {
      expect(model.expertCount(block)).toBe(E - 1);
      expect(model.routerWeight(block).shape).toEqual([E - 1, model.hiddenSize]);
      const mlp = model.params.blocks[block]!.mlp;
      expect(mlp.kind === 'moe' && mlp.router.numExperts).toBe(E - 1);
    }
    // The gate keeps the other rows, in order.
    const full = (await moeModel()).model;
    const row = (m: typeof model, e: number) =>
      m.routerWeight(0).data.slice(e * m.hiddenSize, (e + 1) * m.hiddenSize);
    expect(row(model, 1)).toEqual(row(full, 2));
    const got = model.logits(ids).data;
    expect(got.every(Number.isFinite)).toBe(true);
    expect(got).toAllClose(want, { atol: 1e-5, rtol: 1e-5 });
  });

  it('clamps k to the experts left, and a rebuild callback replaces withExperts', async () => {
    const { model, ids } = await moeModel();
    const seen: number[][] = [];
    model.removeExperts(
      model.moeBlocks().map(() => [0, 1, 2]),
      (old, kept, block) => {
        seen.push([block, old.numExperts, ...kept]);
        return new TopKRouter(kept.length, 1);
      },
    );
    expect(seen[0]).toEqual([0, E, 3]);
    expect(model.expertCount(0)).toBe(1);
    expect(model.logits(ids).data.every(Number.isFinite)).toBe(true);
    expect(new TopKRouter(E, 2).withExperts([2])).toMatchObject({ numExperts: 1, k: 1 });
  });

  it('rejects bad lists, unequal blocks and routers it cannot rebuild, changing nothing', async () => {
    const plain: Router = { numExperts: E, route: (input) => new TopKRouter(E, 2).route(input) };
    const { model, ids } = await moeModel(() => plain);
    const before = model.logits(ids).data.slice();
    const blocks = model.moeBlocks();
    expect(() => model.removeExperts(blocks.map(() => [1]))).toThrow(UnsupportedModelError);
    expect(() => model.removeExperts(blocks.map((b) => (b === 0 ? [1, 2] : [1])))).toThrow(
      InvalidArgumentError,
    );
    expect(() => model.removeExperts(blocks.map(() => [E]))).toThrow(InvalidArgumentError);
    expect(() => model.removeExperts(blocks.map(() => [0, 0]))).toThrow(InvalidArgumentError);
    expect(() => model.removeExperts(blocks.map(() => [0, 1, 2, 3]))).toThrow(InvalidArgumentError);
    expect(() => model.removeExperts([[]])).toThrow(InvalidArgumentError);
    expect(() => model.routerWeight(model.numBlocks)).toThrow(InvalidArgumentError);
    expect(model.expertCount(0)).toBe(E);
    expect(model.logits(ids).data).toEqual(before);
  });

  it('a pruned Mixtral checkpoint saves with the new expert count and loads back to the same logits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sparsekit-expert-pruning-'));
    try {
      const [H, V, L] = [16, 40, 2];
      const rng = new Rng(9);
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
      const ones = () => new Tensor('f32', [H], new Float32Array(H).fill(1));
      const tensors: Record<string, Tensor> = {
        'model.embed_tokens.weight': t(V, H),
        'model.norm.weight': ones(),
        'lm_head.weight': t(V, H),
      };
      for (let l = 0; l < L; l++) {
        const p = `model.layers.${l}.`;
        tensors[`${p}input_layernorm.weight`] = ones();
        tensors[`${p}post_attention_layernorm.weight`] = ones();
        for (const [name, rows] of [
          ['q', H],
          ['k', 8],
          ['v', 8],
          ['o', H],
        ] as const)
          tensors[`${p}self_attn.${name}_proj.weight`] = t(rows, H);
        tensors[`${p}block_sparse_moe.gate.weight`] = t(E, H);
        for (let e = 0; e < E; e++) {
          tensors[`${p}block_sparse_moe.experts.${e}.w1.weight`] = t(I, H);
          tensors[`${p}block_sparse_moe.experts.${e}.w2.weight`] = t(H, I);
          tensors[`${p}block_sparse_moe.experts.${e}.w3.weight`] = t(I, H);
        }
      }
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
      await writeFile(join(dir, 'config.json'), JSON.stringify(config));
      await writeSafetensors(join(dir, 'model.safetensors'), tensors);
      const { model } = await loadHfModel(dir);
      model.removeExperts([[0], [2]]);
      expect(model.config.moe).toEqual({ numExperts: E - 1, expertsPerToken: 2 });
      // The experts left are renumbered, their layers' names too.
      const names = model.linearLayers().map((l) => l.name);
      expect(names).toContain('layers.0.mlp.experts.2.up_proj');
      expect(names.filter((n) => n.includes('.experts.3.'))).toEqual([]);
      const ids = new Tensor('i32', [1, 6], Int32Array.of(1, 7, 3, 30, 2, 9));
      const logits = model.logits(ids).data.slice();
      const saved = join(dir, 'saved');
      await saveModel(model, saved);
      const savedConfig = JSON.parse(await readFile(join(saved, 'config.json'), 'utf8'));
      expect(savedConfig).toMatchObject({ num_local_experts: E - 1, num_experts_per_tok: 2 });
      const back = (await loadHfModel(saved)).model;
      expect(back.routerWeight(1).data).toEqual(model.routerWeight(1).data);
      expect(back.logits(ids).data).toEqual(logits);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
