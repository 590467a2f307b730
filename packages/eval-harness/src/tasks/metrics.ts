// lm-eval's metrics and their aggregation: per-document values, means with the standard error of the
// mean, perplexities, and weighted ratios for the rolling metrics.
import { Rng } from '@sparsekit/core';
import type { MetricSpec } from './config.js';

/** Index of the largest value (the first on ties, as numpy's argmax). */
export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Sample standard deviation (n - 1), as lm-eval's `sample_stddev`. */
export function sampleStddev(xs: readonly number[]): number {
  const n = xs.length;
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  return Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
}

/** lm-eval's `mean_stderr`: sample standard deviation / sqrt(n). */
export function meanStderr(xs: readonly number[]): number {
  return sampleStddev(xs) / Math.sqrt(xs.length);
}

/** Standard error of `statistic` by bootstrap resampling (`iters` resamples, seeded). */
export function bootstrapStderr(
  xs: readonly number[],
  statistic: (sample: number[]) => number,
  iters: number,
  seed = 0,
): number {
  const rng = new Rng(seed);
  const stats: number[] = [];
  const sample = new Array<number>(xs.length);
  for (let i = 0; i < iters; i++) {
    for (let j = 0; j < xs.length; j++) sample[j] = xs[rng.int(xs.length)]!;
    stats.push(statistic(sample));
  }
  return sampleStddev(stats);
}

const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

/** lm-eval's exact_match (hf-evaluate's): regexes removed, then case, punctuation and digits if asked. */
export function exactMatch(
  prediction: string,
  references: readonly string[],
  spec: MetricSpec = { metric: 'exact_match' },
): number {
  const normal = (s: string) => {
    let out = s;
    for (const r of spec.regexes_to_ignore ?? []) out = out.replace(new RegExp(r, 'g'), '');
    if (spec.ignore_case === true) out = out.toLowerCase();
    if (spec.ignore_punctuation === true) out = out.replace(PUNCTUATION, '');
    if (spec.ignore_numbers === true) out = out.replace(/[0-9]/g, '');
    return out;
  };
  const p = normal(prediction);
  return references.some((r) => normal(r) === p) ? 1 : 0;
}

/** One task's aggregate of a metric: the value and its standard error ('N/A' where lm-eval gives none). */
export interface Aggregate {
  value: number;
  stderr: number | 'N/A';
}

/** The mean of per-document values, with lm-eval's mean_stderr. */
export function meanAggregate(xs: readonly number[]): Aggregate {
  const value = xs.reduce((s, x) => s + x, 0) / xs.length;
  return { value, stderr: xs.length > 1 ? meanStderr(xs) : 'N/A' };
}

/** exp(-mean log-likelihood), with a bootstrap standard error (lm-eval bootstraps it too). */
export function perplexityAggregate(lls: readonly number[], bootstrapIters: number): Aggregate {
  const stat = (xs: readonly number[]) => Math.exp(-xs.reduce((s, x) => s + x, 0) / xs.length);
  return {
    value: stat(lls),
    stderr: lls.length > 1 && bootstrapIters > 0 ? bootstrapStderr(lls, stat, bootstrapIters) : 'N/A',
  };
}

/** Rolling metrics: sums of log-likelihoods over sums of words or bytes (no standard error, as lm-eval). */
export function weightedAggregate(
  metric: 'word_perplexity' | 'byte_perplexity' | 'bits_per_byte',
  items: readonly { loglikelihood: number; words: number; bytes: number }[],
): Aggregate {
  const ll = items.reduce((s, i) => s + i.loglikelihood, 0);
  const words = items.reduce((s, i) => s + i.words, 0);
  const bytes = items.reduce((s, i) => s + i.bytes, 0);
  const value =
    metric === 'word_perplexity'
      ? Math.exp(-ll / words)
      : metric === 'byte_perplexity'
        ? Math.exp(-ll / bytes)
        : -ll / bytes / Math.LN2;
  return { value, stderr: 'N/A' };
}
