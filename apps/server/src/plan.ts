// From a job's params to what a worker runs: checks at submit time (the kind's schema, the model
// name, file paths inside the data root) and the `sparsekit` command line (or a sweep's plan) with
// the model and files resolved. Local workers plan when they take a job (so a model that moved since
// the submit is found again); with Redis the plan is made at submit time and travels with the job,
// so workers on other machines need only the shared folder.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '@sparsekit/core';
import { Ajv, type ValidateFunction } from 'ajv';
import { flagArgs, KINDS, paramsSchema } from './kinds.js';
import type { ModelRegistry } from './models.js';
import { resolveInside } from './paths.js';
import type { RunPlan, SweepPlan } from './protocol.js';
import { JOB_KINDS, type JobKind } from './store.js';

const ajv = new Ajv({ allErrors: true, strict: true });
const validators = new Map<JobKind, ValidateFunction>(
  JOB_KINDS.map((k) => [k, ajv.compile(paramsSchema(k))]),
);

export class Plans {
  constructor(
    private readonly models: ModelRegistry,
    /** Files and folders clients name lie below it. */
    private readonly root: string,
    /** Each job's folder is DIR/<id>. */
    readonly jobsDir: string,
  ) {}

  /** Params that break their kind's schema, a model that is not registered, or a path outside the root. */
  check(kind: JobKind, params: unknown): void {
    const validate = validators.get(kind)!;
    if (!validate(params)) {
      const why = (validate.errors ?? [])
        .map((e) => `${e.instancePath || '(params)'} ${e.message}`)
        .join('; ');
      throw new InvalidArgumentError('params', params, why);
    }
    const p = params as Record<string, unknown>;
    if (typeof p.model === 'string') this.models.get(p.model);
    for (const [name, spec] of Object.entries(KINDS[kind].params))
      if (spec.file === true && typeof p[name] === 'string') resolveInside(this.root, p[name] as string);
    if (kind === 'sae-features' && !existsSync(join(this.saeDir(p.saeJob), 'cfg.json')))
      throw new InvalidArgumentError(
        'saeJob',
        p.saeJob,
        'must be a succeeded sae-train job (its SAE folder is not there)',
      );
    const targets =
      ((p.sparsities as unknown[] | undefined)?.length ?? 0) +
      ((p.patterns as unknown[] | undefined)?.length ?? 0);
    if (kind === 'sweep' && targets === 0)
      throw new InvalidArgumentError('params', params, 'a sweep needs sparsities or patterns');
  }

  /** What a worker runs for this job, checked again and with the model and files resolved now. */
  plan(kind: JobKind, rawParams: unknown, id: number | string): RunPlan {
    this.check(kind, rawParams);
    const dir = join(this.jobsDir, String(id));
    const params = { ...(rawParams as Record<string, unknown>) };
    if (typeof params.model === 'string') params.model = this.models.get(params.model).path;
    for (const [name, spec] of Object.entries(KINDS[kind].params))
      if (spec.file === true && typeof params[name] === 'string')
        params[name] = resolveInside(this.root, params[name] as string);
    if (kind === 'sweep') return { dir, argv: [], sweep: sweepPlan(params, dir) };
    const spec = KINDS[kind];
    const out = spec.out === undefined ? [] : [`--out=${join(dir, spec.out)}`, '--force'];
    const sae = kind === 'sae-features' ? [`--sae=${this.saeDir(params.saeJob)}`] : [];
    const model = (rawParams as { model?: unknown }).model;
    return {
      dir,
      argv: [...spec.command, ...sae, ...flagArgs(kind, params), ...out, '--json'],
      ...(spec.report === true
        ? { report: { label: typeof model === 'string' ? model : 'tiny-lm', dir } }
        : {}),
    };
  }

  private saeDir(job: unknown): string {
    return join(this.jobsDir, String(job), KINDS['sae-train'].out!);
  }
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
