import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hooks } from '@sparsekit/core';
import { calibrationWindows } from '@sparsekit/eval-harness';
import { generate } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import { applyThresholds } from './apply.js';
import { calibrateActivations } from './calibrate.js';
import { siriusGenerate } from './sirius.js';
import { tealThresholds } from './thresholds.js';

describe('Sirius correction', () => {
  it('threshold 1 gives the full model greedy tokens; threshold 0 keeps the draft; AAL counts advances', async () => {
    const { model, tokenizer } = await loadHfModel(tinyLmPath());
    const text = readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8').slice(0, 20_000);
    const ids = tokenizer!.encode(text);
    const batches = calibrationWindows(ids, { samples: 4, seqLen: 64, seed: 2 });
    const sparse = new Hooks();
    applyThresholds(sparse, tealThresholds(await calibrateActivations(model, batches), 0.6));
    const prompt = ids.slice(100, 116);
    const full = generate(model, prompt, { maxNewTokens: 24, stopTokens: [] }).tokens;
    const strict = siriusGenerate(model, prompt, { sparse, maxNewTokens: 24, kernelSize: 8, threshold: 1 });
    expect(strict.tokens).toEqual(full);
    expect(strict.averageAdvance).toBe(1); // every check rejects its first token and corrects it
    const lax = siriusGenerate(model, prompt, { sparse, maxNewTokens: 24, kernelSize: 8, threshold: 0 });
    expect(lax.corrections).toBe(0);
    expect(lax.advances).toEqual([8, 8, 8]);
    const usual = siriusGenerate(model, prompt, { sparse, maxNewTokens: 24, kernelSize: 8 });
    expect(usual.tokens).toHaveLength(24);
    expect(usual.averageAdvance).toBeGreaterThan(1);
    expect(usual.averageAdvance).toBeLessThanOrEqual(8);
    expect(usual.advances.reduce((a, b) => a + b, 0)).toBe(24);
    expect(() => siriusGenerate(model, [], { sparse, maxNewTokens: 4 })).toThrow(/at least one token/);
    expect(() => siriusGenerate(model, prompt, { sparse, maxNewTokens: 4, kernelSize: 0 })).toThrow(
      /kernelSize/,
    );
  });
});
