// Physical structured pruning: delete MLP channels and attention heads, leaving narrower dense
// layers and a config that describes them (saved and loaded like any other model).
import { InvalidArgumentError, type RebuildRouter, type Router } from '@sparsekit/core';
import type { ModelConfig } from '../config.js';
import { UnsupportedModelError } from '../errors.js';
import type { Linear } from './linear.js';
import type { BlockParams } from './params.js';

/** The kept indices of [0, size) once `removed` go; checks range and repeats. */
function kept(removed: readonly number[], size: number, what: string): number[] {
  const gone = new Set<number>();
  for (const i of removed) {
    if (!Number.isInteger(i) || i < 0 || i >= size)
      throw new InvalidArgumentError(what, i, `must be an integer in [0, ${size})`);
    if (gone.has(i)) throw new InvalidArgumentError(what, i, 'is listed twice');
    gone.add(i);
  }
  return Array.from({ length: size }, (_, i) => i).filter((i) => !gone.has(i));
}

/** Keep output rows `rows` (in that order), with their biases. */
function keepRows(layer: Linear, rows: readonly number[]): void {
  const w = layer.getWeight().data;
  const n = layer.inFeatures;
  const values = new Float32Array(rows.length * n);
  rows.forEach((r, i) => {
    values.set(w.subarray(r * n, (r + 1) * n), i * n);
  });
  const bias = layer.bias === undefined ? undefined : Float32Array.from(rows, (r) => layer.bias![r]!);
  layer.reshape(values, rows.length, n, bias);
}

/** Keep input columns `cols` (in that order). */
function keepColumns(layer: Linear, cols: readonly number[]): void {
  const w = layer.getWeight().data;
  const n = layer.inFeatures;
  const values = new Float32Array(layer.outFeatures * cols.length);
  for (let r = 0; r < layer.outFeatures; r++)
    cols.forEach((c, i) => {
      values[r * cols.length + i] = w[r * n + c]!;
    });
  layer.reshape(values, layer.outFeatures, cols.length, layer.bias);
}

function sameCount(counts: readonly number[], what: string): number {
  const first = counts[0] ?? 0;
  const other = counts.findIndex((c) => c !== first);
  if (other >= 0) {
    throw new InvalidArgumentError(
      what,
      counts[other],
      `block ${other} would differ from block 0 (${first}); every block must keep the same shape`,
    );
  }
  return first;
}

function checkBlocks(list: readonly unknown[], blocks: number, what: string): void {
  if (list.length !== blocks)
    throw new InvalidArgumentError(what, list.length, `must list one entry per block (${blocks})`);
}

/** Delete MLP channels block by block; returns the config with the new intermediate size. */
export function removeMlpChannels(
  config: ModelConfig,
  blocks: readonly BlockParams[],
  channels: readonly (readonly number[])[],
): ModelConfig {
  checkBlocks(channels, blocks.length, 'MLP channels');
  const mlps = blocks.map((b) => {
    if (b.mlp.kind === 'moe')
      throw new UnsupportedModelError(
        'mixture-of-experts MLP',
        'removing MLP channels (prune experts instead)',
      );
    return b.mlp;
  });
  const keep = mlps.map((m, i) => kept(channels[i]!, m.up.outFeatures, `MLP channel of block ${i}`));
  const width = sameCount(
    keep.map((k) => k.length),
    'kept MLP channels',
  );
  if (width === 0) throw new InvalidArgumentError('MLP channels', 0, 'at least one channel must remain');
  mlps.forEach((m, i) => {
    keepRows(m.up, keep[i]!);
    if (m.kind === 'gated') keepRows(m.gate, keep[i]!);
    keepColumns(m.down, keep[i]!);
  });
  return { ...config, intermediateSize: width };
}

/** Delete query heads (and key/value heads whose whole group goes); returns the new config. */
export function removeHeads(
  config: ModelConfig,
  blocks: readonly BlockParams[],
  heads: readonly (readonly number[])[],
): ModelConfig {
  checkBlocks(heads, blocks.length, 'attention heads');
  const { numHeads, numKvHeads, headDim } = config;
  const group = numHeads / numKvHeads;
  const plans = heads.map((removed, i) => {
    const keepHeads = kept(removed, numHeads, `attention head of block ${i}`);
    const perGroup = new Map<number, number>();
    for (const h of keepHeads)
      perGroup.set(Math.floor(h / group), (perGroup.get(Math.floor(h / group)) ?? 0) + 1);
    const sizes = [...perGroup.values()];
    const size = sizes[0] ?? 0;
    if (sizes.some((s) => s !== size)) {
      throw new InvalidArgumentError(
        `attention heads of block ${i}`,
        [...removed],
        `would leave key/value groups of unequal sizes (${sizes.join(', ')}); remove the same number of query heads from every group, or whole groups`,
      );
    }
    return { keepHeads, keepKv: [...perGroup.keys()], size };
  });
  const kv = sameCount(
    plans.map((p) => p.keepKv.length),
    'kept key/value heads',
  );
  const size = sameCount(
    plans.map((p) => p.size),
    'query heads per key/value head',
  );
  if (kv === 0) throw new InvalidArgumentError('attention heads', 0, 'at least one head must remain');
  const dims = (list: readonly number[]) =>
    list.flatMap((h) => Array.from({ length: headDim }, (_, d) => h * headDim + d));
  blocks.forEach((b, i) => {
    const plan = plans[i]!;
    keepRows(b.q, dims(plan.keepHeads));
    keepColumns(b.o, dims(plan.keepHeads));
    keepRows(b.k, dims(plan.keepKv));
    keepRows(b.v, dims(plan.keepKv));
  });
  return { ...config, numHeads: kv * size, numKvHeads: kv };
}

/**
 * Delete routed experts block by block (their gate rows and layers) and rebuild each changed
 * router, by `rebuild` or else `router.withExperts`; returns the config with the new expert count.
 * Everything is checked and every router rebuilt before anything changes.
 */
export function removeExperts(
  config: ModelConfig,
  blocks: readonly BlockParams[],
  experts: readonly (readonly number[])[],
  rebuild?: RebuildRouter,
): ModelConfig {
  checkBlocks(experts, blocks.length, 'experts');
  const plans: { block: number; keep: number[]; router: Router }[] = [];
  blocks.forEach((b, i) => {
    const mlp = b.mlp;
    if (mlp.kind !== 'moe') {
      if (experts[i]!.length > 0)
        throw new InvalidArgumentError(
          `experts of block ${i}`,
          [...experts[i]!],
          'block has no mixture of experts',
        );
      return;
    }
    const keep = kept(experts[i]!, mlp.experts.length, `expert of block ${i}`);
    if (keep.length === 0) throw new InvalidArgumentError('experts', 0, 'at least one expert must remain');
    plans.push({ block: i, keep, router: mlp.router });
  });
  if (plans.every((p) => experts[p.block]!.length === 0)) return config;
  const count = sameCount(
    plans.map((p) => p.keep.length),
    'kept experts',
  );
  for (const plan of plans) {
    const old = plan.router;
    const next = rebuild !== undefined ? rebuild(old, plan.keep, plan.block) : old.withExperts?.(plan.keep);
    if (next === undefined)
      throw new UnsupportedModelError(
        `router of block ${plan.block} without withExperts`,
        'removing experts (pass a rebuild function)',
      );
    if (next.numExperts !== plan.keep.length)
      throw new InvalidArgumentError(
        `rebuilt router of block ${plan.block}`,
        next.numExperts,
        `must route ${plan.keep.length} experts`,
      );
    plan.router = next;
  }
  for (const { block, keep, router } of plans) {
    const mlp = blocks[block]!.mlp;
    if (mlp.kind !== 'moe') continue;
    keepRows(mlp.gate, keep);
    mlp.experts = keep.map((e) => mlp.experts[e]!);
    mlp.router = router;
    // The experts left are renumbered 0..kept-1; their layers' names follow (saving uses them).
    mlp.experts.forEach((expert, i) => {
      for (const layer of expert.kind === 'gated'
        ? [expert.gate, expert.up, expert.down]
        : [expert.up, expert.down])
        layer.rename(layer.name.replace(/\.experts\.\d+\./, `.experts.${i}.`));
    });
  }
  if (config.moe === undefined) return config;
  return {
    ...config,
    moe: { numExperts: count, expertsPerToken: Math.min(config.moe.expertsPerToken, count) },
  };
}
