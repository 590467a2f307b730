// The attention patterns by name, with their options, as data: the CLI's `--pattern` and a server's
// request schema derive from this table, and `makePattern` builds the mask mod and says what the
// kernels must apply inside blocks for the result to be exact.
import { InvalidArgumentError } from '@sparsekit/core';
import type { KernelMaskOptions } from './kernel-mask.js';
import { andMasks, causal, documents, type MaskMod, orMasks, sinks, slidingWindow } from './mask-mods.js';
import { bigBird, longformer } from './patterns.js';

export interface PatternOptions {
  /** Window in tokens (window, streaming, longformer) or in blocks (bigbird). */
  window?: number;
  /** Attention sinks (streaming; default 4, as StreamingLLM). */
  sinks?: number;
  /** Tokens per packed document (documents; default 1024). */
  docLength?: number;
  /** Global positions (longformer, bigbird). */
  globals?: readonly number[];
  /** Random key blocks per query block (bigbird; default 3). */
  randomBlocks?: number;
  /** Pattern block size (bigbird; default 64). */
  patternBlock?: number;
  seed?: number;
}

export interface PatternEntry {
  readonly name: string;
  readonly summary: string;
  /** The options it reads. */
  readonly options: ReadonlyArray<keyof PatternOptions>;
  /** The mod for a sequence of `seqLen` tokens, and what kernels apply inside listed blocks. */
  make(options: PatternOptions, seqLen: number): { mod: MaskMod; kernel: KernelMaskOptions; exact: boolean };
}

const DEFAULT_WINDOW = 256;

function windowOf(o: PatternOptions): number {
  return o.window ?? DEFAULT_WINDOW;
}

export const ATTENTION_PATTERNS: readonly PatternEntry[] = [
  {
    name: 'causal',
    summary: 'every earlier key (dense causal attention)',
    options: [],
    make: () => ({ mod: causal(), kernel: { causal: true }, exact: true }),
  },
  {
    name: 'window',
    summary: `causal sliding window: the last --window keys (default ${DEFAULT_WINDOW})`,
    options: ['window'],
    make: (o) => ({
      mod: andMasks(causal(), slidingWindow(windowOf(o))),
      kernel: { causal: true, window: windowOf(o) },
      exact: true,
    }),
  },
  {
    name: 'streaming',
    summary: 'StreamingLLM: --sinks first keys (default 4) plus the last --window keys',
    options: ['window', 'sinks'],
    make: (o) => {
      const n = o.sinks ?? 4;
      return {
        mod: andMasks(causal(), orMasks(sinks(n), slidingWindow(windowOf(o)))),
        kernel: { causal: true, window: windowOf(o), sinks: n },
        exact: true,
      };
    },
  },
  {
    name: 'documents',
    summary: 'causal within packed documents of --doc-length tokens (default 1024)',
    options: ['docLength'],
    make: (o, seqLen) => {
      const length = o.docLength ?? 1024;
      if (!Number.isInteger(length) || length < 1)
        throw new InvalidArgumentError('docLength', length, 'must be a positive integer');
      const lengths = Array.from({ length: Math.ceil(seqLen / length) }, (_, i) =>
        Math.min(length, seqLen - i * length),
      );
      return { mod: andMasks(causal(), documents(lengths)), kernel: { causal: true }, exact: false };
    },
  },
  {
    name: 'longformer',
    summary: 'Longformer, causal: the last --window keys plus --globals positions',
    options: ['window', 'globals'],
    make: (o, seqLen) => ({
      mod: longformer({ window: windowOf(o), globals: o.globals ?? [0], causal: true, seqLen }),
      kernel: { causal: true },
      exact: false,
    }),
  },
  {
    name: 'bigbird',
    summary: 'BigBird, causal: a block window, global blocks and --random-blocks random key blocks',
    options: ['window', 'globals', 'randomBlocks', 'patternBlock', 'seed'],
    make: (o, seqLen) => ({
      mod: bigBird({
        seqLen,
        causal: true,
        window: o.window ?? 3,
        randomBlocks: o.randomBlocks ?? 3,
        blockSize: o.patternBlock ?? 64,
        seed: o.seed ?? 0,
        ...(o.globals === undefined ? {} : { globals: o.globals }),
      }),
      kernel: { causal: true },
      exact: false,
    }),
  },
];

export const PATTERN_NAMES = ATTENTION_PATTERNS.map((p) => p.name);

/** The named pattern's mod for `seqLen` tokens (typed error for an unknown name). */
export function makePattern(name: string, options: PatternOptions, seqLen: number) {
  const entry = ATTENTION_PATTERNS.find((p) => p.name === name);
  if (entry === undefined)
    throw new InvalidArgumentError('pattern', name, `must be one of ${PATTERN_NAMES.join(', ')}`);
  return entry.make(options, seqLen);
}
