// Pruning recipes: JSON or YAML, validated field by field; a run records the recipe it used.
import {
  InvalidArgumentError,
  InvalidFormatError,
  MAX_CALIBRATION_SAMPLES,
  strictJsonIssue,
} from '@sparsekit/core';
import { parse as parseYaml } from 'yaml';
import { parseBlockShape } from './blocks.js';
import { METHOD_NAMES, METHOD_TABLE, type RecipeMethod } from './method-table.js';
import type { PruneMethod, PruneModelOptions } from './prune-model.js';

export type { RecipeMethod } from './method-table.js';

export interface Recipe {
  method: RecipeMethod;
  /** Unstructured target (SliceGPT: the fraction of the hidden width), or an N:M pattern such as "2:4". */
  sparsity?: number;
  pattern?: string;
  /** With `sparsity` (magnitude, Wanda, SparseGPT): prune whole blocks, "RxC" ("1x8", "8x1"). */
  blocks?: string;
  /** Regular expressions over layer names (e.g. "mlp\\."); a layer must match one include and no exclude. */
  layers?: { include?: string[]; exclude?: string[] };
  /** First matching override wins: another sparsity or pattern for those layers, or skip them. */
  overrides?: Array<{ match: string; sparsity?: number; pattern?: string; skip?: boolean }>;
  calibration?: { samples?: number; seqLen?: number; seed?: number };
  sparsegpt?: { blockSize?: number; percDamp?: number };
  /** Magnitude's comparison group: 'layer' (default) or 'row'. */
  magnitude?: { scope?: 'layer' | 'row' };
  /** OWL layer-wise sparsity (Wanda or SparseGPT, unstructured): true, or the paper's M and lambda. */
  owl?: boolean | { m?: number; lambda?: number };
  /** Structured pruning: fractions of every block's MLP channels and attention heads to delete. */
  structured?: { mlpChannels?: number; heads?: number };
  /** Global magnitude: the smallest fraction of its weights any layer keeps (default 0.01). */
  global?: { minKeep?: number };
  /** Random pruning: layer densities (`uniform` or `erk`) and the seed of the draw. */
  random?: { distribution?: 'uniform' | 'erk'; seed?: number };
}

/** `pruneModel`'s methods (the ones `recipeOptions` translates). */
const METHODS: readonly string[] = ['magnitude', 'wanda', 'sparsegpt'] satisfies PruneMethod[];
/** The fields each method takes besides `method` and `calibration` (from the method table). */
const FIELDS: Record<string, string[]> = Object.fromEntries(
  METHOD_TABLE.map((m) => [m.name, m.fields.map((f) => f.name)]),
);
const TARGETS: Record<string, string> = Object.fromEntries(METHOD_TABLE.map((m) => [m.name, m.target]));

function fail(path: string, reason: string): never {
  throw new InvalidFormatError('recipe', `${path}: ${reason}`);
}

function checkKeys(value: Record<string, unknown>, allowed: string[], path: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail(`${path}.${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

function object(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'must be an object');
  return value as Record<string, unknown>;
}

function sparsityOf(value: unknown, path: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value < 1)) fail(path, 'must be a number in [0, 1)');
  return value;
}

function patternOf(value: unknown, path: string): { n: number; m: number } {
  const match = typeof value === 'string' ? /^(\d+):(\d+)$/.exec(value) : null;
  if (match === null) fail(path, 'must be "N:M", e.g. "2:4"');
  const n = Number(match[1]);
  const m = Number(match[2]);
  if (!(n >= 1 && n < m)) fail(path, 'needs 1 <= N < M');
  return { n, m };
}

export { MAX_CALIBRATION_SAMPLES } from '@sparsekit/core';

/** Longest recipe text (a recipe is a few lines; a huge one would take seconds to parse). */
const MAX_RECIPE_CHARS = 1 << 20;

/** Longest layer pattern a recipe may hold (a huge one costs seconds and memory to compile). */
const MAX_PATTERN = 1000;

function regexes(value: unknown, path: string): RegExp[] {
  if (!Array.isArray(value)) fail(path, 'must be a list of regular expressions');
  const out: RegExp[] = [];
  for (const [i, v] of value.entries()) {
    if (typeof v !== 'string') fail(`${path}[${i}]`, 'must be a string');
    if (v.length > MAX_PATTERN)
      fail(`${path}[${i}]`, `is ${v.length} characters long; a layer pattern has at most ${MAX_PATTERN}`);
    try {
      out.push(new RegExp(v));
    } catch (error) {
      fail(`${path}[${i}]`, `is not a regular expression (${String(error)})`);
    }
  }
  return out;
}

function positiveInteger(value: unknown, path: string): number {
  if (!Number.isInteger(value) || (value as number) < 1) fail(path, 'must be a positive integer');
  return value as number;
}

/** Validate a parsed recipe (an unknown JSON value) and return it typed. */
export function validateRecipe(value: unknown): Recipe {
  const r = object(value, 'recipe');
  const fields = Object.values(FIELDS).flat();
  checkKeys(r, ['method', 'calibration', ...new Set(fields)], 'recipe');
  if (!(METHOD_NAMES as readonly unknown[]).includes(r.method))
    fail('recipe.method', `must be one of ${METHOD_NAMES.join(', ')}`);
  const method = r.method as RecipeMethod;
  for (const f of fields) {
    if (r[f] !== undefined && !FIELDS[method]!.includes(f))
      fail(`recipe.${f}`, `does not apply to ${method}`);
  }
  if (TARGETS[method] === 'none') {
    if (r.structured === undefined) fail('recipe', 'structured needs structured: { mlpChannels, heads }');
    const st = object(r.structured, 'recipe.structured');
    checkKeys(st, ['mlpChannels', 'heads'], 'recipe.structured');
    for (const f of ['mlpChannels', 'heads']) {
      if (st[f] !== undefined) sparsityOf(st[f], `recipe.structured.${f}`);
    }
    if (!((st.mlpChannels as number) > 0 || (st.heads as number) > 0))
      fail('recipe.structured', 'give mlpChannels and/or heads above 0');
  } else if (TARGETS[method] === 'sparsity-or-pattern') {
    if ((r.sparsity === undefined) === (r.pattern === undefined))
      fail('recipe', 'give exactly one of sparsity and pattern');
  } else if (r.sparsity === undefined) {
    fail(
      'recipe',
      `${method} needs sparsity${method === 'slicegpt' ? ' (the fraction of the hidden width)' : ''}`,
    );
  }
  if (r.global !== undefined) {
    const g = object(r.global, 'recipe.global');
    checkKeys(g, ['minKeep'], 'recipe.global');
    if (g.minKeep !== undefined && !(typeof g.minKeep === 'number' && g.minKeep >= 0 && g.minKeep <= 1))
      fail('recipe.global.minKeep', 'must be a fraction in [0, 1]');
  }
  if (r.random !== undefined) {
    const o = object(r.random, 'recipe.random');
    checkKeys(o, ['distribution', 'seed'], 'recipe.random');
    if (o.distribution !== undefined && o.distribution !== 'uniform' && o.distribution !== 'erk')
      fail('recipe.random.distribution', 'must be "uniform" or "erk"');
    if (o.seed !== undefined && !(Number.isInteger(o.seed) && (o.seed as number) >= 0))
      fail('recipe.random.seed', 'must be a non-negative integer');
  }
  if (r.sparsity !== undefined) sparsityOf(r.sparsity, 'recipe.sparsity');
  if (r.pattern !== undefined) patternOf(r.pattern, 'recipe.pattern');
  if (r.blocks !== undefined) {
    if (typeof r.blocks !== 'string') fail('recipe.blocks', 'must be a string such as "1x8"');
    try {
      parseBlockShape(r.blocks, 'recipe.blocks');
    } catch (error) {
      fail('recipe.blocks', (error as Error).message);
    }
    if (r.pattern !== undefined)
      fail('recipe.blocks', 'are for unstructured sparsity: give sparsity, not pattern');
  }
  if (r.layers !== undefined) {
    const layers = object(r.layers, 'recipe.layers');
    checkKeys(layers, ['include', 'exclude'], 'recipe.layers');
    if (layers.include !== undefined) regexes(layers.include, 'recipe.layers.include');
    if (layers.exclude !== undefined) regexes(layers.exclude, 'recipe.layers.exclude');
  }
  if (r.overrides !== undefined) {
    if (!Array.isArray(r.overrides)) fail('recipe.overrides', 'must be a list');
    r.overrides.forEach((o, i) => {
      const path = `recipe.overrides[${i}]`;
      const ov = object(o, path);
      checkKeys(ov, ['match', 'sparsity', 'pattern', 'skip'], path);
      regexes([ov.match], `${path}.match`);
      const given = [ov.sparsity, ov.pattern, ov.skip].filter((v) => v !== undefined).length;
      if (given !== 1) fail(path, 'give exactly one of sparsity, pattern and skip');
      if (ov.sparsity !== undefined) sparsityOf(ov.sparsity, `${path}.sparsity`);
      if (ov.pattern !== undefined) patternOf(ov.pattern, `${path}.pattern`);
      if (ov.skip !== undefined && ov.skip !== true) fail(`${path}.skip`, 'must be true');
    });
  }
  if (r.calibration !== undefined) {
    const c = object(r.calibration, 'recipe.calibration');
    checkKeys(c, ['samples', 'seqLen', 'seed'], 'recipe.calibration');
    if (c.samples !== undefined) positiveInteger(c.samples, 'recipe.calibration.samples');
    if (typeof c.samples === 'number' && c.samples > MAX_CALIBRATION_SAMPLES)
      fail('recipe.calibration.samples', `must be at most ${MAX_CALIBRATION_SAMPLES}`);
    if (c.seqLen !== undefined && !(Number.isInteger(c.seqLen) && (c.seqLen as number) >= 2))
      fail('recipe.calibration.seqLen', 'must be an integer >= 2 (a window predicts its next tokens)');
    if (c.seed !== undefined && !(Number.isInteger(c.seed) && (c.seed as number) >= 0))
      fail('recipe.calibration.seed', 'must be a non-negative integer');
  }
  if (r.sparsegpt !== undefined) {
    const s = object(r.sparsegpt, 'recipe.sparsegpt');
    checkKeys(s, ['blockSize', 'percDamp'], 'recipe.sparsegpt');
    if (s.blockSize !== undefined) positiveInteger(s.blockSize, 'recipe.sparsegpt.blockSize');
    if (s.percDamp !== undefined && !(Number.isFinite(s.percDamp) && (s.percDamp as number) >= 0)) {
      fail('recipe.sparsegpt.percDamp', 'must be a finite non-negative number (the reference uses 0.01)');
    }
  }
  if (r.magnitude !== undefined) {
    const m = object(r.magnitude, 'recipe.magnitude');
    checkKeys(m, ['scope'], 'recipe.magnitude');
    if (m.scope !== undefined && m.scope !== 'layer' && m.scope !== 'row')
      fail('recipe.magnitude.scope', 'must be "layer" or "row"');
  }
  if (r.owl !== undefined && r.owl !== false) {
    if (r.owl !== true) {
      const o = object(r.owl, 'recipe.owl');
      checkKeys(o, ['m', 'lambda'], 'recipe.owl');
      if (o.m !== undefined && !(Number.isFinite(o.m) && (o.m as number) > 0))
        fail('recipe.owl.m', 'must be a finite positive number');
      if (o.lambda !== undefined && !(typeof o.lambda === 'number' && o.lambda >= 0 && o.lambda < 0.5))
        fail('recipe.owl.lambda', 'must be a number in [0, 0.5)');
    }
    if (r.method === 'magnitude')
      fail('recipe.owl', 'applies to wanda and sparsegpt (it allocates by Wanda scores)');
    if (r.pattern !== undefined)
      fail('recipe.owl', 'allocates unstructured sparsity; it does not apply to N:M');
  }
  return r as unknown as Recipe;
}

/** Parse a recipe from JSON or YAML text. */
export function parseRecipe(text: string): Recipe {
  if (text.length > MAX_RECIPE_CHARS)
    throw new InvalidFormatError(
      'recipe',
      `is ${text.length} characters long; a recipe has at most ${MAX_RECIPE_CHARS}`,
    );
  let value: unknown;
  const body = text.replace(/^\uFEFF/, '');
  try {
    value = body.trimStart().startsWith('{') ? JSON.parse(body) : parseYaml(body);
  } catch (error) {
    throw new InvalidFormatError('recipe', `not valid JSON or YAML (${String(error)})`);
  }
  // JSON.parse keeps the last of duplicate keys ({"sparsity":0.5,"sparsity":0.9} would prune 90%);
  // YAML refuses them, and so does this.
  const duplicate = body.trimStart().startsWith('{') ? strictJsonIssue(body) : undefined;
  if (duplicate !== undefined) throw new InvalidFormatError('recipe', duplicate);
  return validateRecipe(value);
}

/**
 * Check a recipe's layer patterns against a model's layer names: every `layers.include` pattern and
 * every override's `match` must name at least one layer (a typo would otherwise change nothing,
 * silently). `exclude` patterns may match nothing (a recipe can serve several models).
 */
export function checkRecipeLayers(recipe: Recipe, names: readonly string[]): void {
  const example = names.length > 0 ? ` (its layers are named like "${names[0]}")` : '';
  recipe.layers?.include?.forEach((p, i) => {
    const r = new RegExp(p);
    if (!names.some((n) => r.test(n)))
      fail(`recipe.layers.include[${i}]`, `"${p}" matches no layer of the model${example}`);
  });
  recipe.overrides?.forEach((o, i) => {
    const r = new RegExp(o.match);
    if (!names.some((n) => r.test(n)))
      fail(`recipe.overrides[${i}].match`, `"${o.match}" matches no layer of the model${example}`);
  });
}

/** Whether a layer is selected by the recipe's `layers` (one include matches, no exclude does). */
export function recipeLayerFilter(recipe: Recipe): (name: string) => boolean {
  const include = recipe.layers?.include?.map((p) => new RegExp(p));
  const exclude = recipe.layers?.exclude?.map((p) => new RegExp(p)) ?? [];
  return (name) =>
    (include === undefined || include.some((r) => r.test(name))) && !exclude.some((r) => r.test(name));
}

/**
 * The `pruneModel` options a recipe stands for (magnitude, Wanda, SparseGPT). `runRecipe` runs any
 * recipe; this is the translation it uses for those three.
 */
export function recipeOptions(recipe: Recipe): Omit<PruneModelOptions, 'onProgress' | 'signal'> {
  const block = recipe.blocks === undefined ? undefined : parseBlockShape(recipe.blocks, 'recipe.blocks');
  const base =
    recipe.pattern === undefined
      ? { sparsity: recipe.sparsity!, ...(block === undefined ? {} : { blocks: block }) }
      : patternOf(recipe.pattern, 'recipe.pattern');
  const overrides = (recipe.overrides ?? []).map((o) => ({ ...o, regex: new RegExp(o.match) }));
  const selected = recipeLayerFilter(recipe);
  const filter = (name: string) => selected(name) && overrides.find((o) => o.regex.test(name))?.skip !== true;
  const layerPattern = (name: string) => {
    const o = overrides.find((ov) => ov.regex.test(name));
    if (o === undefined || o.skip === true) return undefined;
    // An override's sparsity keeps the recipe's blocks.
    return o.pattern !== undefined
      ? patternOf(o.pattern, 'override')
      : { sparsity: o.sparsity!, ...(block === undefined ? {} : { block }) };
  };
  if (!METHODS.includes(recipe.method))
    throw new InvalidArgumentError(
      'method',
      recipe.method,
      `recipeOptions is for ${METHODS.join(', ')}; run a ${recipe.method} recipe with runRecipe`,
    );
  return {
    method: recipe.method as PruneMethod,
    recipe,
    ...base,
    filter,
    layerPattern,
    ...(recipe.sparsegpt?.blockSize === undefined ? {} : { blockSize: recipe.sparsegpt.blockSize }),
    ...(recipe.sparsegpt?.percDamp === undefined ? {} : { percDamp: recipe.sparsegpt.percDamp }),
    ...(recipe.magnitude?.scope === undefined ? {} : { magnitudeScope: recipe.magnitude.scope }),
    ...(recipe.owl === undefined || recipe.owl === false ? {} : { owl: recipe.owl }),
  };
}
