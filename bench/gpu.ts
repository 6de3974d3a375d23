// Graft on a GPU: the default job (fine-tuning MobileNet v1 0.75 after augmented feature extraction) on Dogs vs
// Cats (train 1,000 + 1,000, validation 500 + 500) on the chosen TensorFlow.js backend (webgpu by default), with
// the time and images/s of each phase and the validation accuracy; then the steps of ../shared/gpu/torch-anchor.py
// on the same backend (MobileNet v1 0.75 at 224, random weights: frozen-base forward, the top block trained on
// cached activations, the whole network trained, the dense head), and the same steps in PyTorch where python3
// has torch with CUDA, side by side. Also how fast images decode (sharp) and how fast this thread augments them,
// to compare with what the GPU takes during feature extraction.
//
//   npx tsx bench/gpu.ts [--backend webgpu (default; or GRAFT_TF_BACKEND)] [--config JSON] [--per-class N] [--steps-alpha 0.75]
//        [--steps-size 224] [--seconds 4] [--skip-job] [--skip-steps] [--torch ../shared/gpu/torch-anchor.py]
//        [--python python3] [--data DIR] [--models DIR]
//
// On an NVIDIA H200 without Node.js or network (../shared/gpu/README.md), from a checkout with node_modules:
//   PACK_SKIP=onnxruntime-node ../shared/gpu/pack.sh bench/gpu.ts
//   mkdir -p .device/models && cp -r ../shared/models/mobilenet_v1_0.75_224 .device/models/
//   npx tsx bench/downscale.ts ../shared/datasets/dogs-vs-cats .device/data --size 128   (fits the 64 MiB carried)
//   cp ../shared/gpu/torch-anchor.py .device/
// then with the device tool (carry [".device"]), from the checkout root:
//   run: bash .device/run.sh bench/gpu.ts --data .device/data --models .device/models --torch .device/torch-anchor.py
// and for the CPU's accuracy on the same copy: npx tsx bench/gpu.ts --backend wasm --data .device/data --skip-steps
// Without a GPU it runs (slowly) on Mesa's lavapipe, a CPU Vulkan driver, for a smoke test on tiny sizes:
//   npx tsx bench/gpu.ts --per-class 16 --config '{"inputSize":64,"featureExtraction":{"epochs":1},
//     "fineTuning":{"epochs":1},"augmentation":{"copies":1}}' --steps-alpha 0.25 --steps-size 64 --seconds 1
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { decodeImages, initBackend, PREPROCESSING, train, type Phase } from '@graft/vision';
import { TRAINING_RESIZE_KERNEL } from '@graft/inference';
import { PhaseTimes } from './phase-times';
import { resolveConfig, type TrainingConfigInput } from '@graft/contract';
import { itemInput } from '@graft/vision/features';
import { classLabels, folderTraining, listSplit } from './splits';
import { loadConfigOrExit } from '@graft/config';

// GRAFT_TF_BACKEND, GRAFT_TRAIN_THREADS and GRAFT_FROZEN_ENGINE, checked as the services check them.
const { training } = loadConfigOrExit();

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string' },
    config: { type: 'string', default: '{}' },
    'per-class': { type: 'string' },
    'steps-alpha': { type: 'string', default: '0.75' },
    'steps-size': { type: 'string', default: '224' },
    seconds: { type: 'string', default: '4' },
    'skip-job': { type: 'boolean', default: false },
    'skip-steps': { type: 'boolean', default: false },
    torch: { type: 'string', default: resolve(import.meta.dirname, '../../shared/gpu/torch-anchor.py') },
    python: { type: 'string', default: 'python3' },
    data: { type: 'string', default: resolve(import.meta.dirname, '../../shared/datasets/dogs-vs-cats') },
    models: { type: 'string', default: resolve(import.meta.dirname, '../../shared/models') },
  },
});
const SECONDS = Number(args.seconds);

/** The first n images of each class of a split (all where n is not given). */
function split(name: string, labels: string[]) {
  const refs = listSplit(join(args.data!, name), labels);
  const n = args['per-class'] ? Number(args['per-class']) : Infinity;
  return labels.flatMap((_, i) => refs.filter((r) => r.label === i).slice(0, n));
}

/** The default job, its phases timed by the engine's phase events. */
async function runJob(): Promise<string[]> {
  const labels = classLabels(args.data!);
  const splits = { train: split('train', labels), validation: split('validation', labels), test: [] };
  const config = resolveConfig(JSON.parse(args.config!) as TrainingConfigInput);
  const phases = new PhaseTimes();
  const started = performance.now();
  let extracted: { images: number; seconds: number } | null = null;
  const result = await train({
    config,
    labels,
    splits,
    ...folderTraining(args.models!, training),
    log: (obj, msg) => {
      if (msg === 'features extracted') extracted = obj as typeof extracted;
      if (/backend|frozen|extracted|finished|epoch \d+ of|evaluated|out-of-distribution|exported/.test(msg)) console.log(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${msg}`);
    },
    onEvent: phases.onEvent,
  });
  const wall = (performance.now() - started) / 1000;
  const seconds = phases.finish();
  // Samples each phase went through: epochs run x training images (cached copies count as one image an epoch).
  const epochs = (p: string) => result.history.filter((r) => r.phase === p).length;
  const samples: Partial<Record<Phase, number>> = {
    extracting: (extracted as { images: number } | null)?.images ?? 0,
    training_head: epochs('training_head') * result.counts.train,
    fine_tuning: epochs('fine_tuning') * result.counts.train,
    evaluating: result.counts.validation,
  };
  const rows = (Object.keys(seconds) as Phase[]).map((p) => {
    const s = seconds[p]!;
    const n = samples[p];
    return `| ${p} | ${s.toFixed(1)} | ${n ? `${n} | ${(n / s).toFixed(0)}` : '— | —'} |`;
  });
  const acc = result.validation ? (100 * result.validation.accuracy).toFixed(1) : '—';
  return [
    `| job phase (${tf.getBackend()}, ${config.backbone}, ${result.counts.train} train / ${result.counts.validation} validation) | seconds | images | images/s |`,
    '|---|---:|---:|---:|',
    ...rows,
    `| whole job | ${wall.toFixed(1)} | | |`,
    `| validation accuracy | ${acc}% | | |`,
  ];
}

/** MobileNet v1 as torch-anchor.py builds it: the lower network, the top block + head, and both as one. */
function mobilenet(alpha: number, size: number) {
  const f = (n: number) => Math.floor(n * alpha);
  const cbr = (x: tf.SymbolicTensor, layer: tf.layers.Layer) => {
    const y = tf.layers.batchNormalization().apply(layer.apply(x)) as tf.SymbolicTensor;
    return tf.layers.reLU({ maxValue: 6 }).apply(y) as tf.SymbolicTensor;
  };
  const inp = tf.input({ shape: [size, size, 3] });
  let x = cbr(inp, tf.layers.conv2d({ filters: f(32), kernelSize: 3, strides: 2, padding: 'same', useBias: false }));
  const spec: [number, number][] = [[64, 1], [128, 2], [128, 1], [256, 2], [256, 1], [512, 2], [512, 1], [512, 1], [512, 1], [512, 1], [512, 1], [1024, 2]];
  for (const [c, s] of spec) {
    x = cbr(x, tf.layers.depthwiseConv2d({ kernelSize: 3, strides: s, padding: 'same', useBias: false }));
    x = cbr(x, tf.layers.conv2d({ filters: f(c), kernelSize: 1, padding: 'same', useBias: false }));
  }
  const lower = tf.model({ inputs: inp, outputs: x });
  const tin = tf.input({ shape: x.shape.slice(1) as number[] });
  let y = cbr(tin, tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false }));
  y = cbr(y, tf.layers.conv2d({ filters: f(1024), kernelSize: 1, padding: 'same', useBias: false }));
  y = tf.layers.globalAveragePooling2d({}).apply(y) as tf.SymbolicTensor;
  y = tf.layers.dense({ units: 256, activation: 'relu' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.dense({ units: 1, activation: 'sigmoid' }).apply(y) as tf.SymbolicTensor;
  const top = tf.model({ inputs: tin, outputs: y });
  const full = tf.model({ inputs: inp, outputs: top.apply(lower.apply(inp)) as tf.SymbolicTensor });
  return { lower, top, full, features: f(1024) };
}

/** Samples per second of fn (n samples a call), after two warm-up calls, over SECONDS. */
async function rate(fn: () => Promise<void>, n: number): Promise<number> {
  await fn();
  await fn();
  const t0 = performance.now();
  let done = 0;
  while (performance.now() - t0 < SECONDS * 1000) {
    await fn();
    done += n;
  }
  return done / ((performance.now() - t0) / 1000);
}

/** torch-anchor.py's steps on this backend, keyed as its JSON output is. */
async function steps(alpha: number, size: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const { lower, top, full, features } = mobilenet(alpha, size);
  for (const b of [32, 64, 128]) {
    const x = tf.randomUniform([b, size, size, 3], -1, 1);
    out[`fp32 forward b${b}`] = await rate(async () => {
      const p = tf.tidy(() => tf.mean(lower.predict(x) as tf.Tensor, [1, 2]));
      await p.data();
      p.dispose();
    }, b);
    x.dispose();
  }
  top.compile({ optimizer: tf.train.rmsprop(1e-5), loss: 'binaryCrossentropy' });
  const hShape = lower.outputs[0]!.shape.slice(1) as number[];
  for (const b of [32, 64]) {
    const h = tf.randomUniform([b, ...hShape], 0, 6);
    const yb = tf.ones([b, 1]);
    out[`fp32 top-block train b${b}`] = await rate(async () => void (await top.trainOnBatch(h, yb)), b);
    tf.dispose([h, yb]);
  }
  full.compile({ optimizer: tf.train.rmsprop(1e-5), loss: 'binaryCrossentropy' });
  const x = tf.randomUniform([32, size, size, 3], -1, 1);
  const y32 = tf.ones([32, 1]);
  out['fp32 whole-net train b32'] = await rate(async () => void (await full.trainOnBatch(x, y32)), 32);
  tf.dispose([x, y32]);
  const head = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [features], units: 256, activation: 'relu' }),
      tf.layers.dropout({ rate: 0.5 }),
      tf.layers.dense({ units: 1, activation: 'sigmoid' }),
    ],
  });
  head.compile({ optimizer: tf.train.rmsprop(2e-5), loss: 'binaryCrossentropy' });
  const feats = tf.randomNormal([2000, features]);
  const ys = tf.ones([2000, 1]);
  out['fp32 head training samples/s'] = await rate(async () => void (await head.fit(feats, ys, { batchSize: 32, epochs: 1, verbose: 0 })), 2000);
  tf.dispose([feats, ys]);
  full.dispose(); // with the lower network and the top block it is made of
  head.dispose();
  return out;
}

/** Images per second this thread augments and normalises at `size` (the CPU side of feature extraction). */
function preparationRate(size: number): number {
  const image = new Uint8Array(size * size * 3).map((_, i) => (i * 31) % 251);
  const out = new Float32Array(size * size * 3);
  const augmentation = resolveConfig({}).augmentation || null;
  const o = { size, preprocessing: PREPROCESSING.tf, augmentation, seed: 1 };
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < Math.min(SECONDS, 2) * 1000) itemInput(o, { image: 0, copy: 1 + (n++ % 5), label: 0 }, image, out);
  return n / ((performance.now() - t0) / 1000);
}

/** Images per second sharp decodes and resizes to `size` as a job does (DEFAULT_DECODE_CONCURRENCY at a time). */
async function decodeRate(size: number): Promise<{ rate: number; images: number }> {
  const refs = split('train', classLabels(args.data!)).slice(0, 512);
  const bytes = refs.map((r) => new Uint8Array(readFileSync(r.key)));
  const t0 = performance.now();
  await decodeImages(bytes.length, async (i) => bytes[i]!, size, { kernel: TRAINING_RESIZE_KERNEL });
  return { rate: bytes.length / ((performance.now() - t0) / 1000), images: bytes.length };
}

/** torch-anchor.py's JSON line, or why it gave none. */
function torchSteps(): Record<string, number | string> | string {
  if (!existsSync(args.torch!)) return `${args.torch} not found`;
  const r = spawnSync(args.python!, [args.torch!, String(SECONDS)], { encoding: 'utf8', timeout: 900_000 });
  const line = r.stdout?.split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) return `PyTorch did not run: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}`;
  return JSON.parse(line) as Record<string, number | string>;
}

const backend = await initBackend({ prefer: args.backend ?? training.tfBackend ?? 'webgpu', log: (_o, msg) => console.log(msg) });
const report: string[] = [];
if (!args['skip-job']) report.push(...(await runJob()), '');
const size = Number(args['steps-size']);
const decoded = await decodeRate(size);
report.push(
  `decode + resize (sharp) to ${size} px: ${decoded.rate.toFixed(0)} images/s (${decoded.images} files read beforehand)`,
  `augment + normalise on this thread at ${size} px: ${preparationRate(size).toFixed(0)} images/s (on a GPU backend the job does this on the GPU)`,
  '',
);
if (!args['skip-steps']) {
  const ours = await steps(Number(args['steps-alpha']), size);
  const torch = torchSteps();
  const gpu = typeof torch === 'string' ? '' : ` (${torch.gpu}, torch ${torch.torch})`;
  report.push(
    `| step: MobileNet v1 ${args['steps-alpha']} @${size}, random weights | tfjs ${backend} | PyTorch fp32${gpu} | PyTorch bf16 channels-last |`,
    '|---|---:|---:|---:|',
    ...Object.entries(ours).map(([k, v]) => {
      const t = (key: string) => (typeof torch === 'string' || typeof torch[key] !== 'number' ? '—' : (torch[key] as number).toFixed(0));
      return `| ${k.replace(/^fp32 /, '').replace(/ samples\/s$/, '')}, samples/s | ${v.toFixed(0)} | ${t(k)} | ${t(k.replace(/^fp32/, 'bf16-channels-last'))} |`;
    }),
  );
  if (typeof torch === 'string') report.push('', `PyTorch column empty: ${torch}`);
}
console.log(`\n${report.join('\n')}`);
process.exit(0);
