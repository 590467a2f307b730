import { InvalidArgumentError } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { rollingWindows, sparsegptWindows } from './windows.js';

const plain = (ws: ReturnType<typeof rollingWindows>) =>
  ws.map((w) => ({ input: [...w.input], firstScored: w.firstScored, targets: [...w.targets] }));

describe('rollingWindows', () => {
  it("matches lm-eval's get_rolling_token_windows + make_disjoint_window (34 tokens, length 10)", () => {
    const tokens = Array.from({ length: 34 }, (_, i) => i);
    const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
    expect(plain(rollingWindows(tokens, 10, 10, -100))).toEqual([
      { input: [-100, ...range(0, 9)], firstScored: 0, targets: range(0, 10) },
      { input: range(9, 19), firstScored: 0, targets: range(10, 20) },
      { input: range(19, 29), firstScored: 0, targets: range(20, 30) },
      { input: range(23, 33), firstScored: 6, targets: range(30, 34) },
    ]);
  });

  it('predicts every token exactly once, for any stride, and never exceeds the length', () => {
    for (const n of [1, 5, 17, 40]) {
      for (const stride of [1, 3, 8]) {
        const tokens = Array.from({ length: n }, (_, i) => i + 1);
        const windows = rollingWindows(tokens, 8, stride, 0);
        const predicted = windows.flatMap((w) => [...w.targets]);
        expect(predicted).toEqual(tokens);
        for (const w of windows) {
          expect(w.input.length).toBeLessThanOrEqual(8);
          // the prediction at position p is for the token after input[p]
          for (let t = 0; t < w.targets.length; t++) {
            const p = w.firstScored + t;
            const next = p + 1 < w.input.length ? w.input[p + 1] : w.targets[w.targets.length - 1];
            expect(w.targets[t]).toBe(next);
          }
        }
      }
    }
  });

  it('rejects a bad stride or length', () => {
    expect(() => rollingWindows([1, 2], 4, 5, 0)).toThrow(InvalidArgumentError);
    expect(() => rollingWindows([1, 2], 0, 1, 0)).toThrow(InvalidArgumentError);
    expect(rollingWindows([], 4, 4, 0)).toEqual([]);
  });
});

describe('sparsegptWindows', () => {
  it('cuts non-overlapping windows, drops the remainder, scores length - 1 tokens each', () => {
    const windows = sparsegptWindows([1, 2, 3, 4, 5, 6, 7], 3);
    expect(windows.map((w) => [...w.input])).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(windows.map((w) => [...w.targets])).toEqual([
      [2, 3],
      [5, 6],
    ]);
    expect(() => sparsegptWindows([1, 2], 1)).toThrow(InvalidArgumentError);
  });
});
