import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { convertToOnnx } from '../src/index';
import { compareWithOrt, loadInTfjs, loadModelDir, MODELS_DIR, randomInput, useWasmBackend } from '../test/helpers';
await useWasmBackend();
const saved = await loadModelDir(join(MODELS_DIR, 'mobilenet_v1_0.25_224'));
const cut = 'conv_pw_13_relu';
let tfm = await loadInTfjs(saved);
tfm = tf.model({ inputs: tfm.inputs, outputs: tfm.getLayer(cut).output as any });
const onnx = convertToOnnx(saved.modelJson, saved.weights, { outputLayer: cut }).model;
function smooth(seed: number): Float32Array {
  const noise = randomInput(224 * 224 * 3 * 2, seed, -0.1, 0.1);
  const ph = randomInput(6, seed + 99, 0, 6.28);
  const out = new Float32Array(noise.length);
  for (let b = 0; b < 2; b++) for (let y = 0; y < 224; y++) for (let x = 0; x < 224; x++) for (let c = 0; c < 3; c++) {
    const i = ((b * 224 + y) * 224 + x) * 3 + c;
    out[i] = 0.8 * Math.sin(x / (9 + 5 * c + b) + ph[c]) * Math.cos(y / (13 + 3 * c) + ph[c + 3]) + noise[i];
  }
  return out;
}
for (let s = 1; s <= 4; s++) {
  const r1 = await compareWithOrt(tfm, onnx, randomInput(2 * 224 * 224 * 3, s * 31, -1, 1), [2, 224, 224, 3]);
  const r2 = await compareWithOrt(tfm, onnx, smooth(s), [2, 224, 224, 3]);
  console.log(s, 'noise', r1.maxAbsDiff, 'smooth', r2.maxAbsDiff);
}
