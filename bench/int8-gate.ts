// The int8 gate on a real trained classifier: MobileNet v1 0.75 (224) with a dense sigmoid head trained on the pooled
// features of dogs-vs-cats training images, exported as training exports it, then quantized and checked as the worker
// does after a job (calibration on 256 training images, min-max; int8 against fp32 on every validation image).
// Prints the decision (agreement, both accuracies, whether int8 would be kept) and how long the check took.
//
// --variants compares quantization choices on the same model: default (what training does, the last convolution's
// output quantized too, the image on its pixel grid), float-outputs (that output left in float), first-fp32 (the first
// convolution left in fp32), early-fp32 (it and the first depthwise one), depthwise-fp32 (it and every depthwise one),
// percentile, no-bias-correction, calibrated-input (the image's range calibrated instead).
//
//   npx tsx bench/int8-gate.ts [--train 600] [--validation 1000] [--calibration 256] [--variants default,float-outputs]
//
// --model runs the check on a trained model folder instead (model.onnx and graft.json; with --given-predictions,
// predictions.json's classes are given to the check as fp32's, as the worker does where the frozen base ran in fp32
// during training), with the images of
// --dataset (<dataset>/<split>/<label>/*): calibration on --calibration images spread over train, the check on
// validation. It prints the decision, the check's seconds by part, and fp32's and int8's images/s (batch 1 and 16,
// --threads threads). --int8-stride tries only that stride (where int8 starts; 1: every convolution) instead of the ladder.
//
//   npx tsx bench/int8-gate.ts --model /work/trained/dvc --dataset ../shared/datasets/dogs-vs-cats --calibration 32
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { createSession, decodeModel, exportOnnx, normalizedBatches, resizeKernelOf, pixelTransform, quantizeClassifier, quantizeOnnx, type Int8GateOptions } from '@graft/inference';
import { exportClassifier, getBackboneSpec, initBackend, loadBackbone, makeManifest } from '@graft/vision';

const { values: args } = parseArgs({
  options: {
    train: { type: 'string', default: '600' },
    validation: { type: 'string', default: '1000' },
    calibration: { type: 'string', default: '256' },
    variants: { type: 'string', default: 'default' },
    model: { type: 'string' },
    dataset: { type: 'string' },
    threads: { type: 'string', default: '2' },
    'int8-stride': { type: 'string' },
    'given-predictions': { type: 'boolean', default: false },
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
  if (args.model) return trainedModel(args.model, args.dataset ?? DATA);
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
  const kernel = resizeKernelOf(spec.preprocessing);
  let started = performance.now();
  const features: Float32Array[] = [];
  for await (const { input, batch } of normalizedBatches(train.map((c) => c.bytes), { size: 224, transform: t, kernel }, 16)) {
    const maps = await session.run(input, batch);
    const size = maps.length / batch / 768;
    for (let j = 0; j < batch; j++) {
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
  const variants = variantOptions(fp32);
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

/** The quantization choices --variants names, for the fp32 model given. */
function variantOptions(fp32: Uint8Array): Record<string, Int8GateOptions> {
  const convs = decodeModel(fp32).graph.node.filter((n) => n.op_type === 'Conv');
  const firstConv = convs[0]!.name;
  const depthwise = convs.filter((n) => (n.attribute ?? []).some((a) => a.name === 'group' && Number(a.i) > 1)).map((n) => n.name);
  return {
    default: { method: 'minmax' },
    'float-outputs': { method: 'minmax', quantizeOutputs: false },
    'first-fp32': { method: 'minmax', fp32Nodes: [firstConv] },
    // The first convolution and the first depthwise one in fp32 (the input then stays fp32).
    'early-fp32': { method: 'minmax', fp32Nodes: [firstConv, depthwise[0]!] },
    // The first convolution and every depthwise one in fp32.
    'depthwise-fp32': { method: 'minmax', fp32Nodes: [firstConv, ...depthwise] },
    percentile: { method: 'percentile' },
    // The image's quantization calibrated like any activation's instead of on its pixel grid.
    'calibrated-input': { method: 'minmax', inputPixels: undefined },
    'no-bias-correction': { method: 'minmax', biasCorrection: false },
  };
}

/** Encoded images of `split` with their label indices, and their paths relative to the dataset. */
function datasetSplit(dir: string, split: string, labels: string[]): { path: string; bytes: Uint8Array; label: number }[] {
  return labels.flatMap((l, label) =>
    fs.readdirSync(path.join(dir, split, l)).sort().map((f) => ({ path: `${split}/${l}/${f}`, bytes: new Uint8Array(fs.readFileSync(path.join(dir, split, l, f))), label })),
  );
}

/** fp32's classes of `images` from predictions.json, where it names every one of them. */
function givenPredictions(modelDir: string, images: { path: string }[], labels: string[]): number[] | undefined {
  const file = path.join(modelDir, 'predictions.json');
  if (!fs.existsSync(file)) return undefined;
  const rows = (JSON.parse(fs.readFileSync(file, 'utf8')).validation ?? []) as { path: string; predicted: string }[];
  const byPath = new Map(rows.map((r) => [r.path, labels.indexOf(r.predicted)]));
  const out = images.map((i) => byPath.get(i.path) ?? -1);
  return out.every((p) => p >= 0) ? out : undefined;
}

/** Images per second of `model` at batch 1 and 16 on the first validation images. */
async function speed(model: Uint8Array, pixels: Float32Array, threads: number): Promise<string> {
  const session = await createSession(model, { threads });
  const per = session.inputShape.reduce((a, b) => a * b, 1);
  const out: string[] = [];
  for (const [batch, runs] of [[1, 48], [16, 6]] as const) {
    const input = pixels.subarray(0, batch * per);
    await session.run(input, batch);
    const started = performance.now();
    for (let r = 0; r < runs; r++) await session.run(input, batch);
    out.push(((batch * runs) / ((performance.now() - started) / 1000)).toFixed(1));
  }
  await session.dispose();
  return out.join(' | ');
}

async function trainedModel(modelDir: string, datasetDir: string): Promise<void> {
  console.log(`# int8 gate on ${modelDir} with ${datasetDir}, ${os.availableParallelism()} cores, load average ${load()} (${new Date().toISOString()})`);
  const fp32 = new Uint8Array(fs.readFileSync(path.join(modelDir, 'model.onnx')));
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'graft.json'), 'utf8'));
  const train = datasetSplit(datasetDir, 'train', manifest.labels);
  const n = Number(args.calibration);
  const calibration = Array.from({ length: Math.min(n, train.length) }, (_, i) => train[Math.floor((i * train.length) / Math.min(n, train.length))]!.bytes);
  const validation = datasetSplit(datasetDir, 'validation', manifest.labels);
  const given = args['given-predictions'] ? givenPredictions(modelDir, validation, manifest.labels) : undefined;
  const stride = args['int8-stride'] === undefined ? {} : { int8Stride: Number(args['int8-stride']) };
  const variants = variantOptions(fp32);
  for (const name of args.variants!.split(',')) {
    console.log(`\n## variant ${name}`);
    await checkTrained(fp32, manifest, calibration, validation, given, { ...variants[name], threads: os.availableParallelism(), ...stride });
  }
}

/** The int8 check of one variant on a trained model, and both models' speed on the same decoded images. */
async function checkTrained(
  fp32: Uint8Array,
  manifest: any,
  calibration: Uint8Array[],
  validation: { bytes: Uint8Array; label: number }[],
  given: number[] | undefined,
  options: Int8GateOptions,
): Promise<void> {
  const threads = Number(args.threads);
  const started = performance.now();
  const cpu = process.cpuUsage();
  const { model, decision: d } = await quantizeClassifier(
    fp32,
    manifest,
    { calibration, validation: { images: validation.map((v) => v.bytes), labels: validation.map((v) => v.label), fp32: given } },
    options,
  );
  const seconds = (performance.now() - started) / 1000;
  const cpuUsed = process.cpuUsage(cpu);
  const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(2)}%`);
  console.log(`\n${d.used ? 'int8 kept' : `int8 left out: ${d.reason}`}`);
  console.log(`agreement ${pct(d.agreement)} of ${d.images} images; accuracy fp32 ${pct(d.accuracyFp32)}, int8 ${pct(d.accuracyInt8)}; fp32 predictions ${d.fp32Given ? 'given (first batch checked)' : 'computed'}`);
  console.log(`quantization: ${JSON.stringify(d.quantization)}`);
  for (const a of d.attempts ?? []) console.log(`  int8 from stride ${a.int8Stride}: ${a.reason ?? 'kept'} (${a.images} images compared, agreement ${pct(a.agreement)})`);
  const s = d.seconds;
  if (s) console.log(`check ${seconds.toFixed(1)} s: decode ${s.decode.toFixed(1)}, quantize ${s.quantize.toFixed(1)}, fp32 ${s.fp32.toFixed(1)}, int8 ${s.int8.toFixed(1)}; ${((cpuUsed.user + cpuUsed.system) / 1e6).toFixed(1)} CPU s (load ${load()})`);
  // Speed: both models on the same decoded images, as /predict runs them.
  const t = pixelTransform(manifest.preprocessing);
  const size = manifest.inputSize;
  const kernel = resizeKernelOf(manifest.preprocessing);
  const first = await normalizedBatches(validation.slice(0, 16).map((v) => v.bytes), { size, transform: t, kernel }, 16).next();
  if (first.done || first.value.batch !== 16) throw new Error('the first 16 validation images do not all decode');
  const pixels = first.value.input;
  // Not kept: the int8 model the check made last, for its speed.
  const int8 = model ?? (await quantizeOnnx(fp32, [{ input: pixels, batch: 16 }], { inputPixels: t, ...options, int8Stride: d.int8Stride ?? 1 })).model;
  console.log(`\n| model | images/s batch 1 | images/s batch 16 | load |\n| --- | --- | --- | --- |`);
  for (let round = 0; round < 2; round++) {
    console.log(`| fp32 | ${await speed(fp32, pixels, threads)} | ${load()} |`);
    console.log(`| int8${model ? '' : ' (not kept)'} | ${await speed(int8, pixels, threads)} | ${load()} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
