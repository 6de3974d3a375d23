import { join } from 'node:path';
import { convertToOnnx } from '../src/index';
import { compareWithOrt, loadInTfjs, loadModelDir, MODELS_DIR, randomInput, useWasmBackend } from '../test/helpers';
import { decodeModel } from '../src/onnx-proto';
await useWasmBackend();
for (const [m, cut, lo] of [['mobilenet_v1_0.25_224', undefined, -1], ['mobilenet_v1_0.25_224', 'conv_pw_13_relu', -1], ['darknettiny', undefined, 0]] as const) {
  const saved = await loadModelDir(join(MODELS_DIR, m));
  let t = performance.now();
  const out = convertToOnnx(saved.modelJson, saved.weights, { outputLayer: cut });
  console.log(m, cut, 'convert ms', (performance.now() - t).toFixed(0), out.model.length, JSON.stringify(out.inputs), JSON.stringify(out.outputs));
  const ops: Record<string, number> = {};
  for (const n of decodeModel(out.model).graph.node) ops[n.op_type] = (ops[n.op_type] ?? 0) + 1;
  console.log(ops);
  let tfm = await loadInTfjs(saved);
  if (cut) { const tf = await import('@tensorflow/tfjs'); tfm = tf.model({ inputs: tfm.inputs, outputs: tfm.getLayer(cut).output as any }); }
  const input = randomInput(2 * 224 * 224 * 3, 7, lo, 1);
  t = performance.now();
  const r = await compareWithOrt(tfm, out.model, input, [2, 224, 224, 3]);
  console.log('maxAbsDiff', r.maxAbsDiff, 'maxabs value', Math.max(...r.tfjs.map(Math.abs)), 'ms', (performance.now() - t).toFixed(0));
}
