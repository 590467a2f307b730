// Every notebook executed headlessly (jupyter nbconvert --execute on the tslab kernel): a cell that
// throws, as the notebooks' assertions do on a wrong result, fails its test.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = fileURLToPath(new URL('..', import.meta.url));
const notebooks = readdirSync(join(here, 'notebooks'))
  .filter((f) => f.endsWith('.ipynb'))
  .sort();
const jupyter = spawnSync('jupyter', ['nbconvert', '--version'], { encoding: 'utf8' }).status === 0;
if (!jupyter && process.env.SPARSEKIT_REQUIRE_JUPYTER === '1')
  throw new Error('jupyter nbconvert is required (apt-get install jupyter-notebook jupyter-nbconvert)');
if (!jupyter)
  console.warn(
    'the notebooks: no jupyter nbconvert, skipped (apt-get install jupyter-notebook jupyter-nbconvert)',
  );

describe.skipIf(!jupyter)('the notebooks, executed', () => {
  it('has the notebooks the README lists', () => {
    expect(notebooks.length).toBeGreaterThan(0);
  });
  it.each(notebooks)(
    '%s runs to its end with every assertion holding',
    (name) => {
      const r = spawnSync(
        process.execPath,
        [join(here, 'scripts', 'run.mjs'), join(here, 'notebooks', name)],
        {
          encoding: 'utf8',
        },
      );
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    },
    900_000,
  );
});
