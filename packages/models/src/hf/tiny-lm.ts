import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Folder of tiny-lm, the model bundled with this package (a Hugging Face layout: config.json,
 * model.safetensors, tokenizer.json, training-log.json). Load it with `loadHfModel(tinyLmPath())`.
 */
export function tinyLmPath(): string {
  // dist/hf/tiny-lm.js -> package root
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tiny-lm');
}
