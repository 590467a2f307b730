import { Rng, type Routing, Tensor } from '@sparsekit/core';
import { afterAll, describe, expect, it } from 'vitest';
import { expertChoice } from '../expert-choice.js';
import { softmaxTopK, switchRouter } from '../top-k.js';
import { expertParallelCost } from './cost-model.js';
import { type GatedExpert, runExpertsLocally } from './experts.js';
import type { ExpertPlacement } from './placement.js';
import { ExpertParallelSimulation, simulateExpertParallel } from './simulation.js';

const WIDTH = 8;
const INNER = 6;

function makeExperts(rng: Rng, n: number): GatedExpert[] {
  return Array.from({ length: n }, () => ({
    gate: rng.normalArray(INNER * WIDTH, 0, 0.5),
    up: rng.normalArray(INNER * WIDTH, 0, 0.5),
    down: rng.normalArray(WIDTH * INNER, 0, 0.5),
    inner: INNER,
  }));
}

function routed(name: 'top-2' | 'switch' | 'expert-choice', tokens: number, experts: number, seed: number) {
  const rng = new Rng(seed);
  const hidden = rng.normalArray(tokens * WIDTH);
  const logits = new Tensor('f32', [tokens, experts], rng.normalArray(tokens * experts));
  const input = { hidden: new Tensor('f32', [tokens, WIDTH], hidden), logits, block: 0 };
  const router =
    name === 'top-2'
      ? softmaxTopK({ numExperts: experts, k: 2 })
      : name === 'switch'
        ? switchRouter({ numExperts: experts, capacity: { factor: 1 } }) // drops over capacity
        : expertChoice({ numExperts: experts, capacity: { factor: 2 } });
  return { routing: router.route(input) as Routing, hidden };
}

/** Plain float64 reference of the mixture. */
function reference(routing: Routing, hidden: Float32Array, experts: GatedExpert[]): Float64Array {
  const tokens = routing.experts.length / routing.k;
  const out = new Float64Array(tokens * WIDTH);
  for (let slot = 0; slot < routing.experts.length; slot++) {
    const e = routing.experts[slot]!;
    if (e < 0) continue;
    const t = Math.floor(slot / routing.k);
    const { gate, up, down } = experts[e]!;
    const h = Array.from({ length: INNER }, (_, c) => {
      let g = 0;
      let u = 0;
      for (let i = 0; i < WIDTH; i++) {
        g += gate[c * WIDTH + i]! * hidden[t * WIDTH + i]!;
        u += up[c * WIDTH + i]! * hidden[t * WIDTH + i]!;
      }
      return (g / (1 + Math.exp(-g))) * u;
    });
    for (let o = 0; o < WIDTH; o++) {
      let s = 0;
      for (let c = 0; c < INNER; c++) s += down[o * INNER + c]! * h[c]!;
      out[t * WIDTH + o]! += routing.weights[slot]! * s;
    }
  }
  return out;
}

describe('runExpertsLocally', () => {
  it('is the float64 mixture (top-2 with drops, and expert choice)', () => {
    const experts = makeExperts(new Rng(1), 8);
    for (const name of ['switch', 'expert-choice'] as const) {
      const { routing, hidden } = routed(name, 20, 8, 2);
      expect(runExpertsLocally(routing, hidden, WIDTH, experts)).toAllClose(
        reference(routing, hidden, experts),
        {
          atol: 1e-5,
          rtol: 1e-5,
        },
      );
    }
  });
});

describe('expert parallelism on worker threads', () => {
  const cases: Array<{
    router: 'top-2' | 'switch' | 'expert-choice';
    experts: number;
    devices: number;
    placement: ExpertPlacement;
    dedupe: boolean;
    transport: 'transfer' | 'shared';
    tokens: number;
  }> = [
    {
      router: 'top-2',
      experts: 8,
      devices: 4,
      placement: 'round-robin',
      dedupe: false,
      transport: 'transfer',
      tokens: 24,
    },
    {
      router: 'top-2',
      experts: 8,
      devices: 2,
      placement: 'contiguous',
      dedupe: true,
      transport: 'shared',
      tokens: 17,
    },
    {
      router: 'switch',
      experts: 4,
      devices: 3,
      placement: 'contiguous',
      dedupe: false,
      transport: 'shared',
      tokens: 13,
    },
    {
      router: 'expert-choice',
      experts: 6,
      devices: 3,
      placement: 'round-robin',
      dedupe: true,
      transport: 'transfer',
      tokens: 12,
    },
    {
      router: 'expert-choice',
      experts: 4,
      devices: 2,
      placement: [1, 0, 0, 1],
      dedupe: false,
      transport: 'transfer',
      tokens: 9,
    },
  ];

  it.each(cases)(
    '$router, E $experts on $devices devices ($placement, dedupe $dedupe, $transport): the one-thread output and the predicted bytes',
    async ({ router, experts: E, devices, placement, dedupe, transport, tokens }) => {
      const experts = makeExperts(new Rng(E + devices), E);
      const { routing, hidden } = routed(router, tokens, E, tokens);
      const sim = await simulateExpertParallel(routing, hidden, {
        experts,
        width: WIDTH,
        devices,
        placement,
        dedupe,
        transport,
      });
      expect(sim.output).toAllClose(runExpertsLocally(routing, hidden, WIDTH, experts), {
        atol: 1e-5,
        rtol: 1e-5,
      });
      const cost = expertParallelCost(routing, { numExperts: E, devices, placement, width: WIDTH, dedupe });
      expect(Array.from(sim.dispatchBytes)).toEqual(Array.from(cost.dispatchBytes));
      expect(Array.from(sim.combineBytes)).toEqual(Array.from(cost.combineBytes));
      expect(Array.from(sim.rowsPerDevice)).toEqual(Array.from(cost.rowsPerDevice));
      expect(sim.messages).toBe(2 * devices * devices);
      // Something crossed devices in each case, so the check is not vacuous.
      expect(cost.allToAll.dispatch).toBeGreaterThan(0);
    },
  );

  it('deduplicating sends fewer rows when a token has two experts on one device, same output', async () => {
    const experts = makeExperts(new Rng(9), 4);
    // Token 0 goes to experts 0 and 2 (both on device 0 under round-robin over 2), token 1 to 1 and 3.
    const routing: Routing = {
      k: 2,
      experts: Int32Array.of(0, 2, 1, 3),
      weights: Float32Array.of(0.5, 0.5, 0.25, 0.75),
    };
    const hidden = new Rng(10).normalArray(2 * WIDTH);
    const options = { experts, width: WIDTH, devices: 2, tokenDevice: [1, 0] };
    const [perSlot, perToken] = await Promise.all([
      simulateExpertParallel(routing, hidden, options),
      simulateExpertParallel(routing, hidden, { ...options, dedupe: true }),
    ]);
    const row = WIDTH * 4;
    expect(Array.from(perSlot.dispatchBytes)).toEqual([0, 2 * row, 2 * row, 0]);
    expect(Array.from(perToken.dispatchBytes)).toEqual([0, row, row, 0]);
    expect(Array.from(perToken.rowsPerDevice)).toEqual([2, 2]);
    expect(perToken.output).toAllClose(perSlot.output, { atol: 1e-6, rtol: 1e-6 });
  });

  it('refuses bad inputs before posting anything', async () => {
    const experts = makeExperts(new Rng(11), 4);
    await expect(ExpertParallelSimulation.start({ experts, width: WIDTH + 1, devices: 2 })).rejects.toThrow(
      /expert 0 gate weight/,
    );
    await expect(ExpertParallelSimulation.start({ experts, width: WIDTH, devices: 5 })).rejects.toThrow(
      /at most numExperts/,
    );
    const simulation = await ExpertParallelSimulation.start({ experts, width: WIDTH, devices: 2 });
    try {
      const bad: Routing = { k: 1, experts: Int32Array.of(4), weights: Float32Array.of(1) };
      await expect(simulation.run(bad, new Float32Array(WIDTH))).rejects.toThrow(/routed expert/);
      const ok: Routing = { k: 1, experts: Int32Array.of(1), weights: Float32Array.of(1) };
      await expect(simulation.run(ok, new Float32Array(2 * WIDTH))).rejects.toThrow(/hidden/);
      // Still usable after a refused run.
      const run = await simulation.run(ok, new Float32Array(WIDTH).fill(0.5));
      expect(run.output).toAllClose(
        runExpertsLocally(ok, new Float32Array(WIDTH).fill(0.5), WIDTH, experts),
        {
          atol: 1e-6,
          rtol: 1e-6,
        },
      );
    } finally {
      await simulation.close();
    }
  });

  describe('one simulation, several runs', () => {
    let simulation: ExpertParallelSimulation | undefined;
    afterAll(async () => {
      await simulation?.close();
    });

    it('keeps its workers between routings and token placements', async () => {
      const experts = makeExperts(new Rng(5), 8);
      simulation = await ExpertParallelSimulation.start({ experts, width: WIDTH, devices: 2 });
      expect(Array.from(simulation.weightBytes)).toEqual([4, 4].map((n) => n * 3 * INNER * WIDTH * 4));
      for (const seed of [1, 2, 3]) {
        const { routing, hidden } = routed('top-2', 10 + seed, 8, seed);
        const homes = Int32Array.from({ length: 10 + seed }, (_, t) => (t * seed) % 2);
        const run = await simulation.run(routing, hidden, homes);
        expect(run.output).toAllClose(runExpertsLocally(routing, hidden, WIDTH, experts), {
          atol: 1e-5,
          rtol: 1e-5,
        });
        const cost = expertParallelCost(routing, {
          numExperts: 8,
          devices: 2,
          width: WIDTH,
          tokenDevice: homes,
        });
        expect(Array.from(run.dispatchBytes)).toEqual(Array.from(cost.dispatchBytes));
      }
      await simulation.close();
      await expect(
        simulation.run(routed('top-2', 4, 8, 1).routing, new Float32Array(4 * WIDTH)),
      ).rejects.toThrow(/closed/);
    });
  });
});
