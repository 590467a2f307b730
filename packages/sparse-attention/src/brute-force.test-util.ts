// Brute-force references for the block rules: every block's kind counted pair by pair.
import { expect } from 'vitest';
import { createBlockMask } from './block-mask.js';
import type { BlockKind, MaskMod } from './mask-mods.js';

/** The kind of every block of head h by brute force over its pairs. */
export function bruteKinds(
  m: MaskMod,
  qLen: number,
  kvLen: number,
  bq: number,
  bkv: number,
  h = 0,
): BlockKind[][] {
  const rows = Math.ceil(qLen / bq);
  const cols = Math.ceil(kvLen / bkv);
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: cols }, (_, c) => {
      let any = false;
      let all = true;
      for (let q = r * bq; q < Math.min(qLen, (r + 1) * bq); q++)
        for (let kv = c * bkv; kv < Math.min(kvLen, (c + 1) * bkv); kv++) {
          if (m(0, h, q, kv)) any = true;
          else all = false;
        }
      return all ? 'full' : any ? 'partial' : 'empty';
    }),
  );
}

/** The kinds createBlockMask finds with the mod's block rule, per head. */
export function kindsOf(
  m: MaskMod,
  qLen: number,
  kvLen: number,
  bq: number,
  bkv: number,
  H = 1,
): BlockKind[][][] {
  const bm = createBlockMask(m, { H, qLen, kvLen, blockSize: [bq, bkv] });
  return Array.from({ length: H }, (_, h) =>
    Array.from({ length: bm.rows }, (_, r) => Array.from({ length: bm.cols }, (_, c) => bm.kind(0, h, r, c))),
  );
}

/** Expect the block rule of `m` to equal brute force on every head. */
export function expectExactBlocks(
  m: MaskMod,
  qLen: number,
  kvLen: number,
  bq: number,
  bkv: number,
  H = 1,
): void {
  expect(m.block, `${m.label} has a block rule`).toBeDefined();
  const got = kindsOf(m, qLen, kvLen, bq, bkv, H);
  for (let h = 0; h < H; h++)
    expect(got[h], `${m.label}, head ${h}, ${qLen}x${kvLen}, blocks ${bq}x${bkv}`).toEqual(
      bruteKinds(m, qLen, kvLen, bq, bkv, h),
    );
}
