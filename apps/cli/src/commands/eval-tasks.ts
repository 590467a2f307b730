// `sparsekit eval --tasks`: lm-eval-style tasks (the bundled tiny-lm ones by name, or task files)
// on a model, printed as a table and written in lm-eval's results JSON.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '@sparsekit/core/node';
import { evaluateTasks, type LmEvalResults, type LoadedTask } from '@sparsekit/eval-harness';
import { loadTask, openRequestCache } from '@sparsekit/eval-harness/node';
import { tinyLmPath } from '@sparsekit/models/node';
import { type Flags, numberFlag, stringFlag, UsageError } from '../args.js';
import type { CpuBackend } from '../backend.js';
import { loadModel, requireTokenizer } from '../model-io.js';
import type { Ui } from '../ui.js';
import { table } from '../ui.js';

/** The tasks bundled with tiny-lm (built from its held-out split). */
export const BUNDLED_TASKS_DIR = join(tinyLmPath(), 'tasks');

/** A task named on the command line: a bundled name, or a YAML / JSON task file. */
function taskPath(name: string): string {
  if (/\.(ya?ml|json)$/i.test(name)) {
    if (!existsSync(name)) throw new UsageError(`no task file ${name}`, 'eval');
    return resolve(name);
  }
  const bundled = join(BUNDLED_TASKS_DIR, `${name}.yaml`);
  if (existsSync(bundled)) return bundled;
  throw new UsageError(
    `unknown task "${name}": give a bundled task (tinylm_cloze, tinylm_nextsent) or a task file (.yaml)`,
    'eval',
  );
}

/** --data [task:]split=FILE, repeatable: local data files, for every task or the one named. */
function dataFiles(flags: Flags): { task?: string; split: string; file: string }[] {
  const raw = flags.data;
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [String(raw)];
  return list.map((entry) => {
    const m = /^(?:([^:=]+):)?([^:=]+)=(.+)$/.exec(entry);
    if (m === null) throw new UsageError(`--data must be [TASK:]SPLIT=FILE, not "${entry}"`, 'eval');
    if (!existsSync(m[3]!)) throw new UsageError(`--data: no file ${m[3]}`, 'eval');
    return { ...(m[1] === undefined ? {} : { task: m[1] }), split: m[2]!, file: m[3]! };
  });
}

export async function evalTasks(flags: Flags, ui: Ui, dir: string, backend: CpuBackend) {
  const names = String(flags.tasks)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new UsageError('--tasks needs at least one task', 'eval');
  const data = dataFiles(flags);
  const limit = numberFlag('eval', flags, 'limit', 0, { integer: true, min: 1 });
  const numFewshot = numberFlag('eval', flags, 'num-fewshot', -1, { integer: true, min: 0 });
  const batchSize = numberFlag('eval', flags, 'batch-size', 8, { integer: true, min: 1 });
  const output = stringFlag(flags, 'output');
  const cachePath = stringFlag(flags, 'cache');
  // What changes when the model does: its folder, and its weight files' names, sizes and times.
  const modelKey = () =>
    [
      resolve(dir),
      ...readdirSync(dir)
        .filter((f) => f.endsWith('.safetensors'))
        .sort()
        .map((f) => {
          const st = statSync(join(dir, f));
          return `${f}:${st.size}:${Math.round(st.mtimeMs)}`;
        }),
    ].join('|');
  const cache = cachePath === undefined ? undefined : openRequestCache(resolve(cachePath), modelKey());
  const cachedBefore = cache?.size ?? 0;
  const tasks: LoadedTask[] = names.map((name) => {
    const path = taskPath(name);
    const own = Object.fromEntries(
      data.filter((d) => d.task === undefined || d.task === name).map((d) => [d.split, d.file]),
    );
    return loadTask(path, { dataFiles: own });
  });
  const loaded = await loadModel(dir, backend);
  const tokenizer = requireTokenizer(loaded, dir);
  const results = await evaluateTasks(loaded.model, tokenizer, tasks, {
    batchSize,
    model: dir,
    ...(limit > 0 ? { limit } : {}),
    ...(numFewshot >= 0 ? { numFewshot } : {}),
    ...(cache === undefined ? {} : { cache }),
    onProgress: ui.progress('eval'),
  });
  ui.done();
  if (cache !== undefined) {
    await cache.save();
    ui.note(
      `request cache ${resolve(cachePath!)}: ${cachedBefore} results reused, ${cache.size - cachedBefore} new`,
    );
  }
  ui.say(resultsTable(results));
  const { taskResults: _, ...file } = results;
  if (output !== undefined) {
    await writeFileAtomic(resolve(output), (f) => f.writeFile(`${JSON.stringify(file, null, 2)}\n`, 'utf8'));
    ui.say(`\nresults: ${resolve(output)} (lm-eval's format)`);
  }
  return file;
}

/** Task | metric | value | stderr, as lm-eval prints its summary. */
export function resultsTable(results: Pick<LmEvalResults, 'results' | 'n-shot' | 'n-samples'>): string {
  const rows: string[][] = [];
  for (const [task, entry] of Object.entries(results.results)) {
    for (const [key, value] of Object.entries(entry)) {
      if (key === 'alias' || key.includes('_stderr,')) continue;
      const metric = key.split(',')[0]!;
      const stderr = entry[`${metric}_stderr,none`];
      rows.push([
        task,
        String(results['n-shot'][task] ?? 0),
        String(results['n-samples'][task]?.effective ?? ''),
        metric,
        typeof value === 'number' ? value.toFixed(4) : String(value),
        typeof stderr === 'number' ? `± ${stderr.toFixed(4)}` : String(stderr ?? ''),
      ]);
    }
  }
  return table(['task', 'n-shot', 'docs', 'metric', 'value', 'stderr'], rows);
}
