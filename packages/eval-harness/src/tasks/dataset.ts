// Documents of a task split from the text of a local file: JSON Lines (one object per line) or one
// JSON array of objects. Nothing is downloaded: datasets are files the user gives.
import { InvalidFormatError } from '@sparsekit/core';
import type { Doc } from './template.js';

/** At most this many documents per split (a larger file is refused before it fills memory). */
export const MAX_DOCUMENTS = 1_000_000;

/** Parse the documents of one split; `where` names the file in errors (with the line). */
export function parseDocuments(text: string, where: string): Doc[] {
  const trimmed = text.trimStart();
  const docs: Doc[] = [];
  const check = (value: unknown, at: string): Doc => {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new InvalidFormatError('task data', `${where}${at}: each document must be a JSON object`);
    return value as Doc;
  };
  if (trimmed.startsWith('[')) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new InvalidFormatError('task data', `${where}: not JSON (${(error as Error).message})`);
    }
    const list = value as unknown[];
    if (list.length > MAX_DOCUMENTS)
      throw new InvalidFormatError(
        'task data',
        `${where}: ${list.length} documents; at most ${MAX_DOCUMENTS}`,
      );
    for (const [i, d] of list.entries()) docs.push(check(d, ` [${i}]`));
    return docs;
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    if (docs.length >= MAX_DOCUMENTS)
      throw new InvalidFormatError('task data', `${where}: more than ${MAX_DOCUMENTS} documents`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new InvalidFormatError(
        'task data',
        `${where}:${i + 1}: not a JSON line (${(error as Error).message})`,
      );
    }
    docs.push(check(value, `:${i + 1}`));
  }
  return docs;
}
