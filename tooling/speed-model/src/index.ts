// Llama-shaped speed models: seeded random weights at the shapes of real models, written as Hugging
// Face folders (config.json + model.safetensors) on demand. For speed figures only: the weights are
// random, so nothing these models say means anything, and they are never committed.
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '@sparsekit/core';
import { writeDirAtomic, writeSafetensors } from '@sparsekit/core/node';
import { type RandomLlamaShape, randomLlamaTensors } from '@sparsekit/models';

export interface SpeedShape extends RandomLlamaShape {
  /** What the shape is of, said in every table that uses it. */
  description: string;
}

/** The stated shapes: one Llama-2-7B block, and four blocks at TinyLlama-1.1B's width. */
export const SPEED_SHAPES = {
  'llama2-7b-block': {
    description: 'one Llama-2-7B block (hidden 4096, MLP 11008, 32 heads, MHA), vocab 32000, random weights',
    hidden: 4096,
    intermediate: 11008,
    heads: 32,
    kvHeads: 32,
    layers: 1,
    vocab: 32000,
    maxPositions: 4096,
  },
  'tinyllama-4block': {
    description:
      "4 blocks at TinyLlama-1.1B's width (hidden 2048, MLP 5632, 32 heads, 4 KV heads), vocab 32000, random weights",
    hidden: 2048,
    intermediate: 5632,
    heads: 32,
    kvHeads: 4,
    layers: 4,
    vocab: 32000,
    maxPositions: 2048,
  },
  /** For tests of the writer itself. */
  micro: {
    description: 'a 2-block micro model for tests (hidden 64, MLP 160), random weights',
    hidden: 64,
    intermediate: 160,
    heads: 4,
    kvHeads: 2,
    layers: 2,
    vocab: 96,
    maxPositions: 64,
  },
} as const satisfies Record<string, SpeedShape>;
export type SpeedShapeName = keyof typeof SPEED_SHAPES;

export function speedShape(name: string): SpeedShape {
  const shape = (SPEED_SHAPES as Record<string, SpeedShape>)[name];
  if (shape === undefined)
    throw new InvalidArgumentError('shape', name, `must be one of ${Object.keys(SPEED_SHAPES).join(', ')}`);
  return shape;
}

/** Parameters of a shape (embeddings and LM head untied, norms included). */
export function speedModelParameters(shape: SpeedShape): number {
  const { hidden: h, intermediate: i, heads, kvHeads, layers, vocab } = shape;
  const headDim = h / heads;
  const attention = 2 * h * h + 2 * h * kvHeads * headDim;
  return layers * (attention + 3 * h * i + 2 * h) + 2 * vocab * h + h;
}

/**
 * Write the shape's model to `dir` (atomically: a temporary folder renamed into place), unless it
 * is there already with the same shape and seed (a `speed-model.json` marker says). Linear weights
 * are N(0, 0.02) (Hugging Face's Llama init), norms are ones. Returns the folder.
 */
export async function writeSpeedModel(dir: string, name: string, seed = 0): Promise<string> {
  const shape = speedShape(name);
  const marker = { shape: name, seed, randomWeights: true, description: shape.description };
  const markerPath = join(dir, 'speed-model.json');
  if (existsSync(markerPath)) {
    try {
      const found = JSON.parse(readFileSync(markerPath, 'utf8'));
      if (found.shape === name && found.seed === seed) return dir;
    } catch {
      // a damaged marker: written again below
    }
  }
  const { hfConfig: config, tensors } = randomLlamaTensors(shape, seed);
  await writeDirAtomic(
    dir,
    async (tmp) => {
      await writeFile(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
      await writeSafetensors(join(tmp, 'model.safetensors'), tensors, {
        format: 'pt',
        note: 'random weights (seeded), for speed figures only',
      });
      await writeFile(join(tmp, 'speed-model.json'), `${JSON.stringify(marker, null, 2)}\n`);
    },
    { replace: true },
  );
  return dir;
}
