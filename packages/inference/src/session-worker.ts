// The worker thread behind session-host.ts: it owns ONNX Runtime sessions and runs them. onnxruntime-node runs a
// session synchronously on the thread that calls run(), so here it blocks this thread instead of the event loop
// of the server that asked. Pixels arrive as 8-bit RGB and are normalised here, off the main thread too.
//
// It also converts TF.js layers models to ONNX, which takes a while for a large model.
//
// In: {type: 'convert', id, modelJson, weights}; {type: 'open', id, onnx, threads, transform};
// {type: 'run', id, session, input, batch}; {type: 'close', id, session}.
// Out: {type: 'ready'} once; then per request {type: 'converted', id, onnx}, {type: 'opened', id, session, provider,
// inputShape, outputShape}, {type: 'result', id, output} or {type: 'closed', id}; or {type: 'error', id, name, message}.
import { parentPort } from 'node:worker_threads';
import { createSession, type OrtModel } from './session';
import { normalizeInto, type PixelTransform } from './image';
import { exportOnnx } from './onnx-export';

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
      inputShape: number[];
      outputShape: number[];
    }
  | { type: 'converted'; id: number; onnx: Uint8Array }
  | { type: 'result'; id: number; output: Float32Array; input?: Uint8Array | Float32Array }
  | { type: 'closed'; id: number }
  | { type: 'error'; id: number; name: string; message: string };

const port = parentPort!;
const sessions = new Map<number, { model: OrtModel; transform: PixelTransform | null }>();
let nextSession = 1;
// Requests are served one after another in arrival order.
let chain: Promise<void> = Promise.resolve();
// Pixels are normalised into this, kept from run to run (one run at a time here): a batch of 16 at 288 px is 16 MB
// of float32, which allocated per run kept the collector and the kernel's page zeroing busy.
let normalized = new Float32Array(0);

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
      const model = await createSession(msg.onnx, { threads: msg.threads });
      const session = nextSession++;
      sessions.set(session, { model, transform: msg.transform });
      post({
        type: 'opened',
        id: msg.id,
        session,
        provider: model.executionProvider,
        inputShape: [...model.inputShape],
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
    let input: Float32Array;
    if (msg.input instanceof Float32Array) {
      input = msg.input;
    } else {
      if (!s.transform) throw new Error('the session takes float32 input');
      if (normalized.length < msg.input.length) normalized = new Float32Array(msg.input.length);
      input = normalized.subarray(0, msg.input.length);
      normalizeInto(msg.input, s.transform, input);
    }
    const output = await s.model.run(input, msg.batch);
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
