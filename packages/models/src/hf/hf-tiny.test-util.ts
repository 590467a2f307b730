import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturePath } from '@sparsekit/test-utils';

/** The tiny Hugging Face checkpoints in src/hf/fixtures/hf-tiny (see the fixtures' README). */
export function hfTinyDir(family: 'gpt2' | 'opt' | 'llama'): string {
  return fixturePath(import.meta.url, 'hf-tiny', family);
}

export interface HfTinyExpected {
  tokens: number[];
  text: string;
  logits: number[][];
  argmax: number[];
}

/** Token ids, text and float64 reference logits [12, 64] of a checkpoint. */
export function hfTinyExpected(family: 'gpt2' | 'opt' | 'llama'): HfTinyExpected {
  return JSON.parse(readFileSync(join(hfTinyDir(family), 'expected.json'), 'utf8'));
}
