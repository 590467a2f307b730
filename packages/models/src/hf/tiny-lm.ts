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

/**
 * Folder of tiny-lm-moe, the mixture-of-experts model bundled with this package: tiny-lm's
 * architecture with every MLP a Mixtral-style mixture of 8 SwiGLU experts of 96 channels, 4 chosen
 * per token (as many active MLP parameters as tiny-lm), trained on the same corpus, split and
 * tokenizer; weights in f16. Load it with `loadHfModel(tinyLmMoePath())`.
 */
export function tinyLmMoePath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tiny-lm-moe');
}
