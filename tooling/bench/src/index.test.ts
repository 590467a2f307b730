import { describe, expect, it } from 'vitest';
import { flag, median, numberOption, option } from './index.js';

describe('bench runner helpers', () => {
  it('read options and flags', () => {
    const argv = ['node', 'x.js', '--reps', '7', '--shapes', '1x2', '--json'];
    expect(option('shapes', 'none', argv)).toBe('1x2');
    expect(option('missing', 'fallback', argv)).toBe('fallback');
    expect(numberOption('reps', 5, argv)).toBe(7);
    expect(numberOption('threads', 2, argv)).toBe(2);
    expect(() => numberOption('shapes', 1, argv)).toThrow(/--shapes must be a number/);
    expect(flag('json', argv)).toBe(true);
    expect(flag('quiet', argv)).toBe(false);
  });

  it('take the median of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});
