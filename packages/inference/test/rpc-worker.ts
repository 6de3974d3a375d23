// A worker thread for the WorkerRpc tests: answers 'echo' with its value, 'slow' after some milliseconds, 'fail' with an error reply, and on
// 'fatal' or 'exit' fails as a whole.
import { parentPort } from 'node:worker_threads';

type Request = { type: 'echo'; id: number; value: number } | { type: 'slow'; id: number; ms: number } | { type: 'fail'; id: number } | { type: 'fatal'; id: number } | { type: 'exit'; id: number };

const port = parentPort!;
port.on('message', (m: Request) => {
  if (m.type === 'echo') port.postMessage({ type: 'echoed', id: m.id, value: m.value });
  else if (m.type === 'slow') setTimeout(() => port.postMessage({ type: 'done', id: m.id }), m.ms);
  else if (m.type === 'fail') port.postMessage({ type: 'error', id: m.id, name: 'RangeError', message: 'out of range' });
  else if (m.type === 'fatal') port.postMessage({ type: 'fatal', message: 'state lost' });
  else process.exit(3);
});
port.postMessage({ type: 'ready' });
