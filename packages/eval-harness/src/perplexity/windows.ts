import { InvalidArgumentError } from '@sparsekit/core';

/**
 * One model call of a perplexity protocol: feed `input`, and score the predictions at input positions
 * `firstScored .. input.length - 1` against `targets` (one target per scored position).
 */
export interface ScoringWindow {
  readonly input: Int32Array;
  /** Index in `input` of the first position whose prediction is scored. */
  readonly firstScored: number;
  /** Token ids predicted at positions firstScored .. input.length - 1, in order. */
  readonly targets: Int32Array;
}

/**
 * The SparseGPT / Wanda protocol (sparsegpt's `opt_eval`, wanda's `eval_ppl_wikitext`): the text is
 * tokenized once, cut into floor(n / length) non-overlapping windows, the remainder dropped; in each
 * window every position but the last predicts the next token (length - 1 scored tokens per window).
 */
export function sparsegptWindows(tokens: ArrayLike<number>, length: number): ScoringWindow[] {
  checkLength(length, 2);
  const windows: ScoringWindow[] = [];
  for (let start = 0; start + length <= tokens.length; start += length) {
    const input = Int32Array.from({ length }, (_, i) => tokens[start + i]!);
    windows.push({ input, firstScored: 0, targets: input.slice(1) });
  }
  return windows;
}

/**
 * lm-evaluation-harness's rolling log-likelihood (`get_rolling_token_windows` with
 * context_len = length - stride + 1, then `make_disjoint_window`): every token of the document is
 * predicted exactly once. The first window starts with `prefixToken` (lm-eval uses the end-of-text
 * token) so the first token is predicted too; each later window predicts the next `stride` tokens
 * and fills the rest of its `length` positions with the tokens before them as context.
 */
export function rollingWindows(
  tokens: ArrayLike<number>,
  length: number,
  stride: number,
  prefixToken: number,
): ScoringWindow[] {
  checkLength(length, 1);
  if (!Number.isInteger(stride) || stride < 1 || stride > length) {
    throw new InvalidArgumentError(
      'stride',
      stride,
      `must be an integer in [1, ${length}] (the window length)`,
    );
  }
  const n = tokens.length;
  const windows: ScoringWindow[] = [];
  if (n === 0) return windows;
  const at = (i: number) => (i < 0 ? prefixToken : tokens[i]!);
  // First window: [prefix, t0 .. t(k-2)] predicts t0 .. t(k-1).
  const first = Math.min(length, n);
  windows.push({
    input: Int32Array.from({ length: first }, (_, i) => at(i - 1)),
    firstScored: 0,
    targets: Int32Array.from({ length: first }, (_, i) => at(i)),
  });
  let predicted = first;
  while (predicted < n) {
    const count = Math.min(n - predicted, stride);
    const end = predicted + count;
    // Input: the `length` tokens before `end` (fewer at the start of the document).
    const start = Math.max(-1, end - 1 - length);
    const inputLength = end - 1 - start;
    windows.push({
      input: Int32Array.from({ length: inputLength }, (_, i) => at(start + i)),
      firstScored: inputLength - count,
      targets: Int32Array.from({ length: count }, (_, i) => at(predicted + i)),
    });
    predicted = end;
  }
  return windows;
}

function checkLength(length: number, min: number): void {
  if (!Number.isInteger(length) || length < min) {
    throw new InvalidArgumentError('maxLength', length, `must be an integer >= ${min}`);
  }
}
