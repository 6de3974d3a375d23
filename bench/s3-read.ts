// Reading and decoding a dataset's images from object storage as a job does (decodeInOrder over Storage.getBuffer),
// with the latency of a store across a network: the embedded S3 server (npm start's) behind an HTTP proxy that holds
// every request for --latency milliseconds. Each row reads and decodes the same images at the training input size
// with decodeInOrder's default read-ahead, and with reads only as deep as decoding (readAhead = concurrency, how it
// read before the read-ahead): images/s, and the CPU milliseconds an image of this process (reading through the AWS SDK,
// decoding, and the proxy) and of the storage server.
//
//   npx tsx bench/s3-read.ts [--images 400] [--latency 0,5,20,50] [--dataset ../shared/datasets/dogs-vs-cats]
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resolveConfig } from '@graft/contract';
import { TRAINING_RESIZE_KERNEL } from '@graft/inference';
import { trainingInputSize } from '@graft/vision';
import { DEFAULT_DECODE_CONCURRENCY, DEFAULT_READ_AHEAD, decodeInOrder, mapConcurrent } from '@graft/vision/preprocess';
import { slowEmbeddedS3 } from './delaying-proxy';
import { interleavedFiles } from './splits';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '400' },
    latency: { type: 'string', default: '0,5,20,50' },
    dataset: { type: 'string', default: join(import.meta.dirname, '../../shared/datasets/dogs-vs-cats') },
  },
});
const SIZE = trainingInputSize(resolveConfig({}));

/** CPU milliseconds (user + system) of a process so far, from /proc. */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function main(): Promise<void> {
  const files = interleavedFiles(join(args.dataset, 'train'), Number(args.images));
  const dir = await mkdtemp(join(tmpdir(), 'graft-s3-read-'));
  const { storage, server, setLatency, close } = await slowEmbeddedS3(dir);
  try {
    await mapConcurrent(files, 16, async (f, i) => storage.put(`images/${i}`, await readFile(f), 'image/jpeg'));
    const warm = Math.min(files.length, 16); // the decoders' first calls are not timed
    await Promise.all(decodeInOrder(warm, (i) => storage.getBuffer(`images/${i}`), SIZE, { kernel: TRAINING_RESIZE_KERNEL }));
    console.log(`${files.length} images of ${args.dataset} read from the embedded S3 server through a delaying proxy and decoded to ${SIZE} px; decoding ${DEFAULT_DECODE_CONCURRENCY} at a time`);
    console.log('\n| latency | reads ahead | images/s | CPU ms an image (this process, the proxy included) | CPU ms an image (storage server) |\n| --- | --- | --- | --- | --- |');
    for (const ms of args.latency.split(',').map(Number)) {
      setLatency(ms);
      for (const readAhead of [DEFAULT_READ_AHEAD, DEFAULT_DECODE_CONCURRENCY]) {
        const [cpu, serverCpu, t] = [process.cpuUsage(), processCpuMs(server.process.pid!), performance.now()];
        await Promise.all(decodeInOrder(files.length, (i) => storage.getBuffer(`images/${i}`), SIZE, { kernel: TRAINING_RESIZE_KERNEL, readAhead }));
        const seconds = (performance.now() - t) / 1000;
        const own = process.cpuUsage(cpu);
        const perImage = (msTotal: number) => (msTotal / files.length).toFixed(2);
        console.log(`| ${ms} ms | ${readAhead} | ${(files.length / seconds).toFixed(0)} | ${perImage((own.user + own.system) / 1000)} | ${perImage(processCpuMs(server.process.pid!) - serverCpu)} |`);
      }
    }
  } finally {
    await close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
