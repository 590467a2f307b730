// Gradient kernels tfjs-backend-wasm 4.22 lacks, written in plain loops and registered for 'wasm'
// when `loadTfjs` chooses it: without them a Conv2D's filter gradient, a DepthwiseConv2D's
// gradients and an Embedding's (tf.gather's, through UnsortedSegmentSum) throw "Kernel ... not
// registered for backend 'wasm'", so tfjs-layers models with those layers could not train there.
// NHWC only (tfjs-layers' default, channelsLast).
import type * as TF from '@tensorflow/tfjs-core';

type Tfjs = typeof TF;
interface TensorInfo {
  dataId: object;
  shape: number[];
  dtype: string;
}
interface WasmBackend {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: string, memoryOffset?: number, values?: ArrayLike<number>): TensorInfo;
}
interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}

type ConvInfo = ReturnType<Tfjs['backend_util']['computeConv2DInfo']>;

function convInfo(
  tf: Tfjs,
  xShape: number[],
  filterShape: number[],
  attrs: Record<string, unknown>,
  depthwise: boolean,
) {
  const dataFormat = (attrs.dataFormat as string | undefined) ?? 'NHWC';
  if (dataFormat !== 'NHWC')
    throw new Error(`Sparsekit's wasm fallback kernels run NHWC only (got dataFormat ${dataFormat})`);
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as [number, number] | number,
    (attrs.dilations as [number, number] | number | undefined) ?? 1,
    attrs.pad as 'valid' | 'same' | number,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    depthwise,
  );
}

/**
 * Visit every (output position, filter tap) whose input position lies inside the image:
 * `f(inPos, outPos, tap)` with inPos = (b H + ih) W + iw, outPos the same over the output, and
 * tap = fh * filterWidth + fw; a kernel scales them by its channel counts.
 */
function eachTap(c: ConvInfo, f: (inPos: number, outPos: number, tap: number) => void): void {
  for (let b = 0; b < c.batchSize; b++)
    for (let oh = 0; oh < c.outHeight; oh++)
      for (let fh = 0; fh < c.filterHeight; fh++) {
        const ih = oh * c.strideHeight + fh * c.dilationHeight - c.padInfo.top;
        if (ih < 0 || ih >= c.inHeight) continue;
        for (let ow = 0; ow < c.outWidth; ow++)
          for (let fw = 0; fw < c.filterWidth; fw++) {
            const iw = ow * c.strideWidth + fw * c.dilationWidth - c.padInfo.left;
            if (iw < 0 || iw >= c.inWidth) continue;
            f(
              (b * c.inHeight + ih) * c.inWidth + iw,
              (b * c.outHeight + oh) * c.outWidth + ow,
              fh * c.filterWidth + fw,
            );
          }
      }
}

let registered = false;

/** Register the missing gradient kernels for the 'wasm' backend (once; a no-op when present). */
export function registerWasmGradientKernels(tf: Tfjs): void {
  if (registered) return;
  registered = true;
  const have = (name: string) => tf.getKernel(name, 'wasm') !== undefined;
  const register = (name: string, fn: (args: KernelArgs) => TensorInfo) => {
    if (!have(name)) tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: fn as never });
  };

  register('Conv2DBackpropFilter', ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const filterShape = attrs!.filterShape as number[];
    const c = convInfo(tf, x.shape, filterShape, attrs!, false);
    const X = be.readSync(x.dataId);
    const DY = be.readSync(dy.dataId);
    const [ci, co] = [c.inChannels, c.outChannels];
    const out = new Float32Array(filterShape.reduce((a, b) => a * b, 1));
    eachTap(c, (inPos, outPos, tap) => {
      const xo = inPos * ci;
      const dyo = outPos * co;
      const wo = tap * ci * co;
      for (let i = 0; i < ci; i++) {
        const xv = X[xo + i]!;
        if (xv === 0) continue;
        const row = wo + i * co;
        for (let o = 0; o < co; o++) out[row + o]! += xv * DY[dyo + o]!;
      }
    });
    return be.makeOutput(filterShape, 'float32', undefined, out);
  });

  register('DepthwiseConv2dNativeBackpropFilter', ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const filterShape = attrs!.filterShape as number[];
    const c = convInfo(tf, x.shape, filterShape, attrs!, true);
    const X = be.readSync(x.dataId);
    const DY = be.readSync(dy.dataId);
    const ci = c.inChannels;
    const mult = c.outChannels / ci;
    const out = new Float32Array(filterShape.reduce((a, b) => a * b, 1));
    eachTap(c, (inPos, outPos, tap) => {
      const xo = inPos * ci;
      const dyo = outPos * c.outChannels;
      const wo = tap * ci * mult;
      for (let i = 0; i < ci; i++)
        for (let m = 0; m < mult; m++) out[wo + i * mult + m]! += X[xo + i]! * DY[dyo + i * mult + m]!;
    });
    return be.makeOutput(filterShape, 'float32', undefined, out);
  });

  register('DepthwiseConv2dNativeBackpropInput', ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const inputShape = attrs!.inputShape as number[];
    const c = convInfo(tf, inputShape, filter.shape, attrs!, true);
    const W = be.readSync(filter.dataId);
    const DY = be.readSync(dy.dataId);
    const ci = c.inChannels;
    const mult = c.outChannels / ci;
    const out = new Float32Array(inputShape.reduce((a, b) => a * b, 1));
    eachTap(c, (inPos, outPos, tap) => {
      const xo = inPos * ci;
      const dyo = outPos * c.outChannels;
      const wo = tap * ci * mult;
      for (let i = 0; i < ci; i++) {
        let acc = 0;
        for (let m = 0; m < mult; m++) acc += W[wo + i * mult + m]! * DY[dyo + i * mult + m]!;
        out[xo + i]! += acc;
      }
    });
    return be.makeOutput(inputShape, 'float32', undefined, out);
  });

  register('UnsortedSegmentSum', ({ inputs, backend, attrs }) => {
    const be = backend as WasmBackend;
    const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
    const numSegments = attrs!.numSegments as number;
    const ids = be.readSync(segmentIds.dataId);
    const X = be.readSync(x.dataId);
    const rows = ids.length;
    const inner = rows === 0 ? 0 : X.length / rows;
    const shape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
    const out = new Float32Array(numSegments * inner);
    for (let r = 0; r < rows; r++) {
      const s = ids[r]!;
      if (s < 0 || s >= numSegments) continue; // TensorFlow drops out-of-range segment ids
      for (let i = 0; i < inner; i++) out[s * inner + i]! += X[r * inner + i]!;
    }
    return x.dtype === 'int32'
      ? be.makeOutput(shape, 'int32', undefined, Int32Array.from(out))
      : be.makeOutput(shape, 'float32', undefined, out);
  });
}
