// Rules applied as hooks: each (block, site) entry of a `Thresholds` rewrites the tensor at its site,
// and the zeros it leaves (or, for delta rules, the channels it does not update) are counted.
import { type HookContext, type HookHandle, type Hooks, InvalidArgumentError } from '@sparsekit/core';
import { type ActivationSite, siteKey } from './sites.js';
import type { ThresholdEntry, Thresholds } from './thresholds.js';

export interface ApplyOptions {
  /**
   * Which tokens of a call are sparsified: 'all' (default: every token, as decode sees them) or
   * 'last-half' (TEAL's prefill: only the last floor(seq / 2) tokens of a multi-token call).
   */
  tokens?: 'all' | 'last-half';
}

/** Zeros counted at each site while the rules are applied (delta rules: channels not updated). */
export interface AppliedSparsity {
  block: number;
  site: ActivationSite;
  zeros: number;
  values: number;
}

export interface AppliedThresholds extends HookHandle {
  /** The sparsity measured at each site since the rules were applied (zeros over values). */
  measured(): AppliedSparsity[];
  /** Zeros over values across every site. */
  overall(): number;
}

/**
 * A rule on one token's values, rewritten in place; returns how many it dropped (zeroed, or for a
 * delta rule not updated). A delta rule also reads and updates the last values it passed on.
 */
type RowRule =
  | { kind: 'row'; apply(row: Float32Array): number }
  | { kind: 'delta'; apply(row: Float32Array, previous: Float32Array): number };

/**
 * Apply the rules as hooks. Magnitude rules zero values with |x| <= t (TEAL's `x.abs().gt(t) * x`;
 * CHESS: channel c's t_c); threshold 0 drops only exact zeros, so it leaves the model's outputs
 * unchanged. Top-k keeps each token's k largest |x| (ties at the k-th magnitude all kept). Delta
 * rules keep per sequence the last value passed on for each channel, and pass a new value only when
 * it differs from that by more than t; a call at position 0 starts the sequences afresh.
 */
export function applyThresholds(
  hooks: Hooks,
  thresholds: Thresholds,
  options: ApplyOptions = {},
): AppliedThresholds {
  interface Site {
    entry: ThresholdEntry;
    stats: AppliedSparsity;
    rule?: RowRule;
    width?: number;
    /** Delta rules: per sequence, the last values passed on. */
    previous: Float32Array[];
  }
  const bySite = new Map<string, Site>();
  for (const e of thresholds.entries) {
    if (!(e.threshold >= 0))
      throw new InvalidArgumentError(`threshold of block ${e.block} ${e.site}`, e.threshold, 'must be >= 0');
    bySite.set(siteKey(e.block, e.site), {
      entry: e,
      stats: { block: e.block, site: e.site, zeros: 0, values: 0 },
      previous: [],
    });
  }
  const sites = [...new Set(thresholds.entries.map((e) => e.site))];
  const lastHalf = options.tokens === 'last-half';
  const handle = hooks.add(sites, (tensor, context) => {
    const site = bySite.get(siteKey(context.block, context.site as ActivationSite));
    if (site === undefined) return;
    const width = tensor.shape.at(-1)!;
    if (site.rule === undefined || site.width !== width) {
      site.rule = rowRule(site.entry, width);
      site.width = width;
    }
    const rule = site.rule;
    if (context.position === 0) site.previous = []; // new sequences
    const out = tensor.data.slice();
    const seq = context.seq;
    let zeros = 0;
    let values = 0;
    for (let row = 0; row < out.length / width; row++) {
      const skip = lastHalf && seq > 1 && row % seq < seq - Math.floor(seq / 2);
      const view = out.subarray(row * width, (row + 1) * width);
      if (rule.kind === 'row') {
        if (skip) continue;
        zeros += rule.apply(view);
      } else {
        // A delta rule follows every token: a sequence's first token, and skipped ones, pass whole.
        const sequence = sequenceOf(context, row);
        const previous = site.previous[sequence];
        if (previous === undefined || skip) {
          site.previous[sequence] = view.slice();
          if (skip) continue;
        } else zeros += rule.apply(view, previous);
      }
      values += width;
    }
    site.stats.zeros += zeros;
    site.stats.values += values;
    return out;
  });
  const measured = () => [...bySite.values()].map((e) => ({ ...e.stats }));
  return {
    remove: () => handle.remove(),
    measured,
    overall: () => {
      const m = measured();
      const values = m.reduce((s, e) => s + e.values, 0);
      return values === 0 ? 0 : m.reduce((s, e) => s + e.zeros, 0) / values;
    },
  };
}

/** The sequence a row of the call's [batch, seq, width] tensor belongs to. */
function sequenceOf(context: HookContext, row: number): number {
  const token = context.expert === undefined ? row : context.expert.tokens[row]!;
  return Math.floor(token / context.seq);
}

function rowRule(e: ThresholdEntry, width: number): RowRule {
  if (e.rule === 'top-k') {
    const keep = Math.round((1 - e.sparsity) * width);
    const scratch = new Float32Array(width);
    return {
      kind: 'row',
      apply: (row) => {
        if (keep >= width) return countZeros(row);
        for (let i = 0; i < width; i++) scratch[i] = Math.abs(row[i]!);
        scratch.sort();
        const kth = keep === 0 ? Number.POSITIVE_INFINITY : scratch[width - keep]!;
        let zeros = 0;
        for (let i = 0; i < width; i++) {
          const v = row[i]!;
          if (v !== 0 && Math.abs(v) >= kth) continue;
          if (v !== 0) row[i] = 0;
          zeros++;
        }
        return zeros;
      },
    };
  }
  if (e.rule === 'delta') {
    const t = Math.fround(e.threshold);
    return {
      kind: 'delta',
      apply: (row, previous) => {
        let kept = 0;
        for (let i = 0; i < width; i++) {
          const d = row[i]! - previous[i]!;
          if (Math.abs(d) > t) {
            previous[i] = row[i]!;
            kept++;
          } else row[i] = previous[i]!;
        }
        return width - kept;
      },
    };
  }
  if (e.channels !== undefined) {
    if (e.channels.length !== width)
      throw new InvalidArgumentError(
        `channel thresholds of block ${e.block} ${e.site}`,
        e.channels.length,
        `must have one per channel (${width})`,
      );
    const t = Float32Array.from(e.channels);
    return {
      kind: 'row',
      apply: (row) => {
        let zeros = 0;
        for (let i = 0; i < width; i++) {
          const v = row[i]!;
          if (Math.abs(v) <= t[i]!) {
            if (v !== 0) row[i] = 0;
            zeros++;
          }
        }
        return zeros;
      },
    };
  }
  const t = Math.fround(e.threshold); // compared with f32 values as an f32
  return {
    kind: 'row',
    apply: (row) => {
      let zeros = 0;
      for (let i = 0; i < width; i++) {
        const v = row[i]!;
        if (Math.abs(v) <= t) {
          if (v !== 0) row[i] = 0; // exact zeros (and -0) stay as they are
          zeros++;
        }
      }
      return zeros;
    },
  };
}

function countZeros(row: Float32Array): number {
  let zeros = 0;
  for (let i = 0; i < row.length; i++) if (row[i] === 0) zeros++;
  return zeros;
}
