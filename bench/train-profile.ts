// Per-kernel time of one fine-tuning step (MobileNet v1 0.75's top block + head on cached activations) and of
// one head step on wasm: where a training step's time goes.
//   npx tsx bench/train-profile.ts [--size 288] [--batch 32] [--steps 5]
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@graft/vision';
import { loadBackbone, getBackboneSpec } from '@graft/vision/backbones';
import { prepareFineTuning, fineTuneForward } from '@graft/vision/fine-tune';
import { Head } from '@graft/vision/head';
import { crossEntropy } from '@graft/vision/fit';

const { values: a } = parseArgs({
  options: { size: { type: 'string', default: '288' }, batch: { type: 'string', default: '32' }, steps: { type: 'string', default: '5' } },
});
const size = Number(a.size);
const batch = Number(a.batch);
const steps = Number(a.steps);
await initBackend({ prefer: 'wasm', log: () => {} });
const name = 'mobilenet_v1_0.75_224';
const backbone = await loadBackbone(name, '/work/shared/models', { inputSize: size });
const parts = prepareFineTuning(backbone, getBackboneSpec(name).topBlockStart);
const featureShape = (backbone.outputs[0]!.shape as number[]).slice(1);
const lowerShape = (parts.lower.outputs[0]!.shape as number[]).slice(1);
const head = new Head(featureShape, 2, { pooling: 'avg', units: 256, dropout: 0.5 }, 1);
const x = tf.randomUniform([batch, ...lowerShape], 0, 3);
const y = tf.tensor2d(Float32Array.from({ length: batch }, (_, i) => i % 2), [batch, 1]);

async function profileStep(label: string, vars: tf.Variable[], forward: () => tf.Tensor) {
  const opt = tf.train.rmsprop(1e-5, 0.9, 0, 1e-7);
  const step = () => {
    const cost = opt.minimize(() => crossEntropy('binary', y, forward()) as tf.Scalar, true, vars);
    cost!.dataSync();
    cost!.dispose();
  };
  step();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) step();
  const ms = (performance.now() - t0) / steps;
  const cu = process.cpuUsage(c0);
  const cpu = (cu.user + cu.system) / 1000 / steps;
  const info = await tf.profile(step);
  const by = new Map<string, { ms: number; n: number }>();
  for (const k of info.kernels) {
    const e = by.get(k.name) ?? { ms: 0, n: 0 };
    e.ms += k.kernelTimeMs as number;
    e.n += 1;
    by.set(k.name, e);
  }
  const total = [...by.values()].reduce((s, e) => s + e.ms, 0);
  console.log(`\n${label}: ${ms.toFixed(1)} ms wall, ${cpu.toFixed(1)} ms cpu a step of ${batch} (${((batch * 1000) / cpu).toFixed(0)} samples/s of cpu); kernels ${info.kernels.length}, sum ${total.toFixed(1)} ms`);
  for (const [k, e] of [...by.entries()].sort((p, q) => q[1].ms - p[1].ms).slice(0, 25)) {
    console.log(`  ${k.padEnd(36)} ${String(e.n).padStart(4)} ${e.ms.toFixed(2).padStart(9)} ms`);
  }
}

const ftVars = [...parts.blockWeights, ...head.trainableWeights].map((v) => v.read() as tf.Variable);
const forward = fineTuneForward(parts, head);
await profileStep(`fine-tune ${size} (top block input ${lowerShape.join('x')})`, ftVars, () => forward([x], true));
const pooled = tf.randomUniform([batch, head.pooledSize], 0, 3);
await profileStep('head', head.trainableWeights.map((v) => v.read() as tf.Variable), () => head.classify(pooled, true));
