// Double Sparsity channel files on disk (Node): the reference's JSON layout, written atomically.
import { readFile, stat } from 'node:fs/promises';
import { InvalidFormatError, IOError, strictJsonIssue } from '@sparsekit/core';
import { writeFileAtomic } from '@sparsekit/core/node';
import type { LabelChannels, LabelSource } from './double-sparsity.js';
import {
  type ChannelImportance,
  channelFileContents,
  parseChannelFile,
} from './double-sparsity-calibrate.js';

/** The largest channel file read (1024 layers x 128 heads x 256 channels as JSON is ~100 MB). */
export const MAX_CHANNEL_FILE_BYTES = 128 * 2 ** 20;

/**
 * Write a calibration's channel orders to `path` as the reference's `config/<owner>/<model>.json`:
 * `model.layers.<i>.self_attn.{q,k,qk}_proj` -> per head, channel indices most important first.
 * The file is replaced atomically (a crash leaves the old file or the new one, never half of it).
 */
export async function saveLabelChannels(path: string, importance: ChannelImportance): Promise<void> {
  const text = JSON.stringify(channelFileContents(importance));
  await writeFileAtomic(path, (file) => file.writeFile(`${text}\n`, 'utf8'));
}

/**
 * Read the label channels of one statistic (default 'qk') from a channel file written by
 * `saveLabelChannels` or by the reference's offline calibration. Typed errors: `IOError` when the
 * file cannot be read, `InvalidFormatError` when it is not valid JSON (duplicate keys included) or
 * its entries are not per-head permutations of the channels.
 */
export async function loadLabelChannels(path: string, source: LabelSource = 'qk'): Promise<LabelChannels> {
  let text: string;
  try {
    // A channel file is a few kB per layer; refuse one that could not be one before reading it.
    const { size } = await stat(path);
    if (size > MAX_CHANNEL_FILE_BYTES)
      throw new InvalidFormatError(
        'Double Sparsity channel file',
        `${path}: ${size} bytes, more than the ${MAX_CHANNEL_FILE_BYTES} a channel file of any model needs`,
      );
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof InvalidFormatError) throw error;
    throw new IOError(path, 'Could not read the channel file', error);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidFormatError(
      'Double Sparsity channel file',
      `${path}: not JSON (${(error as Error).message})`,
    );
  }
  const issue = strictJsonIssue(text);
  if (issue !== undefined) throw new InvalidFormatError('Double Sparsity channel file', `${path}: ${issue}`);
  return parseChannelFile(value, source, path);
}
