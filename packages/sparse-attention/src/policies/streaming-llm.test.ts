import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { fixturePath } from '@sparsekit/test-utils';
import { describe, expect, it } from 'vitest';
import { andMasks, causal, orMasks, sinks, slidingWindow } from '../mask-mods.js';
import { LaneDriver, randomArray } from './lanes.test-util.js';
import { streamingLlm } from './streaming-llm.js';

const fixture = JSON.parse(readFileSync(fixturePath(import.meta.url, 'reference-seed5.json'), 'utf8')) as {
  streaming: { T: number; sinks: number; window: number; mask: number[][] };
};

describe('StreamingLLM', () => {
  it('matches the reference case: each of 12 decode steps reads exactly its visible row', () => {
    const { T, sinks: n, window, mask } = fixture.streaming;
    const policy = streamingLlm({ sinks: n, recent: window });
    const rng = new Rng(2);
    const dim = 4;
    const driver = new LaneDriver(dim, T);
    const mod = andMasks(causal(), orMasks(sinks(n), slidingWindow(window)));
    for (let i = 0; i < T; i++) {
      const { positions } = driver.step(
        policy,
        randomArray(rng, dim),
        randomArray(rng, dim),
        randomArray(rng, dim),
        1,
      );
      const visible = mask[i]!.flatMap((v, j) => (v === 1 ? [j] : []));
      expect(Array.from(positions), `step ${i}`).toEqual(visible);
      expect(
        Array.from({ length: T }, (_, j) => (mod(0, 0, i, j) ? 1 : 0)),
        `mask mod row ${i}`,
      ).toEqual(mask[i]);
      expect(driver.length).toBeLessThanOrEqual(n + window - 1);
    }
  });

  it('keeps the lane bounded after a long prefill and many steps, sinks first', () => {
    const policy = streamingLlm({ sinks: 4, recent: 16 });
    const rng = new Rng(1);
    const dim = 2;
    const driver = new LaneDriver(dim, 200);
    driver.step(
      policy,
      randomArray(rng, 50 * dim),
      randomArray(rng, 50 * dim),
      randomArray(rng, 50 * dim),
      1,
    );
    expect(driver.length).toBe(19);
    expect(Array.from(driver.positions.subarray(0, 19))).toEqual([
      0,
      1,
      2,
      3,
      ...Array.from({ length: 15 }, (_, i) => 35 + i),
    ]);
    for (let t = 0; t < 40; t++) {
      const { read } = driver.step(
        policy,
        randomArray(rng, dim),
        randomArray(rng, dim),
        randomArray(rng, dim),
        1,
      );
      expect(read).toHaveLength(20);
      expect(driver.length).toBe(19);
    }
    expect(streamingLlm().held).toBe(515); // the reference's 4 + 512, less the token to come
  });

  it('refuses bad options', () => {
    expect(() => streamingLlm({ sinks: -1 })).toThrow(InvalidArgumentError);
    expect(() => streamingLlm({ recent: 0 })).toThrow(/recent/);
    expect(() => streamingLlm({ recent: Number.NaN })).toThrow(/recent/);
  });
});
