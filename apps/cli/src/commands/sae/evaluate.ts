// sparsekit sae eval: an SAE folder's metrics on held-out text, and its splice scores.
import type { LoadedModel } from '@sparsekit/models/node';
import { type Sae, type SaeSite, spliceScores } from '@sparsekit/sae';
import { type Flags, numberFlag } from '../../args.js';
import { table, type Ui } from '../../ui.js';
import { heldOutMetrics, hookName, siteRows, textWindows } from './shared.js';

export async function evaluate(
  flags: Flags,
  loaded: LoadedModel,
  dir: string,
  sae: Sae,
  site: SaeSite,
  ui: Ui,
) {
  const { model } = loaded;
  const { windows } = textWindows(flags, loaded, dir, {
    textFlag: 'text',
    which: 'test',
    count: numberFlag('sae', flags, 'windows', 16, { integer: true, min: 1 }),
    what: 'evaluation text',
  });
  const held = await siteRows(model, site, sae.dIn, windows, ui);
  const metrics = heldOutMetrics(sae, held.rows, held.count);
  const scores = await spliceScores(model, site, sae, windows, { onProgress: ui.progress('splice') });
  ui.done();
  ui.say(`${sae.architecture} SAE (d_sae ${sae.dSae}) at ${hookName(site)}, ${held.count} tokens\n`);
  ui.say(
    table(
      ['metric', 'value'],
      [
        ['explained_variance', metrics.explained_variance.toFixed(4)],
        ['mse', metrics.mse.toExponential(3)],
        ['cossim', metrics.cossim.toFixed(4)],
        ['l2_ratio', metrics.l2_ratio.toFixed(4)],
        ['relative_reconstruction_bias', metrics.relative_reconstruction_bias.toFixed(4)],
        ['l0', metrics.l0.toFixed(2)],
        ['l1', metrics.l1.toFixed(3)],
        ['dead features', `${metrics.dead_features} (${(100 * metrics.dead_share).toFixed(1)}%)`],
        [
          'ce_loss (clean / with SAE / ablated)',
          `${scores.ce_loss_clean.toFixed(4)} / ${scores.ce_loss_with_sae.toFixed(4)} / ${scores.ce_loss_with_ablation.toFixed(4)}`,
        ],
        ['ce_loss_score', scores.ce_loss_score.toFixed(4)],
        ['kl_div_score', scores.kl_div_score.toFixed(4)],
      ],
    ),
  );
  return { site: hookName(site), architecture: sae.architecture, dSae: sae.dSae, ...metrics, ...scores };
}
