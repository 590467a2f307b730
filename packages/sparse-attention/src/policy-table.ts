// The KV policies by name, as data: what each needs and how a token budget becomes its options. The
// CLI's `--policy`, a server's request schema and the quality tables derive from this table.
import { InvalidArgumentError, type KvPolicy } from '@sparsekit/core';
import type { Backend } from '@sparsekit/sparse-formats';
import { doubleSparsity, type LabelChannels } from './policies/double-sparsity.js';
import { h2o } from './policies/h2o.js';
import { quest } from './policies/quest.js';
import { snapKv } from './policies/snap-kv.js';
import { streamingLlm } from './policies/streaming-llm.js';

export interface PolicySettings {
  /** Tokens per lane: read per decode step (selection) or held (eviction). */
  budget: number;
  /** The cache's page size (Quest; default 16). */
  pageSize?: number;
  /** Double Sparsity's calibrated label channels. */
  channels?: LabelChannels;
  /** Where selection policies score (summaries in its memory). */
  backend?: Backend;
}

export interface PolicyEntry {
  readonly name: string;
  readonly summary: string;
  /** 'select': reads a subset each decode step, keeps everything; 'evict': drops entries. */
  readonly kind: 'select' | 'evict';
  /** Needs calibrated label channels (`calibrateDoubleSparsity`). */
  readonly needsChannels: boolean;
  make(settings: PolicySettings): KvPolicy & { reset?(): void };
}

export const KV_POLICIES: readonly PolicyEntry[] = [
  {
    name: 'quest',
    summary: 'Quest: the top pages by an upper bound of q.k from per-page key min/max (read exactly)',
    kind: 'select',
    needsChannels: false,
    make: (s) =>
      quest({
        budget: s.budget,
        ...(s.pageSize === undefined ? {} : { pageSize: s.pageSize }),
        ...(s.backend === undefined ? {} : { backend: s.backend }),
      }),
  },
  {
    name: 'double-sparsity',
    summary: 'Double Sparsity: the heaviest tokens by approximate scores on calibrated label channels',
    kind: 'select',
    needsChannels: true,
    make: (s) => {
      if (s.channels === undefined)
        throw new InvalidArgumentError(
          'channels',
          undefined,
          'double-sparsity needs calibrated label channels',
        );
      return doubleSparsity({
        channels: s.channels,
        heavyConst: s.budget,
        ...(s.backend === undefined ? {} : { backend: s.backend }),
      });
    },
  },
  {
    name: 'h2o',
    summary: 'H2O: keep the heavy hitters of accumulated attention plus a recent window (half each)',
    kind: 'evict',
    needsChannels: false,
    make: (s) => h2o({ budget: s.budget }),
  },
  {
    name: 'streaming',
    summary: 'StreamingLLM: keep 4 attention sinks plus the most recent tokens',
    kind: 'evict',
    needsChannels: false,
    make: (s) => {
      const sinks = Math.min(4, s.budget - 1);
      return streamingLlm({ sinks, recent: s.budget - sinks });
    },
  },
  {
    name: 'snapkv',
    summary: 'SnapKV: after the prompt, keep the prefix keys its last queries vote for (pooled)',
    kind: 'evict',
    needsChannels: false,
    make: (s) => snapKv({ capacity: s.budget, window: Math.max(1, Math.min(32, Math.floor(s.budget / 4))) }),
  },
];

export const POLICY_NAMES = KV_POLICIES.map((p) => p.name);

/** The named policy's entry (typed error for an unknown name). */
export function policyEntry(name: string): PolicyEntry {
  const entry = KV_POLICIES.find((p) => p.name === name);
  if (entry === undefined)
    throw new InvalidArgumentError('policy', name, `must be one of ${POLICY_NAMES.join(', ')}`);
  return entry;
}
