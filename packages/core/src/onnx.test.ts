import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { encodeOnnxModel } from './onnx.js';

const graph = {
  name: 'g',
  nodes: [{ op: 'Concat', inputs: ['a', 'b'], outputs: ['y'], attributes: { axis: -1 } }],
  initializers: [{ name: 'b', dims: [2], data: new Float32Array([1, 2]) }],
  inputs: [{ name: 'a', type: 'f32' as const, dims: ['n'] }],
  outputs: [{ name: 'y', type: 'f32' as const, dims: ['m'] }],
};

describe('encodeOnnxModel', () => {
  it('writes ir_version 8, the opset, and a negative int attribute as a 10-byte varint', () => {
    const bytes = encodeOnnxModel(graph);
    expect(Array.from(bytes.subarray(0, 2))).toEqual([0x08, 0x08]);
    // AttributeProto.i (field 3) = -1: 0x18 then ten bytes of 64-bit two's complement.
    const hex = Buffer.from(bytes).toString('hex');
    expect(hex).toContain(`18${'ff'.repeat(9)}01`);
    // The initializer's raw f32 bytes appear as they are.
    expect(hex).toContain(Buffer.from(new Float32Array([1, 2]).buffer).toString('hex'));
  });

  it('refuses an initializer whose data does not fill its dims, and a fractional int attribute', () => {
    expect(() =>
      encodeOnnxModel({ ...graph, initializers: [{ name: 'b', dims: [3], data: new Float32Array(2) }] }),
    ).toThrow(InvalidArgumentError);
    expect(() =>
      encodeOnnxModel({
        ...graph,
        nodes: [{ op: 'Concat', inputs: ['a', 'b'], outputs: ['y'], attributes: { axis: 0.5 } }],
      }),
    ).toThrow(InvalidArgumentError);
  });
});
