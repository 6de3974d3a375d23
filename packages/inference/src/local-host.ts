// The SessionHost interface served on the calling thread, for where worker threads cannot start: ONNX Runtime still
// answers, but each run blocks the caller's event loop while it computes.
import { normalizeInto, type PixelTransform } from './image';
import { exportOnnx } from './onnx-export';
import { createSession } from './session';
import type { HostedSession, SessionHostLike } from './host';

export class LocalSessionHost implements SessionHostLike {
  readonly workers = 1;

  constructor(readonly intraOpThreads: number) {}

  async convert(modelJson: object, weights: Uint8Array): Promise<Uint8Array> {
    return exportOnnx(modelJson, weights);
  }

  async open(onnx: Uint8Array, opts: { transform?: PixelTransform } = {}): Promise<HostedSession> {
    const model = await createSession(onnx, { threads: this.intraOpThreads });
    const transform = opts.transform ?? null;
    return {
      provider: model.executionProvider,
      inputShape: model.inputShape,
      outputShape: model.outputShape,
      parallelism: 1,
      alive: true,
      async run(input, batch, opts) {
        let x: Float32Array;
        if (input instanceof Float32Array) x = input;
        else {
          if (!transform) throw new Error('the session takes float32 input');
          x = new Float32Array(input.length);
          normalizeInto(input, transform, x);
        }
        const output = await model.run(x, batch);
        opts?.giveBack?.(input);
        return output;
      },
      dispose: () => model.dispose(),
    };
  }

  async close(): Promise<void> {}
}
