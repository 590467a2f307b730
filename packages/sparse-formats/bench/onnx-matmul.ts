// A minimal ONNX model, y = x B with B a constant initializer, encoded by hand (protobuf wire
// format) so the benchmark needs no ONNX tooling: ModelProto { ir_version, opset_import, graph }.

function varint(value: number): number[] {
  const out: number[] = [];
  let v = BigInt(value);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

type Part = Uint8Array | number[];

function concat(parts: Part[]): Uint8Array {
  const length = parts.reduce((sum, p) => sum + p.length, 0);
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A length-delimited field (wire type 2). */
function bytesField(field: number, payload: Part): Uint8Array {
  return concat([varint((field << 3) | 2), varint(payload.length), payload]);
}

function stringField(field: number, text: string): Uint8Array {
  return bytesField(field, new TextEncoder().encode(text));
}

/** A varint field (wire type 0). */
function intField(field: number, value: number): number[] {
  return [...varint(field << 3), ...varint(value)];
}

const FLOAT = 1;

function valueInfo(name: string, dims: (number | string)[]): Uint8Array {
  const shape = concat(
    dims.map((d) => bytesField(1, typeof d === 'number' ? intField(1, d) : stringField(2, d))),
  );
  const tensorType = concat([intField(1, FLOAT), bytesField(2, shape)]);
  return concat([stringField(1, name), bytesField(2, bytesField(1, tensorType))]);
}

/**
 * ONNX bytes for y[batch, n] = x[batch, k] @ B[k, n] (MatMul, opset 17), with B stored as an
 * initializer, so onnxruntime can pre-pack it as it does for a real model's weights.
 */
export function matmulModel(b: Float32Array, k: number, n: number): Uint8Array {
  const raw = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  const initializer = concat([
    intField(1, k),
    intField(1, n),
    intField(2, FLOAT),
    stringField(8, 'B'),
    bytesField(9, raw),
  ]);
  const node = concat([
    stringField(1, 'x'),
    stringField(1, 'B'),
    stringField(2, 'y'),
    stringField(4, 'MatMul'),
  ]);
  const graph = concat([
    bytesField(1, node),
    stringField(2, 'matmul'),
    bytesField(5, initializer),
    bytesField(11, valueInfo('x', ['batch', k])),
    bytesField(12, valueInfo('y', ['batch', n])),
  ]);
  const opset = concat([stringField(1, ''), intField(2, 17)]);
  return concat([intField(1, 8), bytesField(8, opset), bytesField(7, graph)]);
}
