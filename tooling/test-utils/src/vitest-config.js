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
      // A guard against hangs, not a speed target: `pnpm check` runs every package's tests at once on
      // as few as 2 cores, where a test that takes 5 s alone has taken 30.
      testTimeout: 120_000,
    },
  });
}
