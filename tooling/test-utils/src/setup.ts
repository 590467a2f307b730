import { expect } from 'vitest';
import { type AllcloseOptions, allclose } from './allclose.js';

import type {} from './vitest.js';

expect.extend({
  toAllClose(received: ArrayLike<number>, expected: ArrayLike<number>, options?: AllcloseOptions) {
    const report = allclose(received, expected, options);
    return { pass: report.pass, message: () => report.message };
  },
});
