import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActivationStore, type HookSite, Hooks, ShapeMismatchError, Tensor } from '@sparsekit/core';
import { diskShards } from '@sparsekit/core/node';
import { describe, expect, it } from 'vitest';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
import type { GatedMlp } from './mlp.js';

const ids = (family: 'gpt2' | 'llama') => {
  const want = hfTinyExpected(family);
  return new Tensor('i32', [2, 6], Int32Array.from([...want.tokens.slice(0, 6), ...want.tokens.slice(3, 9)]));
};

describe('model hooks', () => {
  it.each(['llama', 'gpt2'] as const)(
    '%s: every site fires in block order with [batch, seq, width] tensors',
    async (family) => {
      const { model } = await loadHfModel(hfTinyDir(family));
      const c = model.config;
      const seen: string[] = [];
      const hooks = new Hooks();
      const sites: HookSite[] = [
        'stream',
        'attention.input',
        'attention.q',
        'attention.k',
        'attention.v',
        'attention.q.rotated',
        'attention.k.rotated',
        'attention.output',
        'mlp.input',
        'mlp.hidden',
        'linear.input',
      ];
      hooks.add(sites, (t, ctx) => {
        if (ctx.block <= 0)
          seen.push(
            `${ctx.site}${ctx.layers === undefined ? '' : `(${ctx.layers.map((l) => l.name.split('.').at(-1)).join(',')})`}`,
          );
        expect(t.shape.slice(0, 2)).toEqual([2, 6]);
        const width = {
          'attention.q': c.numHeads * c.headDim,
          'attention.q.rotated': c.numHeads * c.headDim,
          'attention.k': c.numKvHeads * c.headDim,
          'attention.k.rotated': c.numKvHeads * c.headDim,
          'attention.v': c.numKvHeads * c.headDim,
          'mlp.hidden': c.intermediateSize,
        }[ctx.site as string];
        if (width !== undefined) expect(t.shape[2]).toBe(width);
      });
      model.logits(ids(family), { hooks });
      const rotary = family === 'llama';
      expect(seen).toEqual([
        'stream',
        'attention.input',
        'linear.input(q_proj,k_proj,v_proj)',
        'attention.q',
        'attention.k',
        'attention.v',
        ...(rotary ? ['attention.q.rotated', 'attention.k.rotated'] : []),
        'attention.output',
        'linear.input(o_proj)',
        'stream',
        'mlp.input',
        rotary ? 'linear.input(gate_proj,up_proj)' : 'linear.input(up_proj)',
        'mlp.hidden',
        'linear.input(down_proj)',
        'stream',
      ]);
    },
  );

  it('a replacement changes the computation: zeroing mlp.hidden equals zeroing down_proj', async () => {
    const a = (await loadHfModel(hfTinyDir('llama'))).model;
    const b = (await loadHfModel(hfTinyDir('llama'))).model;
    const handle = a.hooks.add('mlp.hidden', (t) => new Float32Array(t.size));
    for (const block of b.params.blocks) {
      const down = (block.mlp as GatedMlp).down;
      down.setWeight(
        new Tensor(
          'f32',
          [down.outFeatures, down.inFeatures],
          new Float32Array(down.outFeatures * down.inFeatures),
        ),
      );
    }
    expect(a.logits(ids('llama')).data).toEqual(b.logits(ids('llama')).data);
    handle.remove();
    const plain = (await loadHfModel(hfTinyDir('llama'))).model;
    expect(a.logits(ids('llama')).data).toEqual(plain.logits(ids('llama')).data);
    a.hooks.add('attention.v', () => new Float32Array(3));
    expect(() => a.logits(ids('llama'))).toThrow(ShapeMismatchError);
  });

  it('mlp.up and mlp.gate multiply to mlp.hidden (gated); a replaced mlp.up reaches down_proj', async () => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    const seen: Record<string, Float32Array> = {};
    const hooks = new Hooks();
    hooks.add(['mlp.gate', 'mlp.up', 'mlp.hidden'], (t, ctx) => {
      if (ctx.block === 0) seen[ctx.site] = t.data.slice();
    });
    model.logits(ids('llama'), { hooks });
    const { 'mlp.gate': g, 'mlp.up': u, 'mlp.hidden': h } = seen;
    expect(u!.length).toBe(h!.length);
    for (let i = 0; i < h!.length; i++) expect(h![i]).toBe(Math.fround(g![i]! * u![i]!));
    const zeroUp = new Hooks();
    zeroUp.add('mlp.up', (t) => new Float32Array(t.size));
    zeroUp.add('mlp.hidden', (t, ctx) => {
      if (ctx.block === 0) expect(t.data.every((v) => v === 0)).toBe(true);
    });
    model.logits(ids('llama'), { hooks: zeroUp });
  });

  it('collects a site into an activation store that spills to disk', async () => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    const dir = mkdtempSync(join(tmpdir(), 'sparsekit-collect-'));
    try {
      const width = model.config.intermediateSize;
      const budget = 3 * 20 * width * 4;
      const store = new ActivationStore({ width, memoryBudgetBytes: budget, shards: diskShards(dir) });
      const handle = store.collect(model.hooks, 'mlp.hidden', { blocks: [1] });
      for (let i = 0; i < 4; i++) model.logits(ids('llama'));
      handle.remove();
      expect(store.rows).toBe(4 * 12);
      expect(store.shards).toBe(2);
      let count = 0;
      for (const batch of store.batches(10)) count += batch.shape[0]!;
      expect(() => store.batches(11).next()).toThrow(/half a shard/);
      expect(count).toBe(48);
      expect(store.peakBytes).toBeLessThanOrEqual(budget);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
