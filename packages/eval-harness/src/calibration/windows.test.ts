import { Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { calibrationWindows } from './windows.js';

const text = Array.from({ length: 1000 }, (_, i) => i);

describe('calibrationWindows', () => {
  it('random windows: seeded starts in [0, n - seqLen), as the references draw them', () => {
    const windows = calibrationWindows(text, { samples: 5, seqLen: 16, seed: 3 });
    const rng = new Rng(3);
    for (const w of windows) {
      const start = rng.int(1000 - 16);
      expect(w.shape).toEqual([1, 16]);
      expect(Array.from(w.data)).toEqual(text.slice(start, start + 16));
    }
    expect(calibrationWindows(text, { samples: 5, seqLen: 16, seed: 3 })).toEqual(windows);
  });

  it('consecutive windows with a prefix token: as many as fit, none overlapping', () => {
    const windows = calibrationWindows(text, { samples: 100, seqLen: 128, mode: 'consecutive', prefix: [7] });
    expect(windows.length).toBe(Math.floor(1000 / 127));
    expect(Array.from(windows[1]!.data)).toEqual([7, ...text.slice(127, 254)]);
  });

  it('warns when random windows must overlap, and refuses impossible requests', () => {
    const warnings: string[] = [];
    calibrationWindows(text, { samples: 100, seqLen: 64, onWarning: (w) => warnings.push(w) });
    expect(warnings[0]).toMatch(/1000 tokens, so 100 windows of 64 \(6400 tokens\) overlap/);
    expect(() => calibrationWindows(text.slice(0, 10), { seqLen: 16 })).toThrow(/shorter than one window/);
    expect(() => calibrationWindows(text, { samples: 0 })).toThrow(/samples/);
    expect(() => calibrationWindows(text, { samples: 1e9 })).toThrow(/samples/);
    expect(() => calibrationWindows(text, { seqLen: 1 })).toThrow(/seqLen/);
  });
});
