#!/usr/bin/env node
// sparsekit-speed-model --shape NAME --out DIR [--seed N]: write a speed model (random weights).
import { parseArgs } from 'node:util';
import { SPEED_SHAPES, speedModelParameters, speedShape, writeSpeedModel } from './index.js';

const { values } = parseArgs({
  options: { shape: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' } },
});
if (values.shape === undefined || values.out === undefined) {
  console.error(
    `usage: sparsekit-speed-model --shape NAME --out DIR [--seed N]\nshapes:\n${Object.entries(SPEED_SHAPES)
      .map(([n, s]) => `  ${n.padEnd(18)} ${s.description}`)
      .join('\n')}`,
  );
  process.exit(2);
}
const shape = speedShape(values.shape);
const start = performance.now();
await writeSpeedModel(values.out, values.shape, Number(values.seed ?? 0));
console.log(
  `${values.out}: ${shape.description}; ${(speedModelParameters(shape) / 1e6).toFixed(0)}M parameters (${((performance.now() - start) / 1000).toFixed(1)} s)`,
);
