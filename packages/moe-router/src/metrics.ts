// What a routing did: tokens per expert, how even the load is, how much was dropped, and for ReLU
// routers the token- and chunk-level sparsity of the expert activations (BlockFFN's TLS / CLS).
import { InvalidArgumentError, type Routing } from '@sparsekit/core';
import type { RouteResult } from './route-result.js';

export interface LoadMetrics {
  tokens: number;
  /** Slots an expert runs (experts >= 0), each counted once. */
  kept: number;
  /** Slots chosen and then dropped for capacity. */
  dropped: number;
  /** dropped / (kept + dropped) (0 when nothing was chosen). */
  dropRate: number;
  /** Tokens with no expert at all (they ride the residual). */
  tokensWithoutExpert: number;
  /** [numExperts] kept slots per expert. */
  tokensPerExpert: Int32Array;
  /** Coefficient of variation of tokensPerExpert: population std / mean (0 when the mean is 0). */
  loadCv: number;
  /** max / mean of tokensPerExpert (1 is perfectly even; 0 when nothing is kept). */
  maxMeanLoad: number;
}

/** Load metrics of a routing (`dropped` is read from a RouteResult; a plain Routing counts 0). */
export function loadMetrics(routing: Routing | RouteResult, numExperts: number): LoadMetrics {
  const { k, experts } = routing;
  const tokens = experts.length / k;
  const tokensPerExpert = new Int32Array(numExperts);
  let kept = 0;
  let tokensWithoutExpert = 0;
  for (let t = 0; t < tokens; t++) {
    let any = false;
    for (let j = 0; j < k; j++) {
      const e = experts[t * k + j]!;
      if (e < 0) continue;
      if (e >= numExperts)
        throw new InvalidArgumentError('routed expert', e, `must be in [-1, ${numExperts})`);
      tokensPerExpert[e]!++;
      kept++;
      any = true;
    }
    if (!any) tokensWithoutExpert++;
  }
  const dropped = 'dropped' in routing ? routing.dropped : 0;
  const mean = kept / numExperts;
  let variance = 0;
  let max = 0;
  for (const c of tokensPerExpert) {
    variance += (c - mean) ** 2 / numExperts;
    max = Math.max(max, c);
  }
  return {
    tokens,
    kept,
    dropped,
    dropRate: kept + dropped === 0 ? 0 : dropped / (kept + dropped),
    tokensWithoutExpert,
    tokensPerExpert,
    loadCv: mean === 0 ? 0 : Math.sqrt(variance) / mean,
    maxMeanLoad: mean === 0 ? 0 : max / mean,
  };
}

export interface ExpertSparsity {
  /** Token-level sparsity: the share of (token, expert) pairs where the expert is inactive. */
  tls: number;
  /** Chunk-level sparsity: the share of (chunk, expert) pairs inactive on every token of the chunk. */
  cls: number;
  chunk: number;
}

/**
 * TLS and CLS (BlockFFN's token- and chunk-level sparsity) over consecutive, non-overlapping chunks of
 * `chunk` tokens (default 8; a last partial chunk counts as a chunk). Meant for routers that give a
 * token a variable number of experts (ReLU + RMSNorm, expert choice); for top-k it is 1 - k/E.
 */
export function expertSparsity(routing: Routing, numExperts: number, chunk = 8): ExpertSparsity {
  if (!Number.isInteger(chunk) || chunk < 1)
    throw new InvalidArgumentError('chunk', chunk, 'must be a positive integer');
  const { k, experts } = routing;
  const tokens = experts.length / k;
  if (tokens === 0) return { tls: 0, cls: 0, chunk };
  const active = new Uint8Array(tokens * numExperts);
  for (let t = 0; t < tokens; t++)
    for (let j = 0; j < k; j++) {
      const e = experts[t * k + j]!;
      if (e >= 0) active[t * numExperts + e] = 1;
    }
  let on = 0;
  for (const a of active) on += a;
  const chunks = Math.ceil(tokens / chunk);
  let chunkOn = 0;
  for (let c = 0; c < chunks; c++)
    for (let e = 0; e < numExperts; e++) {
      let any = 0;
      for (let t = c * chunk; t < Math.min(tokens, (c + 1) * chunk); t++) any |= active[t * numExperts + e]!;
      chunkOn += any;
    }
  return { tls: 1 - on / (tokens * numExperts), cls: 1 - chunkOn / (chunks * numExperts), chunk };
}
