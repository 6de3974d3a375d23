// What the cores of this machine give when they all work at once: a fixed integer loop timed on one worker thread,
// then on one worker thread per core at the same time. Where the cores are real, n threads do close to n times the
// work of one; where they are hyperthreads of fewer physical cores, or the machine's CPU time is capped, much less.
// The targets of issue 14 are stated for two cores: the benches print this beside their numbers so that a run on a
// machine whose second core adds little is read as such.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** A loop of integer multiply-adds over a byte array, timed in a worker thread: milliseconds per pass. */
const LOOP = `
const { parentPort, workerData } = require('node:worker_threads');
const a = new Uint8Array(1 << 20).map((_, i) => i & 255);
const w = new Int32Array(8).fill(3);
function pass() { let s = 0; for (let i = 0; i < a.length; i++) s = (s + a[i] * w[i & 7]) | 0; return s; }
for (let i = 0; i < 20; i++) pass();
const t0 = performance.now();
let x = 0;
for (let i = 0; i < workerData.passes; i++) x ^= pass();
parentPort.postMessage({ ms: (performance.now() - t0) / workerData.passes, x });
`;

function timeLoop(passes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(LOOP, { eval: true, workerData: { passes } });
    worker.once('message', (m: { ms: number }) => resolve(m.ms));
    worker.once('error', reject);
  });
}

export interface CoreScaling {
  cores: number;
  /** Milliseconds a pass on one thread alone. */
  alone: number;
  /** Milliseconds a pass on each of `cores` threads running at once (their mean). */
  together: number;
  /** The work of `cores` threads at once over the work of one: `cores` on real cores, about 1 on one shared core. */
  speedup: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Times the loop alone, then on every core at once, in turn `rounds` times (the machine's speed drifts): medians. */
export async function coreScaling(passes = 60, rounds = 5): Promise<CoreScaling> {
  const cores = availableParallelism();
  const [alone, together]: [number[], number[]] = [[], []];
  for (let r = 0; r < rounds; r++) {
    alone.push(await timeLoop(passes));
    const each = await Promise.all(Array.from({ length: cores }, () => timeLoop(passes)));
    together.push(each.reduce((a, b) => a + b, 0) / cores);
  }
  const [a, t] = [median(alone), median(together)];
  return { cores, alone: a, together: t, speedup: (cores * a) / t };
}

/** One line for a bench's header. */
export function describeScaling(s: CoreScaling): string {
  return (
    `${s.cores} cores at once do ${s.speedup.toFixed(2)}x the work of one ` +
    `(an integer loop: ${s.alone.toFixed(2)} ms a pass alone, ${s.together.toFixed(2)} ms with every core busy)`
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(describeScaling(await coreScaling()));
}

/** One of issue 14's targets as the benches print it: `target <what>: met|NOT met (<measured>)`. */
export function targetLine(what: string, met: boolean, measured: string): string {
  return `target ${what}: ${met ? 'met' : 'NOT met'} (${measured})`;
}
