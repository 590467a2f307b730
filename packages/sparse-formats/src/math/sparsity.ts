// Sparsity counted from the data: what every method reports, whatever it was asked for.

/** Fraction of exact zeros of `values` (0 for an empty array). */
export function measuredSparsity(values: ArrayLike<number>): number {
  let zeros = 0;
  for (let i = 0; i < values.length; i++) if (values[i] === 0) zeros++;
  return values.length === 0 ? 0 : zeros / values.length;
}
