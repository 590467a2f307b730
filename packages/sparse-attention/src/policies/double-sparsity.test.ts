import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, InvalidFormatError, IOError, Rng, ShapeMismatchError } from '@sparsekit/core';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { loadLabelChannels, MAX_CHANNEL_FILE_BYTES, saveLabelChannels } from './channel-file.js';
import { doubleSparsity, type LabelChannels, pseudoQuantize } from './double-sparsity.js';
import {
  type ChannelImportance,
  channelFileContents,
  labelChannels,
  parseChannelFile,
} from './double-sparsity-calibrate.js';
import { LaneDriver, laneOf, queryOf, randomArray } from './lanes.test-util.js';

/** Label channels 0..d-1 in order for `rows` heads of each of `layers` layers. */
function identity(d: number, rows: number, layers = 4): LabelChannels {
  const row = Int32Array.from({ length: d }, (_, i) => i);
  return {
    source: 'qk',
    headDim: d,
    layers: Array.from({ length: layers }, () => Array.from({ length: rows }, () => row)),
  };
}

/** The reference's pseudo_quantize in float64, for comparison. */
function referenceQuantize(x: number[], bits: number): number[] {
  const maxq = 2 ** bits - 1;
  const lo = Math.min(...x);
  const hi = Math.max(...x);
  const scale = maxq / (hi - lo === 0 ? 1 : hi - lo);
  return x.map((v) => {
    const t = (v - lo) * scale;
    const r = Math.abs(t % 1) === 0.5 ? 2 * Math.round(t / 2) : Math.round(t);
    return Math.min(maxq, Math.max(0, r)) / scale + lo;
  });
}

describe('Double Sparsity at decode', () => {
  it("quantises labels as the reference's pseudo_quantize (per token, over its own range)", () => {
    const rng = new Rng(3);
    for (const bits of [1, 2, 4, 8]) {
      const x = randomArray(rng, 12);
      const want = referenceQuantize(Array.from(x), bits);
      pseudoQuantize(x, 0, 12, bits);
      expect(x).toAllClose(want, { rtol: 1e-6, atol: 1e-6 });
    }
    const flat = Float32Array.of(9, 2, 2, 2, 9);
    pseudoQuantize(flat, 1, 3, 4);
    expect(Array.from(flat)).toEqual([9, 2, 2, 2, 9]);
    const half = Float32Array.of(0, 0.5, 1.5, 3); // levels 0, 0.5, 1.5, 3 at 2 bits: ties to even
    pseudoQuantize(half, 0, 4, 2);
    expect(Array.from(half)).toEqual([0, 0, 2, 3]);
  });

  it('with every channel unquantised, the approximate scores are the exact scores and the top keys the true top', () => {
    const rng = new Rng(7);
    const d = 8;
    const length = 60;
    const keys = randomArray(rng, length * d);
    const lane = laneOf(keys, keys, length, d);
    const q = randomArray(rng, 2 * d);
    const policy = doubleSparsity({
      channels: identity(d, 4),
      groupFactor: 1,
      labelBits: 16,
      heavyConst: 10,
    });
    const scores = policy.approximateScores(lane, queryOf(q, 2, 1));
    const exact = Array.from({ length }, (_, e) => {
      let s = 0;
      for (let h = 0; h < 2; h++) for (let i = 0; i < d; i++) s += q[h * d + i]! * keys[e * d + i]!;
      return s / Math.sqrt(d);
    });
    expect(scores).toAllClose(exact, { rtol: 1e-6, atol: 1e-6 });
    const top = exact
      .map((s, e) => [s, e] as const)
      .sort((a, b) => b[0] - a[0])
      .slice(0, 10)
      .map(([, e]) => e)
      .sort((a, b) => a - b);
    expect(Array.from(policy.select(lane, queryOf(q, 2, 1))!)).toEqual(top);
  });

  it('uses each query head its own channels of the shared key, scaled by 1 / sqrt(headDim / groupFactor)', () => {
    const d = 4;
    const keys = Float32Array.of(1, 2, 3, 4, -1, 0, 5, 2);
    const lane = laneOf(keys, keys, 2, d, { kvHead: 1 });
    const rows = [
      Int32Array.of(0, 1, 2, 3),
      Int32Array.of(0, 1, 2, 3),
      Int32Array.of(3, 2, 1, 0),
      Int32Array.of(2, 0, 1, 3),
    ];
    const channels: LabelChannels = { source: 'qk', headDim: d, layers: [rows, rows, rows] };
    const q = Float32Array.of(1, 1, 1, 1, 0, 0, 1, 0); // heads 2 and 3 of the model (the lane's group)
    const scores = doubleSparsity({ channels, groupFactor: 2, labelBits: 16 }).approximateScores(
      lane,
      queryOf(q, 2, 1),
    );
    // Head 2 reads channels 3, 2; head 3 reads channels 2, 0.
    const s0 = (1 * 4 + 1 * 3 + (1 * 3 + 0 * 1)) / Math.sqrt(2);
    const s1 = (1 * 2 + 1 * 5 + (1 * 5 + 0 * -1)) / Math.sqrt(2);
    expect(scores).toAllClose([s0, s1], { rtol: 1e-12, atol: 0 });
    // 'k' channels have a row per key/value head.
    const kRows: LabelChannels = { source: 'k', headDim: d, layers: [[], [], [rows[0]!, rows[2]!]] };
    const k = doubleSparsity({ channels: kRows, groupFactor: 2, labelBits: 16 }).approximateScores(
      lane,
      queryOf(q, 2, 1),
    );
    expect(k).toAllClose([(4 + 3 + 3) / Math.sqrt(2), (2 + 5 + 5) / Math.sqrt(2)], { rtol: 1e-12, atol: 0 });
  });

  it('keeps its label cache incrementally: after many steps it equals labels made from scratch', () => {
    const rng = new Rng(12);
    const d = 16;
    const channels = labelChannels(randomImportance(rng, 4, 2, d, 3), 'qk');
    const policy = doubleSparsity({ channels, heavyConst: 12, groupFactor: 4 });
    const driver = new LaneDriver(d, 120);
    driver.step(policy, randomArray(rng, 20 * d), randomArray(rng, 20 * d), randomArray(rng, 2 * 20 * d), 2);
    for (let t = 0; t < 60; t++) {
      const { read } = driver.step(
        policy,
        randomArray(rng, d),
        randomArray(rng, d),
        randomArray(rng, 2 * d),
        2,
      );
      expect(read).toHaveLength(12);
    }
    const query = queryOf(randomArray(rng, 2 * d), 2, 1);
    const fresh = doubleSparsity({ channels, heavyConst: 12, groupFactor: 4 });
    expect(policy.approximateScores(driver.lane(), query)).toEqual(
      fresh.approximateScores(driver.lane(), query),
    );
  });

  it.each(['qk', 'k'] as const)(
    'scores on a backend (%s channels; labels in its memory) as the loop does',
    async (source) => {
      const backend = await createWasmBackend({ threads: 2, minParallelWork: 0 });
      try {
        const rng = new Rng(13);
        const d = 32;
        const channels = labelChannels(randomImportance(rng, 4, 1, d, 3), source);
        const plain = doubleSparsity({ channels, heavyConst: 40, groupFactor: 4 });
        const onWasm = doubleSparsity({ channels, heavyConst: 40, groupFactor: 4, backend });
        const a = new LaneDriver(d, 400);
        const b = new LaneDriver(d, 400);
        const prefill = [
          randomArray(rng, 300 * d),
          randomArray(rng, 300 * d),
          randomArray(rng, 4 * 300 * d),
        ] as const;
        a.step(plain, ...prefill, 4);
        b.step(onWasm, ...prefill, 4);
        for (let t = 0; t < 30; t++) {
          const step = [randomArray(rng, d), randomArray(rng, d), randomArray(rng, 4 * d, 3)] as const;
          const want = a.step(plain, ...step, 4).read;
          expect(Array.from(b.step(onWasm, ...step, 4).read)).toEqual(Array.from(want));
        }
        const query = queryOf(randomArray(rng, 4 * d), 4, 1);
        expect(onWasm.approximateScores(b.lane(), query)).toAllClose(
          plain.approximateScores(a.lane(), query),
          {
            atol: 1e-4,
            rtol: 1e-4,
          },
        );
        onWasm.reset();
      } finally {
        await backend.dispose();
      }
    },
  );

  it('reads everything in skipped layers, at prefill and when heavyConst covers the lane', () => {
    const rng = new Rng(1);
    const d = 8;
    const keys = randomArray(rng, 30 * d);
    const q = queryOf(randomArray(rng, d), 1, 1);
    const policy = doubleSparsity({ channels: identity(d, 1), heavyConst: 8 });
    expect(policy.select(laneOf(keys, keys, 30, d, { layer: 1 }), q)).toBeUndefined();
    expect(policy.select(laneOf(keys, keys, 30, d), queryOf(randomArray(rng, 2 * d), 1, 2))).toBeUndefined();
    expect(policy.select(laneOf(keys, keys, 8, d), q)).toBeUndefined();
    expect(policy.select(laneOf(keys, keys, 30, d), q)).toHaveLength(8);
  });

  it('refuses bad options and channels that do not fit the lane', () => {
    const channels = identity(8, 1, 3);
    expect(() => doubleSparsity({ channels, heavyConst: 0 })).toThrow(InvalidArgumentError);
    expect(() => doubleSparsity({ channels, heavyConst: Number.NaN })).toThrow(/heavyConst/);
    expect(() => doubleSparsity({ channels, groupFactor: 3 })).toThrow(/divide/);
    expect(() => doubleSparsity({ channels, labelBits: 0 })).toThrow(/labelBits/);
    expect(() => doubleSparsity({ channels, labelBits: 17 })).toThrow(/labelBits/);
    expect(() => doubleSparsity({ channels: undefined as unknown as LabelChannels })).toThrow(/channels/);
    const keys = new Float32Array(40 * 16);
    const policy = doubleSparsity({ channels, heavyConst: 4 });
    expect(() => policy.select(laneOf(keys, keys, 40, 16), queryOf(new Float32Array(16), 1, 1))).toThrow(
      ShapeMismatchError,
    );
    const eight = new Float32Array(40 * 8);
    expect(() =>
      policy.select(laneOf(eight, eight, 40, 8, { layer: 5 }), queryOf(new Float32Array(8), 1, 1)),
    ).toThrow(/layer 5/);
    expect(() =>
      policy.select(laneOf(eight, eight, 40, 8, { kvHead: 1 }), queryOf(new Float32Array(8), 1, 1)),
    ).toThrow(ShapeMismatchError);
  });
});

/** A made-up calibration result (heads, kvHeads, headDim, layers). */
function randomImportance(
  rng: Rng,
  heads: number,
  kvHeads: number,
  d: number,
  layers: number,
): ChannelImportance {
  const abs = (n: number) => Float64Array.from(randomArray(rng, n), Math.abs);
  return {
    heads,
    kvHeads,
    headDim: d,
    tokens: 100,
    layers: Array.from({ length: layers }, () => ({
      qk: abs(heads * d),
      q: abs(heads * d),
      k: abs(kvHeads * d),
    })),
  };
}

describe('Double Sparsity channel files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sparsekit-ds-'));
  const importance = randomImportance(new Rng(4), 4, 2, 8, 3);

  it("sorts channels by decreasing importance and writes the reference's layout", async () => {
    const qk = labelChannels(importance);
    const row = importance.layers[1]!.qk.subarray(2 * 8, 3 * 8);
    const order = Array.from(qk.layers[1]![2]!);
    for (let i = 1; i < 8; i++) expect(row[order[i - 1]!]!).toBeGreaterThanOrEqual(row[order[i]!]!);
    const path = join(dir, 'owner', 'model.json');
    await saveLabelChannels(path, importance);
    const file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, number[][]>;
    expect(Object.keys(file)).toHaveLength(9);
    expect(file['model.layers.1.self_attn.qk_proj']![2]).toEqual(order);
    expect(file['model.layers.0.self_attn.k_proj']).toHaveLength(2);
    expect(file).toEqual(channelFileContents(importance));
    const loaded = await loadLabelChannels(path);
    expect(loaded).toEqual(qk);
    expect(await loadLabelChannels(path, 'k')).toEqual(labelChannels(importance, 'k'));
  });

  it('refuses a file too large to be a channel file before reading it', async () => {
    const huge = join(dir, 'huge.json');
    writeFileSync(huge, '');
    truncateSync(huge, MAX_CHANNEL_FILE_BYTES + 1); // sparse: no data written
    await expect(loadLabelChannels(huge)).rejects.toThrow(InvalidFormatError);
    await expect(loadLabelChannels(huge)).rejects.toThrow(/more than/);
  });

  it('reads reference files with other entries, and refuses malformed ones with typed errors', async () => {
    const row = [3, 1, 0, 2];
    const reference = {
      'model.layers.0.self_attn.q_proj': [row, row],
      'model.layers.0.self_attn.v_proj': [[0]],
      'model.layers.0.mlp.down_proj': 'whatever',
      'model.layers.0.self_attn.qk_proj': [row, row],
      'model.layers.1.self_attn.qk_proj': [row, row],
    };
    const parsed = parseChannelFile(reference);
    expect(parsed.headDim).toBe(4);
    expect(parsed.layers.map((l) => l!.map((r) => Array.from(r)))).toEqual([
      [row, row],
      [row, row],
    ]);
    const bad = (value: unknown) => () => parseChannelFile(value);
    expect(bad([1, 2])).toThrow(InvalidFormatError);
    expect(bad({ 'model.layers.0.self_attn.q_proj': [row] })).toThrow(/no `model.layers/);
    expect(bad({ 'model.layers.0.self_attn.qk_proj': [[0, 1, 1, 2]] })).toThrow(/permutation/);
    expect(bad({ 'model.layers.0.self_attn.qk_proj': [[0, 1, 2, 4]] })).toThrow(/permutation/);
    expect(
      bad({
        'model.layers.0.self_attn.qk_proj': [
          [0, 1, 2, 3],
          [0, 1],
        ],
      }),
    ).toThrow(/channels/);
    expect(bad({ 'model.layers.0.self_attn.qk_proj': [[0, 1.5]] })).toThrow(InvalidFormatError);
    expect(
      bad({ 'model.layers.0.self_attn.qk_proj': [row], 'model.layers.1.self_attn.qk_proj': [row, row] }),
    ).toThrow(/heads/);
    expect(bad({ 'model.layers.0.self_attn.qk_proj': 'x' })).toThrow(InvalidFormatError);
    expect(() => parseChannelFile(reference, 'v' as 'q')).toThrow(InvalidArgumentError);
    const write = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    await expect(loadLabelChannels(write('broken.json', '{"model.layers.0'))).rejects.toThrow(
      InvalidFormatError,
    );
    const twice = '{"model.layers.0.self_attn.qk_proj": [[0]], "model.layers.0.self_attn.qk_proj": [[0]]}';
    await expect(loadLabelChannels(write('twice.json', twice))).rejects.toThrow(/twice/);
    await expect(loadLabelChannels(join(dir, 'missing.json'))).rejects.toThrow(IOError);
  });
});
