// sparsekit sae features: per-feature density, top-activating contexts and logit effects, as JSON.
import { Tensor } from '@sparsekit/core';
import { writeFileAtomic } from '@sparsekit/core/node';
import type { LoadedModel } from '@sparsekit/models/node';
import { featureData, type Sae, type SaeSite } from '@sparsekit/sae';
import { type Flags, numberFlag, stringFlag, UsageError } from '../../args.js';
import { table, type Ui } from '../../ui.js';
import { hookName, textWindows } from './shared.js';

export async function features(
  flags: Flags,
  loaded: LoadedModel,
  dir: string,
  sae: Sae,
  site: SaeSite,
  ui: Ui,
) {
  const { model } = loaded;
  const { tokenizer, windows } = textWindows(flags, loaded, dir, {
    textFlag: 'text',
    which: 'test',
    count: numberFlag('sae', flags, 'windows', 16, { integer: true, min: 1 }),
    what: 'text',
  });
  const list = stringFlag(flags, 'features');
  let ids: number[] | undefined;
  if (list !== undefined) {
    ids = list.split(',').map((s) => Number(s.trim()));
    const bad = ids.find((j) => !Number.isInteger(j) || j < 0 || j >= sae.dSae);
    if (bad !== undefined)
      throw new UsageError(`--features: ${bad} is not a feature id in [0, ${sae.dSae})`, 'sae');
  }
  const contexts = numberFlag('sae', flags, 'contexts', 5, { integer: true, min: 1, max: 100 });
  const isStream = site.site === 'stream';
  let data = await featureData(model, site, sae, windows, {
    ...(ids === undefined ? {} : { features: ids }),
    top: contexts,
    onProgress: ui.progress('features'),
    // Logit effects: the decoder direction through the final norm and the LM head (stream sites only).
    ...(isStream
      ? { unembed: (d: Float32Array) => model.head(new Tensor('f32', [1, 1, sae.dIn], d)).data }
      : {}),
  });
  ui.done();
  if (ids === undefined) {
    const n = numberFlag('sae', flags, 'top-features', 20, { integer: true, min: 1 });
    data = [...data].sort((a, b) => b.maxActivation - a.maxActivation).slice(0, n);
  }
  const text1 = (id: number) => JSON.stringify(tokenizer.decode([id]));
  const withText = data.map((f) => ({
    ...f,
    topContexts: f.topContexts.map((c) => ({ ...c, text: c.tokens.map((t) => tokenizer.decode([t])) })),
    ...(f.logitEffects === undefined
      ? {}
      : {
          logitEffects: {
            positive: f.logitEffects.positive.map((e) => ({ ...e, text: tokenizer.decode([e.token]) })),
            negative: f.logitEffects.negative.map((e) => ({ ...e, text: tokenizer.decode([e.token]) })),
          },
        }),
  }));
  ui.say(`${withText.length} features of the ${sae.architecture} SAE at ${hookName(site)}\n`);
  ui.say(
    table(
      ['feature', 'density', 'max', 'top context', 'promotes'],
      withText.map((f) => {
        const c = f.topContexts[0];
        const context =
          c === undefined
            ? '-'
            : c.text
                .map((t, i) => (i === c.at ? `[${t}]` : t))
                .join('')
                .replace(/\s+/g, ' ')
                .slice(-40);
        return [
          String(f.feature),
          `${(100 * f.density).toFixed(2)}%`,
          f.maxActivation.toFixed(3),
          JSON.stringify(context),
          f.logitEffects?.positive
            .slice(0, 3)
            .map((e) => text1(e.token))
            .join(' ') ?? '-',
        ];
      }),
    ),
  );
  const outPath = stringFlag(flags, 'out');
  const result = { site: hookName(site), architecture: sae.architecture, dSae: sae.dSae, features: withText };
  if (outPath !== undefined) {
    await writeFileAtomic(outPath, (f) => f.writeFile(`${JSON.stringify(result, null, 1)}\n`, 'utf8'));
    ui.say(`\nwrote ${outPath}`);
  }
  return result;
}
