// Times the wasm training kernels of packages/vision/src/backend/ against the cpu backend, against the stock wasm
// kernel where one exists (BatchMatMul with transposes, Conv2DBackpropInput) and against the other ways of
// building them that were considered; then one training step of MobileNet v1 0.25's top block on wasm and cpu.
// Run: npx tsx bench/wasm-kernels.ts [--quick]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '@graft/vision/backend/wasm-kernels';
import { filterGradient } from '@graft/vision/backend/wasm-conv-grads';
import { asHeapBackend } from '@graft/vision/backend/wasm-heap';

const QUICK = process.argv.includes('--quick');
const MODEL = '/work/shared/models/mobilenet_v1_0.25_224/model.json';

type Shape4 = [number, number, number, number];
type Outputs = tf.Tensor | tf.Tensor[];

/** Wall and process-CPU milliseconds of one measurement (CPU time is the steadier one on a shared machine). */
interface Timing {
  wall: number;
  cpu: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median times of `reps` runs of fn (after one warm-up run unless warmUp is false); outputs are read back. */
function timeMs(fn: () => Outputs, reps: number, warmUp = true): Timing {
  const run = () => {
    const out = fn();
    const list = Array.isArray(out) ? out : [out];
    list.forEach((t) => t.dataSync());
    tf.dispose(list);
  };
  if (warmUp) run();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < reps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    run();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { wall: median(wall), cpu: median(cpu) };
}

const rows: { kernel: string; shape: string; variant: string; t: Timing }[] = [];
function record(kernel: string, shape: string, variant: string, t: Timing): void {
  rows.push({ kernel, shape, variant, t });
  console.log(
    `${kernel.padEnd(28)} ${shape.padEnd(40)} ${variant.padEnd(26)} ${t.wall.toFixed(2).padStart(10)} ${t.cpu.toFixed(2).padStart(10)}`,
  );
}

/** Runs a kernel function that is not the registered one (a stock wasm kernel) and wraps its output. */
function runKernelFunc(config: tf.KernelConfig, inputs: Record<string, tf.Tensor>, attrs: tf.NamedAttrMap): tf.Tensor {
  const backend = tf.backend();
  const out = config.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(out, backend);
}

const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: tf.NamedAttrMap) =>
  tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;

/**
 * Times fn on the cpu backend (inputs made there by make()), then switches back to wasm. The cpu kernels are
 * plain JavaScript with nothing to warm up and some take tens of seconds: one run, no warm-up.
 */
async function onCpu(make: () => tf.Tensor[], fn: (ts: tf.Tensor[]) => Outputs): Promise<Timing> {
  await tf.setBackend('cpu');
  const ts = make();
  const t = timeMs(() => fn(ts), 1, false);
  tf.dispose(ts);
  await tf.setBackend('wasm');
  return t;
}

function outSize(size: number, k: number, s: number, pad: 'same' | 'valid'): number {
  return pad === 'same' ? Math.ceil(size / s) : Math.ceil((size - k + 1) / s);
}

// ---- Alternatives for the filter gradients, built from ops, kept here for comparison ----

/** Conv2DBackpropFilter as im2col: all taps' shifted (strided) slices of padded x side by side, one matMul. */
function filterGradIm2col(x: tf.Tensor4D, dy: tf.Tensor4D, k: number, s: number): tf.Tensor {
  return tf.tidy(() => {
    const [n, h, w, ci] = x.shape;
    const [, oh, ow, co] = dy.shape;
    const pt = Math.floor(Math.max((oh - 1) * s + k - h, 0) / 2);
    const pl = Math.floor(Math.max((ow - 1) * s + k - w, 0) / 2);
    const xp = tf.pad(x, [[0, 0], [pt, k], [pl, k], [0, 0]]);
    const taps: tf.Tensor[] = [];
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < k; c++) {
        taps.push(
          s === 1
            ? tf.slice(xp, [0, r, c, 0], [n, oh, ow, ci])
            : tf.stridedSlice(xp, [0, r, c, 0], [n, r + (oh - 1) * s + 1, c + (ow - 1) * s + 1, ci], [1, s, s, 1]),
        );
      }
    }
    const cols = tf.reshape(tf.concat(taps, 3), [n * oh * ow, k * k * ci]);
    return tf.reshape(tf.matMul(tf.transpose(cols), tf.reshape(dy, [n * oh * ow, co])), [k, k, ci, co]);
  });
}

/** Conv2DBackpropFilter as one matMul per filter tap (stride 1 only). */
function filterGradPerTap(x: tf.Tensor4D, dy: tf.Tensor4D, k: number): tf.Tensor {
  return tf.tidy(() => {
    const [n, h, w, ci] = x.shape;
    const [, oh, ow, co] = dy.shape;
    const pt = Math.floor(Math.max(oh - 1 + k - h, 0) / 2);
    const pl = Math.floor(Math.max(ow - 1 + k - w, 0) / 2);
    const xp = tf.pad(x, [[0, 0], [pt, k], [pl, k], [0, 0]]);
    const dy2 = tf.reshape(dy, [n * oh * ow, co]);
    const taps: tf.Tensor[] = [];
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < k; c++) {
        const xs = tf.reshape(tf.slice(xp, [0, r, c, 0], [n, oh, ow, ci]), [n * oh * ow, ci]);
        taps.push(tf.matMul(tf.transpose(xs), dy2));
      }
    }
    return tf.reshape(tf.stack(taps), [k, k, ci, co]);
  });
}

/** DepthwiseConv2dNativeBackpropFilter as a depthwise correlation of x with dy as an OH x OW filter. */
function depthwiseFilterGradByConv(x: tf.Tensor4D, dy: tf.Tensor4D, k: number, s: number): tf.Tensor {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const [, oh, ow] = dy.shape;
    const rows = (oh - 1) * s + k;
    const cols = (ow - 1) * s + k;
    const pt = Math.floor(Math.max(rows - h, 0) / 2);
    const pl = Math.floor(Math.max(cols - w, 0) / 2);
    const xp = tf.slice(tf.pad(x, [[0, 0], [pt, k], [pl, k], [0, 0]]), [0, 0, 0, 0], [n, rows, cols, c]);
    const xT = tf.reshape(tf.transpose(xp, [1, 2, 0, 3]), [1, rows, cols, n * c]);
    const dyT = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [oh, ow, n * c, 1]);
    const g = tf.depthwiseConv2d(xT as tf.Tensor4D, dyT as tf.Tensor4D, 1, 'valid', 'NHWC', [s, s]);
    return tf.reshape(tf.sum(tf.reshape(g, [k, k, n, c]), 2), [k, k, c, 1]);
  });
}

// ---- Kernel benchmarks ----

// cpuFilter: also time the cpu backend's Conv2DBackpropFilter, which takes ~0.15 us per multiply-add (17 s for
// the first shape), so only where it stays under a minute.
const convShapes: { x: Shape4; k: number; s: number; co: number; cpuFilter: boolean }[] = [
  { x: [16, 7, 7, 256], k: 1, s: 1, co: 256, cpuFilter: true }, // MobileNet 0.25 conv_pw_13
  { x: [16, 14, 14, 128], k: 1, s: 1, co: 128, cpuFilter: false }, // MobileNet 0.25 conv_pw_11
  { x: [16, 14, 14, 64], k: 3, s: 1, co: 64, cpuFilter: false },
  { x: [8, 28, 28, 32], k: 3, s: 1, co: 32, cpuFilter: false },
  { x: [8, 56, 56, 16], k: 3, s: 2, co: 32, cpuFilter: false },
  { x: [8, 28, 28, 16], k: 5, s: 1, co: 16, cpuFilter: true },
  { x: [8, 13, 13, 256], k: 3, s: 1, co: 512, cpuFilter: false }, // Darknet-tiny's 13x13 3x3 layers, narrower
];

const dwShapes: { x: Shape4; k: number; s: number }[] = [
  { x: [16, 7, 7, 256], k: 3, s: 1 }, // MobileNet 0.25 conv_dw_13
  { x: [16, 14, 14, 128], k: 3, s: 1 }, // MobileNet 0.25 conv_dw_11
  { x: [16, 14, 14, 128], k: 3, s: 2 }, // MobileNet 0.25 conv_dw_12
  { x: [8, 56, 56, 32], k: 3, s: 1 },
];

const label = (x: Shape4, k: number, s: number, extra = '') => `x[${x}] ${k}x${k} s${s}${extra}`;

async function benchConv(stockBackpropInput: tf.KernelConfig): Promise<void> {
  const reps = QUICK ? 2 : 5;
  for (const c of QUICK ? convShapes.slice(0, 3) : convShapes) {
    const [n, h, w, ci] = c.x;
    const oh = outSize(h, c.k, c.s, 'same');
    const ow = outSize(w, c.k, c.s, 'same');
    const dyShape: Shape4 = [n, oh, ow, c.co];
    const fShape: Shape4 = [c.k, c.k, ci, c.co];
    const name = label(c.x, c.k, c.s, ` co${c.co}`);
    const fAttrs = { strides: c.s, pad: 'same', dataFormat: 'NHWC', filterShape: fShape };
    const iAttrs = { strides: c.s, pad: 'same', dataFormat: 'NHWC', inputShape: c.x };

    const x = tf.randomUniform(c.x, -1, 1) as tf.Tensor4D;
    const dy = tf.randomUniform(dyShape, -1, 1) as tf.Tensor4D;
    const f = tf.randomUniform(fShape, -1, 1) as tf.Tensor4D;
    record('Conv2DBackpropFilter', name, 'wasm (new)', timeMs(() => run('Conv2DBackpropFilter', { x, dy }, fAttrs), reps));
    const info = tf.backend_util.computeConv2DInfo(c.x, fShape, c.s, 1, 'same');
    const heap = asHeapBackend(tf.backend());
    if (c.k > 1 || c.s > 1) {
      for (const method of ['im2col', 'conv'] as const) {
        record('Conv2DBackpropFilter', name, `wasm ${method} path only`,
          timeMs(() => tf.tidy(() => filterGradient(x, dy, info, heap, { method })), reps));
      }
    }
    record('Conv2DBackpropFilter', name, 'wasm slice+concat im2col', timeMs(() => filterGradIm2col(x, dy, c.k, c.s), reps));
    if (c.s === 1) {
      record('Conv2DBackpropFilter', name, 'wasm matMul per tap', timeMs(() => filterGradPerTap(x, dy, c.k), reps));
    }
    record('Conv2DBackpropInput', name, 'wasm (new)', timeMs(() => run('Conv2DBackpropInput', { dy, filter: f }, iAttrs), reps));
    record('Conv2DBackpropInput', name, 'wasm stock kernel',
      timeMs(() => runKernelFunc(stockBackpropInput, { dy, filter: f }, iAttrs), reps));
    tf.dispose([x, dy, f]);

    const make = () => [tf.randomUniform(c.x, -1, 1), tf.randomUniform(dyShape, -1, 1), tf.randomUniform(fShape, -1, 1)];
    if (c.cpuFilter && !QUICK) {
      record('Conv2DBackpropFilter', name, 'cpu',
        await onCpu(make, ([xc, dyc]) => run('Conv2DBackpropFilter', { x: xc, dy: dyc }, fAttrs)));
    }
    record('Conv2DBackpropInput', name, 'cpu',
      await onCpu(make, ([, dyc, fc]) => run('Conv2DBackpropInput', { dy: dyc, filter: fc }, iAttrs)));
    record('Conv2D (forward, for scale)', name, 'wasm',
      (() => {
        const xf = tf.randomUniform(c.x, -1, 1) as tf.Tensor4D;
        const ff = tf.randomUniform(fShape, -1, 1) as tf.Tensor4D;
        const ms = timeMs(() => tf.conv2d(xf, ff, c.s, 'same'), reps);
        tf.dispose([xf, ff]);
        return ms;
      })());
  }
}

async function benchDepthwise(): Promise<void> {
  const reps = QUICK ? 2 : 5;
  for (const c of QUICK ? dwShapes.slice(0, 2) : dwShapes) {
    const [n, h, w, ch] = c.x;
    const oh = outSize(h, c.k, c.s, 'same');
    const ow = outSize(w, c.k, c.s, 'same');
    const dyShape: Shape4 = [n, oh, ow, ch];
    const fShape: Shape4 = [c.k, c.k, ch, 1];
    const name = label(c.x, c.k, c.s);
    const fAttrs = { strides: c.s, dilations: 1, pad: 'same', filterShape: fShape };
    const iAttrs = { strides: c.s, dilations: 1, pad: 'same', inputShape: c.x };

    const x = tf.randomUniform(c.x, -1, 1) as tf.Tensor4D;
    const dy = tf.randomUniform(dyShape, -1, 1) as tf.Tensor4D;
    const f = tf.randomUniform(fShape, -1, 1) as tf.Tensor4D;
    record('DepthwiseBackpropFilter', name, 'wasm (new)',
      timeMs(() => run('DepthwiseConv2dNativeBackpropFilter', { x, dy }, fAttrs), reps));
    record('DepthwiseBackpropFilter', name, 'wasm depthwise OHxOW filter',
      timeMs(() => depthwiseFilterGradByConv(x, dy, c.k, c.s), reps));
    record('DepthwiseBackpropInput', name, 'wasm (new)',
      timeMs(() => run('DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, iAttrs), reps));
    record('DepthwiseConv2D (forward, for scale)', name, 'wasm', timeMs(() => tf.depthwiseConv2d(x, f, c.s, 'same'), reps));
    tf.dispose([x, dy, f]);

    const make = () => [tf.randomUniform(c.x, -1, 1), tf.randomUniform(dyShape, -1, 1), tf.randomUniform(fShape, -1, 1)];
    record('DepthwiseBackpropFilter', name, 'cpu',
      await onCpu(make, ([xc, dyc]) => run('DepthwiseConv2dNativeBackpropFilter', { x: xc, dy: dyc }, fAttrs)));
    record('DepthwiseBackpropInput', name, 'cpu',
      await onCpu(make, ([, dyc, fc]) => run('DepthwiseConv2dNativeBackpropInput', { dy: dyc, filter: fc }, iAttrs)));
  }
}

async function benchMatMul(stockMatMul: tf.KernelConfig): Promise<void> {
  const reps = QUICK ? 2 : 5;
  const cases: { a: number[]; b: number[]; tA: boolean; tB: boolean; note: string }[] = [
    { a: [784, 256], b: [784, 256], tA: true, tB: false, note: '1x1 conv dW, 16x7x7x256' },
    { a: [16, 256], b: [16, 1000], tA: true, tB: false, note: 'dense dW' },
    { a: [16, 1000], b: [256, 1000], tA: false, tB: true, note: 'dense dx' },
    { a: [784, 256], b: [256, 256], tA: false, tB: false, note: 'plain, for scale' },
    { a: [8, 128, 64], b: [8, 64, 128], tA: false, tB: false, note: 'batched' },
  ];
  for (const c of QUICK ? cases.slice(0, 2) : cases) {
    const name = `[${c.a}]${c.tA ? 'ᵀ' : ''} x [${c.b}]${c.tB ? 'ᵀ' : ''} (${c.note})`;
    const attrs = { transposeA: c.tA, transposeB: c.tB };
    const a = tf.randomUniform(c.a, -1, 1);
    const b = tf.randomUniform(c.b, -1, 1);
    record('BatchMatMul', name, 'wasm (new)', timeMs(() => run('BatchMatMul', { a, b }, attrs), reps));
    record('BatchMatMul', name, 'wasm stock kernel', timeMs(() => runKernelFunc(stockMatMul, { a, b }, attrs), reps));
    tf.dispose([a, b]);
    record('BatchMatMul', name, 'cpu',
      await onCpu(() => [tf.randomUniform(c.a, -1, 1), tf.randomUniform(c.b, -1, 1)],
        ([ac, bc]) => run('BatchMatMul', { a: ac, b: bc }, attrs)));
  }
}

async function benchTile(stockTile: tf.KernelConfig): Promise<void> {
  const reps = QUICK ? 2 : 5;
  const cases: { x: number[]; reps: number[]; note: string }[] = [
    { x: [1, 1, 1, 256], reps: [16, 7, 7, 1], note: 'batch-norm gradient' },
    { x: [16, 1, 1, 128], reps: [1, 14, 14, 1], note: '' },
    { x: [64, 3], reps: [4, 2], note: '' },
  ];
  for (const c of cases) {
    const name = `[${c.x}] by [${c.reps}]${c.note ? ` (${c.note})` : ''}`;
    const attrs = { reps: c.reps };
    const x = tf.randomUniform(c.x, -1, 1);
    record('Tile', name, 'wasm (new)', timeMs(() => run('Tile', { x }, attrs), reps));
    record('Tile', name, 'wasm stock kernel', timeMs(() => runKernelFunc(stockTile, { x }, attrs), reps));
    tf.dispose(x);
    record('Tile', name, 'cpu', await onCpu(() => [tf.randomUniform(c.x, -1, 1)], ([xc]) => run('Tile', { x: xc }, attrs)));
  }
}

// ---- MobileNet top block ----

/** Loads a TensorFlow.js layers model from the local file system (no tfjs-node: an in-memory IO handler). */
async function loadLayersModelFromFile(path: string): Promise<tf.LayersModel> {
  const json = JSON.parse(readFileSync(path, 'utf8'));
  const specs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of json.weightsManifest as tf.io.WeightsManifestConfig) {
    specs.push(...group.weights);
    for (const p of group.paths) buffers.push(readFileSync(join(dirname(path), p)));
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData }));
}

/**
 * The trainable top of MobileNet v1 0.25 on its 14x14x128 features: conv_dw_12 (stride 2) ... conv_pw_13_relu
 * (two depthwise + pointwise blocks with batch normalisation), global average pooling and a 5-way dense head.
 */
function topBlock(base: tf.LayersModel): tf.LayersModel {
  const names = [12, 13].flatMap((i) =>
    [`conv_dw_${i}`, `conv_dw_${i}_bn`, `conv_dw_${i}_relu`, `conv_pw_${i}`, `conv_pw_${i}_bn`, `conv_pw_${i}_relu`],
  );
  const input = tf.input({ shape: [14, 14, 128] });
  let h = input as tf.SymbolicTensor;
  for (const name of names) h = base.getLayer(name).apply(h) as tf.SymbolicTensor;
  h = tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 5, activation: 'softmax' }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

async function benchTopBlock(backendName: string, reps: number): Promise<{ t: Timing; kernels?: [string, number][] }> {
  await tf.setBackend(backendName);
  const base = await loadLayersModelFromFile(MODEL);
  const model = topBlock(base);
  model.compile({ optimizer: tf.train.rmsprop(1e-5), loss: 'categoricalCrossentropy' });
  const batch = 16;
  const xs = tf.randomUniform([batch, 14, 14, 128], 0, 2);
  const ys = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 5), 'int32'), 5);
  if (backendName === 'wasm') await model.trainOnBatch(xs, ys); // warm-up (the cpu step takes ~45 s)
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < reps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await model.trainOnBatch(xs, ys);
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  let kernels: [string, number][] | undefined;
  if (backendName === 'wasm') {
    const info = await tf.profile(async () => {
      await model.trainOnBatch(xs, ys);
    });
    const byName = new Map<string, number>();
    for (const k of info.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      byName.set(k.name, (byName.get(k.name) ?? 0) + ms);
    }
    kernels = [...byName.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
  }
  tf.dispose([xs, ys]);
  model.dispose();
  base.dispose();
  return { t: { wall: median(wall), cpu: median(cpu) }, kernels };
}

async function main(): Promise<void> {
  await tf.setBackend('wasm');
  const stockMatMul = tf.getKernel('BatchMatMul', 'wasm');
  const stockBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
  const stockTile = tf.getKernel('Tile', 'wasm');
  if (!stockMatMul || !stockBackpropInput || !stockTile) throw new Error('stock wasm kernels not found');
  registerWasmTrainingKernels();
  await tf.setBackend('wasm');
  console.log(`tfjs ${tf.version.tfjs}, wasm threads: 1 (Node), ${QUICK ? 'quick run' : 'full run'}`);
  console.log('times are medians in ms: wall clock, and CPU time of the process (steadier on a shared machine)');
  console.log(`${'kernel'.padEnd(28)} ${'shape'.padEnd(40)} ${'variant'.padEnd(26)} ${'wall'.padStart(10)} ${'cpu'.padStart(10)}`);

  await benchConv(stockBackpropInput);
  await benchDepthwise();
  await benchMatMul(stockMatMul);
  await benchTile(stockTile);

  const block = 'batch 16, 14x14x128 in, RMSprop';
  const wasmStep = await benchTopBlock('wasm', QUICK ? 2 : 5);
  record('train step, MobileNet top', block, 'wasm (new kernels)', wasmStep.t);
  if (!QUICK) {
    const cpuStep = await benchTopBlock('cpu', 1);
    record('train step, MobileNet top', block, 'cpu', cpuStep.t);
  }
  if (wasmStep.kernels) {
    console.log('\nwasm kernel time in one step (tf.profile, ms; kernels called inside other kernels count in both):');
    for (const [name, ms] of wasmStep.kernels) console.log(`  ${name.padEnd(40)} ${ms.toFixed(2).padStart(8)}`);
  }
  console.log(`\n${rows.length} rows`);
}

await main();
