import { describe, expect, it } from 'vitest';
import { SafetensorsError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { decodeSafetensors, encodeSafetensors } from './codec.js';
import { MAX_HEADER_SIZE } from './header.js';

const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
const u64 = (n: number): number[] => [
  n & 0xff,
  (n >>> 8) & 0xff,
  (n >>> 16) & 0xff,
  (n >>> 24) & 0xff,
  0,
  0,
  0,
  0,
];

/** A file assembled by hand from the specification. */
function handMade(header: string, data: number[]): Uint8Array {
  return new Uint8Array([...u64(header.length), ...ascii(header), ...data]);
}

describe('safetensors codec', () => {
  it('writes byte-exact files: length prefix, space-padded header, tensors by dtype size then name', () => {
    const bytes = encodeSafetensors(
      {
        b: Tensor.fromNumbers('u8', [7, 8, 9]),
        a: Tensor.f32([1, -2], [2]),
      },
      { format: 'pt' },
    );
    const json =
      '{"__metadata__":{"format":"pt"},' +
      '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}';
    const padded = Math.ceil(json.length / 8) * 8;
    const expected = [
      ...u64(padded),
      ...ascii(json),
      ...new Array(padded - json.length).fill(0x20),
      ...[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0], // 1.0f, -2.0f little-endian
      7,
      8,
      9,
    ];
    expect(Array.from(bytes)).toEqual(expected);
  });

  it('reads a hand-made file with every dtype', () => {
    const header = JSON.stringify({
      f64: { dtype: 'F64', shape: [1], data_offsets: [0, 8] },
      i64: { dtype: 'I64', shape: [1], data_offsets: [8, 16] },
      f32: { dtype: 'F32', shape: [1], data_offsets: [16, 20] },
      i32: { dtype: 'I32', shape: [1], data_offsets: [20, 24] },
      f16: { dtype: 'F16', shape: [1], data_offsets: [24, 26] },
      bf16: { dtype: 'BF16', shape: [1], data_offsets: [26, 28] },
      i16: { dtype: 'I16', shape: [1], data_offsets: [28, 30] },
      i8: { dtype: 'I8', shape: [1], data_offsets: [30, 31] },
      u8: { dtype: 'U8', shape: [1], data_offsets: [31, 32] },
      bool: { dtype: 'BOOL', shape: [2], data_offsets: [32, 34] },
    });
    const data = [
      ...[0, 0, 0, 0, 0, 0, 0xf0, 0x3f], // 1.0 f64
      ...[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // -2 i64
      ...[0, 0, 0x40, 0x40], // 3.0 f32
      ...[0xfc, 0xff, 0xff, 0xff], // -4 i32
      ...[0x00, 0x45], // 5.0 f16
      ...[0xc0, 0x40], // 6.0 bf16
      ...[0xf9, 0xff], // -7 i16
      0xf8, // -8 i8
      9, // u8
      1,
      0,
    ];
    const { tensors } = decodeSafetensors(handMade(header, data));
    const values = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.toArray()]));
    expect(values).toEqual({
      f64: [1],
      i64: [-2],
      f32: [3],
      i32: [-4],
      f16: [5],
      bf16: [6],
      i16: [-7],
      i8: [-8],
      u8: [9],
      bool: [1, 0],
    });
    expect(tensors.bool!.dtype).toBe('bool');
  });

  it('round-trips tensors, shapes (including rank 0 and empty) and metadata', () => {
    const input = {
      'layers.0.weight': Tensor.f32([1, 2, 3, 4, 5, 6], [2, 3]),
      half: Tensor.fromNumbers('f16', [0.5, -0.25], [2, 1]),
      scalar: Tensor.fromNumbers('i32', [42], []),
      empty: Tensor.zeros([0, 3]),
      big: Tensor.fromNumbers('i64', [2 ** 40]),
    };
    const { tensors, metadata } = decodeSafetensors(encodeSafetensors(input, { note: 'hi' }));
    expect(metadata).toEqual({ note: 'hi' });
    for (const [name, t] of Object.entries(input)) {
      expect(tensors[name]!.dtype).toBe(t.dtype);
      expect(tensors[name]!.shape).toEqual(t.shape);
      expect(tensors[name]!.toArray()).toEqual(t.toArray());
    }
  });

  const entry = (dtype: string, shape: number[], offsets: number[]) => ({
    dtype,
    shape,
    data_offsets: offsets,
  });
  const bad: Array<[string, Uint8Array, RegExp]> = [
    ['too short', new Uint8Array([1, 2, 3]), /shorter than the 8-byte/],
    [
      'header too large',
      new Uint8Array([...u64(0), 0, 0, 0, 0].map((v, i) => (i === 4 ? 1 : v))),
      /exceeds the limit/,
    ],
    ['header past end', new Uint8Array([...u64(100), ...ascii('{}')]), /runs past the end/],
    ['not JSON', handMade('{"a":', []), /not valid JSON/],
    ['not an object', handMade('[1,2]', []), /does not start with/],
    ['bad utf-8', new Uint8Array([...u64(3), 0x7b, 0xff, 0x7d]), /not valid UTF-8/],
    [
      'unknown dtype',
      handMade(JSON.stringify({ a: entry('F8_E4M3', [1], [0, 1]) }), [0]),
      /unknown or unsupported dtype 'F8_E4M3'/,
    ],
    ['negative dim', handMade(JSON.stringify({ a: entry('U8', [-1], [0, 0]) }), []), /non-negative integers/],
    [
      'shape vs bytes',
      handMade(JSON.stringify({ a: entry('F32', [2], [0, 4]) }), [0, 0, 0, 0]),
      /needs 8 bytes/,
    ],
    ['reversed offsets', handMade(JSON.stringify({ a: entry('U8', [0], [4, 0]) }), []), /begin <= end/],
    [
      'overlap',
      handMade(JSON.stringify({ a: entry('U8', [4], [0, 4]), b: entry('U8', [2], [2, 4]) }), [1, 2, 3, 4]),
      /overlap/,
    ],
    [
      'hole',
      handMade(JSON.stringify({ a: entry('U8', [2], [0, 2]), b: entry('U8', [1], [3, 4]) }), [1, 2, 3, 4]),
      /belong to no tensor/,
    ],
    [
      'out of bounds',
      handMade(JSON.stringify({ a: entry('U8', [8], [0, 8]) }), [1, 2]),
      /run past the 2-byte/,
    ],
    ['trailing bytes', handMade(JSON.stringify({ a: entry('U8', [1], [0, 1]) }), [1, 2]), /trailing bytes/],
    ['metadata not strings', handMade(JSON.stringify({ __metadata__: { a: 1 } }), []), /must be a string/],
  ];

  it.each(bad)('rejects %s with a SafetensorsError', (_, bytes, message) => {
    let caught: unknown;
    try {
      decodeSafetensors(bytes);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SafetensorsError);
    expect((caught as SafetensorsError).code).toBe('core/safetensors');
    expect((caught as Error).message).toMatch(message);
  });

  it('uses the reference header limit', () => {
    expect(MAX_HEADER_SIZE).toBe(100_000_000);
  });
});

describe('tensor names', () => {
  it('keeps a tensor named __proto__ (as the reference implementation does)', () => {
    const t = new Tensor('f32', [2], Float32Array.of(1, 2));
    const bytes = encodeSafetensors(
      new Map([
        ['__proto__', t],
        ['a', t],
      ]),
    );
    const { tensors } = decodeSafetensors(bytes);
    expect(Object.keys(tensors).sort()).toEqual(['__proto__', 'a']);
    const proto = Object.getOwnPropertyDescriptor(tensors, '__proto__')?.value as Tensor;
    expect(Array.from(proto.toFloat32Array())).toEqual([1, 2]);
  });
});

describe('header strictness (as the reference implementation)', () => {
  /** A file whose header is `json` (padded) and whose data is `bytes` zero bytes. */
  const file = (json: string, bytes = 8, prefix = new Uint8Array(0)) => {
    const text = new TextEncoder().encode(json);
    const head = new Uint8Array(prefix.length + text.length);
    head.set(prefix);
    head.set(text, prefix.length);
    const out = new Uint8Array(8 + head.length + bytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
    out.set(head, 8);
    return out;
  };
  const tensor = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}';

  it('accepts a plain header', () => {
    expect(Object.keys(decodeSafetensors(file(`{${tensor}}`)).tensors)).toEqual(['a']);
  });

  it.each([
    ['duplicate __metadata__', `{"__metadata__":{"x":"1"},"__metadata__":{"x":"2"},${tensor}}`, /twice/],
    ['duplicate tensor names', `{${tensor},${tensor}}`, /twice/],
    ['an integer written as 4.0', '{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', /integer/],
    ['an exponent', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}', /integer/],
    ['a lone surrogate in a name', '{"\\ud800":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', /Unicode/],
  ])('rejects %s', (_, json, message) => {
    expect(() => decodeSafetensors(file(json))).toThrow(SafetensorsError);
    expect(() => decodeSafetensors(file(json))).toThrow(message);
  });

  it('rejects a UTF-8 BOM before the JSON', () => {
    expect(() => decodeSafetensors(file(`{${tensor}}`, 8, Uint8Array.of(0xef, 0xbb, 0xbf)))).toThrow(
      SafetensorsError,
    );
  });
});
