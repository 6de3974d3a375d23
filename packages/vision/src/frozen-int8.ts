// An int8 frozen model that calibrates itself on what it is given: the first `calibrationSamples` inputs run in fp32
// and are kept; the model is then quantized (@graft/inference quantizeOnnx, per-channel int8 weights, min-max
// activation ranges) and the int8 session checked against fp32 on those same inputs. It serves the later runs only
// where its outputs keep a cosine similarity of at least `minCosine` with fp32's; otherwise fp32 goes on serving and
// the log says why. Runs keep the order they were asked in: the switch waits for the fp32 runs asked before it.
import * as tf from '@tensorflow/tfjs';
import { Cosine } from '@graft/inference/similarity';
import type { LogFn } from './backend';
import type { FrozenInput, FrozenModel } from './frozen';

export interface FrozenInt8Options {
  /** Samples calibrated on before the switch (default 32: as many as the int8 check of a trained model). */
  calibrationSamples?: number;
  /** Least cosine similarity between int8 and fp32 outputs on the calibration samples (default 0.98). */
  minCosine?: number;
}

/** The calibration batches as the runs gave them: network inputs, or 8-bit pixels (FrozenModel.pixels). */
export type Quantize = (onnx: Uint8Array, batches: { input: Float32Array | Uint8Array; batch: number }[]) => Promise<Uint8Array>;

/** Wraps an fp32 ONNX Runtime frozen model; `open` opens ONNX bytes the way the fp32 model was opened. */
export function int8FrozenModel(
  fp32: FrozenModel,
  onnx: Uint8Array,
  quantize: Quantize,
  open: (onnx: Uint8Array) => Promise<FrozenModel>,
  log: LogFn,
  what: string,
  opts: FrozenInt8Options = {},
): FrozenModel & { readonly precision: 'fp32' | 'int8' } {
  const wanted = opts.calibrationSamples ?? 32;
  const minCosine = opts.minCosine ?? 0.98;
  const kept: { input: Float32Array | Uint8Array; batch: number }[] = [];
  const outputs: Float32Array[] = [];
  let samples = 0;
  // Samples of the calibrating runs asked so far: runs asked while earlier ones compute are kept only up to `wanted`.
  let asked = 0;
  let current: FrozenModel = fp32;
  let precision: 'fp32' | 'int8' = 'fp32';
  let switching: Promise<void> | null = null;
  let last: Promise<unknown> = Promise.resolve();

  const switchOver = async (): Promise<void> => {
    await last.catch(() => {});
    const started = performance.now();
    let int8: FrozenModel | null = null;
    const part = { quantize: 0, open: 0, check: 0 };
    const lap = (k: keyof typeof part, t: number) => (part[k] = +((performance.now() - t) / 1000).toFixed(2));
    try {
      let t = performance.now();
      const bytes = await quantize(onnx, kept);
      lap('quantize', t);
      t = performance.now();
      int8 = await open(bytes);
      lap('open', t);
      t = performance.now();
      const similarity = new Cosine();
      for (const [i, k] of kept.entries()) {
        const [y] = await int8.run(k.input, k.batch);
        similarity.add(outputs[i]!, y!);
      }
      const cosine = similarity.value;
      lap('check', t);
      const seconds = { total: +((performance.now() - started) / 1000).toFixed(2), ...part };
      if (cosine >= minCosine) {
        current = int8;
        precision = 'int8';
        log({ model: what, precision: 'int8', cosine: +cosine.toFixed(4), samples, seconds }, `frozen ${what} runs in int8 from now on`);
      } else {
        await int8.dispose();
        log({ model: what, precision: 'fp32', cosine: +cosine.toFixed(4), minCosine, samples, seconds }, `frozen ${what} stays fp32: int8 outputs are too far from fp32's`);
      }
    } catch (err) {
      await int8?.dispose();
      log({ model: what, precision: 'fp32', reason: (err as Error).message }, `frozen ${what} stays fp32: int8 could not be made`);
    } finally {
      kept.length = 0;
      outputs.length = 0;
    }
  };

  return {
    engine: fp32.engine,
    threaded: fp32.threaded,
    pixels: fp32.pixels,
    inputShape: fp32.inputShape,
    outputShapes: fp32.outputShapes,
    get precision() {
      return precision;
    },
    async run(tensorOrValues, batch, o) {
      // Not calibrated on, and not held up by a switch: the fp32 model serves such runs whatever the precision.
      if (o?.fp32) return fp32.run(tensorOrValues, batch, o);
      const input = await inputValues(tensorOrValues);
      if (switching) await switching;
      const calibrating = !switching && asked < wanted;
      if (calibrating) asked += batch;
      const copy = calibrating ? input.slice() : null;
      const run = current.run(input, batch, o);
      last = run;
      if (!calibrating) return run;
      const out = await run;
      kept.push({ input: copy!, batch });
      // A copy: the caller may lend the output's buffer to another thread (transfer.ts headFromLower).
      outputs.push(out[0]!.slice());
      samples += batch;
      if (samples >= wanted && !switching) switching = switchOver();
      return out;
    },
    async dispose() {
      await switching?.catch(() => {});
      if (current !== fp32) await current.dispose();
      await fp32.dispose();
    },
  };
}

/** The values of a frozen run's input: a tensor (the input where images were augmented on the backend) is read and disposed. */
export async function inputValues(input: FrozenInput): Promise<Float32Array | Uint8Array> {
  if (!(input instanceof tf.Tensor)) return input;
  try {
    return (await input.data()) as Float32Array;
  } finally {
    input.dispose();
  }
}
