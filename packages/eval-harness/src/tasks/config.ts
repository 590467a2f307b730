// Task configs in lm-evaluation-harness's format (YAML or JSON), the features this harness runs:
// output types loglikelihood, multiple_choice, generate_until and loglikelihood_rolling; doc_to_text
// / doc_to_target / doc_to_choice as feature names, Jinja templates or literals; few-shot examples;
// metric lists. Anything that would change results and is not implemented (Python process_docs,
// filters, repeats) is refused with a typed error, never silently ignored.
import { InvalidFormatError } from '@sparsekit/core';
import { parse as parseYaml, type Tags } from 'yaml';

export const OUTPUT_TYPES = [
  'loglikelihood',
  'multiple_choice',
  'generate_until',
  'loglikelihood_rolling',
] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

/** The metrics each output type can report, and lm-eval's defaults. */
export const METRICS: Record<OutputType, { allowed: readonly string[]; defaults: readonly string[] }> = {
  loglikelihood: { allowed: ['acc', 'perplexity'], defaults: ['perplexity', 'acc'] },
  multiple_choice: { allowed: ['acc', 'acc_norm', 'acc_bytes'], defaults: ['acc', 'acc_norm'] },
  generate_until: { allowed: ['exact_match'], defaults: ['exact_match'] },
  loglikelihood_rolling: {
    allowed: ['word_perplexity', 'byte_perplexity', 'bits_per_byte'],
    defaults: ['word_perplexity', 'byte_perplexity', 'bits_per_byte'],
  },
};

/** Whether a higher value of the metric is better (lm-eval's registry). */
export const HIGHER_IS_BETTER: Record<string, boolean> = {
  acc: true,
  acc_norm: true,
  acc_bytes: true,
  exact_match: true,
  perplexity: false,
  word_perplexity: false,
  byte_perplexity: false,
  bits_per_byte: false,
};

export interface MetricSpec {
  metric: string;
  aggregation?: string;
  higher_is_better?: boolean;
  /** exact_match options. */
  ignore_case?: boolean;
  ignore_punctuation?: boolean;
  ignore_numbers?: boolean;
  regexes_to_ignore?: string[];
}

export interface TaskConfig {
  task: string;
  tag?: string | string[];
  task_alias?: string;
  dataset_path?: string;
  dataset_name?: string | null;
  /** `{ data_files: path | { split: path } }`: lm-eval's way (through `datasets`) to name local files. */
  dataset_kwargs?: { data_files?: string | Record<string, string | string[]> };
  training_split?: string | null;
  validation_split?: string | null;
  test_split?: string | null;
  fewshot_split?: string | null;
  output_type: OutputType;
  description?: string;
  doc_to_text?: string | number;
  doc_to_target?: string | number | unknown[];
  doc_to_choice?: string | unknown[] | Record<string, unknown>;
  target_delimiter?: string;
  fewshot_delimiter?: string;
  num_fewshot?: number;
  fewshot_config?: { sampler?: 'default' | 'first_n'; split?: string };
  generation_kwargs?: {
    until?: string | string[];
    max_gen_toks?: number;
    do_sample?: boolean;
    temperature?: number;
  };
  metric_list?: MetricSpec[];
  metadata?: { version?: number; [key: string]: unknown };
  should_decontaminate?: boolean;
  doc_to_decontamination_query?: string;
}

/** Keys read and honoured; those in IGNORED change nothing this harness computes. */
const KNOWN = new Set<string>([
  'task',
  'tag',
  'task_alias',
  'dataset_path',
  'dataset_name',
  'dataset_kwargs',
  'training_split',
  'validation_split',
  'test_split',
  'fewshot_split',
  'output_type',
  'description',
  'doc_to_text',
  'doc_to_target',
  'doc_to_choice',
  'target_delimiter',
  'fewshot_delimiter',
  'num_fewshot',
  'fewshot_config',
  'generation_kwargs',
  'metric_list',
  'metadata',
  'should_decontaminate',
  'doc_to_decontamination_query',
  'include',
]);
const REFUSED: Record<string, string> = {
  process_docs: 'is Python code run on the dataset; give the processed documents in the data file instead',
  process_results: 'is Python code; use the output types and metrics of this harness',
  filter_list: 'answer-extraction filters are not implemented',
  repeats: 'repeated sampling is not implemented',
  use_prompt: 'promptsource prompts are not implemented',
  doc_to_image: 'multimodal tasks are not implemented',
  doc_to_audio: 'multimodal tasks are not implemented',
  class: 'Python task classes are not run',
};

const fail = (task: string, why: string): never => {
  throw new InvalidFormatError('task config', `${task}: ${why}`);
};

/** `!function module.name` (lm-eval's Python hook tag) parsed as a marker, refused by validation. */
const TAGS: Tags = [
  {
    tag: '!function',
    resolve: (value: string) => ({ __function: value }),
  },
];

/** Parse one YAML or JSON task file's text (its `include`, if any, is left for the caller). */
export function parseTaskText(text: string, where = 'task config'): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseYaml(text, { customTags: TAGS, maxAliasCount: 100, uniqueKeys: true });
  } catch (error) {
    throw new InvalidFormatError('task config', `${where}: ${(error as Error).message.split('\n')[0]}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new InvalidFormatError('task config', `${where}: must be a mapping of task fields`);
  return value as Record<string, unknown>;
}

/** Check a task config (after includes are merged) and give it its defaults. */
export function validateTaskConfig(raw: Record<string, unknown>): TaskConfig {
  const task =
    typeof raw.task === 'string' && raw.task.trim() !== ''
      ? raw.task
      : fail('task config', 'needs a task name');
  for (const key of Object.keys(raw)) {
    if (key in REFUSED) fail(task, `${key} ${REFUSED[key]}`);
    if (!KNOWN.has(key)) fail(task, `unknown field ${key}`);
  }
  const output = raw.output_type ?? 'generate_until';
  if (!(OUTPUT_TYPES as readonly unknown[]).includes(output))
    fail(task, `output_type must be one of ${OUTPUT_TYPES.join(', ')}`);
  const type = output as OutputType;
  if (type === 'multiple_choice' && raw.doc_to_choice === undefined)
    fail(task, 'multiple_choice needs doc_to_choice');
  if (type !== 'loglikelihood_rolling' && raw.doc_to_text === undefined)
    fail(task, `${type} needs doc_to_text`);
  if (raw.doc_to_target === undefined) fail(task, 'needs doc_to_target');
  if (
    raw.num_fewshot !== undefined &&
    !(Number.isInteger(raw.num_fewshot) && (raw.num_fewshot as number) >= 0)
  )
    fail(task, 'num_fewshot must be a non-negative integer');
  const sampler = (raw.fewshot_config as { sampler?: unknown } | undefined)?.sampler;
  if (sampler !== undefined && sampler !== 'default' && sampler !== 'first_n')
    fail(task, "fewshot_config.sampler must be 'default' or 'first_n'");
  for (const m of (raw.metric_list as MetricSpec[] | undefined) ?? []) {
    if (typeof m?.metric !== 'string') fail(task, 'every metric_list entry needs a metric name');
    if (!METRICS[type].allowed.includes(m.metric))
      fail(task, `metric ${m.metric} is not one of ${METRICS[type].allowed.join(', ')} for ${type}`);
    if (m.regexes_to_ignore !== undefined) for (const r of m.regexes_to_ignore) new RegExp(r);
  }
  const gen = raw.generation_kwargs as TaskConfig['generation_kwargs'];
  if (gen?.do_sample === true || (gen?.temperature ?? 0) > 0)
    fail(task, 'generation here is greedy; sampling (do_sample, temperature > 0) is not implemented');
  return raw as unknown as TaskConfig;
}

/** The metric list of a task: its own, or the output type's defaults. */
export function taskMetrics(config: TaskConfig): MetricSpec[] {
  return config.metric_list ?? METRICS[config.output_type].defaults.map((metric) => ({ metric }));
}

/** The split evaluated (test, else validation, as lm-eval), and the one few-shot examples come from. */
export function taskSplits(config: TaskConfig): { eval: string; fewshot: string | undefined } {
  const evalSplit = config.test_split ?? config.validation_split;
  if (evalSplit == null) fail(config.task, 'needs a test_split or validation_split to evaluate');
  const fewshot =
    config.fewshot_config?.split ??
    config.fewshot_split ??
    config.training_split ??
    config.validation_split ??
    config.test_split;
  return { eval: evalSplit!, fewshot: fewshot ?? undefined };
}
