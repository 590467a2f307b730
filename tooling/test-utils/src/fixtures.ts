import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of a fixture file under a test file's `fixtures/` folder. */
export function fixturePath(testFileUrl: string, ...parts: string[]): string {
  return join(dirname(fileURLToPath(testFileUrl)), 'fixtures', ...parts);
}

export function readFixture(testFileUrl: string, ...parts: string[]): Uint8Array {
  return new Uint8Array(readFileSync(fixturePath(testFileUrl, ...parts)));
}
