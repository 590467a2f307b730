// The call a forward pass runs in, and the one way the model code passes a tensor through hooks.
import {
  type HookContext,
  type HookSite,
  type Hooks,
  type KvPolicy,
  type LinearLayer,
  runHooks,
  type StreamPoint,
} from '@sparsekit/core';
import type { AttentionMask } from '@sparsekit/sparse-formats';
import type { ExpertRows } from './mlp.js';

/** The call a block runs in: hook sets (the model's, the call's), shape and first position. */
export interface Pass {
  hooks: readonly (Hooks | undefined)[];
  /** Whether any of `hooks` holds a hook (checked once per call; false skips every site). */
  hooked: boolean;
  /** Decode-time selection and eviction of cached entries. */
  kvPolicy?: KvPolicy;
  batch: number;
  seq: number;
  /** Absolute position of the call's first token. */
  position: number;
  /** Which keys each query reads (default causal). */
  mask?: AttentionMask;
}

/** Context fields some sites add (see `HookContext`). */
export interface SiteExtra {
  layers?: readonly LinearLayer[];
  point?: StreamPoint;
  expert?: ExpertRows;
  sequence?: number;
  kvHead?: number;
}

/**
 * Pass `data` through the hooks at `site`: token-wise sites are [batch, seq, width]; `shape` gives
 * another (attention probabilities).
 */
export function hookAt(
  pass: Pass,
  site: HookSite,
  block: number,
  data: Float32Array,
  extra: SiteExtra = {},
  shape?: readonly number[],
): Float32Array {
  if (!pass.hooked) return data;
  const tokens = pass.batch * pass.seq;
  return runHooks(
    pass.hooks,
    data,
    shape ?? [pass.batch, pass.seq, data.length / Math.max(tokens, 1)],
    (): HookContext => ({ site, block, batch: pass.batch, seq: pass.seq, position: pass.position, ...extra }),
    site,
  );
}
