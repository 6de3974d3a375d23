// The values of the variables that choose how TensorFlow.js and ONNX Runtime run (GRAFT_TF_BACKEND,
// GRAFT_FROZEN_ENGINE, GRAFT_TF_SYNC_READS): one vocabulary for the configuration that checks them at start and for
// @graft/vision that uses them. No imports, so the training engine can use it without the rest of the config.

/** TensorFlow.js backends by name, in the order they are tried when none is named. */
export const TF_BACKENDS = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type TfBackend = (typeof TF_BACKENDS)[number];

const TF_BACKEND_ALIASES: Record<string, TfBackend> = {
  'node-gpu': 'tensorflow-gpu',
  'tfjs-node-gpu': 'tensorflow-gpu',
  gpu: 'tensorflow-gpu',
  node: 'tensorflow',
  'tfjs-node': 'tensorflow',
};

/** The backend a name means (its own name, or 'node', 'gpu', 'tfjs-node…'), or null where it names none. */
export function tfBackendNamed(name: string): TfBackend | null {
  const n = name.trim().toLowerCase();
  return (TF_BACKENDS as readonly string[]).includes(n) ? (n as TfBackend) : (TF_BACKEND_ALIASES[n] ?? null);
}

/** What runs the frozen part of a network: ONNX Runtime where it can ('auto'), or one engine only. */
export const FROZEN_ENGINES = ['auto', 'onnxruntime', 'tfjs'] as const;
export type FrozenEngineSetting = (typeof FROZEN_ENGINES)[number];

const FROZEN_ENGINE_ALIASES: Record<string, FrozenEngineSetting> = { onnx: 'onnxruntime', ort: 'onnxruntime', tensorflow: 'tfjs' };

/** The engine a name means (its own name, or 'onnx', 'ort', 'tensorflow'), or null where it names none. */
export function frozenEngineNamed(name: string): FrozenEngineSetting | null {
  const n = name.trim().toLowerCase();
  return (FROZEN_ENGINES as readonly string[]).includes(n) ? (n as FrozenEngineSetting) : (FROZEN_ENGINE_ALIASES[n] ?? null);
}

/** The number format the frozen part runs in: fp32, or int8 where it stays close to fp32. */
export const FROZEN_PRECISIONS = ['fp32', 'int8'] as const;
export type FrozenPrecision = (typeof FROZEN_PRECISIONS)[number];

/** Synchronous tensor reads: allowed, or made to throw (as on webgpu in Node) so that no path comes to need one. */
export const SYNC_READS = ['allow', 'throw'] as const;
export type SyncReads = (typeof SYNC_READS)[number];
