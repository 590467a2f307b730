import 'vitest';
import type { AllcloseOptions } from './allclose.js';

interface AllcloseMatchers<R = unknown> {
  /** numpy.allclose: |actual - expected| <= atol + rtol * |expected| elementwise. */
  toAllClose(expected: ArrayLike<number>, options?: AllcloseOptions): R;
}

declare module 'vitest' {
  // biome-ignore lint/suspicious/noExplicitAny: mirrors vitest's own declaration
  interface Matchers<T = any> extends AllcloseMatchers<T> {}
}
