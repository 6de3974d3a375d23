// Loads Keras HDF5 weight files (the Keras 2 layout of `model.save_weights('*.h5')` and of the Keras
// Applications downloads such as `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`) into a tf.LayersModel.
//
// Layout read: the root (or the `model_weights` group of a whole-model file) has a `layer_names` attribute;
// each layer has a group of that name whose `weight_names` attribute lists its weights, in the layer's weight
// order, as dataset paths inside the group (`block1_conv1/kernel:0`, or `block1_conv1_W_1:0` in older files).
import type { ErrorCode } from '@graft/contract';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Dataset, File as H5File, Group } from 'h5wasm/node';

type H5wasm = typeof import('h5wasm/node').default;

let h5wasmModule: Promise<{ h5wasm: H5wasm; floatClass: number }> | undefined;

/** h5wasm (the HDF5 library compiled to WebAssembly), loaded on first use, and HDF5's float type class. */
function loadH5wasm(): Promise<{ h5wasm: H5wasm; floatClass: number }> {
  h5wasmModule ??= import('h5wasm/node').then(async (m) => {
    const module = await m.default.ready;
    return { h5wasm: m.default, floatClass: module.H5T_class_t.H5T_FLOAT.value };
  });
  return h5wasmModule;
}

export interface KerasH5LoadOptions {
  /**
   * How file layers are paired with model layers:
   * - `name`: by layer name; every model layer with weights must be in the file, extra file layers are skipped;
   * - `order`: the n-th layer with weights in the file goes to the n-th layer with weights in the model, as
   *   Keras's `load_weights` does by default (the counts must be equal);
   * - `auto` (default): by name when every model layer with weights is in the file, by order otherwise.
   */
  match?: 'auto' | 'name' | 'order';
}

export interface KerasH5LoadResult {
  /** Number of model layers whose weights were set. */
  loaded: number;
  /** Names of layers with weights in the file that no model layer took (e.g. the classifier of a full model). */
  skipped: string[];
  matchedBy: 'name' | 'order';
}

/** A file that is not a Keras HDF5 weight file, or whose weights do not fit the model. */
export class KerasH5Error extends Error {
  readonly code = 'INVALID_KERAS_WEIGHTS' satisfies ErrorCode;
  /** The same file fails the same way on every attempt. */
  readonly permanent = true;
  constructor(message: string) {
    super(message);
    this.name = 'KerasH5Error';
  }
}

interface FileLayer {
  name: string;
  group: Group;
  weightNames: string[];
}

const textDecoder = new TextDecoder();

/** Fixed-length byte strings may come back as bytes; padding is dropped. */
function decodeStrings(value: unknown): string[] {
  const items = Array.isArray(value) ? value : [value];
  return items
    .map((v) => (v instanceof Uint8Array ? textDecoder.decode(v) : String(v)))
    .map((s) => s.replace(/[\0 ]+$/, ''))
    .filter((s) => s.length > 0);
}

/**
 * An HDF5 string-array attribute as JS strings. Keras splits attributes larger than the 64 KiB HDF5 object
 * header limit into `<name>0`, `<name>1`, ...; those chunks are joined.
 */
function readStrings(group: Group, attr: string): string[] | undefined {
  const attrs = group.attrs;
  if (attr in attrs) return decodeStrings(group.get_attribute(attr, false));
  if (!(`${attr}0` in attrs)) return undefined;
  const out: string[] = [];
  for (let i = 0; `${attr}${i}` in attrs; i++) out.push(...decodeStrings(group.get_attribute(`${attr}${i}`, false)));
  return out;
}

function readLayers(h5wasm: H5wasm, file: H5File): FileLayer[] {
  let root: Group = file;
  if (readStrings(root, 'layer_names') === undefined) {
    const inner = file.get('model_weights');
    if (inner instanceof h5wasm.Group) root = inner;
  }
  const layerNames = readStrings(root, 'layer_names');
  if (layerNames === undefined) {
    throw new KerasH5Error(
      'not a Keras HDF5 weight file: no `layer_names` attribute at the root or in `model_weights` ' +
        '(the Keras 3 `.weights.h5` layout is not supported)',
    );
  }
  return layerNames.map((name) => {
    const group = root.get(name);
    if (!(group instanceof h5wasm.Group)) {
      throw new KerasH5Error(`Keras HDF5 file lists layer "${name}" but has no group of that name`);
    }
    return { name, group, weightNames: readStrings(group, 'weight_names') ?? [] };
  });
}

function dataset(h5wasm: H5wasm, layer: FileLayer, weightName: string): Dataset {
  const d = layer.group.get(weightName);
  if (!(d instanceof h5wasm.Dataset)) {
    throw new KerasH5Error(`layer "${layer.name}": weight "${weightName}" is listed but not stored in the file`);
  }
  return d;
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Whether a file starts with the HDF5 superblock signature (at byte 0, or 512, 1024, 2048, ... after a user block). */
function hasHdf5Signature(filePath: string): boolean {
  const fd = fs.openSync(filePath, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(HDF5_SIGNATURE.length);
    for (let offset = 0; offset + buf.length <= size; offset = offset === 0 ? 512 : offset * 2) {
      fs.readSync(fd, buf, 0, buf.length, offset);
      if (buf.equals(HDF5_SIGNATURE)) return true;
    }
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

const fmt = (shape: readonly (number | null)[]) => `[${shape.join(', ')}]`;

function pairLayers(
  modelLayers: tf.layers.Layer[],
  fileLayers: FileLayer[],
  match: 'auto' | 'name' | 'order',
): { pairs: [tf.layers.Layer, FileLayer][]; matchedBy: 'name' | 'order' } {
  const byName = new Map(fileLayers.map((l) => [l.name, l]));
  const missing = modelLayers.filter((l) => !byName.has(l.name)).map((l) => l.name);
  if (match === 'name' || (match === 'auto' && missing.length === 0)) {
    if (missing.length > 0) {
      throw new KerasH5Error(
        `${missing.length} layer(s) of model "${modelLayers[0]?.name ?? ''}" have no weights in the file: ` +
          `${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''}`,
      );
    }
    return { pairs: modelLayers.map((l) => [l, byName.get(l.name)!]), matchedBy: 'name' };
  }
  if (modelLayers.length !== fileLayers.length) {
    throw new KerasH5Error(
      `the file holds weights for ${fileLayers.length} layers but the model has ${modelLayers.length} layers ` +
        `with weights, and ${missing.length} of the model's layer names (${missing.slice(0, 5).join(', ')}` +
        `${missing.length > 5 ? ', ...' : ''}) are not in the file`,
    );
  }
  return { pairs: modelLayers.map((l, i) => [l, fileLayers[i]]), matchedBy: 'order' };
}

/**
 * Sets the weights of `model` from a Keras HDF5 weight file (a path, or the file's bytes). Every shape is checked
 * before any weight is set, so a file that does not fit leaves the model unchanged.
 */
export async function loadKerasH5Weights(
  model: tf.LayersModel,
  h5: Uint8Array | string,
  options: KerasH5LoadOptions = {},
): Promise<KerasH5LoadResult> {
  const { h5wasm, floatClass } = await loadH5wasm();
  let tmpDir: string | undefined;
  let filePath: string;
  if (typeof h5 === 'string') {
    if (!fs.existsSync(h5)) throw new KerasH5Error(`Keras HDF5 file not found: ${h5}`);
    filePath = h5;
  } else {
    // The Node build of h5wasm reads the real file system, so bytes go through a temporary file.
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-h5-'));
    filePath = path.join(tmpDir, 'weights.h5');
    fs.writeFileSync(filePath, h5);
  }
  let file: H5File | undefined;
  try {
    const what = typeof h5 === 'string' ? h5 : 'the given bytes';
    if (!hasHdf5Signature(filePath)) throw new KerasH5Error(`${what} is not an HDF5 file`);
    const opened = new h5wasm.File(filePath, 'r');
    if (opened.file_id < 0n) throw new KerasH5Error(`cannot open ${what} as HDF5`);
    file = opened;
    const fileLayers = readLayers(h5wasm, file).filter((l) => l.weightNames.length > 0);
    const modelLayers = model.layers.filter((l) => l.weights.length > 0);
    const { pairs, matchedBy } = pairLayers(modelLayers, fileLayers, options.match ?? 'auto');

    const datasets = pairs.map(([layer, fileLayer]) => {
      const expected = layer.weights;
      if (fileLayer.weightNames.length !== expected.length) {
        throw new KerasH5Error(
          `layer "${layer.name}" (file layer "${fileLayer.name}"): the file has ${fileLayer.weightNames.length} ` +
            `weights (${fileLayer.weightNames.join(', ')}) but the model expects ${expected.length} ` +
            `(${expected.map((w) => w.originalName).join(', ')})`,
        );
      }
      return fileLayer.weightNames.map((weightName, i) => {
        const d = dataset(h5wasm, fileLayer, weightName);
        if (d.metadata.type !== floatClass) {
          throw new KerasH5Error(`layer "${layer.name}": weight "${weightName}" is not a float array`);
        }
        const shape = d.shape ?? [];
        const want = expected[i].shape;
        if (shape.length !== want.length || shape.some((s, j) => s !== want[j])) {
          throw new KerasH5Error(
            `layer "${layer.name}": weight "${weightName}" has shape ${fmt(shape)} in the file but ` +
              `${expected[i].originalName} has shape ${fmt(want)} in the model`,
          );
        }
        return d;
      });
    });

    pairs.forEach(([layer], i) => {
      // float32 as stored by Keras; float64 or float16 weights are converted.
      const values = datasets[i].map((d) => {
        const v = d.value;
        return v instanceof Float32Array ? v : Float32Array.from(v as unknown as ArrayLike<number>);
      });
      tf.tidy(() => layer.setWeights(values.map((v, j) => tf.tensor(v, datasets[i][j].shape ?? [], 'float32'))));
    });

    const used = new Set(pairs.map(([, f]) => f.name));
    return {
      loaded: pairs.length,
      skipped: fileLayers.filter((l) => !used.has(l.name)).map((l) => l.name),
      matchedBy,
    };
  } finally {
    file?.close();
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}
