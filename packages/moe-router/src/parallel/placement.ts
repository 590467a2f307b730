// Where experts and tokens live when the experts of one layer are spread over devices (expert
// parallelism): experts round-robin (expert e on device e mod D) or in contiguous groups (experts
// [g * E / D, (g + 1) * E / D) on device g), tokens in contiguous shards (data parallel).
import { InvalidArgumentError } from '@sparsekit/core';
import { positiveInteger } from '../validate.js';

export type ExpertPlacementKind = 'round-robin' | 'contiguous';

/** A placement by name, or the device of each expert ([numExperts], each in [0, devices)). */
export type ExpertPlacement = ExpertPlacementKind | ArrayLike<number>;

/**
 * The device of each expert: `'round-robin'` puts expert e on device e mod D; `'contiguous'` puts
 * expert e on device floor(e * D / E) (groups of E / D consecutive experts when D divides E, groups
 * differing by at most one otherwise). Refuses more devices than experts.
 */
export function placeExperts(numExperts: number, devices: number, placement: ExpertPlacement): Int32Array {
  positiveInteger('numExperts', numExperts);
  positiveInteger('devices', devices);
  if (typeof placement === 'string') {
    if (devices > numExperts)
      throw new InvalidArgumentError(
        'devices',
        devices,
        `must be at most numExperts (${numExperts}): a device with no expert has nothing to run`,
      );
    if (placement === 'round-robin') return Int32Array.from({ length: numExperts }, (_, e) => e % devices);
    if (placement === 'contiguous')
      return Int32Array.from({ length: numExperts }, (_, e) => Math.floor((e * devices) / numExperts));
    throw new InvalidArgumentError('placement', placement, "must be 'round-robin', 'contiguous' or an array");
  }
  if (placement.length !== numExperts)
    throw new InvalidArgumentError(
      'placement',
      placement.length,
      `must give a device for each of ${numExperts} experts`,
    );
  const out = new Int32Array(numExperts);
  for (let e = 0; e < numExperts; e++) {
    const d = placement[e]!;
    if (!(Number.isInteger(d) && d >= 0 && d < devices))
      throw new InvalidArgumentError(`placement of expert ${e}`, d, `must be an integer in [0, ${devices})`);
    out[e] = d;
  }
  return out;
}

/**
 * The home device of each token: contiguous shards (token t on floor(t * D / T)), as a
 * data-parallel batch is split; or the devices given ([tokens], each in [0, devices)).
 */
export function shardTokens(tokens: number, devices: number, given?: ArrayLike<number>): Int32Array {
  positiveInteger('devices', devices);
  if (!Number.isInteger(tokens) || tokens < 0)
    throw new InvalidArgumentError('tokens', tokens, 'must be a non-negative integer');
  if (given === undefined)
    return Int32Array.from({ length: tokens }, (_, t) => Math.floor((t * devices) / tokens));
  if (given.length !== tokens)
    throw new InvalidArgumentError(
      'tokenDevice',
      given.length,
      `must give a device for each of ${tokens} tokens`,
    );
  const out = new Int32Array(tokens);
  for (let t = 0; t < tokens; t++) {
    const d = given[t]!;
    if (!(Number.isInteger(d) && d >= 0 && d < devices))
      throw new InvalidArgumentError(`device of token ${t}`, d, `must be an integer in [0, ${devices})`);
    out[t] = d;
  }
  return out;
}
