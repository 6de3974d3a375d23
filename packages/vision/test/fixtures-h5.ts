// Keras HDF5 weight files written with h5wasm in the layout Keras 2 uses (root attribute layer_names, a group
// per layer with a weight_names attribute, datasets `<layer>/<layer>/<weight>:0`), for tests that load them.
import type * as tf from '@tensorflow/tfjs';
import h5wasm, { type Group } from 'h5wasm/node';

export interface FileLayer {
  name: string;
  weights: { name: string; shape: number[]; data: Float32Array }[];
}

/** The layers of a model as Keras would save them (weight names `<layer>/<weight>:0`). */
export function kerasLayers(model: tf.LayersModel, rename: (name: string) => string = (n) => n): FileLayer[] {
  return model.layers.map((layer) => {
    const name = rename(layer.name);
    const values = layer.getWeights();
    const weights = layer.weights.map((w, i) => ({
      name: `${name}/${w.originalName.split('/').at(-1)}:0`,
      shape: w.shape as number[],
      data: values[i].dataSync() as Float32Array,
    }));
    return { name, weights };
  });
}

/** Fixed-length byte strings, as h5py writes numpy `S` arrays. */
export function writeStrings(target: Group, attr: string, values: string[]) {
  const width = Math.max(1, ...values.map((v) => v.length));
  target.create_attribute(attr, values.length ? values : [''], [values.length || 1], `S${width}`);
}

/** `chunkLayerNames` splits layer_names into layer_names0, layer_names1, as Keras does past 64 KiB. */
/** Needs `await h5wasm.ready` first. */
export function writeKerasH5(
  file: string,
  layers: FileLayer[],
  opts: { wholeModel?: boolean; chunkLayerNames?: boolean } = {},
) {
  const f = new h5wasm.File(file, 'w');
  try {
    let root: Group = f;
    if (opts.wholeModel) {
      f.create_attribute('model_config', '{"class_name": "Functional"}');
      root = f.create_group('model_weights');
    }
    root.create_attribute('backend', 'tensorflow');
    root.create_attribute('keras_version', '2.2.4');
    const names = layers.map((l) => l.name);
    if (opts.chunkLayerNames) {
      const half = Math.ceil(names.length / 2);
      writeStrings(root, 'layer_names0', names.slice(0, half));
      writeStrings(root, 'layer_names1', names.slice(half));
    } else {
      writeStrings(root, 'layer_names', names);
    }
    for (const layer of layers) {
      const g = root.create_group(layer.name);
      if (layer.weights.length === 0) {
        g.create_attribute('weight_names', new Float64Array(0), [0], '<f8');
        continue;
      }
      writeStrings(g, 'weight_names', layer.weights.map((w) => w.name));
      for (const w of layer.weights) {
        const [sub, leaf] = w.name.split('/');
        const parent = g.get(sub) instanceof h5wasm.Group ? (g.get(sub) as Group) : g.create_group(sub);
        parent.create_dataset({ name: leaf, data: w.data, shape: w.shape, dtype: '<f4' });
      }
    }
  } finally {
    f.close();
  }
}

