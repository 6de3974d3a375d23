// The registry of pretrained backbones: ImageNet convnets as TensorFlow.js layers models, each with its input
// size, preprocessing, the layer whose output is the feature map (the headless model ends there) and the first
// layer of its top block (where fine-tuning starts by default). Weights are read from a source: a folder, a
// file:// URL or an http(s):// URL base holding `<name>/model.json` and its shards. More architectures are added
// with registerBackbone(), optionally with their own loader and builder. A source may also be a function that
// reads `<name>/<file>` from anywhere (object storage, an archive), or a BackboneFiles object that also answers
// whether a file is there without reading it and names its files in messages, so this package needs no
// storage client.
//
// The Keras Applications architectures (architectures/: vgg16, vgg19, resnet50, inception_v3, xception,
// mobilenet_v1_<alpha>, mobilenet_v2_<alpha>) are registered with a builder, so their parameter counts and
// feature shapes are known without weights, and a loader that takes a TensorFlow.js layers folder
// (`<source>/<name>/model.json`) or a Keras weight file (`<source>/<name>.h5`, or the file Keras publishes,
// `<source>/<name>/<keras file name>`); a source that itself names an `.h5` file (path or URL) is read as it is.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { ARCHITECTURES, loadKerasH5Weights, type ArchitectureSpec } from './architectures/index';
import { isPermanent, VisionError } from './errors';
import { disposeWeights, headlessModel } from './graph';
import { loadLayersModelFrom, parseJsonFile, readerFor, type FileReader } from './model-files';
import { PREPROCESSING, type Preprocessing } from './preprocess';
import { SCRATCH_INPUT_SIZE } from './scratch';
import type { BackboneListing, TrainingConfig } from '@graft/contract';

/**
 * Files of a backbone source reached through code (object storage, an archive), by path relative to the source:
 * `<name>/model.json`, `<name>/<shard>`, `<name>.h5`, ...
 */
export interface BackboneFiles {
  /** The bytes of a file; rejects where it is not there, with a message that names it. */
  read(path: string): Promise<Uint8Array>;
  /** Whether a file is there, without reading it (default: whether read succeeds). */
  exists?(path: string): Promise<boolean>;
  /** How listings and messages name a path of the source (default: `<path> (custom reader)`). */
  describe?(path: string): string;
}

/** Where backbone weights are: a folder, a file:// or http(s):// URL base, or files read by code. */
export type BackboneSource = string | ((path: string) => Promise<Uint8Array>) | BackboneFiles;

/** A source reached through code, as BackboneFiles with every method. */
function filesOf(source: Exclude<BackboneSource, string>): Required<BackboneFiles> {
  const given: BackboneFiles = typeof source === 'function' ? { read: source } : source;
  const read = (p: string) => given.read(p);
  return {
    read,
    exists: given.exists ? (p) => given.exists!(p) : (p) => read(p).then(() => true, () => false),
    describe: given.describe ? (p) => given.describe!(p) : (p) => (p ? `${p} (custom reader)` : 'the custom reader'),
  };
}

export interface BackboneSpec {
  name: string;
  /** The input size the weights were trained at. */
  inputSize: number;
  /**
   * The input size training uses when a config gives none (default: inputSize). Photos larger than the
   * pretraining size give better features a little above it (see TRAINING_INPUT_SIZE below).
   */
  trainingInputSize?: number;
  /** The smallest input size the architecture takes. */
  minInputSize?: number;
  preprocessing: Preprocessing;
  /** Output layer of the headless model. */
  featureLayer: string;
  /** First layer (in model.layers order) of the block that fine-tuning unfreezes by default. */
  topBlockStart: string;
  description?: string;
  /** URL base where the weights are published as `<name>/model.json`: the source when none is given. */
  publicSource?: string;
  /**
   * Loads the headless pretrained model from source at inputSize, instead of reading `<source>/<name>/model.json`.
   */
  load?(source: BackboneSource, inputSize: number): Promise<tf.LayersModel>;
  /** Whether source holds this backbone's weights, instead of looking for `<source>/<name>/model.json`. */
  available?(source: BackboneSource): Promise<boolean>;
  /** Builds the headless architecture with untrained weights (for shapes and parameter counts). */
  build?(inputSize: number): tf.LayersModel;
}

/** A name a backbone source gives to a file: `<name>/model.json`, `<name>.h5`, ... (relative to the source). */
function sourceFile(source: string, relative: string): string {
  if (/^https?:\/\//i.test(source)) return `${source.replace(/\/+$/, '')}/${relative.split('/').map(encodeURIComponent).join('/')}`;
  const dir = source.startsWith('file://') ? fileURLToPath(source) : source;
  return join(dir, relative);
}

const registry = new Map<string, BackboneSpec>();

/** Adds (or replaces) a backbone in the registry. */
export function registerBackbone(spec: BackboneSpec): void {
  registry.set(spec.name, spec);
}

export function backboneNames(): string[] {
  return [...registry.keys()];
}

export function getBackboneSpec(name: string): BackboneSpec {
  const spec = registry.get(name);
  if (!spec) {
    throw new VisionError('BACKBONE_NOT_FOUND', `unknown backbone '${name}'; known backbones: ${backboneNames().join(', ')}`, true, {
      backbones: backboneNames(),
    });
  }
  return spec;
}

/** The input size a run trains at: the config's, else the backbone's training size, else the scratch network's. */
export function trainingInputSize(cfg: Pick<TrainingConfig, 'method' | 'backbone' | 'inputSize'>): number {
  if (cfg.inputSize !== null) return cfg.inputSize;
  if (cfg.method === 'scratch') return SCRATCH_INPUT_SIZE;
  const spec = getBackboneSpec(cfg.backbone);
  return spec.trainingInputSize ?? spec.inputSize;
}

const GOOGLE_TFJS_MODELS = 'https://storage.googleapis.com/tfjs-models/tfjs';

/**
 * Training size of the MobileNet v1 backbones (pretrained at 224). Measured on Dogs vs Cats (bench/), with a
 * head on frozen features and fine-tuning of the top block: at 288 the validation loss falls from 0.061 to
 * 0.055 and the accuracy on held-out images rises from 98.2-98.6% to 98.8-99.2%, for 1.65 times the compute
 * per image. A fully convolutional base takes any size; the exported model takes this size.
 */
const MOBILENET_TRAINING_INPUT_SIZE = 288;

registerBackbone({
  name: 'mobilenet_v1_0.75_224',
  inputSize: 224,
  trainingInputSize: MOBILENET_TRAINING_INPUT_SIZE,
  minInputSize: 32,
  preprocessing: PREPROCESSING.tf,
  featureLayer: 'conv_pw_13_relu',
  topBlockStart: 'conv_dw_13',
  description: 'MobileNet v1, width 0.75, ImageNet (2.6 M parameters); features 7x7x768 at 224',
  publicSource: GOOGLE_TFJS_MODELS,
});

registerBackbone({
  name: 'mobilenet_v1_0.25_224',
  inputSize: 224,
  trainingInputSize: MOBILENET_TRAINING_INPUT_SIZE,
  minInputSize: 32,
  preprocessing: PREPROCESSING.tf,
  featureLayer: 'conv_pw_13_relu',
  topBlockStart: 'conv_dw_13',
  description: 'MobileNet v1, width 0.25, ImageNet (0.48 M parameters); features 7x7x256 at 224',
  publicSource: GOOGLE_TFJS_MODELS,
});

registerBackbone({
  name: 'darknettiny',
  inputSize: 224,
  minInputSize: 32,
  preprocessing: PREPROCESSING.unit,
  // The last 1x1 convolution before the 1000-class convolution and its global pooling: 14x14x128 at 224.
  featureLayer: 'leaky_re_lu_15',
  // The last 1x1-3x3 pair and the projection: conv2d_13 .. leaky_re_lu_15.
  topBlockStart: 'conv2d_13',
  description: 'Darknet reference "tiny" classifier, ImageNet (1.05 M parameters); features 14x14x128 at 224',
});

/** `<source>/<name>` for a folder, file:// or http(s):// source. */
export function backboneLocation(source: string, name: string): string {
  if (/^https?:\/\//i.test(source)) return `${source.replace(/\/+$/, '')}/${encodeURIComponent(name)}/`;
  const dir = source.startsWith('file://') ? fileURLToPath(source) : source;
  return join(dir, name);
}

/** A reader of the files of backbone `name` (`model.json`, shards) at source. */
export function backboneReader(source: BackboneSource, name: string): FileReader {
  if (typeof source === 'string') return readerFor(backboneLocation(source, name));
  const files = filesOf(source);
  return (p) => files.read(`${name}/${p}`);
}

function describeSource(source: BackboneSource, name: string): string {
  return typeof source === 'string' ? backboneLocation(source, name) : filesOf(source).describe(`${name}/`);
}

function sourceFor(spec: BackboneSpec, source: BackboneSource | undefined): BackboneSource {
  const s = source ?? spec.publicSource;
  if (!s) {
    throw new VisionError('BACKBONE_WEIGHTS_UNAVAILABLE', `backbone '${spec.name}' has no public weights; give a source folder or URL`, true);
  }
  return s;
}

/** Rewrites every 4-D batch input shape of a Keras topology to size x size. */
export function setTopologyInputSize(topology: any, size: number): any {
  const visit = (o: any) => {
    if (!o || typeof o !== 'object') return;
    for (const key of ['batch_input_shape', 'batchInputShape']) {
      const s = o[key];
      if (Array.isArray(s) && s.length === 4) o[key] = [s[0], size, size, s[3]];
    }
    for (const v of Object.values(o)) visit(v);
  };
  visit(topology);
  return topology;
}

function checkInputSize(spec: BackboneSpec, size: number): void {
  if (!Number.isInteger(size) || size < (spec.minInputSize ?? 32)) {
    throw new VisionError('INVALID_INPUT_SIZE', `backbone '${spec.name}' needs an integer input size of at least ${spec.minInputSize ?? 32} (got ${size})`);
  }
}

export interface LoadBackboneOptions {
  /** Input size to build the model at (a fully convolutional base takes any); default: the backbone's own. */
  inputSize?: number;
}

/**
 * Loads the headless pretrained model of a backbone: a tf.LayersModel from the image input (size x size x 3,
 * already preprocessed) to the feature layer. The caller owns it (free it with disposeWeights or dispose()).
 */
export async function loadBackbone(name: string, source?: BackboneSource, opts: LoadBackboneOptions = {}): Promise<tf.LayersModel> {
  const spec = getBackboneSpec(name);
  const size = opts.inputSize ?? spec.inputSize;
  checkInputSize(spec, size);
  const src = sourceFor(spec, source);
  if (spec.load) return spec.load(src, size);
  const location = describeSource(src, name);
  let full: tf.LayersModel;
  try {
    full = await loadLayersModelFrom(backboneReader(src, name), {
      patchTopology: size === spec.inputSize ? undefined : (t) => setTopologyInputSize(t, size),
    });
  } catch (err) {
    throw new VisionError(
      'BACKBONE_WEIGHTS_UNAVAILABLE',
      `cannot load backbone '${name}' from ${location}: ${(err as Error).message}`,
      false,
    );
  }
  const headless = headlessModel(full, spec.featureLayer, name);
  // The classification layers past the feature layer are not part of the headless model: free them now.
  const kept = new Set(headless.layers);
  disposeWeights(...full.layers.filter((l) => !kept.has(l)));
  return headless;
}

async function weightsAvailable(spec: BackboneSpec, source: BackboneSource): Promise<boolean> {
  if (spec.available) return spec.available(source);
  if (typeof source !== 'string') return sourceHas(source, `${spec.name}/model.json`);
  const location = backboneLocation(source, spec.name);
  if (/^https?:\/\//i.test(location)) {
    try {
      const res = await fetch(new URL('model.json', location), { method: 'HEAD', signal: AbortSignal.timeout(5000) });
      return res.ok;
    } catch {
      return false;
    }
  }
  return existsSync(join(location, 'model.json'));
}

export type { BackboneListing };

/** Every registered backbone, with whether its weights are available at source (or its public source). */
export async function listBackbones(source?: BackboneSource): Promise<BackboneListing[]> {
  return Promise.all(
    [...registry.values()].map(async (spec) => {
      const src = source ?? spec.publicSource ?? null;
      const available = src ? await weightsAvailable(spec, src) : false;
      return {
        name: spec.name,
        inputSize: spec.inputSize,
        trainingInputSize: spec.trainingInputSize ?? spec.inputSize,
        preprocessing: spec.preprocessing.mode,
        featureLayer: spec.featureLayer,
        topBlockStart: spec.topBlockStart,
        description: spec.description,
        weights: { available, source: src ? describeSource(src, spec.name) : null },
      };
    }),
  );
}

export interface BackboneDescription {
  name: string;
  inputSize: number;
  params: number;
  featureShape: number[];
}

/**
 * Builds the headless architecture at inputSize (untrained: from spec.build, or from the topology in
 * `<source>/<name>/model.json` without its weights) and reports its parameter count and feature shape.
 */
export async function describeBackbone(name: string, source?: BackboneSource, inputSize?: number): Promise<BackboneDescription> {
  const spec = getBackboneSpec(name);
  const size = inputSize ?? spec.inputSize;
  checkInputSize(spec, size);
  let model: tf.LayersModel;
  if (spec.build) {
    model = spec.build(size);
  } else {
    const json = parseJsonFile(await backboneReader(sourceFor(spec, source), name)('model.json'), 'model.json');
    const topology = setTopologyInputSize(structuredClone(json.modelTopology), size);
    const full = await tf.models.modelFromJSON({ modelTopology: topology });
    model = headlessModel(full, spec.featureLayer, name);
    const kept = new Set(model.layers);
    disposeWeights(...full.layers.filter((l) => !kept.has(l)));
  }
  try {
    const featureShape = (model.outputs[0]!.shape as number[]).slice(1);
    return { name, inputSize: size, params: model.countParams(), featureShape };
  } finally {
    disposeWeights(model);
  }
}

// --- Keras Applications architectures ------------------------------------------------------------------------

/** Reads a file of a source (folder, file:// or http(s):// URL, or files read by code); null where it is not there. */
async function readSourceFile(source: BackboneSource, relative: string): Promise<Uint8Array | null> {
  if (typeof source !== 'string') {
    try {
      return await filesOf(source).read(relative);
    } catch {
      return null;
    }
  }
  return readLocation(sourceFile(source, relative));
}

async function readLocation(location: string): Promise<Uint8Array | null> {
  if (/^https?:\/\//i.test(location)) {
    try {
      const res = await fetch(location);
      return res.ok ? new Uint8Array(await res.arrayBuffer()) : null;
    } catch {
      return null;
    }
  }
  const path = location.startsWith('file://') ? fileURLToPath(location) : location;
  return existsSync(path) ? new Uint8Array(await readFile(path)) : null;
}

async function sourceHas(source: BackboneSource, relative: string): Promise<boolean> {
  if (typeof source !== 'string') {
    try {
      return await filesOf(source).exists(relative);
    } catch {
      return false;
    }
  }
  return locationExists(sourceFile(source, relative));
}

async function locationExists(location: string): Promise<boolean> {
  if (/^https?:\/\//i.test(location)) {
    try {
      const res = await fetch(location, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
      return res.ok;
    } catch {
      return false;
    }
  }
  return existsSync(location.startsWith('file://') ? fileURLToPath(location) : location);
}

/** Keras weight file names to look for, most specific first. */
function kerasWeightFiles(name: string, arch: ArchitectureSpec, inputSize: number): string[] {
  return [...new Set([`${name}.h5`, `${name}/${arch.kerasWeightsFile(inputSize)}`, `${name}/${arch.kerasWeightsFile(arch.defaultInputSize)}`])];
}

const isH5Location = (source: BackboneSource) => typeof source === 'string' && /\.h5(\?.*)?$/i.test(source);

/** Builds `name` at inputSize and fills its weights from source (see the top of this file). */
async function loadKerasBackbone(name: string, arch: ArchitectureSpec, source: BackboneSource, inputSize: number): Promise<tf.LayersModel> {
  const tried: string[] = [];
  const fromH5 = async (bytes: Uint8Array, where: string) => {
    const model = arch.build(inputSize, { zeroInit: true });
    try {
      await loadKerasH5Weights(model, bytes);
    } catch (err) {
      disposeWeights(model);
      // A file that is not valid Keras weights (KerasH5Error) stays so: that is permanent, a failed read is not.
      throw new VisionError('BACKBONE_WEIGHTS_UNAVAILABLE', `cannot load backbone '${name}' from ${where}: ${(err as Error).message}`, isPermanent(err));
    }
    return model;
  };
  if (isH5Location(source)) {
    const bytes = await readLocation(source as string);
    if (!bytes) throw new VisionError('BACKBONE_WEIGHTS_UNAVAILABLE', `cannot load backbone '${name}': ${source as string} is not there`, false);
    return fromH5(bytes, source as string);
  }
  tried.push(`${name}/model.json`);
  if (await sourceHas(source, `${name}/model.json`)) {
    const location = typeof source === 'string' ? sourceFile(source, name) : describeSource(source, name);
    try {
      const full = await loadLayersModelFrom(backboneReader(source, name), { patchTopology: (t) => setTopologyInputSize(t, inputSize) });
      const headless = headlessModel(full, arch.featureLayer, name);
      const kept = new Set(headless.layers);
      disposeWeights(...full.layers.filter((l) => !kept.has(l)));
      return headless;
    } catch (err) {
      throw new VisionError('BACKBONE_WEIGHTS_UNAVAILABLE', `cannot load backbone '${name}' from ${location}: ${(err as Error).message}`, false);
    }
  }
  for (const file of kerasWeightFiles(name, arch, inputSize)) {
    tried.push(file);
    const bytes = await readSourceFile(source, file);
    if (bytes) return fromH5(bytes, typeof source === 'string' ? sourceFile(source, file) : filesOf(source).describe(file));
  }
  const where = typeof source === 'string' ? source : filesOf(source).describe('');
  throw new VisionError('BACKBONE_WEIGHTS_UNAVAILABLE', `cannot load backbone '${name}': ${where} has none of ${tried.join(', ')}`, false);
}

async function kerasWeightsAvailable(name: string, arch: ArchitectureSpec, source: BackboneSource): Promise<boolean> {
  if (isH5Location(source)) return locationExists(source as string);
  for (const file of [`${name}/model.json`, ...kerasWeightFiles(name, arch, arch.defaultInputSize)]) {
    if (await sourceHas(source, file)) return true;
  }
  return false;
}

const ARCHITECTURE_DESCRIPTIONS: Record<string, string> = {
  vgg: 'VGG (Simonyan and Zisserman, 2014), Keras Applications, ImageNet weights from a Keras .h5 file',
  resnet: 'ResNet50 (He et al., 2015), Keras Applications, ImageNet weights from a Keras .h5 file',
  inception: 'Inception v3 (Szegedy et al., 2015), Keras Applications, ImageNet weights from a Keras .h5 file',
  xception: 'Xception (Chollet, 2016), Keras Applications, ImageNet weights from a Keras .h5 file',
  mobilenet: 'MobileNet v1 (Howard et al., 2017), Keras Applications, ImageNet weights from a Keras .h5 file',
  mobilenet_v2: 'MobileNet v2 (Sandler et al., 2018), Keras Applications, ImageNet weights from a Keras .h5 file',
};

for (const [name, arch] of Object.entries(ARCHITECTURES)) {
  registerBackbone({
    name,
    inputSize: arch.defaultInputSize,
    minInputSize: arch.minInputSize,
    preprocessing: PREPROCESSING[arch.preprocessing],
    featureLayer: arch.featureLayer,
    topBlockStart: arch.topBlockFirstLayer,
    description: ARCHITECTURE_DESCRIPTIONS[arch.family],
    build: (inputSize) => arch.build(inputSize, { zeroInit: true }),
    load: (source, inputSize) => loadKerasBackbone(name, arch, source, inputSize),
    available: (source) => kerasWeightsAvailable(name, arch, source),
  });
}
