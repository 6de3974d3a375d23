// Graph surgery on functional layers models: the headless model ending at a feature layer, and the split of a
// model into a frozen lower part and an upper part (the block that fine-tuning trains). The upper part reuses the
// same layer objects, so training it changes the weights of the original model too.
import * as tf from '@tensorflow/tfjs';
import { VisionError } from './errors';

type Sym = tf.SymbolicTensor;
type AnyLayer = tf.layers.Layer;

/** The model from the inputs of `model` to the output of its layer `layerName`. */
export function headlessModel(model: tf.LayersModel, layerName: string, name?: string): tf.LayersModel {
  let layer: AnyLayer;
  try {
    layer = model.getLayer(layerName);
  } catch {
    throw new VisionError('LAYER_NOT_FOUND', `the model has no layer named '${layerName}'`);
  }
  const output = layer.output;
  if (Array.isArray(output)) throw new VisionError('LAYER_NOT_FOUND', `layer '${layerName}' has several outputs`);
  return tf.model({ inputs: model.inputs, outputs: output, name: name ?? `${model.name}_headless` });
}

/** The inbound node that produced a symbolic tensor. */
function producingNode(t: Sym): { layer: AnyLayer; inputs: Sym[]; callArgs: Record<string, unknown> } {
  const layer = t.sourceLayer as AnyLayer;
  const node = (layer as any).inboundNodes[t.nodeIndex];
  return { layer, inputs: node.inputTensors as Sym[], callArgs: (node.callArgs ?? {}) as Record<string, unknown> };
}

export interface ModelSplit {
  /** The frozen part: from the model's inputs to every tensor that the upper part consumes. */
  lower: tf.LayersModel;
  /** The trainable part: from those tensors to the model's output. */
  upper: tf.LayersModel;
  /** Layers of the upper part, in model order. */
  upperLayers: AnyLayer[];
}

/**
 * Splits a single-output model before layer `fromLayer`: that layer and every layer after it in `model.layers`
 * order form the upper part; every tensor that a layer before it hands to the upper part becomes one input of
 * the upper part (usually exactly one).
 */
export function splitModel(model: tf.LayersModel, fromLayer: string): ModelSplit {
  const index = model.layers.findIndex((l) => l.name === fromLayer);
  if (index < 0) {
    throw new VisionError('LAYER_NOT_FOUND', `fine-tuning cannot start at '${fromLayer}': the backbone has no such layer`, true, {
      layers: model.layers.map((l) => l.name),
    });
  }
  if (index === 0) throw new VisionError('INVALID_FINE_TUNING_LAYER', `fine-tuning cannot start at the input layer '${fromLayer}'`);
  const upperSet = new Set<AnyLayer>(model.layers.slice(index));
  const output = model.outputs[0]!;
  if (model.outputs.length !== 1) throw new VisionError('INVALID_MODEL', 'only single-output backbones can be split');
  if (!upperSet.has(output.sourceLayer as AnyLayer)) {
    throw new VisionError('INVALID_FINE_TUNING_LAYER', `layer '${fromLayer}' comes after the feature layer`);
  }

  // Collect the tensors crossing from the lower to the upper part, in a stable order.
  const crossing: Sym[] = [];
  const seen = new Set<number>();
  const visit = (t: Sym) => {
    if (seen.has(t.id)) return;
    seen.add(t.id);
    if (!upperSet.has(t.sourceLayer as AnyLayer)) {
      crossing.push(t);
      return;
    }
    for (const input of producingNode(t).inputs) visit(input);
  };
  visit(output);

  // Rebuild the upper graph on new inputs, calling the same layers.
  const newInputs = crossing.map((t, i) => tf.input({ shape: t.shape.slice(1) as number[], dtype: t.dtype, name: `${fromLayer}_in${i}` }));
  const mapped = new Map<number, Sym>(crossing.map((t, i) => [t.id, newInputs[i]!]));
  const build = (t: Sym): Sym => {
    const done = mapped.get(t.id);
    if (done) return done;
    const { layer, inputs, callArgs } = producingNode(t);
    const args = inputs.map(build);
    const out = layer.apply(args.length === 1 ? args[0]! : args, callArgs) as Sym | Sym[];
    const outs = Array.isArray(out) ? out : [out];
    // Map every output of this call, so a multi-output layer is called once.
    const node = (layer as any).inboundNodes[t.nodeIndex];
    (node.outputTensors as Sym[]).forEach((o, i) => mapped.set(o.id, outs[i]!));
    return mapped.get(t.id)!;
  };
  const upperOut = build(output);
  const upper = tf.model({ inputs: newInputs, outputs: upperOut, name: `${model.name}_from_${fromLayer}` });
  const lower = tf.model({ inputs: model.inputs, outputs: crossing, name: `${model.name}_to_${fromLayer}` });
  return { lower, upper, upperLayers: model.layers.slice(index).filter((l) => upper.layers.includes(l)) };
}

/** Every distinct weight variable of the given models and layers. */
export function collectWeights(...owners: (tf.LayersModel | AnyLayer | null | undefined)[]): tf.LayerVariable[] {
  const seen = new Set<tf.LayerVariable>();
  for (const o of owners) {
    if (!o) continue;
    const layers = o instanceof tf.LayersModel ? o.layers : [o];
    for (const l of layers) {
      for (const w of l.weights) seen.add(w);
      if (l instanceof tf.LayersModel) for (const w of collectWeights(l)) seen.add(w);
    }
  }
  return [...seen];
}

/**
 * Frees the weights of the given models and layers. Layers shared between several models are freed once,
 * which `LayersModel.dispose()` (reference counted per call) does not guarantee after graph surgery.
 */
export function disposeWeights(...owners: (tf.LayersModel | AnyLayer | null | undefined)[]): void {
  for (const w of collectWeights(...owners)) {
    if (!(w as unknown as { val: tf.Variable }).val.isDisposed) w.dispose();
  }
}
