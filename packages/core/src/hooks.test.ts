import { describe, expect, it } from 'vitest';
import { ActivationStore } from './activation-store.js';
import { InvalidArgumentError, ShapeMismatchError } from './errors.js';
import { calibrationHooks, Hooks } from './hooks.js';
import { Tensor } from './tensor.js';

const context = { site: 'mlp.hidden' as const, block: 0, batch: 1, seq: 2, position: 0 };

describe('hooks', () => {
  it('chain replacements in order, copy them, and stop when removed', () => {
    const hooks = new Hooks();
    const kept = Float32Array.of(1, 2, 3, 4);
    const a = hooks.add('mlp.hidden', () => kept);
    hooks.add('mlp.hidden', (t) => t.data.map((v) => v * 10));
    const out = hooks.run(new Float32Array(4), [1, 2, 2], context);
    expect(Array.from(out)).toEqual([10, 20, 30, 40]);
    out[0] = -1;
    const again = hooks.run(new Float32Array(4), [1, 2, 2], context);
    expect(again[0]).toBe(10); // the hook's own array was never handed to the model
    expect(Array.from(kept)).toEqual([1, 2, 3, 4]);
    a.remove();
    a.remove();
    expect(Array.from(hooks.run(Float32Array.of(1, 1, 1, 1), [1, 2, 2], context))).toEqual([10, 10, 10, 10]);
    expect(hooks.has('mlp.hidden')).toBe(true);
    expect(hooks.has('stream')).toBe(false);
  });

  it('refuse replacements of another shape or size, and unknown sites', () => {
    const hooks = new Hooks();
    hooks.add('mlp.hidden', () => new Tensor('f32', [2, 2], new Float32Array(4)));
    expect(() => hooks.run(new Float32Array(4), [1, 2, 2], context)).toThrow(ShapeMismatchError);
    const sized = new Hooks();
    sized.add('mlp.hidden', () => new Float32Array(3));
    expect(() => sized.run(new Float32Array(4), [1, 2, 2], context)).toThrow(/replacement/);
    expect(() => hooks.add('nowhere' as never, () => undefined)).toThrow(InvalidArgumentError);
  });

  it('blocks limit a hook; calibrationHooks hands every layer of a group its [tokens, width] input', () => {
    const hooks = new Hooks();
    const seen: number[] = [];
    hooks.add('mlp.hidden', (_, c) => void seen.push(c.block), { blocks: [1] });
    hooks.run(new Float32Array(4), [1, 2, 2], context);
    hooks.run(new Float32Array(4), [1, 2, 2], { ...context, block: 1 });
    expect(seen).toEqual([1]);
    const layers = ['q', 'k'].map((name) => ({
      name,
      inFeatures: 2,
      outFeatures: 2,
      getWeight: () => undefined as never,
      setWeight: () => undefined,
    }));
    const got: string[] = [];
    const calibration = calibrationHooks(
      (layer, x) => void got.push(`${layer.name}:${x.shape.join('x')}`),
      (n) => n !== 'k',
    );
    calibration.run(new Float32Array(4), [1, 2, 2], { ...context, site: 'linear.input', layers });
    expect(got).toEqual(['q:2x2']);
  });

  it('an activation store collects only what its filter accepts, and refuses a budget that is not a number', () => {
    const store = new ActivationStore({ width: 2 });
    const hooks = new Hooks();
    store.collect(hooks, 'stream', { filter: (c) => c.point?.at === 'mlp' });
    hooks.run(new Float32Array(4), [1, 2, 2], {
      ...context,
      site: 'stream',
      point: { at: 'attention', block: 0 },
    });
    hooks.run(new Float32Array(4), [1, 2, 2], { ...context, site: 'stream', point: { at: 'mlp', block: 0 } });
    expect(store.rows).toBe(2);
    expect(() => new ActivationStore({ width: 2, memoryBudgetBytes: Number.NaN })).toThrow(
      /memoryBudgetBytes/,
    );
    expect(() => new ActivationStore({ width: 2, memoryBudgetBytes: Number.POSITIVE_INFINITY })).toThrow(
      InvalidArgumentError,
    );
  });
});
