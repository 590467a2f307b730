// One decoder block as steps: its attention half and its MLP half, with every hook site on the way.
import type { ModelConfig } from '../config.js';
import { attendSteps } from './attention.js';
import type { KvCache } from './kv-cache.js';
import type { Linear } from './linear.js';
import { type ExpertRows, type MlpHooks, mlpSteps } from './mlp.js';
import { addInPlace, layerNorm, rmsNorm } from './ops.js';
import type { BlockParams, NormParams } from './params.js';
import { hookAt, type Pass } from './pass.js';
import type { Steps } from './steps.js';

export function norm(config: ModelConfig, x: Float32Array, n: NormParams): Float32Array {
  const width = n.weight.length;
  return config.norm === 'rmsnorm'
    ? rmsNorm(x, width, n.weight, config.normEps, undefined, config.normWidth ?? width)
    : layerNorm(x, width, n.weight, n.bias, config.normEps);
}

/** Run `layers` (which read one tensor) on `x`, after the `linear.input` hooks. */
function* linears(
  pass: Pass,
  block: number,
  x: Float32Array,
  layers: readonly Linear[],
): Steps<Float32Array[]> {
  const input = pass.hooked ? hookAt(pass, 'linear.input', block, x, { layers }) : x;
  const tokens = pass.batch * pass.seq;
  const out: Float32Array[] = [];
  for (const l of layers) out.push(yield l.stepOf(input, tokens));
  return out;
}

/** Block `index` up to its attention residual (plus the post-norm, in post-norm models). */
export function* attentionHalf(
  config: ModelConfig,
  b: BlockParams,
  index: number,
  hidden: Float32Array,
  cache: KvCache,
  cacheLayer: number,
  rope: { cos: Float32Array; sin: Float32Array } | undefined,
  pass: Pass,
): Steps<Float32Array> {
  const tokens = pass.batch * pass.seq;
  const pre = config.preNorm;
  const a = hookAt(pass, 'attention.input', index, pre ? norm(config, hidden, b.attentionNorm) : hidden);
  const [q, k, v] = (yield* linears(pass, index, a, [b.q, b.k, b.v])) as [
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  const attended = yield* attendSteps(
    config,
    cacheLayer,
    hookAt(pass, 'attention.q', index, q),
    hookAt(pass, 'attention.k', index, k),
    hookAt(pass, 'attention.v', index, v),
    cache,
    rope,
    pass,
    index,
  );
  const [o] = yield* linears(pass, index, hookAt(pass, 'attention.output', index, attended), [b.o]);
  const residual =
    b.attentionShortcut === undefined ? hidden : yield* b.attentionShortcut.step(hidden, tokens);
  const h = addInPlace(residual, o!);
  const stream = pre ? h : norm(config, h, b.attentionNorm);
  return pass.hooked
    ? hookAt(pass, 'stream', index, stream, { point: { at: 'attention', block: index } })
    : stream;
}

/** The rest of block `index`: the MLP slot and its residual. */
export function* mlpHalf(
  config: ModelConfig,
  b: BlockParams,
  index: number,
  h: Float32Array,
  pass: Pass,
): Steps<Float32Array> {
  const tokens = pass.batch * pass.seq;
  const pre = config.preNorm;
  const m = hookAt(pass, 'mlp.input', index, pre ? norm(config, h, b.mlpNorm) : h);
  const down = yield* mlpSteps(config, b.mlp, m, tokens, index, mlpHooks(pass, index, tokens));
  const residual = b.mlpShortcut === undefined ? h : yield* b.mlpShortcut.step(h, tokens);
  const out = addInPlace(residual, down);
  const stream = pre ? out : norm(config, out, b.mlpNorm);
  return pass.hooked ? hookAt(pass, 'stream', index, stream, { point: { at: 'mlp', block: index } }) : stream;
}

/** The MLP's sites of a call without hooks: nothing to build per block. */
const NO_MLP_HOOKS: MlpHooks = { linearInput: (x) => x, gate: (x) => x, up: (x) => x, hidden: (x) => x };

/**
 * The hook sites inside the MLP slot. Inside a mixture of experts each expert sees only the tokens
 * routed to it: its `linear.input` and `mlp.hidden` tensors are [1, routed tokens, width].
 */
function mlpHooks(pass: Pass, block: number, tokens: number): MlpHooks {
  if (!pass.hooked) return NO_MLP_HOOKS;
  const view = (n: number, expert: ExpertRows | undefined): Pass =>
    expert === undefined && n === tokens ? pass : { ...pass, batch: 1, seq: n };
  const extra = (expert: ExpertRows | undefined) => (expert === undefined ? {} : { expert });
  return {
    linearInput: (x, layers, n, expert) =>
      hookAt(view(n, expert), 'linear.input', block, x, { layers, ...extra(expert) }),
    gate: (x, n, expert) => hookAt(view(n, expert), 'mlp.gate', block, x, extra(expert)),
    up: (x, n, expert) => hookAt(view(n, expert), 'mlp.up', block, x, extra(expert)),
    hidden: (x, n, expert) => hookAt(view(n, expert), 'mlp.hidden', block, x, extra(expert)),
  };
}
