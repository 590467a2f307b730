import { defineConfig } from 'vitest/config';

/**
 * The shared vitest setup: tests beside the code, the allclose matcher, and a JSON report per package
 * (`test-results.json`) that the root summary adds up. Plain JavaScript: vitest loads configs with Node.
 */
export function packageVitestConfig() {
  return defineConfig({
    test: {
      include: ['src/**/*.test.ts'],
      setupFiles: ['@sparsekit/test-utils/setup'],
      reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
      testTimeout: 30_000,
    },
  });
}
