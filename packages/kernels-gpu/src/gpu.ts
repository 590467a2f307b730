// Finding a WebGPU device: navigator.gpu in browsers, the `webgpu` package (Dawn) in Node.
import { SparsekitError } from '@sparsekit/core';

/** No WebGPU adapter is available (no GPU, no driver, or no WebGPU implementation). */
export class NoGpuAdapterError extends SparsekitError {
  static override readonly code = 'kernels-gpu/no-gpu-adapter';
  static override readonly hint =
    'use the CPU backend (createWasmBackend), or install a GPU driver (on Linux without a GPU: mesa-vulkan-drivers, Mesa 23 or newer)';

  constructor(reason: string) {
    super(
      NoGpuAdapterError.code,
      `No WebGPU adapter: ${reason}. Use the CPU kernels (createWasmBackend from @sparsekit/sparse-formats), or install a GPU driver; on Linux without a GPU, Mesa's lavapipe gives a software adapter (apt-get install mesa-vulkan-drivers, Mesa 23 or newer).`,
    );
  }
}

// Dawn's GPU object must stay referenced for the life of the process: if it is collected, Dawn aborts.
let nodeGpu: GPU | undefined;

/** The GPU entry point of this environment, or undefined when there is none. */
export async function defaultGpu(): Promise<GPU | undefined> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu !== undefined) return nav.gpu;
  if (nodeGpu !== undefined) return nodeGpu;
  try {
    const name = 'webgpu';
    const dawn = (await import(/* @vite-ignore */ name)) as {
      create(options: string[]): GPU;
      globals: Record<string, unknown>;
    };
    for (const [key, value] of Object.entries(dawn.globals)) {
      if (!(key in globalThis)) (globalThis as Record<string, unknown>)[key] = value;
    }
    nodeGpu = dawn.create([]);
    return nodeGpu;
  } catch {
    return undefined;
  }
}

export interface DeviceOptions {
  /** Use this device (created by the caller); nothing else is requested. */
  device?: GPUDevice;
  /** The GPU entry point (default: navigator.gpu, or Dawn through the `webgpu` package in Node). */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
}

export interface AcquiredDevice {
  device: GPUDevice;
  /** Adapter description (vendor, architecture, device), when the implementation gives one. */
  adapter: string;
}

/** A device for the kernels, or a NoGpuAdapterError. */
export async function acquireDevice(options: DeviceOptions = {}): Promise<AcquiredDevice> {
  if (options.device !== undefined) return { device: options.device, adapter: 'caller-provided device' };
  const gpu = options.gpu ?? (await defaultGpu());
  if (gpu === undefined)
    throw new NoGpuAdapterError('this environment has no navigator.gpu and the webgpu package did not load');
  const adapter = await gpu.requestAdapter(
    options.powerPreference === undefined ? {} : { powerPreference: options.powerPreference },
  );
  if (adapter === null) throw new NoGpuAdapterError('requestAdapter() returned null');
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    },
  });
  const info = adapter.info as GPUAdapterInfo | undefined;
  const name = [info?.vendor, info?.architecture, info?.device, info?.description].filter((s) => s).join(' ');
  return { device, adapter: name === '' ? 'unnamed adapter' : name };
}
