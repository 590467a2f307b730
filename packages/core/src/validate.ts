import { NonFiniteError } from './errors.js';

/** Throw a NonFiniteError at the first NaN or ±Inf in `values`. */
export function assertFinite(values: ArrayLike<number>, what: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) throw new NonFiniteError(what, i, v);
  }
}
