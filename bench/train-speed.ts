// Training speed of Graft's two trained phases next to PyTorch's on the same shapes, in one run:
//   fine-tune: MobileNet v1 0.75's top block + head on cached lower-part outputs ([n, size/32, size/32, 768]),
//   head:      the dense head (768 -> 256 ReLU -> dropout 0.5 -> 1 sigmoid) on cached pooled vectors,
// both through fit() from a FeatureStore as a training job runs them (batch 32, RMSprop), with the gradients
// from TensorFlow.js (wasm, one thread) and from ONNX Runtime (step-engine.ts, every core; the RMSprop update
// in the step graph). PyTorch runs
// bench/train_speed_torch.py with /usr/bin/python3 (2 threads); where python3 or torch is missing, the figures
// measured for issue 14 (quiet machine, 224) stand in. Samples are random: speed does not depend on values.
// Images/s are of wall time; "cpu" is per second of the process's CPU time (Graft's and PyTorch's each).
// --threads sets both sides' threads (default 2; 1 compares the work per core, which contention skews least).
//
// With --repeat, Graft and PyTorch take turns that many times (each turn: Graft's engines, then PyTorch), and
// the median of the turns' ratios is printed: on a shared machine the ratio of neighbouring runs is what holds.
// --head-samples 0 leaves the head phase out; --engines onnxruntime leaves TensorFlow.js's gradients out.
//
//   npx tsx bench/train-speed.ts [--size 288] [--ft-samples 512] [--head-samples 8192] [--models ../shared/models]
//                                [--engines tfjs,onnxruntime] [--repeat 1]
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@graft/vision';
import { getBackboneSpec, loadBackbone } from '@graft/vision/backbones';
import { FeatureStore } from '@graft/vision/features';
import { fineTuneForward, prepareFineTuning } from '@graft/vision/fine-tune';
import { fit, newPhaseState, type Forward } from '@graft/vision/fit';
import { Head } from '@graft/vision/head';
import { createStepEngine, type GradientEngine } from '@graft/vision/step-engine';

const { values: a } = parseArgs({
  options: {
    size: { type: 'string', default: '288' },
    'ft-samples': { type: 'string', default: '512' },
    'head-samples': { type: 'string', default: '8192' },
    models: { type: 'string', default: resolve(import.meta.dirname, '../../shared/models') },
    python: { type: 'string', default: '/usr/bin/python3' },
    engines: { type: 'string', default: 'tfjs,onnxruntime' },
    repeat: { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
  },
});
const size = Number(a.size);
const threads = Number(a.threads);
const BATCH = 32;
const BACKBONE = 'mobilenet_v1_0.75_224';
/** Issue 14's PyTorch 1.13 figures (2 threads, quiet machine, MobileNet v1 0.75 at 224). */
const ISSUE_FIGURES = { fineTune: 585, head: 3625, note: 'issue 14 figures (224, quiet machine)' };

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
console.log(`load average before: ${load()}`);
await initBackend({ prefer: 'wasm', log: () => {} });

/** A store of n random samples of the given shape, labels alternating. */
function randomStore(shape: number[], n: number): FeatureStore {
  const store = new FeatureStore([shape], 'binary', 2, BATCH, 1, 'one_per_group');
  const per = shape.reduce((x, y) => x * y, 1);
  let seed = 1;
  for (let i = 0; i < n; i++) {
    const v = new Float32Array(per);
    for (let j = 0; j < per; j++) v[j] = ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 3;
    store.add([v], i % 2);
  }
  return store;
}

/** Samples per second (wall and process CPU) of `epochs` epochs of fit(), after one epoch of warm-up. */
async function rate(forward: Forward, variables: tf.LayerVariable[], store: FeatureStore, epochs: number, optimizer: tf.Optimizer, gradients: GradientEngine | null) {
  const run = (n: number) =>
    fit({ phase: 'fine_tuning', attempt: 1, epochs: n, forward, variables, optimizer, loss: 'binary', train: store, validation: null, patience: null, state: newPhaseState(), history: [], gradients });
  await run(1);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await run(epochs);
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  optimizer.dispose();
  await gradients?.dispose();
  const samples = epochs * store.size;
  return { wall: samples / wall, cpu: samples / ((c.user + c.system) / 1e6) };
}

const backbone = await loadBackbone(BACKBONE, a.models, { inputSize: size });
const parts = prepareFineTuning(backbone, getBackboneSpec(BACKBONE).topBlockStart);
const featureShape = (backbone.outputs[0]!.shape as number[]).slice(1);
const lowerShape = (parts.lower.outputs[0]!.shape as number[]).slice(1);
const head = new Head(featureShape, 2, { pooling: 'avg', units: 256, dropout: 0.5 }, 1);
const ftVariables = [...parts.blockWeights, ...head.trainableWeights];
const ftStore = randomStore(lowerShape, Number(a['ft-samples']));
const headStore = Number(a['head-samples']) > 0 ? randomStore([head.pooledSize], Number(a['head-samples'])) : null;
const engines = a.engines!.split(',') as ('tfjs' | 'onnxruntime')[];
const withHead = Number(a['head-samples']) > 0;
/** The fine-tuning phase's optimizer in a training job (train/epochs.ts). */
const rmsprop = () => tf.train.rmsprop(1e-5, 0.9, 0, 1e-7);
type Row = { phase: string; engine: string; r: { wall: number; cpu: number } };

/** One measurement of each engine's phases, then PyTorch's (or the issue's figures). */
type TorchFigures = { fineTune: number; fineTuneCpu?: number; head: number; note: string };
async function measure(): Promise<{ rows: Row[]; torch: TorchFigures }> {
  const rows: Row[] = [];
  for (const engine of engines) {
    const ftOptimizer = rmsprop();
    const ftEngine = await createStepEngine({ block: parts.upper.layers, head, inputShape: lowerShape, loss: 'binary', variables: ftVariables, optimizer: ftOptimizer, seed: 1, engine, threads });
    rows.push({ phase: 'fine-tune', engine, r: await rate(fineTuneForward(parts, head), ftVariables, ftStore, 1, ftOptimizer, ftEngine) });
    if (!withHead) continue;
    const headOptimizer = rmsprop();
    const headEngine = await createStepEngine({ block: [], head, inputShape: [head.pooledSize], loss: 'binary', variables: head.trainableWeights, optimizer: headOptimizer, seed: 1, engine, threads });
    rows.push({ phase: 'head', engine, r: await rate((xs, training) => head.classify(xs[0]!, training), head.trainableWeights, headStore!, 2, headOptimizer, headEngine) });
  }
  try {
    const out = execFileSync(a.python!, [resolve(import.meta.dirname, 'train_speed_torch.py'), '--size', String(size), '--batch', String(BATCH), '--fine-tune-samples', a['ft-samples']!, '--head-samples', a['head-samples']!, '--threads', String(threads)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const r = JSON.parse(out.trim().split('\n').at(-1)!);
    return { rows, torch: { fineTune: r.fineTune, fineTuneCpu: r.fineTuneCpu, head: r.head, note: `PyTorch ${r.torch}, ${r.threads} threads, this run (${size})` } };
  } catch (err) {
    console.log(`PyTorch not run (${(err as Error).message.split('\n')[0]}); using ${ISSUE_FIGURES.note}`);
    return { rows, torch: ISSUE_FIGURES };
  }
}

const f = (x: number) => x.toFixed(0).padStart(8);
console.log(`\nMobileNet v1 0.75 at ${size} (top block input ${lowerShape.join('x')}), batch ${BATCH}, RMSprop`);
const ratios = new Map<string, number[]>();
for (let rep = 1; rep <= Number(a.repeat); rep++) {
  const { rows, torch } = await measure();
  console.log(`\nrepetition ${rep}, load average ${load()}; torch: ${torch.note}`);
  console.log(`phase      engine       ${'graft/s'.padStart(8)} ${'cpu/s'.padStart(8)} ${'torch/s'.padStart(8)} ${'cpu/s'.padStart(8)}  graft/torch  (cpu)`);
  for (const { phase, engine, r } of rows) {
    const ref = phase === 'head' ? torch.head : torch.fineTune;
    const refCpu = phase === 'head' ? undefined : torch.fineTuneCpu;
    const add = (key: string, v: number) => ratios.set(key, [...(ratios.get(key) ?? []), v]);
    add(`${phase} ${engine}`, r.wall / ref);
    if (refCpu) add(`${phase} ${engine} (cpu)`, r.cpu / refCpu);
    const cpuRatio = refCpu ? `(${(r.cpu / refCpu).toFixed(2)})` : '';
    console.log(`${phase.padEnd(10)} ${engine.padEnd(12)} ${f(r.wall)} ${f(r.cpu)} ${f(ref)} ${refCpu ? f(refCpu) : '       -'}  ${(r.wall / ref).toFixed(2).padStart(11)}  ${cpuRatio}`);
  }
}
const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
console.log(`\nmedian graft/torch over ${a.repeat} interleaved repetitions:`);
for (const [key, v] of ratios) console.log(`  ${key.padEnd(24)} ${median(v).toFixed(2)}  (${v.map((x) => x.toFixed(2)).join(' ')})`);
console.log(`load average after: ${load()}`);
