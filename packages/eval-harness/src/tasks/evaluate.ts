// Running tasks on a model: contexts with few-shot examples, the requests of each output type, the
// per-document metrics and their aggregates, written in lm-eval's results JSON shape (results,
// configs, versions, n-shot, higher_is_better, n-samples, config) so its tooling reads them.
import {
  type CausalLM,
  InvalidArgumentError,
  type ProgressOptions,
  Rng,
  reportProgress,
  type Tokenizer,
} from '@sparsekit/core';
import { countWords, scoreWindows } from '../perplexity/perplexity.js';
import { rollingWindows } from '../perplexity/windows.js';
import { HIGHER_IS_BETTER, type TaskConfig, taskMetrics } from './config.js';
import {
  type Aggregate,
  argmax,
  exactMatch,
  meanAggregate,
  perplexityAggregate,
  weightedAggregate,
} from './metrics.js';
import { generateUntil, type LoglikelihoodResult, loglikelihoods } from './requests.js';
import { type Doc, docToChoice, docToTarget, docToText, render } from './template.js';

/** A task with its documents loaded: the evaluated split and the one few-shot examples come from. */
export interface LoadedTask {
  config: TaskConfig;
  docs: Doc[];
  fewshotDocs?: Doc[];
  /** Documents in the evaluated split before any limit (n-samples' "original"). */
  original?: number;
}

export interface EvaluateOptions extends ProgressOptions {
  /** Few-shot examples per document (default: each task's num_fewshot, else 0). */
  numFewshot?: number;
  /** Evaluate the first `limit` documents of each task. */
  limit?: number;
  /** Model calls batch this many requests of one length (default 1). */
  batchSize?: number;
  /** Seed of the few-shot draw (default 1234, lm-eval's). */
  fewshotSeed?: number;
  /** Bootstrap resamples for the perplexity's standard error (default 1000). */
  bootstrapIters?: number;
  /** Results of earlier calls, keyed by (context, continuation); receives the new ones. */
  cache?: Map<string, LoglikelihoodResult>;
  /** What the results' `config.model` says. */
  model?: string;
}

/** Per-document outcome (lm-eval's samples, in brief). */
export interface DocResult {
  doc: number;
  metrics: Record<string, number>;
}

export interface TaskResult {
  task: string;
  metrics: Record<string, Aggregate>;
  samples: DocResult[];
}

/** lm-eval's results file, as far as these tasks fill it. */
export interface LmEvalResults {
  results: Record<string, Record<string, string | number>>;
  group_subtasks: Record<string, string[]>;
  configs: Record<string, TaskConfig>;
  versions: Record<string, number>;
  'n-shot': Record<string, number>;
  higher_is_better: Record<string, Record<string, boolean>>;
  'n-samples': Record<string, { original: number; effective: number }>;
  config: Record<string, unknown>;
  date: number;
  total_evaluation_time_seconds: string;
}

function choicesOf(config: TaskConfig, doc: Doc): string[] | undefined {
  return config.doc_to_choice === undefined ? undefined : docToChoice(config.doc_to_choice, doc);
}

/** The answer text of a document (its target, or the target choice). */
function answerText(config: TaskConfig, doc: Doc): string {
  const choices = choicesOf(config, doc);
  const target = docToTarget(config.doc_to_target, doc, choices !== undefined);
  if (typeof target === 'number') {
    if (choices === undefined || target < 0 || target >= choices.length)
      throw new InvalidArgumentError('doc_to_target', target, `is not a choice index of task ${config.task}`);
    return choices[target]!;
  }
  return target;
}

/** Few-shot examples for document `i` (seeded draw, or the first n), never the document itself. */
function shots(task: LoadedTask, i: number, n: number, rng: Rng): Doc[] {
  if (n === 0) return [];
  const pool = task.fewshotDocs ?? [];
  const doc = task.docs[i];
  const candidates = pool.filter((d) => d !== doc);
  if (candidates.length < n)
    throw new InvalidArgumentError(
      'numFewshot',
      n,
      `task ${task.config.task} has ${candidates.length} few-shot documents to draw from`,
    );
  if (task.config.fewshot_config?.sampler === 'first_n') return candidates.slice(0, n);
  return Array.from(rng.sample(candidates.length, n), (k) => candidates[k]!);
}

/** The full context of document `i`: description, few-shot examples, the document's text. */
export function contextOf(task: LoadedTask, i: number, n: number, rng: Rng): string {
  const c = task.config;
  const targetDelimiter = c.target_delimiter ?? ' ';
  const fewshotDelimiter = c.fewshot_delimiter ?? '\n\n';
  const description = c.description === undefined ? '' : render(c.description, task.docs[i]!, 'description');
  const examples = shots(task, i, n, rng)
    .map((d) => `${docToText(c.doc_to_text, d)}${targetDelimiter}${answerText(c, d)}${fewshotDelimiter}`)
    .join('');
  return `${description}${examples}${docToText(c.doc_to_text, task.docs[i]!)}`;
}

const bytesOf = (s: string) => new TextEncoder().encode(s).length;

/** Run one task; per-document metric values and their aggregates. */
export async function evaluateTask(
  model: CausalLM,
  tokenizer: Tokenizer,
  task: LoadedTask,
  options: EvaluateOptions = {},
): Promise<TaskResult> {
  const c = task.config;
  const docs = options.limit === undefined ? task.docs : task.docs.slice(0, options.limit);
  if (docs.length === 0) throw new InvalidArgumentError('task', c.task, 'has no documents to evaluate');
  const view: LoadedTask = { ...task, docs };
  const n = options.numFewshot ?? c.num_fewshot ?? 0;
  const rng = new Rng(options.fewshotSeed ?? 1234);
  const metrics = taskMetrics(c);
  const wanted = new Set(metrics.map((m) => m.metric));
  const progress = (current: number) =>
    reportProgress(options, { stage: c.task, current, total: docs.length, unit: 'document' });
  const samples: DocResult[] = [];
  const callOptions = {
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    ...(options.cache === undefined ? {} : { cache: options.cache }),
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  };
  if (c.output_type === 'multiple_choice' || c.output_type === 'loglikelihood') {
    const delimiter = c.target_delimiter ?? ' ';
    const pairs: [string, string][] = [];
    const plan = docs.map((doc, i) => {
      const context = contextOf(view, i, n, rng);
      if (c.output_type === 'loglikelihood') {
        const target = docToTarget(c.doc_to_target, doc, false);
        pairs.push([context, String(target)]);
        return { first: pairs.length - 1, choices: [] as string[], gold: -1 };
      }
      const choices = choicesOf(c, doc)!;
      const first = pairs.length;
      for (const choice of choices) pairs.push([context, `${delimiter}${choice}`]);
      const target = docToTarget(c.doc_to_target, doc, true);
      const gold =
        typeof target === 'number' ? (target < choices.length ? target : -100) : choices.indexOf(target);
      return { first, choices, gold };
    });
    const results = await loglikelihoods(model, tokenizer, pairs, callOptions);
    plan.forEach((p, i) => {
      const m: Record<string, number> = {};
      if (c.output_type === 'loglikelihood') {
        const r = results[p.first]!;
        if (wanted.has('acc')) m.acc = r.isGreedy ? 1 : 0;
        if (wanted.has('perplexity')) m.perplexity = r.loglikelihood;
      } else {
        const lls = p.choices.map((_, k) => results[p.first + k]!.loglikelihood);
        if (wanted.has('acc')) m.acc = argmax(lls) === p.gold ? 1 : 0;
        // acc_norm divides by the choice's length in characters (lm-eval's len(choice)); acc_bytes by bytes.
        if (wanted.has('acc_norm'))
          m.acc_norm = argmax(lls.map((l, k) => l / [...p.choices[k]!].length)) === p.gold ? 1 : 0;
        if (wanted.has('acc_bytes'))
          m.acc_bytes = argmax(lls.map((l, k) => l / bytesOf(p.choices[k]!))) === p.gold ? 1 : 0;
      }
      samples.push({ doc: i, metrics: m });
    });
    progress(docs.length);
  } else if (c.output_type === 'loglikelihood_rolling') {
    const prefix = tokenizer.eosTokenId ?? tokenizer.bosTokenId;
    if (prefix === undefined)
      throw new InvalidArgumentError(
        'tokenizer',
        'no eos or bos',
        'the rolling log-likelihood needs a token to start from',
      );
    // Every document's windows in one call, so windows of equal length batch across documents.
    const texts = docs.map((doc) => String(docToTarget(c.doc_to_target, doc, false)));
    const owner: number[] = [];
    const windows = texts.flatMap((text, i) => {
      const own = rollingWindows(
        tokenizer.encode(text),
        model.maxSequenceLength,
        model.maxSequenceLength,
        prefix,
      );
      for (const _ of own) owner.push(i);
      return own;
    });
    const { windowNll } = await scoreWindows(model, windows, callOptions);
    const nll = new Float64Array(docs.length);
    windowNll.forEach((v, w) => {
      nll[owner[w]!]! += v;
    });
    texts.forEach((text, i) => {
      samples.push({
        doc: i,
        metrics: { loglikelihood: -nll[i]!, words: countWords(text), bytes: bytesOf(text) },
      });
    });
    progress(docs.length);
  } else {
    const gen = c.generation_kwargs ?? {};
    const until =
      gen.until === undefined ? [c.fewshot_delimiter ?? '\n\n'] : ([] as string[]).concat(gen.until);
    const maxTokens = gen.max_gen_toks ?? 256;
    const spec = metrics.find((m) => m.metric === 'exact_match') ?? { metric: 'exact_match' };
    for (const [i, doc] of docs.entries()) {
      const output = await generateUntil(model, tokenizer, contextOf(view, i, n, rng), until, maxTokens);
      samples.push({ doc: i, metrics: { exact_match: exactMatch(output, [answerText(c, doc)], spec) } });
      progress(i + 1);
    }
  }
  const aggregates: Record<string, Aggregate> = {};
  const values = (name: string) => samples.map((s) => s.metrics[name]!);
  for (const { metric } of metrics) {
    if (metric === 'perplexity')
      aggregates[metric] = perplexityAggregate(values('perplexity'), options.bootstrapIters ?? 1000);
    else if (metric === 'word_perplexity' || metric === 'byte_perplexity' || metric === 'bits_per_byte')
      aggregates[metric] = weightedAggregate(
        metric,
        samples.map((s) => ({
          loglikelihood: s.metrics.loglikelihood!,
          words: s.metrics.words!,
          bytes: s.metrics.bytes!,
        })),
      );
    else aggregates[metric] = meanAggregate(values(metric));
  }
  return { task: c.task, metrics: aggregates, samples };
}

/** Run every task and collect lm-eval's results JSON. */
export async function evaluateTasks(
  model: CausalLM,
  tokenizer: Tokenizer,
  tasks: readonly LoadedTask[],
  options: EvaluateOptions = {},
): Promise<LmEvalResults & { taskResults: TaskResult[] }> {
  const start = performance.now();
  const names = tasks.map((t) => t.config.task);
  if (new Set(names).size !== names.length)
    throw new InvalidArgumentError('tasks', names.join(', '), 'name a task more than once');
  const cache = options.cache ?? new Map<string, LoglikelihoodResult>();
  const taskResults: TaskResult[] = [];
  for (const task of tasks)
    taskResults.push(await evaluateTask(model, tokenizer, task, { ...options, cache }));
  const sorted = [...tasks].sort((a, b) => a.config.task.localeCompare(b.config.task));
  const results: LmEvalResults['results'] = {};
  for (const r of taskResults) {
    const task = tasks.find((t) => t.config.task === r.task)!;
    const entry: Record<string, string | number> = { alias: task.config.task_alias ?? r.task };
    for (const [metric, a] of Object.entries(r.metrics)) {
      entry[`${metric},none`] = a.value;
      entry[`${metric}_stderr,none`] = a.stderr;
    }
    results[r.task] = entry;
  }
  return {
    results,
    group_subtasks: {},
    configs: Object.fromEntries(sorted.map((t) => [t.config.task, t.config])),
    versions: Object.fromEntries(sorted.map((t) => [t.config.task, t.config.metadata?.version ?? 1.0])),
    'n-shot': Object.fromEntries(
      sorted.map((t) => [t.config.task, options.numFewshot ?? t.config.num_fewshot ?? 0]),
    ),
    higher_is_better: Object.fromEntries(
      sorted.map((t) => [
        t.config.task,
        Object.fromEntries(
          taskMetrics(t.config).map((m) => [
            m.metric,
            m.higher_is_better ?? HIGHER_IS_BETTER[m.metric] ?? true,
          ]),
        ),
      ]),
    ),
    'n-samples': Object.fromEntries(
      sorted.map((t) => [
        t.config.task,
        {
          original: t.original ?? t.docs.length,
          effective: options.limit === undefined ? t.docs.length : Math.min(options.limit, t.docs.length),
        },
      ]),
    ),
    config: {
      model: options.model ?? 'sparsekit',
      batch_size: options.batchSize ?? 1,
      limit: options.limit ?? null,
      bootstrap_iters: options.bootstrapIters ?? 1000,
      fewshot_seed: options.fewshotSeed ?? 1234,
      harness: '@sparsekit/eval-harness',
    },
    date: Date.now() / 1000,
    total_evaluation_time_seconds: String((performance.now() - start) / 1000),
    taskResults,
  };
}
