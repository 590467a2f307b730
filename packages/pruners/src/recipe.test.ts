import { InvalidFormatError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { pruneModel } from './prune-model.js';
import { checkRecipeLayers, parseRecipe, recipeLayerFilter, recipeOptions } from './recipe.js';
import { calibration, toyModel } from './toy-model.test-util.js';

describe('recipes', () => {
  it('parse from JSON and YAML to the same recipe', () => {
    const json = parseRecipe(
      '{"method": "wanda", "sparsity": 0.5, "overrides": [{"match": "down", "pattern": "2:4"}]}',
    );
    const yaml = parseRecipe(
      'method: wanda\nsparsity: 0.5\noverrides:\n  - match: down\n    pattern: "2:4"\n',
    );
    expect(yaml).toEqual(json);
  });

  it('drive layer selection and per-layer overrides', async () => {
    const recipe = parseRecipe(`
method: sparsegpt
sparsity: 0.5
layers: { exclude: ["^layers\\\\.1\\\\.mlp\\\\.up_proj$"] }
overrides:
  - { match: "layers\\\\.0\\\\.mlp\\\\.down", pattern: "2:4" }
  - { match: "layers\\\\.1\\\\.mlp\\\\.down", sparsity: 0.75 }
sparsegpt: { blockSize: 8 }
`);
    const model = toyModel(7);
    const report = await pruneModel(model, calibration(8), recipeOptions(recipe));
    expect(report.recipe).toEqual(recipe);
    const byName = Object.fromEntries(report.layers.map((l) => [l.name, l.sparsity]));
    expect(Object.keys(byName)).toEqual([
      'layers.0.mlp.up_proj',
      'layers.0.mlp.down_proj',
      'layers.1.mlp.down_proj',
    ]);
    expect(byName['layers.0.mlp.up_proj']).toBeCloseTo(0.5, 1);
    expect(byName['layers.0.mlp.down_proj']).toBeGreaterThanOrEqual(0.5);
    expect(byName['layers.1.mlp.down_proj']).toBeGreaterThanOrEqual(0.75);
    const down0 = model.weights[1]!;
    for (let g = 0; g < down0.length; g += 4)
      expect([...down0.subarray(g, g + 4)].filter((v) => v !== 0).length).toBeLessThanOrEqual(2);
    expect(model.weights[2]!.every((v) => v !== 0)).toBe(true);
  });

  it("carry magnitude's comparison group", () => {
    const recipe = parseRecipe('method: magnitude\nsparsity: 0.5\nmagnitude: { scope: row }\n');
    expect(recipeOptions(recipe).magnitudeScope).toBe('row');
    expect(recipeOptions(parseRecipe('method: magnitude\nsparsity: 0.5\n')).magnitudeScope).toBeUndefined();
  });

  it('carry OWL, which the report then records', async () => {
    const recipe = parseRecipe('method: wanda\nsparsity: 0.5\nowl: { lambda: 0.05 }\n');
    expect(recipeOptions(recipe).owl).toEqual({ lambda: 0.05 });
    const report = await pruneModel(toyModel(13, 16, 32, 3), calibration(14), recipeOptions(recipe));
    expect(report.owl!.sparsities).toHaveLength(3);
    expect(Math.max(...report.owl!.sparsities) - Math.min(...report.owl!.sparsities)).toBeLessThanOrEqual(
      0.1 + 1e-12,
    );
    expect(report.recipe).toEqual(recipe);
    expect(recipeOptions(parseRecipe('method: sparsegpt\nsparsity: 0.5\nowl: true\n')).owl).toBe(true);
  });

  it('describe SliceGPT and structured pruning too, and refuse fields that do not apply to them', () => {
    expect(parseRecipe('method: slicegpt\nsparsity: 0.25\ncalibration: { samples: 8 }\n')).toEqual({
      method: 'slicegpt',
      sparsity: 0.25,
      calibration: { samples: 8 },
    });
    expect(
      parseRecipe('{"method": "structured", "structured": {"mlpChannels": 0.25, "heads": 0.5}}').structured,
    ).toEqual({
      mlpChannels: 0.25,
      heads: 0.5,
    });
    expect(() => recipeOptions(parseRecipe('method: slicegpt\nsparsity: 0.2\n'))).toThrow(/with runRecipe/);
    const random = parseRecipe(
      'method: random\nsparsity: 0.7\nrandom: { distribution: erk, seed: 3 }\nlayers: { exclude: ["down_proj"] }\n',
    );
    const selected = recipeLayerFilter(random);
    expect([selected('layers.0.mlp.up_proj'), selected('layers.0.mlp.down_proj')]).toEqual([true, false]);
    expect(
      parseRecipe('method: global-magnitude\nsparsity: 0.5\nglobal: { minKeep: 0.05 }\n').global,
    ).toEqual({
      minKeep: 0.05,
    });
  });

  it('layer patterns must name a layer of the model (include and overrides; exclude may not)', () => {
    const names = ['layers.0.mlp.up_proj', 'layers.0.mlp.down_proj'];
    const recipe = (extra: string) => parseRecipe(`method: wanda\nsparsity: 0.5\n${extra}`);
    expect(() => checkRecipeLayers(recipe('layers: { include: ["mlp", "atn"] }\n'), names)).toThrow(
      /recipe.layers.include\[1\]: "atn" matches no layer of the model \(its layers are named like "layers.0.mlp.up_proj"\)/,
    );
    expect(() =>
      checkRecipeLayers(recipe('overrides: [{ match: "down_prj", sparsity: 0.7 }]\n'), names),
    ).toThrow(/recipe.overrides\[0\].match: "down_prj" matches no layer/);
    expect(() =>
      checkRecipeLayers(
        recipe('layers: { exclude: ["lm_head"] }\noverrides: [{ match: "down", skip: true }]\n'),
        names,
      ),
    ).not.toThrow();
  });

  it('rejects bad recipes with the path of the problem', () => {
    const bad: Array<[string, RegExp]> = [
      ['{"method": "obs", "sparsity": 0.5}', /recipe.method/],
      ['{"method": "wanda"}', /exactly one of sparsity and pattern/],
      ['{"method": "wanda", "sparsity": 1.5}', /recipe.sparsity/],
      ['{"method": "wanda", "pattern": "4:2"}', /recipe.pattern/],
      [
        '{"method": "wanda", "sparsity": 0.5, "overrides": [{"match": "(", "skip": true}]}',
        /overrides\[0\].match/,
      ],
      ['{"method": "wanda", "sparsity": 0.5, "calibration": {"samples": 0}}', /calibration.samples/],
      ['{"method": "wanda", "sparsity": 0.5, "bogus": 1}', /recipe.bogus/],
      ['{"method": "magnitude", "sparsity": 0.5, "magnitude": {"scope": "col"}}', /recipe.magnitude.scope/],
      ['{"method": "wanda", "pattern": "2:4", "owl": true}', /recipe.owl: .*N:M/],
      ['{"method": "magnitude", "sparsity": 0.5, "owl": true}', /recipe.owl: does not apply to magnitude/],
      ['{"method": "wanda", "sparsity": 0.5, "owl": {"lambda": 0.7}}', /recipe.owl.lambda/],
      ['method: wanda\nsparsity: 0.5\nowl: { m: .inf }\n', /recipe.owl.m: must be a finite/],
      ['method: sparsegpt\nsparsity: 0.5\nsparsegpt: { percDamp: .inf }\n', /recipe.sparsegpt.percDamp/],
      [
        '{"method": "wanda", "sparsity": 0.5, "calibration": {"seed": -5}}',
        /calibration.seed: must be a non-negative/,
      ],
      [
        '{"method": "wanda", "sparsity": 0.5, "calibration": {"seqLen": 1}}',
        /calibration.seqLen: must be an integer >= 2/,
      ],
      ['{"method": "slicegpt", "pattern": "2:4"}', /recipe.pattern: does not apply to slicegpt/],
      ['{"method": "slicegpt"}', /slicegpt needs sparsity/],
      ['{"method": "structured", "sparsity": 0.5}', /recipe.sparsity: does not apply to structured/],
      ['{"method": "structured", "structured": {"heads": 0}}', /mlpChannels and\/or heads above 0/],
      ['{"method": "structured", "structured": {"heads": 1.2}}', /recipe.structured.heads/],
      [
        '{"method": "wanda", "sparsity": 0.5, "structured": {"heads": 0.5}}',
        /recipe.structured: does not apply to wanda/,
      ],
      [
        '{"method": "random", "sparsity": 0.5, "random": {"distribution": "gauss"}}',
        /recipe.random.distribution/,
      ],
      ['{"method": "random", "pattern": "2:4"}', /recipe.pattern: does not apply to random/],
      [
        '{"method": "global-magnitude", "sparsity": 0.5, "overrides": []}',
        /recipe.overrides: does not apply/,
      ],
      ['{"method": "global-magnitude", "sparsity": 0.5, "global": {"minKeep": 2}}', /recipe.global.minKeep/],
      ['method: [unclosed', /not valid JSON or YAML/],
    ];
    for (const [text, message] of bad) {
      expect(() => parseRecipe(text)).toThrow(InvalidFormatError);
      expect(() => parseRecipe(text)).toThrow(message);
    }
  });
});

describe('recipe text', () => {
  it('refuses duplicate keys in JSON, as YAML does (JSON.parse would keep the last)', () => {
    expect(() => parseRecipe('{"method":"wanda","sparsity":0.5,"sparsity":0.9}')).toThrow(/appears twice/);
    expect(() => parseRecipe('method: wanda\nsparsity: 0.5\nsparsity: 0.9\n')).toThrow(InvalidFormatError);
    expect(parseRecipe('{"method":"wanda","sparsity":0.5}').sparsity).toBe(0.5);
  });
});

describe('recipe size bounds', () => {
  it('refuses huge layer patterns and huge recipe texts with typed errors', () => {
    const long = 'a'.repeat(2000);
    expect(() =>
      parseRecipe(JSON.stringify({ method: 'wanda', sparsity: 0.5, layers: { include: [long] } })),
    ).toThrow(/at most 1000/);
    expect(() => parseRecipe(`method: wanda\nsparsity: 0.5\n# ${'x'.repeat(2 ** 21)}\n`)).toThrow(
      InvalidFormatError,
    );
  });
});

describe('calibration bounds', () => {
  it('refuses more calibration windows than the bound', () => {
    expect(() =>
      parseRecipe('{"method":"wanda","sparsity":0.5,"calibration":{"samples":1000000000}}'),
    ).toThrow(/at most 65536/);
    expect(
      parseRecipe('{"method":"wanda","sparsity":0.5,"calibration":{"samples":128}}').calibration?.samples,
    ).toBe(128);
  });
});
