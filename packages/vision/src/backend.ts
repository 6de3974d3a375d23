// Picks the fastest TensorFlow.js backend that loads here: the native TensorFlow binding on a GPU where its
// optional package and native binding file are installed, then WebGPU (the optional `webgpu` package, Dawn
// over Vulkan/Metal/D3D12) where it finds a hardware adapter, then the native TensorFlow binding on the CPU, then
// WebAssembly, then plain JavaScript. opts.prefer (GRAFT_TF_BACKEND, read by @graft/config) names one backend to
// use instead: 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'.
//
// Graft reads tensors only asynchronously (`await t.data()`): the webgpu backend in Node has no synchronous read.
// opts.syncReads 'throw' (GRAFT_TF_SYNC_READS=throw, a switch for the test suite) makes every synchronous read
// (dataSync, arraySync, bufferSync) throw on whichever backend is chosen, here and in the training replicas' threads,
// so a run on the CPU shows that no path needs one.
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TF_BACKENDS, tfBackendNamed, type SyncReads, type TfBackend } from '@graft/config/engines';
import { VisionError } from './errors';

export type BackendName = TfBackend;
export type LogFn = (obj: object, msg: string) => void;
export interface BackendOptions {
  /** The backend to use (a name of TF_BACKENDS or an alias); unset: the best that loads. */
  prefer?: string;
  /** 'throw': synchronous tensor reads throw from now on (default 'allow'). */
  syncReads?: SyncReads;
  log?: LogFn;
}

const NATIVE_PACKAGE: Partial<Record<BackendName, string>> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

const require = createRequire(import.meta.url);
let chosen: Promise<string> | null = null;
let syncReadsSetting: SyncReads = 'allow';
/** Which of TF_BACKENDS initBackend started (tfjs names both native ones 'tensorflow'). */
let chosenName: BackendName | null = null;

/** Backends that compute on a GPU. */
const GPU_BACKENDS: ReadonlySet<BackendName> = new Set(['tensorflow-gpu', 'webgpu']);

/**
 * True where initBackend chose a backend that computes on a GPU (tfjs-node-gpu or webgpu; webgpu on a software
 * adapter, which runs only where asked for by name, counts as one: it takes the same paths).
 */
export function backendOnGpu(): boolean {
  return chosenName !== null && GPU_BACKENDS.has(chosenName);
}

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

async function tryBackend(name: BackendName, log: LogFn, requested = false): Promise<string | null> {
  const pkg = NATIVE_PACKAGE[name];
  if (pkg) {
    const why = nativeUnavailable(pkg);
    if (why) return why;
    // Requiring the package registers the 'tensorflow' backend with the tfjs instance it shares with us.
    require(pkg);
    if (!(await tf.setBackend('tensorflow'))) return `${pkg} loaded but the 'tensorflow' backend did not start`;
    return null;
  }
  if (name === 'webgpu') return startWebGpu(log, requested);
  if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) return 'the wasm backend did not start';
    await registerWasmTraining(log);
    return null;
  }
  if (!(await tf.setBackend('cpu'))) return 'the cpu backend did not start';
  return null;
}

/** What is used here of the `webgpu` package (its own types would declare the WebGPU globals everywhere). */
interface DawnAdapter {
  isFallbackAdapter?: boolean;
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
}
interface DawnModule {
  create(flags: string[]): { requestAdapter(options?: { powerPreference?: string }): Promise<DawnAdapter | null> };
  globals: Record<string, unknown>;
}

/**
 * On Linux Dawn reaches the GPU through the Vulkan loader and a Vulkan driver; without them there is no adapter
 * to find (and Dawn prints warnings of its own), so both are looked for first where the loader looks.
 */
function missingVulkanLoader(): string | null {
  if (process.platform !== 'linux') return null;
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`,
    `/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`,
    '/usr/lib64',
    '/lib64',
    '/usr/lib',
    '/usr/local/lib',
  ];
  if (!dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')))) return 'no Vulkan loader (libvulkan.so.1) on this machine';
  // The loader finds drivers by their manifests (the NVIDIA container toolkit mounts one where the container
  // asks for the 'graphics' capability), or where VK_ICD_FILENAMES / VK_DRIVER_FILES name them.
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES) return null;
  const xdg = (process.env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(':').filter(Boolean);
  const icdDirs = ['/etc/vulkan/icd.d', ...xdg.map((d) => join(d, 'vulkan/icd.d'))];
  const hasDriver = icdDirs.some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json')));
  if (hasDriver) return null;
  // GPU operators on Kubernetes mount the driver under /usr/local/nvidia, where the loader does not look: name it.
  if (existsSync(NVIDIA_OPERATOR_ICD)) {
    process.env.VK_DRIVER_FILES = NVIDIA_OPERATOR_ICD;
    return null;
  }
  return 'no Vulkan driver (no ICD manifest in /etc/vulkan/icd.d or /usr/share/vulkan/icd.d)';
}

/** Where NVIDIA's GPU operator puts the driver's Vulkan manifest. */
const NVIDIA_OPERATOR_ICD = '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json';

/** Adapter descriptions of software renderers: a WebGPU backend on one would be slower than wasm. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render/i;

/**
 * Starts the WebGPU backend on the `webgpu` package's Dawn binding: finds an adapter first (null where the
 * machine has no GPU, no Vulkan loader or no driver), refuses a software one unless webgpu was asked for by
 * name (a CPU Vulkan driver such as Mesa's lavapipe then runs it, slowly: how the tests run the webgpu
 * kernels on a machine without a GPU), then exposes navigator.gpu and the WebGPU globals that
 * @tensorflow/tfjs-backend-webgpu expects, which registers its backend on import, and registers Graft's
 * training kernels for it.
 */
async function startWebGpu(log: LogFn, requested: boolean): Promise<string | null> {
  if (!packageDir('webgpu')) return 'webgpu is not installed';
  if (!packageDir('@tensorflow/tfjs-backend-webgpu')) return '@tensorflow/tfjs-backend-webgpu is not installed';
  const noLoader = missingVulkanLoader();
  if (noLoader) return noLoader;
  let dawn: DawnModule;
  try {
    dawn = (await import('webgpu')) as unknown as typeof dawn;
  } catch (err) {
    return `the webgpu package did not load: ${(err as Error).message}`;
  }
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return 'no WebGPU adapter (no GPU, Vulkan loader or driver found)';
  const info = adapter.info;
  const described = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ');
  const software = adapter.isFallbackAdapter || info?.isFallbackAdapter || SOFTWARE_ADAPTER.test(described);
  if (software && !requested) return `the WebGPU adapter is a software renderer (${described || 'fallback adapter'})`;
  if (software) log({ adapter: described }, 'WebGPU adapter is a software renderer: it runs on the CPU (requested)');
  for (const [key, value] of Object.entries(dawn.globals)) {
    if (!(key in globalThis)) Object.defineProperty(globalThis, key, { value, configurable: true, writable: true });
  }
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!tf.findBackendFactory('webgpu')) return '@tensorflow/tfjs-backend-webgpu did not register its backend';
  if (!(await tf.setBackend('webgpu'))) return 'the webgpu backend did not start';
  const { registerWebGpuTrainingKernels } = await import('./backend/webgpu-kernels');
  registerWebGpuTrainingKernels();
  log({ adapter: described }, `WebGPU adapter: ${described}; registered webgpu training kernels`);
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

/** Makes synchronous tensor reads (dataSync, arraySync, bufferSync) throw from now on, as on webgpu in Node. */
export function forbidSyncReads(): void {
  syncReadsSetting = 'throw';
  const engine = tf.engine() as unknown as { readSync(dataId: object): unknown };
  engine.readSync = () => {
    throw new Error('synchronous tensor reads are turned off (GRAFT_TF_SYNC_READS=throw); read with await t.data()');
  };
}

/** Whether synchronous reads throw in this thread: what the training replicas' threads are started with. */
export const syncReads = (): SyncReads => syncReadsSetting;

/**
 * Chooses and starts the backend once (the first call's options hold); later calls return the same name. The order is tfjs-node-gpu,
 * webgpu, tfjs-node, wasm, cpu, or the one named by opts.prefer (an error where it cannot load).
 */
export function initBackend(opts: BackendOptions = {}): Promise<string> {
  chosen ??= choose(opts).then(
    (name) => {
      if (opts.syncReads === 'throw') forbidSyncReads();
      return name;
    },
  ).catch((err) => {
    chosen = null;
    throw err;
  });
  return chosen;
}

async function choose(opts: BackendOptions): Promise<string> {
  const log: LogFn = opts.log ?? (() => {});
  const wanted = opts.prefer;
  if (wanted) {
    const name = tfBackendNamed(wanted);
    if (!name) {
      throw new VisionError('INVALID_BACKEND', `unknown TensorFlow.js backend '${wanted}'; use one of ${TF_BACKENDS.join(', ')}`);
    }
    const why = await tryBackend(name, log, true).catch((err: Error) => err.message);
    if (why) throw new VisionError('BACKEND_UNAVAILABLE', `TensorFlow.js backend '${name}' cannot be used: ${why}`);
    await tf.ready();
    chosenName = name;
    log({ backend: tf.getBackend(), requested: wanted }, `TensorFlow.js backend: ${tf.getBackend()} (requested)`);
    return tf.getBackend();
  }
  const skipped: Record<string, string> = {};
  for (const name of TF_BACKENDS) {
    const why = await tryBackend(name, log).catch((err: Error) => err.message);
    if (why === null) {
      await tf.ready();
      chosenName = name;
      log({ backend: tf.getBackend(), skipped }, `TensorFlow.js backend: ${tf.getBackend()}`);
      return tf.getBackend();
    }
    skipped[name] = why;
  }
  throw new VisionError('BACKEND_UNAVAILABLE', `no TensorFlow.js backend could be started: ${JSON.stringify(skipped)}`);
}
