// sparsekit moe inspect: how a model's own routers route the calibration text.
import { calibrationWindows } from '@sparsekit/eval-harness';
import type { LoadedModel } from '@sparsekit/models/node';
import { type MoeLayer, recordModelRoutings } from '@sparsekit/moe-router';
import { type Flags, UsageError } from '../../args.js';
import { checkKnownText, requireTokenizer } from '../../model-io.js';
import { table, type Ui } from '../../ui.js';
import { expertsPerToken, layerLoad, layerLosses, plural, routerLabel, textOf } from './shared.js';

export async function inspect(
  flags: Flags,
  loaded: LoadedModel,
  dir: string,
  layers: MoeLayer[],
  count: number,
  ui: Ui,
) {
  const { model } = loaded;
  const tokenizer = requireTokenizer(loaded, dir);
  const ids = tokenizer.encode(textOf(flags, 'calibration', dir));
  checkKnownText(tokenizer, ids, 'calibration text');
  const seqLen = model.maxSequenceLength;
  if (ids.length < seqLen)
    throw new UsageError(
      `--text has ${ids.length} tokens, fewer than one window of the model's ${seqLen}`,
      'moe',
    );
  const batches = calibrationWindows(ids, { samples: count, seqLen, mode: 'consecutive' });
  const recording = recordModelRoutings(model);
  try {
    const progress = ui.progress('route');
    for (const [i, batch] of batches.entries()) {
      await model.logitsAsync(batch);
      progress({ stage: 'route', current: i + 1, total: batches.length, unit: 'window' });
    }
  } finally {
    recording.restore();
  }
  ui.done();
  const rows = recording.layers.map((l, i) => ({
    experts: l.numExperts,
    k: expertsPerToken(loaded, layers[i]!),
    router: routerLabel(layers[i]!),
    ...layerLoad(l),
    ...layerLosses(l),
  }));
  ui.say(
    `${dir}: ${layers.length} of ${model.params.blocks.length} blocks are mixtures of experts; ${plural(batches.length, 'window')} of ${seqLen} tokens routed by the model's own router\n`,
  );
  ui.say(
    table(
      [
        'block',
        'experts',
        'k',
        'router',
        'tokens',
        'tokens per expert',
        'load CV',
        'max/mean',
        'balance',
        'z-loss',
      ],
      rows.map((r) => [
        String(r.block),
        String(r.experts),
        String(r.k),
        r.router,
        String(r.tokens),
        r.tokensPerExpert.join(' '),
        r.loadCv.toFixed(3),
        r.maxMeanLoad.toFixed(2),
        r.balancingLoss === null ? '-' : r.balancingLoss.toFixed(3),
        r.zLoss.toFixed(3),
      ]),
    ),
  );
  return { model: dir, windows: batches.length, seqLen, layers: rows };
}
