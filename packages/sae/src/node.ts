// SAELens folders on disk: cfg.json + sae_weights.safetensors, read with typed errors and written
// atomically (each file through a temporary sibling and a rename).
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IOError, SafetensorsError } from '@sparsekit/core';
import { readSafetensors, writeFileAtomic, writeSafetensors } from '@sparsekit/core/node';
import type { Sae } from './sae.js';
import {
  foldScalingFactor,
  type NormalizeActivations,
  parseSaeLensConfig,
  SaeFileError,
  type SaeLensConfig,
  saeFromSaeLens,
  saeToSaeLens,
} from './saelens.js';

export const SAE_CONFIG_FILE = 'cfg.json';
export const SAE_WEIGHTS_FILE = 'sae_weights.safetensors';

/** Read a SAELens folder: the SAE and its normalised config (metadata included). */
export async function readSaeLens(dir: string): Promise<{ sae: Sae; config: SaeLensConfig }> {
  const cfgPath = join(dir, SAE_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(cfgPath, 'utf8');
  } catch (error) {
    throw new IOError(cfgPath, 'cannot read the SAE config', error);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new SaeFileError(cfgPath, `is not valid JSON (${(error as Error).message})`);
  }
  const config = parseSaeLensConfig(raw, cfgPath);
  const weightsPath = join(dir, SAE_WEIGHTS_FILE);
  let tensors: Awaited<ReturnType<typeof readSafetensors>>['tensors'];
  try {
    tensors = (await readSafetensors(weightsPath)).tensors;
  } catch (error) {
    if (SafetensorsError.isInstance(error) || IOError.isInstance(error)) throw error;
    throw new SaeFileError(weightsPath, (error as Error).message);
  }
  const sae = saeFromSaeLens(config, tensors, weightsPath);
  if (config.normalize_activations === 'expected_average_only_in') {
    // SAELens trains on x * c (c in activation_scaler.json): fold c in, so the SAE reads raw activations.
    const scalerPath = join(dir, 'activation_scaler.json');
    let c: unknown;
    try {
      c = JSON.parse(await readFile(scalerPath, 'utf8')).scaling_factor;
    } catch {
      c = undefined;
    }
    if (typeof c !== 'number' || !(c > 0) || !Number.isFinite(c))
      throw new SaeFileError(
        cfgPath,
        "normalize_activations is 'expected_average_only_in' but activation_scaler.json gives no scaling_factor: the SAE expects inputs scaled by it",
      );
    foldScalingFactor(sae, c);
    config.normalize_activations = 'none';
  }
  return { sae, config };
}

/** Write `sae` as a SAELens folder (created if needed); each file atomically. */
export async function writeSaeLens(
  dir: string,
  sae: Sae,
  options: { metadata?: Record<string, unknown>; normalizeActivations?: NormalizeActivations } = {},
): Promise<void> {
  const { config, tensors } = saeToSaeLens(sae, options);
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, SAE_WEIGHTS_FILE), tensors);
  await writeFileAtomic(join(dir, SAE_CONFIG_FILE), (f) =>
    f.writeFile(`${JSON.stringify(config, null, 2)}\n`, 'utf8'),
  );
}
