// The worker thread behind session-host.ts: it owns ONNX Runtime sessions and runs them. onnxruntime-node runs a
// session synchronously on the thread that calls run(), so here it blocks this thread instead of the event loop
// of the server that asked. Pixels arrive as 8-bit RGB and are normalised here, off the main thread too, or read as
// they are by a model quantized on their grid (pixel-input.ts).
//
// It also converts TF.js layers models to ONNX, which takes a while for a large model.
//
// In: {type: 'convert', id, modelJson, weights}; {type: 'open', id, onnx, threads, transform};
// {type: 'run', id, session, input, batch}; {type: 'close', id, session}.
// Out: {type: 'ready'} once; then per request {type: 'converted', id, onnx}, {type: 'opened', id, session, provider, inputType,
// inputShape, outputShape}, {type: 'result', id, output} or {type: 'closed', id}; or {type: 'error', id, name, message}.
import { parentPort } from 'node:worker_threads';
import type { PixelTransform } from './image';
import { exportOnnx } from './onnx-export';
import { openForPixels, SessionInput } from './pixel-input';
import type { InputType, OrtModel } from './session';

export type HostRequest =
  | { type: 'convert'; id: number; modelJson: object; weights: Uint8Array }
  | { type: 'open'; id: number; onnx: Uint8Array; threads: number; transform: PixelTransform | null }
  | { type: 'run'; id: number; session: number; input: Uint8Array | Float32Array; batch: number; giveBack?: boolean }
  | { type: 'close'; id: number; session: number };

export type HostReply =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | {
      type: 'opened';
      id: number;
      session: number;
      provider: string;
      inputType: InputType;
      inputShape: number[];
      outputShape: number[];
    }
  | { type: 'converted'; id: number; onnx: Uint8Array }
  | { type: 'result'; id: number; output: Float32Array; input?: Uint8Array | Float32Array }
  | { type: 'closed'; id: number }
  | { type: 'error'; id: number; name: string; message: string };

const port = parentPort!;
const sessions = new Map<number, { model: OrtModel; input: SessionInput }>();
let nextSession = 1;
// Requests are served one after another in arrival order.
let chain: Promise<void> = Promise.resolve();

async function handle(msg: HostRequest): Promise<void> {
  if (msg.type === 'convert') {
    try {
      const onnx = exportOnnx(msg.modelJson, msg.weights);
      port.postMessage({ type: 'converted', id: msg.id, onnx } satisfies HostReply, [onnx.buffer as ArrayBuffer]);
    } catch (err) {
      fail(msg.id, err);
    }
    return;
  }
  if (msg.type === 'open') {
    try {
      const opened = await openForPixels(msg.onnx, msg.threads, msg.transform);
      const model = opened.model;
      const session = nextSession++;
      // Pixels are normalised into one buffer kept from run to run (one run at a time here): a batch of 16 at 288 px is
      // 16 MB of float32, which allocated per run kept the collector and the kernel's page zeroing busy.
      const input = new SessionInput(opened, msg.transform, true);
      sessions.set(session, { model, input });
      post({
        type: 'opened',
        id: msg.id,
        session,
        provider: model.executionProvider,
        inputType: model.inputType,
        inputShape: [...input.inputShape],
        outputShape: [...model.outputShape],
      });
    } catch (err) {
      fail(msg.id, err);
    }
    return;
  }
  if (msg.type === 'close') {
    // Answered once the session is released, so that the thread is not stopped in the middle of it (close()).
    const s = sessions.get(msg.session);
    sessions.delete(msg.session);
    await s?.model.dispose().catch(() => {});
    post({ type: 'closed', id: msg.id });
    return;
  }
  try {
    const s = sessions.get(msg.session);
    if (!s) throw new Error('the ONNX Runtime session is closed');
    const output = await s.model.run(s.input.of(msg.input), msg.batch);
    // The output may be a view on a larger buffer: send exactly its values.
    const own = output.byteOffset === 0 && output.byteLength === output.buffer.byteLength ? output : output.slice();
    // A lent input goes back with the output (its whole buffer) for the caller to fill again.
    const back = msg.giveBack ? msg.input : undefined;
    const transfer = [own.buffer as ArrayBuffer, ...(back ? [back.buffer as ArrayBuffer] : [])];
    port.postMessage({ type: 'result', id: msg.id, output: own, input: back } satisfies HostReply, transfer);
  } catch (err) {
    fail(msg.id, err);
  }
}

function post(m: HostReply): void {
  port.postMessage(m);
}

function fail(id: number, err: unknown): void {
  const e = err as Error;
  post({ type: 'error', id, name: e?.name ?? 'Error', message: e?.message ?? String(err) });
}

port.on('message', (msg: HostRequest) => {
  chain = chain.then(() => handle(msg));
});

post({ type: 'ready' });
