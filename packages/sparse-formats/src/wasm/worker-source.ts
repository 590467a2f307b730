/**
 * The body of a kernel worker, as source text so it needs no file of its own: Node runs it with
 * `new Worker(source, { eval: true })`. A worker instantiates the kernel module on the shared memory
 * and waits on the control block; each task names an export, its arguments, and where in the
 * argument list its row range [r0, r1) and its scratch pointer go.
 */
/**
 * How long a thread polls the control block before it sleeps, in milliseconds of wall time (not
 * polls: a thread descheduled on a busy machine then stops spinning as soon as it runs again).
 */
export const SPIN_MS = 0.1;

export const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, control, id, names } = workerData;
const exports_ = new WebAssembly.Instance(module, { env: { memory } }).exports;
const header = new Int32Array(control, 0, 16);
const args = new Float64Array(control, 64, 32);
const parts = new Int32Array(control, 320, 64);
const fns = names.map((name) => exports_[name]);
let generation = 0; // the pool starts at 0: a task posted before this worker ran is not missed
for (;;) {
  // Spin a while first: tasks often follow each other within microseconds (decoding runs one per
  // lane and layer), and a sleeping thread takes ~0.1 ms to wake on some machines. Then timed waits:
  // a wake-up that is lost under heavy contention costs at most one period, not a hang.
  const spinUntil = performance.now() + ${SPIN_MS};
  for (let polls = 1; Atomics.load(header, 0) === generation; polls++)
    if ((polls & 255) === 0 && performance.now() > spinUntil) break;
  while (Atomics.load(header, 0) === generation) Atomics.wait(header, 0, generation, 50);
  generation = Atomics.load(header, 0);
  if (header[4] === 1) break;
  if (id < header[9]) {
    try {
      const list = Array.from(args.subarray(0, header[3]));
      list[header[5]] = parts[id];
      list[header[6]] = parts[id + 1];
      if (header[7] >= 0) list[header[7]] = header[8] + id * header[10];
      if (parts[id] < parts[id + 1]) fns[header[2]](...list);
    } catch {
      Atomics.store(header, 11, 1); // the pool throws once every thread is done
    }
  }
  if (Atomics.sub(header, 1, 1) === 1) Atomics.notify(header, 1);
}
`;

/** Control block layout shared by the pool and the workers (Int32 header, f64 args, i32 partition). */
export const CONTROL = {
  bytes: 320 + 64 * 4,
  generation: 0,
  pending: 1,
  op: 2,
  argCount: 3,
  stop: 4,
  r0Position: 5,
  r1Position: 6,
  scratchPosition: 7,
  scratchBase: 8,
  activeThreads: 9,
  scratchStride: 10,
  failed: 11,
  argsOffset: 64,
  maxArgs: 32,
  partsOffset: 320,
  maxThreads: 63,
} as const;
