// Named intercept sites inside a transformer: a hook observes the tensor that passes a site, or
// returns a replacement of the same shape. Activation sparsity, SAEs, calibration and attention
// statistics are all hooks; a model with none registered pays one array lookup per site.
import { InvalidArgumentError, ShapeMismatchError } from './errors.js';
import { type ProgressOptions, reportProgress } from './progress.js';
import { shapesEqual } from './shape.js';
import type { CalibrationHook, CausalLM, LinearLayer, StreamPoint } from './spec.js';
import { Tensor } from './tensor.js';

/**
 * The sites, in the order a pre-norm block passes them. Token-wise sites carry [batch, seq, width]:
 * - `attention.input`: the attention norm's output (what q, k and v read);
 * - `attention.q` / `attention.k` / `attention.v`: after projection (q and k before rotary positions);
 * - `attention.q.rotated` / `attention.k.rotated`: after rotary positions (rotary models only);
 * - `attention.output`: the heads' output before the output projection;
 * - `mlp.input`: the MLP norm's output; `mlp.gate` (gated MLPs only): act(gate) before the product
 *   with up (CATS' and CHESS' site); `mlp.up`: the up projection's output (gated: before the product
 *   with act(gate); dense: before the activation); `mlp.hidden`: after the activation (gated:
 *   act(gate) * up), before the down projection;
 * - `linear.input`: the input of linear layers; `context.layers` lists the layers that read this one
 *   tensor (q, k and v share it; so do gate and up), so a replacement reaches all of them;
 * - `stream`: a residual stream point (`context.point`), after the embeddings or after a block's
 *   attention or MLP residual.
 * `attention.probs` carries [groupHeads, seq, keyLength] per sequence and key/value head
 * (`context.sequence`, `context.kvHead`; the query heads sharing that head): the softmax weights of
 * each query over the cached entries it may read (zero elsewhere). A replacement is used as the
 * weights of that call.
 */
export const HOOK_SITES = [
  'stream',
  'attention.input',
  'attention.q',
  'attention.k',
  'attention.v',
  'attention.q.rotated',
  'attention.k.rotated',
  'attention.probs',
  'attention.output',
  'mlp.input',
  'mlp.gate',
  'mlp.up',
  'mlp.hidden',
  'linear.input',
] as const;
export type HookSite = (typeof HOOK_SITES)[number];

export interface HookContext {
  readonly site: HookSite;
  /** The block (-1 for the embeddings stream point). */
  readonly block: number;
  /** Sequences and new tokens per sequence of this call. */
  readonly batch: number;
  readonly seq: number;
  /** Absolute position of the call's first token (the cached length before it). */
  readonly position: number;
  /** `linear.input`: the layers that read this tensor. */
  readonly layers?: readonly LinearLayer[];
  /** `stream`: which residual point. */
  readonly point?: StreamPoint;
  /**
   * Inside a mixture of experts (`linear.input` and `mlp.hidden` of an expert): the expert, and for
   * each row of the tensor (shaped [1, rows, width]) the index of the token it belongs to.
   */
  readonly expert?: { readonly id: number; readonly tokens: Int32Array };
  /** `attention.probs`: which sequence of the batch, and which key/value head. */
  readonly sequence?: number;
  readonly kvHead?: number;
}

/**
 * Observe `tensor`, or return a replacement of the same shape (a Tensor or its data). The tensor's
 * data may be reused by the model after the hook returns: copy what you keep.
 */
export type Hook = (
  tensor: Tensor<'f32'>,
  context: HookContext,
  // biome-ignore lint/suspicious/noConfusingVoidType: an observing hook returns nothing
) => Tensor<'f32'> | Float32Array | undefined | void;

export interface HookOptions {
  /** Only these blocks (default all). */
  blocks?: readonly number[];
}

/** Returned by `Hooks.add`; `remove()` unregisters (idempotent). */
export interface HookHandle {
  remove(): void;
}

interface Entry {
  hook: Hook;
  blocks: ReadonlySet<number> | undefined;
}

/** A set of hooks by site. Models own one (`model.hooks`); a call can add another. */
export class Hooks {
  private readonly entries = new Map<HookSite, Entry[]>();
  private count = 0;

  /** Register `hook` at one or more sites. */
  add(site: HookSite | readonly HookSite[], hook: Hook, options: HookOptions = {}): HookHandle {
    const sites = typeof site === 'string' ? [site] : site;
    const entry: Entry = {
      hook,
      blocks: options.blocks === undefined ? undefined : new Set(options.blocks),
    };
    for (const s of sites) {
      if (!(HOOK_SITES as readonly string[]).includes(s))
        throw new InvalidArgumentError('hook site', s, `must be one of ${HOOK_SITES.join(', ')}`);
      let list = this.entries.get(s);
      if (list === undefined) {
        list = [];
        this.entries.set(s, list);
      }
      list.push(entry);
      this.count++;
    }
    let removed = false;
    return {
      remove: () => {
        if (removed) return;
        removed = true;
        for (const s of sites) {
          const list = this.entries.get(s);
          const i = list?.indexOf(entry) ?? -1;
          if (list !== undefined && i >= 0) {
            list.splice(i, 1);
            this.count--;
            if (list.length === 0) this.entries.delete(s);
          }
        }
      },
    };
  }

  /** Whether any hook is registered (at `site`, or at all). */
  has(site?: HookSite): boolean {
    return site === undefined ? this.count > 0 : this.entries.has(site);
  }

  /**
   * Pass `data` (shaped `shape`) through the hooks at `context.site` in registration order; each
   * sees the previous one's replacement. Returns the final data (`data` itself when none replaced).
   */
  run(data: Float32Array, shape: readonly number[], context: HookContext): Float32Array {
    const list = this.entries.get(context.site);
    if (list === undefined) return data;
    let current = data;
    for (const { hook, blocks } of [...list]) {
      if (blocks !== undefined && !blocks.has(context.block)) continue;
      const result = hook(new Tensor('f32', shape, current), context);
      if (result === undefined) continue;
      const replacement = result instanceof Tensor ? result.data : result;
      const sameShape = !(result instanceof Tensor) || shapesEqual(result.shape, shape);
      if (!(replacement instanceof Float32Array) || replacement.length !== current.length || !sameShape) {
        throw new ShapeMismatchError(
          [...shape],
          result instanceof Tensor ? result.shape : [(replacement as { length?: number }).length ?? -1],
          `replacement returned by a '${context.site}' hook (block ${context.block})`,
        );
      }
      // A copy: the model computes in place on what it is given, and the hook may keep its array.
      current = replacement.slice();
    }
    return current;
  }
}

/**
 * Run `data` through both sets of hooks (the model's, then the call's), skipping empty ones.
 * Models call this at every site; with no hook anywhere it is one check per set.
 */
export function runHooks(
  sets: readonly (Hooks | undefined)[],
  data: Float32Array,
  shape: readonly number[],
  context: () => HookContext,
  site: HookSite,
): Float32Array {
  let current = data;
  let ctx: HookContext | undefined;
  for (const set of sets) {
    if (set === undefined || !set.has(site)) continue;
    ctx ??= context();
    current = set.run(current, shape, ctx);
  }
  return current;
}

/**
 * Hooks that hand every linear layer's input to `hook` as [tokens, inFeatures] (layers reading one
 * tensor each receive it), for the layers `filter` accepts: the calibration pass of the pruners.
 */
export function calibrationHooks(hook: CalibrationHook, filter?: (name: string) => boolean): Hooks {
  const hooks = new Hooks();
  hooks.add('linear.input', (tensor, context) => {
    const width = tensor.shape.at(-1)!;
    const inputs = new Tensor('f32', [tensor.size / width, width], tensor.data);
    for (const layer of context.layers ?? [])
      if (filter === undefined || filter(layer.name)) hook(layer, inputs);
  });
  return hooks;
}

/** A model whose forward passes run its hooks (models' `TransformerLM` is one). */
export interface HookableLM extends CausalLM {
  readonly hooks: Hooks;
  readonly numBlocks: number;
}

/**
 * Run `batches` through `model` with hooks registered (by `register`, removed afterwards whatever
 * happens), reporting progress as `stage`. Returns the tokens run.
 */
export async function runWithHooks(
  model: HookableLM,
  batches: readonly Tensor<'i32'>[],
  register: () => HookHandle,
  stage: string,
  options: ProgressOptions,
): Promise<number> {
  const handle = register();
  let tokens = 0;
  try {
    for (const [i, batch] of batches.entries()) {
      await model.logits(batch);
      tokens += batch.size;
      reportProgress(options, { stage, current: i + 1, total: batches.length, unit: 'batch' });
    }
  } finally {
    handle.remove();
  }
  return tokens;
}
