// sparsekit moe eval: perplexity under another router (and capacity), beside the model's own.

import { perplexity } from '@sparsekit/eval-harness';
import type { LoadedModel } from '@sparsekit/models/node';
import {
  type CapacityConvention,
  type MoeLayer,
  type ROUTERS,
  type RouterSettings,
  recordModelRoutings,
  swapRouters,
} from '@sparsekit/moe-router';
import type { Flags } from '../../args.js';
import { checkKnownText, requireTokenizer } from '../../model-io.js';
import { table, type Ui } from '../../ui.js';
import { expertsPerToken, layerLoad, plural, routerLabel, textOf } from './shared.js';

export interface RouterChoice {
  entry: (typeof ROUTERS)[number];
  capacity: { factor: number; convention: CapacityConvention } | undefined;
}

export async function evaluate(
  flags: Flags,
  loaded: LoadedModel,
  dir: string,
  layers: MoeLayer[],
  count: number,
  choice: RouterChoice,
  ui: Ui,
) {
  const { model } = loaded;
  const tokenizer = requireTokenizer(loaded, dir);
  const text = textOf(flags, 'test', dir);
  checkKnownText(tokenizer, tokenizer.encode(text), 'evaluation text');
  const score = async (label: string) => {
    const recording = recordModelRoutings(model);
    try {
      const result = await perplexity(model, tokenizer, text, {
        maxWindows: count,
        // One window per forward pass: a capacity is slots per expert per window.
        batchSize: 1,
        onProgress: ui.progress(label),
      });
      return { result, layers: recording.layers.map(layerLoad) };
    } finally {
      recording.restore();
    }
  };
  const own = await score('own router');
  const { entry, capacity } = choice;
  const width = model.config.hiddenSize;
  const restore = swapRouters(model, (layer) => {
    const settings: RouterSettings = {
      numExperts: layer.numExperts,
      k: expertsPerToken(loaded, layer),
      width,
      seed: 0,
      ...(capacity === undefined ? {} : { capacity }),
    };
    return entry.make(settings);
  });
  let swapped: Awaited<ReturnType<typeof score>>;
  try {
    swapped = await score(entry.name);
  } finally {
    restore();
  }
  ui.done();
  const pooled = (ls: ReturnType<typeof layerLoad>[]) => {
    const kept = ls.reduce((s, l) => s + l.kept, 0);
    const dropped = ls.reduce((s, l) => s + l.dropped, 0);
    return { kept, dropped, dropRate: kept + dropped === 0 ? 0 : dropped / (kept + dropped) };
  };
  const capacityText =
    capacity === undefined ? `${entry.options.capacity ?? 'none'} (the router's own)` : capacity;
  const k = expertsPerToken(loaded, layers[0]!);
  const rows = [
    { name: `own (${routerLabel(layers[0]!)}, k ${k})`, run: own },
    { name: entry.name, run: swapped },
  ];
  ui.say(
    `${dir}: ${plural(own.result.protocol.windows, 'window')} of ${own.result.protocol.maxLength} tokens, ${own.result.scoredTokens} tokens scored; capacity ${
      typeof capacityText === 'string'
        ? capacityText
        : `factor ${capacityText.factor} (${capacityText.convention})`
    }\n`,
  );
  ui.say(
    table(
      ['router', 'perplexity', 'drop rate', 'mean load CV', 'mean max/mean'],
      rows.map(({ name, run }) => [
        name,
        run.result.perplexity.toFixed(3),
        `${(100 * pooled(run.layers).dropRate).toFixed(2)}%`,
        (run.layers.reduce((s, l) => s + l.loadCv, 0) / run.layers.length).toFixed(3),
        (run.layers.reduce((s, l) => s + l.maxMeanLoad, 0) / run.layers.length).toFixed(2),
      ]),
    ),
  );
  ui.say(`\n${entry.name}, per layer:`);
  ui.say(
    table(
      ['block', 'capacity/window', 'drop rate', 'no expert', 'tokens per expert', 'load CV', 'max/mean'],
      swapped.layers.map((l) => [
        String(l.block),
        l.capacity === null ? 'dropless' : String(l.capacity),
        `${(100 * l.dropRate).toFixed(2)}%`,
        String(l.tokensWithoutExpert),
        l.tokensPerExpert.join(' '),
        l.loadCv.toFixed(3),
        l.maxMeanLoad.toFixed(2),
      ]),
    ),
  );
  const summary = (run: typeof own) => ({
    perplexity: run.result.perplexity,
    ...pooled(run.layers),
    layers: run.layers,
  });
  return {
    model: dir,
    windows: own.result.protocol.windows,
    seqLen: own.result.protocol.maxLength,
    scoredTokens: own.result.scoredTokens,
    k,
    own: { router: routerLabel(layers[0]!), ...summary(own) },
    router: {
      name: entry.name,
      capacity: capacity ?? null,
      defaultCapacity: capacity === undefined ? (entry.options.capacity ?? null) : null,
      ...summary(swapped),
    },
  };
}
