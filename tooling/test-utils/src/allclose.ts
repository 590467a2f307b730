export interface AllcloseOptions {
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  /** Relative tolerance (default 1e-5). */
  rtol?: number;
  /** Treat NaN == NaN as equal (default true). */
  equalNaN?: boolean;
}

export interface AllcloseReport {
  pass: boolean;
  /** First index that failed, or -1. */
  index: number;
  maxAbsError: number;
  message: string;
}

/**
 * numpy.allclose semantics: |actual - expected| <= atol + rtol * |expected|, elementwise, and equal lengths.
 */
export function allclose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-5, equalNaN = true }: AllcloseOptions = {},
): AllcloseReport {
  if (actual.length !== expected.length) {
    return {
      pass: false,
      index: -1,
      maxAbsError: Number.POSITIVE_INFINITY,
      message: `length ${actual.length} != expected length ${expected.length}`,
    };
  }
  let first = -1;
  let maxAbsError = 0;
  let failures = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a) || Number.isNaN(e)) {
      if (equalNaN && Number.isNaN(a) && Number.isNaN(e)) continue;
      failures++;
      if (first < 0) first = i;
      continue;
    }
    if (a === e) continue;
    const err = Math.abs(a - e);
    if (err > maxAbsError) maxAbsError = err;
    if (!(err <= atol + rtol * Math.abs(e))) {
      failures++;
      if (first < 0) first = i;
    }
  }
  const pass = failures === 0;
  return {
    pass,
    index: first,
    maxAbsError,
    message: pass
      ? `all ${actual.length} values close (max abs error ${maxAbsError.toExponential(2)})`
      : `${failures} of ${actual.length} values differ beyond atol=${atol}, rtol=${rtol}; first at ${first}: ` +
        `${actual[first]} vs expected ${expected[first]} (max abs error ${maxAbsError.toExponential(2)})`,
  };
}
