import { InvalidArgumentError, Rng, type Router, Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../errors.js';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
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
});
