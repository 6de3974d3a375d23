// The SessionHost interface served on the calling thread, for where worker threads cannot start: ONNX Runtime still
// answers, but each run blocks the caller's event loop while it computes.
import type { PixelTransform } from './image';
import { exportOnnx } from './onnx-export';
import { openForPixels, SessionInput } from './pixel-input';
import type { HostedSession, SessionHostLike } from './host';

export class LocalSessionHost implements SessionHostLike {
  readonly workers = 1;

  constructor(readonly intraOpThreads: number) {}

  async convert(modelJson: object, weights: Uint8Array): Promise<Uint8Array> {
    return exportOnnx(modelJson, weights);
  }

  async open(onnx: Uint8Array, opts: { transform?: PixelTransform } = {}): Promise<HostedSession> {
    const transform = opts.transform ?? null;
    const opened = await openForPixels(onnx, this.intraOpThreads, transform);
    const model = opened.model;
    // Runs may overlap here: each converts into a buffer of its own.
    const inputs = new SessionInput(opened, transform, false);
    return {
      provider: model.executionProvider,
      inputType: model.inputType,
      inputShape: inputs.inputShape,
      outputShape: model.outputShape,
      parallelism: 1,
      alive: true,
      async run(input, batch, opts) {
        const output = await model.run(inputs.of(input), batch);
        opts?.giveBack?.(input);
        return output;
      },
      dispose: () => model.dispose(),
    };
  }

  async close(): Promise<void> {}
}
