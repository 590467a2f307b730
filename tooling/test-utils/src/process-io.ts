import { readFileSync } from 'node:fs';

/**
 * Bytes this process has read through read system calls so far (`rchar` of /proc/self/io), or
 * undefined where the system does not report it (not Linux). Deltas around a call show how much of
 * a file it read, whatever API it read through.
 */
export function bytesReadByProcess(): number | undefined {
  try {
    const match = /^rchar:\s*(\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}
