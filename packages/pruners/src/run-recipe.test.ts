import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, Tensor } from '@sparsekit/core';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import { METHOD_NAMES, METHOD_TABLE } from './method-table.js';
import { pruneModel } from './prune-model.js';
import { type Recipe, recipeOptions } from './recipe.js';
import { needsCalibration, runRecipe } from './run-recipe.js';

const SEQ = 64;

async function setup() {
  const { model, tokenizer } = await loadHfModel(tinyLmPath());
  const ids = tokenizer!.encode(readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8').slice(0, 8000));
  const batches = [0, 1, 2, 3, 4, 5, 6].map(
    (w) => new Tensor('i32', [1, SEQ], Int32Array.from(ids.slice(w * SEQ, (w + 1) * SEQ))),
  );
  return { model, batches };
}

/** A small recipe for each method of the table. */
const RECIPES: Record<(typeof METHOD_NAMES)[number], Recipe> = {
  magnitude: { method: 'magnitude', pattern: '2:4' },
  wanda: { method: 'wanda', sparsity: 0.5, overrides: [{ match: 'down_proj', pattern: '2:4' }] },
  sparsegpt: { method: 'sparsegpt', sparsity: 0.5, layers: { include: ['mlp\\.'] } },
  slicegpt: { method: 'slicegpt', sparsity: 0.25 },
  structured: { method: 'structured', structured: { mlpChannels: 0.25, heads: 0.5 } },
  'global-magnitude': { method: 'global-magnitude', sparsity: 0.4 },
  random: { method: 'random', sparsity: 0.3, random: { distribution: 'erk', seed: 3 } },
};

describe('runRecipe and the method table', () => {
  it('the table names every method once, and each takes its own fields', () => {
    expect(new Set(METHOD_NAMES).size).toBe(METHOD_TABLE.length);
    expect(Object.keys(RECIPES).sort()).toEqual([...METHOD_NAMES].sort());
    for (const m of METHOD_TABLE) expect(m.fields.length, m.name).toBeGreaterThan(0);
  });

  it('runs every method of the table on tiny-lm into one report type', async () => {
    for (const name of METHOD_NAMES) {
      const { model, batches } = await setup();
      const spec = METHOD_TABLE.find((m) => m.name === name)!;
      const before = model.parameterCount();
      const report = await runRecipe(model, batches, RECIPES[name], { reconstructionError: false });
      expect(report.method, name).toBe(name);
      expect(report.gives, name).toBe(spec.gives);
      expect(report.recipe.method).toBe(name);
      expect(report.calibrationTokens, name).toBe(
        needsCalibration(RECIPES[name], { reconstructionError: false }) ? 7 * SEQ : 0,
      );
      expect(report.parameters!.before).toBe(before);
      if (spec.gives === 'sparse') {
        expect(report.layers.length, name).toBeGreaterThan(0);
        // Sparsity counted from the weights the model now holds.
        let zeros = 0;
        let total = 0;
        const pruned = new Set(report.layers.map((l) => l.name));
        for (const l of model.linearLayers().filter((x) => pruned.has(x.name))) {
          for (const v of l.getWeight().data) if (v === 0) zeros++;
          total += l.outFeatures * l.inFeatures;
        }
        expect(report.sparsity, name).toBeCloseTo(zeros / total, 10);
        expect(report.parameters!.after).toBe(before);
      } else {
        expect(report.parameters!.after, name).toBeLessThan(before);
        expect(report.slice ?? report.structured, name).toBeDefined();
      }
    }
  }, 180_000);

  it('gives what pruneModel gives, with structured per-layer patterns, and packs by them', async () => {
    const a = await setup();
    const b = await setup();
    const recipe = RECIPES.wanda;
    const viaRecipe = await runRecipe(a.model, a.batches, recipe, { pack: true });
    const direct = await pruneModel(b.model, b.batches, recipeOptions(recipe));
    expect(viaRecipe.layers.map((l) => [l.name, l.pattern, l.sparsity])).toEqual(
      direct.layers.map((l) => [l.name, l.pattern, l.sparsity]),
    );
    expect(viaRecipe.pattern).toEqual({ sparsity: 0.5 });
    expect(viaRecipe.layers.find((l) => l.name.endsWith('down_proj'))!.pattern).toEqual({ n: 2, m: 4 });
    expect(viaRecipe.packed).toBe(true);
    for (const l of a.model.linearLayers()) {
      expect(l.matrix.format, l.name).toBe(l.name.endsWith('down_proj') ? 'nm' : 'csr');
      expect(Array.from(l.getWeight().data)).toEqual(
        Array.from(
          b.model
            .linearLayers()
            .find((x) => x.name === l.name)!
            .getWeight().data,
        ),
      );
    }
  }, 120_000);

  it('refuses what cannot run, before changing the model', async () => {
    const { model, batches } = await setup();
    const weights = model.linearLayers().map((l) => l.getWeight().data.slice());
    const cases: Array<[unknown, { calibration?: boolean; pack?: boolean }, RegExp]> = [
      [{ method: 'wanda', sparsity: 0.5 }, { calibration: false }, /wanda needs calibration batches/],
      [{ method: 'magnitude', sparsity: 0.5 }, { calibration: false }, /to measure reconstruction errors/],
      [{ method: 'slicegpt', sparsity: 0.2 }, { pack: true }, /nothing to pack/],
      [{ method: 'wanda', sparsity: 1.5 }, {}, /recipe.sparsity: must be a number in \[0, 1\)/],
      [
        { method: 'wanda', sparsity: 0.5, overrides: [{ match: 'nope', skip: true }] },
        {},
        /matches no layer/,
      ],
    ];
    for (const [recipe, o, message] of cases) {
      await expect(
        runRecipe(model, o.calibration === false ? [] : batches, recipe as Recipe, { pack: o.pack ?? false }),
      ).rejects.toThrow(message);
    }
    const error = await runRecipe(model, [], RECIPES.wanda).catch((e: unknown) => e);
    expect(InvalidArgumentError.isInstance(error)).toBe(true);
    for (const [i, l] of model.linearLayers().entries()) expect(l.getWeight().data).toEqual(weights[i]);
    // Magnitude without errors needs no calibration at all.
    const report = await runRecipe(
      model,
      [],
      { method: 'magnitude', sparsity: 0.5 },
      { reconstructionError: false },
    );
    expect(report.calibrationTokens).toBe(0);
  }, 30_000);
});
