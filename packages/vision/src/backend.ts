// Picks the fastest TensorFlow.js backend that loads here: the native TensorFlow bindings (GPU, then CPU) where
// their optional packages and native binding files are installed, then WebAssembly, then plain JavaScript.
// GRAFT_TF_BACKEND (or opts.prefer) names one backend to use instead: 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'.
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { VisionError } from './errors';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export type LogFn = (obj: object, msg: string) => void;

const ORDER: BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

const ALIASES: Record<string, BackendName> = {
  'tensorflow-gpu': 'tensorflow-gpu',
  'node-gpu': 'tensorflow-gpu',
  'tfjs-node-gpu': 'tensorflow-gpu',
  gpu: 'tensorflow-gpu',
  tensorflow: 'tensorflow',
  node: 'tensorflow',
  'tfjs-node': 'tensorflow',
  wasm: 'wasm',
  cpu: 'cpu',
};

const NATIVE_PACKAGE: Partial<Record<BackendName, string>> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

const require = createRequire(import.meta.url);
let chosen: Promise<string> | null = null;

/** The package directory of pkg, or null where it is not installed. */
function packageDir(pkg: string): string | null {
  try {
    return dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return null;
  }
}

/** Why the native package cannot be used, or null where its package and binding file are there. */
function nativeUnavailable(pkg: string): string | null {
  const dir = packageDir(pkg);
  if (!dir) return `${pkg} is not installed`;
  const lib = join(dir, 'lib');
  const napi = existsSync(lib) ? readdirSync(lib).filter((d) => /^napi-v\d+$/.test(d)) : [];
  if (!napi.some((d) => existsSync(join(lib, d, 'tfjs_binding.node')))) {
    return `${pkg} has no native binding (lib/napi-v*/tfjs_binding.node)`;
  }
  return null;
}

async function tryBackend(name: BackendName, log: LogFn): Promise<string | null> {
  const pkg = NATIVE_PACKAGE[name];
  if (pkg) {
    const why = nativeUnavailable(pkg);
    if (why) return why;
    // Requiring the package registers the 'tensorflow' backend with the tfjs instance it shares with us.
    require(pkg);
    if (!(await tf.setBackend('tensorflow'))) return `${pkg} loaded but the 'tensorflow' backend did not start`;
    return null;
  }
  if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) return 'the wasm backend did not start';
    await registerWasmTraining(log);
    return null;
  }
  if (!(await tf.setBackend('cpu'))) return 'the cpu backend did not start';
  return null;
}

/**
 * Registers the gradient kernels that the wasm backend lacks for training (Conv2DBackpropFilter, ...), where
 * the module providing them is present.
 */
async function registerWasmTraining(log: LogFn): Promise<void> {
  let mod: { registerWasmTrainingKernels?: () => unknown } | null = null;
  try {
    mod = await import('./backend/wasm-kernels');
  } catch (err) {
    log({ err: (err as Error).message }, 'wasm training kernels not available; convolution layers cannot be trained on wasm');
    return;
  }
  if (typeof mod?.registerWasmTrainingKernels === 'function') {
    await mod.registerWasmTrainingKernels();
    log({}, 'registered wasm training kernels');
  }
}

/**
 * Chooses and starts the backend once; later calls return the same name. The order is tfjs-node-gpu,
 * tfjs-node, wasm, cpu, or the one named by opts.prefer / GRAFT_TF_BACKEND (an error where it cannot load).
 */
export function initBackend(opts: { prefer?: string; log?: LogFn } = {}): Promise<string> {
  chosen ??= choose(opts).catch((err) => {
    chosen = null;
    throw err;
  });
  return chosen;
}

async function choose(opts: { prefer?: string; log?: LogFn }): Promise<string> {
  const log: LogFn = opts.log ?? (() => {});
  const wanted = opts.prefer ?? process.env.GRAFT_TF_BACKEND;
  if (wanted) {
    const name = ALIASES[wanted.trim().toLowerCase()];
    if (!name) {
      throw new VisionError('INVALID_BACKEND', `unknown TensorFlow.js backend '${wanted}'; use one of ${ORDER.join(', ')}`);
    }
    const why = await tryBackend(name, log).catch((err: Error) => err.message);
    if (why) throw new VisionError('BACKEND_UNAVAILABLE', `TensorFlow.js backend '${name}' cannot be used: ${why}`);
    await tf.ready();
    log({ backend: tf.getBackend(), requested: wanted }, `TensorFlow.js backend: ${tf.getBackend()} (requested)`);
    return tf.getBackend();
  }
  const skipped: Record<string, string> = {};
  for (const name of ORDER) {
    const why = await tryBackend(name, log).catch((err: Error) => err.message);
    if (why === null) {
      await tf.ready();
      log({ backend: tf.getBackend(), skipped }, `TensorFlow.js backend: ${tf.getBackend()}`);
      return tf.getBackend();
    }
    skipped[name] = why;
  }
  throw new VisionError('BACKEND_UNAVAILABLE', `no TensorFlow.js backend could be started: ${JSON.stringify(skipped)}`);
}
