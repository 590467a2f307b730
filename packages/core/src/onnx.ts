// ONNX model bytes written by hand (the protobuf wire format of onnx.proto3), so that graphs can be
// handed to onnxruntime without ONNX tooling: ModelProto { ir_version, opset_import, graph },
// GraphProto { node, initializer, input, output }, with f32 and i64 tensors and int, ints and float
// attributes, which is all the graphs built here need.
import { InvalidArgumentError } from './errors.js';

/** Tensor element types (TensorProto.DataType). */
const ELEMENT_TYPES = { f32: 1, i64: 7 } as const;
export type OnnxElementType = keyof typeof ELEMENT_TYPES;

/** An initializer: a named constant tensor of the graph. */
export interface OnnxInitializer {
  name: string;
  dims: readonly number[];
  data: Float32Array | BigInt64Array;
}

/** A graph input or output: its element type and dims (a string names a dimension fixed at run time). */
export interface OnnxValueInfo {
  name: string;
  type: OnnxElementType;
  dims: readonly (number | string)[];
}

/** An attribute value: an integer, a list of integers, or a float (`{ float: x }`). */
export type OnnxAttribute = number | readonly number[] | { float: number };

export interface OnnxNode {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: Readonly<Record<string, OnnxAttribute>>;
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxInitializer[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  /** The default domain's opset (default 17). */
  opset?: number;
}

type Part = Uint8Array | number[];
/** An encoded message kept as its chunks, so large initializers are copied once, into the model's bytes. */
interface Msg {
  chunks: Part[];
  length: number;
}

/** A varint; negative values as their 64-bit two's complement, as protobuf writes int64. */
function varint(value: number | bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(value));
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

/** Parts and messages side by side, as one message (no bytes copied). */
function concat(parts: (Part | Msg)[]): Msg {
  const chunks: Part[] = [];
  let length = 0;
  for (const p of parts) {
    if ('chunks' in p) for (const c of p.chunks) chunks.push(c);
    else chunks.push(p);
    length += p.length;
  }
  return { chunks, length };
}

/** A message's bytes, in one allocation. */
function flatten(m: Msg): Uint8Array {
  const out = new Uint8Array(m.length);
  let at = 0;
  for (const c of m.chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A length-delimited field (wire type 2). */
function bytesField(field: number, payload: Part | Msg): Msg {
  return concat([varint((field << 3) | 2), varint(payload.length), payload]);
}

function stringField(field: number, text: string): Msg {
  return bytesField(field, new TextEncoder().encode(text));
}

/** A varint field (wire type 0). */
function intField(field: number, value: number): number[] {
  return [...varint(field << 3), ...varint(value)];
}

/** A 32-bit float field (wire type 5). */
function floatField(field: number, value: number): number[] {
  const bytes = new Uint8Array(new Float32Array([value]).buffer);
  return [...varint((field << 3) | 5), ...bytes];
}

function initializer(t: OnnxInitializer): Msg {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== count)
    throw new InvalidArgumentError(`initializer ${t.name}`, t.data.length, `must hold ${count} values`);
  const type = t.data instanceof Float32Array ? ELEMENT_TYPES.f32 : ELEMENT_TYPES.i64;
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return concat([
    ...t.dims.map((d) => intField(1, d)),
    intField(2, type),
    stringField(8, t.name),
    bytesField(9, raw),
  ]);
}

function valueInfo(v: OnnxValueInfo): Msg {
  const shape = concat(
    v.dims.map((d) => bytesField(1, typeof d === 'number' ? intField(1, d) : stringField(2, d))),
  );
  const tensorType = concat([intField(1, ELEMENT_TYPES[v.type]), bytesField(2, shape)]);
  return concat([stringField(1, v.name), bytesField(2, bytesField(1, tensorType))]);
}

// AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7).
function attribute(name: string, value: OnnxAttribute): Msg {
  if (typeof value === 'number') {
    if (!Number.isInteger(value))
      throw new InvalidArgumentError(`attribute ${name}`, value, 'must be an integer');
    return concat([stringField(1, name), intField(3, value), intField(20, 2)]);
  }
  if ('float' in value) return concat([stringField(1, name), floatField(2, value.float), intField(20, 1)]);
  return concat([stringField(1, name), ...value.map((v) => intField(8, v)), intField(20, 7)]);
}

function node(n: OnnxNode, index: number): Msg {
  return concat([
    ...n.inputs.map((i) => stringField(1, i)),
    ...n.outputs.map((o) => stringField(2, o)),
    stringField(3, `${n.op}_${index}`),
    stringField(4, n.op),
    ...Object.entries(n.attributes ?? {}).map(([k, v]) => bytesField(5, attribute(k, v))),
  ]);
}

/** The bytes of an ONNX model (IR version 8) holding `graph`. */
export function encodeOnnxModel(graph: OnnxGraph): Uint8Array {
  const body = concat([
    ...graph.nodes.map((n, i) => bytesField(1, node(n, i))),
    stringField(2, graph.name),
    ...graph.initializers.map((t) => bytesField(5, initializer(t))),
    ...graph.inputs.map((v) => bytesField(11, valueInfo(v))),
    ...graph.outputs.map((v) => bytesField(12, valueInfo(v))),
  ]);
  // Protobuf messages are limited to 2 GiB; larger weights would need ONNX's external data.
  if (body.length >= 2 ** 31)
    throw new InvalidArgumentError(
      'ONNX graph',
      `${body.length} bytes`,
      'must be under 2 GiB (protobuf limit)',
    );
  const opset = concat([stringField(1, ''), intField(2, graph.opset ?? 17)]);
  return flatten(concat([intField(1, 8), bytesField(8, opset), bytesField(7, body)]));
}
