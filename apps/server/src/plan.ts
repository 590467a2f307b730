// From a job's stored params to what a worker runs: checks at submit time (the kind's schema, the
// model name, file paths inside the data root) and, when a worker takes the job, the `sparsekit`
// command line (or a sweep's plan) with the model and files resolved again.
import { join } from 'node:path';
import { InvalidArgumentError } from '@sparsekit/core';
import { Ajv, type ValidateFunction } from 'ajv';
import { flagArgs, KINDS, paramsSchema } from './kinds.js';
import type { ModelRegistry } from './models.js';
import { resolveInside } from './paths.js';
import type { Planner } from './pool.js';
import type { SweepPlan } from './protocol.js';
import { JOB_KINDS, type JobKind, type JobStore } from './store.js';

const ajv = new Ajv({ allErrors: true, strict: true });
const validators = new Map<JobKind, ValidateFunction>(
  JOB_KINDS.map((k) => [k, ajv.compile(paramsSchema(k))]),
);

/** Params that break their kind's schema, a model that is not registered, or a path outside the root. */
export function checkParams(
  kind: JobKind,
  params: unknown,
  models: ModelRegistry,
  root: string,
  store?: JobStore,
): void {
  const validate = validators.get(kind)!;
  if (!validate(params)) {
    const why = (validate.errors ?? []).map((e) => `${e.instancePath || '(params)'} ${e.message}`).join('; ');
    throw new InvalidArgumentError('params', params, why);
  }
  const p = params as Record<string, unknown>;
  if (typeof p.model === 'string') models.get(p.model);
  for (const [name, spec] of Object.entries(KINDS[kind].params))
    if (spec.file === true && typeof p[name] === 'string') resolveInside(root, p[name] as string);
  const targets =
    ((p.sparsities as unknown[] | undefined)?.length ?? 0) +
    ((p.patterns as unknown[] | undefined)?.length ?? 0);
  if (kind === 'sae-features' && store !== undefined) {
    const sae = store.get(p.saeJob as number);
    if (sae.kind !== 'sae-train' || sae.state !== 'succeeded')
      throw new InvalidArgumentError(
        'saeJob',
        p.saeJob,
        `job ${sae.id} is a ${sae.state} ${sae.kind} job, not a succeeded sae-train job`,
      );
  }
  if (kind === 'sweep' && targets === 0)
    throw new InvalidArgumentError('params', params, 'a sweep needs sparsities or patterns');
}

/** The pool's planner over this server's models and data root. */
export function planner(models: ModelRegistry, root: string, store: JobStore, jobsDir: string): Planner {
  return (job, dir) => {
    const kind = job.kind;
    const params = { ...(job.params as Record<string, unknown>) };
    checkParams(kind, params, models, root, store);
    // The model by name and files by path, resolved now (they may have moved since the submit).
    if (typeof params.model === 'string') params.model = models.get(params.model).path;
    for (const [name, spec] of Object.entries(KINDS[kind].params))
      if (spec.file === true && typeof params[name] === 'string')
        params[name] = resolveInside(root, params[name] as string);
    if (kind === 'sweep') return { argv: [], sweep: sweepPlan(params, dir) };
    const spec = KINDS[kind];
    const out = spec.out === undefined ? [] : [`--out=${join(dir, spec.out)}`, '--force'];
    const sae = kind === 'sae-features' ? [`--sae=${join(jobsDir, String(params.saeJob), 'sae')}`] : [];
    const label =
      typeof (job.params as { model?: unknown }).model === 'string'
        ? (job.params as { model: string }).model
        : 'tiny-lm';
    return {
      argv: [...spec.command, ...sae, ...flagArgs(kind, params), ...out, '--json'],
      ...(spec.report === true ? { report: { label, dir } } : {}),
    };
  };
}

function sweepPlan(p: Record<string, unknown>, dir: string): SweepPlan {
  const model = typeof p.model === 'string' ? [`--model=${p.model}`] : [];
  const windows = p.maxWindows === undefined ? [] : [`--max-windows=${p.maxWindows}`];
  const calib = p.calibSamples === undefined ? [] : [`--calib-samples=${p.calibSamples}`];
  const targets: [string, string][] = [
    ...((p.sparsities as number[] | undefined) ?? []).map((s): [string, string] => [
      `${+(100 * s).toFixed(2)}%`,
      `--sparsity=${s}`,
    ]),
    ...((p.patterns as string[] | undefined) ?? []).map((t): [string, string] => [t, `--pattern=${t}`]),
  ];
  const points: SweepPlan['points'] = [];
  for (const method of p.methods as string[])
    for (const [label, flag] of targets) {
      const i = points.length;
      const folder = join(dir, 'points', String(i));
      points.push({
        label: `${method} ${label}`,
        prune: [
          'prune',
          ...model,
          `--method=${method}`,
          flag,
          ...calib,
          `--out=${folder}`,
          '--force',
          '--json',
        ],
        eval: ['eval', `--model=${folder}`, ...windows, '--json'],
        evalFile: join(dir, 'points', `${i}.eval.json`),
      });
    }
  return {
    points,
    dense: { eval: ['eval', ...model, ...windows, '--json'], evalFile: join(dir, 'dense.eval.json') },
    reportDir: join(dir, 'report'),
  };
}
