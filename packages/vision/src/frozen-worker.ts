// The worker thread that runs an ONNX Runtime session for frozen.ts. onnxruntime-node runs a session on the
// thread that calls it, so running it here leaves the main thread free to decode and augment the next batch
// (and to train) while this one computes.
//
// Messages in (each with an id, answered by a message with that id, see WorkerRpc): {type: 'open', onnx,
// threads} once, then {type: 'run', input, batch}. Out: {type: 'ready'} at start; {type: 'opened', provider},
// {type: 'result', output} or {type: 'error', message}.
import { parentPort } from 'node:worker_threads';
import { createSession, type OrtModel } from '@graft/inference';

export type FrozenRequest = { type: 'open'; id: number; onnx: Uint8Array; threads: number } | { type: 'run'; id: number; input: Float32Array; batch: number };

const port = parentPort!;
let session: OrtModel | null = null;
// Runs are done one after another, in the order they arrive.
let queue: Promise<void> = Promise.resolve();

port.on('message', (msg: FrozenRequest) => {
  if (msg.type === 'open') {
    createSession(msg.onnx, { threads: msg.threads }).then(
      (s) => {
        session = s;
        port.postMessage({ type: 'opened', id: msg.id, provider: s.executionProvider });
      },
      (err: Error) => port.postMessage({ type: 'error', id: msg.id, message: err.message }),
    );
    return;
  }
  queue = queue.then(async () => {
    try {
      if (!session) throw new Error('the session is not open');
      const output = await session.run(msg.input, msg.batch);
      // The output may be a view on a larger buffer: send exactly its values.
      const own = output.byteOffset === 0 && output.byteLength === output.buffer.byteLength ? output : output.slice();
      port.postMessage({ type: 'result', id: msg.id, output: own }, [own.buffer as ArrayBuffer]);
    } catch (err) {
      port.postMessage({ type: 'error', id: msg.id, message: (err as Error).message });
    }
  });
});

port.postMessage({ type: 'ready' });
