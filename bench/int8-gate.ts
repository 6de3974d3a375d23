// The int8 gate on a real trained classifier: MobileNet v1 0.75 (224) with a dense sigmoid head trained on the pooled
// features of dogs-vs-cats training images, exported as training exports it, then quantized and checked as the worker
// does after a job (calibration on 256 training images, min-max; int8 against fp32 on every validation image).
// Prints the decision (agreement, both accuracies, whether int8 would be kept) and how long the check took.
//
// --variants compares quantization choices on the same model: default (what training does), outputs (the last
// convolution's output quantized too), first-fp32 (the first convolution left in fp32), percentile, no-bias-correction.
//
//   npx tsx bench/int8-gate.ts [--train 600] [--validation 1000] [--calibration 256] [--variants default,outputs]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { createSession, decodeImage, decodeModel, exportOnnx, normalizeInto, pixelTransform, quantizeClassifier, type Int8GateOptions } from '@graft/inference';
import { exportClassifier, getBackboneSpec, initBackend, loadBackbone, makeManifest } from '@graft/vision';

const { values: args } = parseArgs({
  options: {
    train: { type: 'string', default: '600' },
    validation: { type: 'string', default: '1000' },
    calibration: { type: 'string', default: '256' },
    variants: { type: 'string', default: 'default' },
  },
});
const SHARED = path.resolve(import.meta.dirname, '../../shared');
const DATA = path.join(SHARED, 'datasets/dogs-vs-cats');
const BACKBONE = 'mobilenet_v1_0.75_224';
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');

/** Up to n images of a split, alternating classes; label 0 cats, 1 dogs. */
function split(name: string, n: number): { bytes: Uint8Array; label: number }[] {
  const lists = ['cats', 'dogs'].map((c) => fs.readdirSync(path.join(DATA, name, c)).sort().map((f) => path.join(DATA, name, c, f)));
  const out: { bytes: Uint8Array; label: number }[] = [];
  for (let i = 0; out.length < n && i < Math.max(...lists.map((l) => l.length)); i++) {
    lists.forEach((l, label) => l[i] && out.length < n && out.push({ bytes: new Uint8Array(fs.readFileSync(l[i]!)), label }));
  }
  return out;
}

async function main(): Promise<void> {
  console.log(`# int8 gate on a trained dogs-vs-cats head, ${os.availableParallelism()} cores, load average ${load()} (${new Date().toISOString()})`);
  await initBackend();
  const spec = getBackboneSpec(BACKBONE);
  const backbone = await loadBackbone(BACKBONE, path.join(SHARED, 'models'));
  const manifestParts = { labels: ['cats', 'dogs'], inputSize: 224, backbone: BACKBONE, method: 'feature_extraction' as const, preprocessing: spec.preprocessing, outputActivation: 'sigmoid' as const };

  // Pooled features of the training images (fp32 ONNX Runtime), then a logistic head fitted on them.
  const dir = path.join(SHARED, 'models', BACKBONE);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const shards = json.weightsManifest.flatMap((g: { paths: string[] }) => g.paths).map((p: string) => fs.readFileSync(path.join(dir, p)));
  const featureModel = exportOnnx(json, Buffer.concat(shards), { outputLayer: backbone.outputs[0]!.sourceLayer.name });
  const session = await createSession(featureModel);
  const train = split('train', Number(args.train));
  const t = pixelTransform(spec.preprocessing);
  const per = 224 * 224 * 3;
  let started = performance.now();
  const features: Float32Array[] = [];
  for (let i = 0; i < train.length; i += 16) {
    const chunk = train.slice(i, i + 16);
    const input = new Float32Array(chunk.length * per);
    (await Promise.all(chunk.map((c) => decodeImage(c.bytes, 224)))).forEach((p, j) => normalizeInto(p, t, input, j * per));
    const maps = await session.run(input, chunk.length);
    const size = maps.length / chunk.length / 768;
    for (let j = 0; j < chunk.length; j++) {
      const f = new Float32Array(768);
      for (let k = 0; k < size; k++) for (let c = 0; c < 768; c++) f[c] += maps[(j * size + k) * 768 + c]! / size;
      features.push(f);
    }
  }
  await session.dispose();
  console.log(`features of ${train.length} training images in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const pool = tf.layers.globalAveragePooling2d({ name: 'graft_head_pool' });
  const dense = tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'graft_head_predictions' });
  const head = tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [768] }), dense] });
  head.compile({ optimizer: tf.train.adam(0.01), loss: 'binaryCrossentropy', metrics: ['accuracy'] });
  const x = tf.tensor2d(features.flatMap((f) => Array.from(f)), [features.length, 768]);
  const y = tf.tensor2d(train.map((s) => s.label), [train.length, 1]);
  const fit = await head.fit(x, y, { epochs: 60, batchSize: 64, verbose: 0 });
  console.log(`head trained: training accuracy ${Number(fit.history.acc!.at(-1)).toFixed(3)}`);
  tf.dispose([x, y]);
  const out = dense.apply(pool.apply(backbone.outputs[0]!)) as tf.SymbolicTensor;
  const classifier = tf.model({ inputs: backbone.inputs, outputs: out, name: 'graft_classifier' });
  const files = await exportClassifier(classifier, makeManifest(manifestParts));
  const fp32 = exportOnnx(JSON.parse(Buffer.from(files['model.json']!).toString('utf8')), files['weights.bin']!);

  const validation = split('validation', Number(args.validation));
  const calibration = split('train', 4000).filter((_, i, all) => i % Math.max(1, Math.floor(all.length / Number(args.calibration))) === 0).slice(0, Number(args.calibration));
  const firstConv = decodeModel(fp32).graph.node.find((n) => n.op_type === 'Conv')!.name;
  const variants: Record<string, Int8GateOptions> = {
    default: { method: 'minmax' },
    outputs: { method: 'minmax', quantizeOutputs: true },
    'first-fp32': { method: 'minmax', fp32Nodes: [firstConv] },
    percentile: { method: 'percentile' },
    'no-bias-correction': { method: 'minmax', biasCorrection: false },
  };
  console.log('\n| variant | kept | agreement | accuracy fp32 | accuracy int8 | seconds | load |\n| --- | --- | --- | --- | --- | --- | --- |');
  for (const name of args.variants!.split(',')) {
    started = performance.now();
    const { decision } = await quantizeClassifier(
      fp32,
      JSON.parse(Buffer.from(files['graft.json']!).toString('utf8')),
      { calibration: calibration.map((c) => c.bytes), validation: { images: validation.map((v) => v.bytes), labels: validation.map((v) => v.label) } },
      { ...variants[name], threads: os.availableParallelism() },
    );
    const seconds = (performance.now() - started) / 1000;
    const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(2)}%`);
    console.log(`| ${name} | ${decision.used ? 'yes' : `no: ${decision.reason}`} | ${pct(decision.agreement)} | ${pct(decision.accuracyFp32)} | ${pct(decision.accuracyInt8)} | ${seconds.toFixed(1)} | ${load()} |`);
  }
  console.log(`\n(${calibration.length} calibration, ${validation.length} validation images)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
