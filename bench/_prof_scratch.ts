import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@graft/vision';
import { buildScratchModel } from '../packages/vision/src/scratch';
await initBackend();
const B = Number(process.env.B ?? 16);
const model = buildScratchModel(150, 2, 0.5, 1);
const opt = tf.train.adam(1e-3);
const xs = tf.randomUniform([B, 150, 150, 3]);
const ys = tf.randomUniform([B, 1]).round();
const step = () => opt.minimize(() => tf.losses.sigmoidCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar, false, model.trainableWeights.map(w=>(w as any).val));
for (let i = 0; i < 2; i++) step();
let t = performance.now();
for (let i = 0; i < 3; i++) step();
console.log('step ms', (performance.now() - t) / 3, tf.getBackend());
const info = await tf.profile(() => { step(); });
const agg = new Map<string, number>();
for (const k of info.kernels) { const key = k.name + ' ' + JSON.stringify(k.inputShapes); agg.set(key, (agg.get(key) ?? 0) + (k.kernelTimeMs as number)); }
[...agg.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25).forEach(([k, v]) => console.log(v.toFixed(1), k));
