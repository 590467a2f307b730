#!/usr/bin/env node
// Execute the notebooks headlessly with Jupyter's nbconvert on the tslab (TypeScript) kernel:
//   node scripts/run.mjs [--html | --pictures] [--out DIR] [notebooks/NAME.ipynb ...]
// The kernel is registered in this package's own .jupyter folder (JUPYTER_PATH), never in the
// user's. A cell that throws fails its notebook, and the run exits 1. Without --html the executed
// notebooks go to DIR (default: a temporary folder); with --html, executed HTML copies go to DIR
// (default: ./html); with --pictures, each notebook's picture (the SVG its cell tagged "picture"
// shows, else its last SVG) goes to DIR/NAME.svg (default: ./pictures), for the README.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
const html = args.includes('--html');
const pictures = args.includes('--pictures');
const outAt = args.indexOf('--out');
const out = resolve(
  outAt >= 0
    ? args[outAt + 1]
    : html
      ? join(here, 'html')
      : pictures
        ? join(here, 'pictures')
        : mkdtempSync(join(tmpdir(), 'notebooks-')),
);
const executed = pictures ? mkdtempSync(join(tmpdir(), 'notebooks-')) : out;
const named = args.filter((a, i) => !a.startsWith('--') && (outAt < 0 || i !== outAt + 1));
const notebooks =
  named.length > 0
    ? named.map((n) => resolve(n))
    : readdirSync(join(here, 'notebooks'))
        .filter((f) => f.endsWith('.ipynb'))
        .sort()
        .map((f) => join(here, 'notebooks', f));

if (spawnSync('jupyter', ['nbconvert', '--version'], { encoding: 'utf8' }).status !== 0) {
  console.error(
    'notebooks: jupyter nbconvert is not installed (apt-get install jupyter-notebook jupyter-nbconvert)',
  );
  process.exit(3);
}

// The tslab kernelspec, as `tslab install` would write it, in a folder of our own.
const jupyterPath = join(here, '.jupyter');
const tslab = join(dirname(createRequire(import.meta.url).resolve('tslab/package.json')), 'bin', 'tslab');
mkdirSync(join(jupyterPath, 'kernels', 'tslab'), { recursive: true });
writeFileSync(
  join(jupyterPath, 'kernels', 'tslab', 'kernel.json'),
  `${JSON.stringify({ argv: [process.execPath, tslab, 'kernel', '--config-path', '{connection_file}'], display_name: 'TypeScript', language: 'typescript' }, null, 1)}\n`,
);
const runtime = mkdtempSync(join(tmpdir(), 'jupyter-runtime-'));
const env = {
  ...process.env,
  JUPYTER_PATH: jupyterPath,
  JUPYTER_RUNTIME_DIR: runtime,
  JUPYTER_CONFIG_DIR: join(runtime, 'config'),
};

/** The picture of an executed notebook: the SVG of its cell tagged "picture", else its last SVG. */
function writePicture(executedNotebook, file) {
  const nb = JSON.parse(readFileSync(executedNotebook, 'utf8'));
  const svgs = (cells) =>
    cells.flatMap((c) =>
      (c.outputs ?? [])
        .map((o) => [].concat(o.data?.['text/html'] ?? []).join(''))
        .filter((h) => h.trimStart().startsWith('<svg')),
    );
  const tagged = svgs(nb.cells.filter((c) => c.metadata?.tags?.includes('picture')));
  const svg = tagged[0] ?? svgs(nb.cells).at(-1);
  if (svg === undefined) throw new Error(`${executedNotebook} shows no SVG`);
  writeFileSync(`${file}.tmp`, svg);
  renameSync(`${file}.tmp`, file);
}

mkdirSync(out, { recursive: true });
let failed = 0;
for (const notebook of notebooks) {
  const started = Date.now();
  const r = spawnSync(
    'jupyter',
    [
      'nbconvert',
      `--to=${html ? 'html' : 'notebook'}`,
      '--execute',
      '--ExecutePreprocessor.kernel_name=tslab',
      '--ExecutePreprocessor.timeout=900',
      `--output-dir=${executed}`,
      notebook,
    ],
    { env, encoding: 'utf8', cwd: dirname(notebook) },
  );
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (r.status === 0) {
    console.log(`ok   ${notebook} (${seconds} s)`);
    if (pictures)
      writePicture(
        join(executed, basename(notebook)),
        join(out, basename(notebook).replace(/\.ipynb$/, '.svg')),
      );
  } else {
    failed++;
    // nbconvert names the failing cell and the kernel's error; keep the end of it.
    console.error(`FAIL ${notebook} (${seconds} s)\n${(r.stderr ?? '').split('\n').slice(-40).join('\n')}`);
  }
}
console.log(`${notebooks.length - failed} of ${notebooks.length} notebooks ran; outputs in ${out}`);
process.exit(failed === 0 ? 0 : 1);
