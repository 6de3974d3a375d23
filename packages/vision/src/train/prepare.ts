// Phase "prepare": starts decoding every image once at the input size (sharp, off this thread) and sorts the
// decoded images into their splits, leaving out (and logging) the undecodable ones. With cached features the
// training images are handed on while they decode, so the frozen model's passes overlap with decoding;
// otherwise every image is decoded before training starts.
import { throwIfAborted, VisionError } from '../errors';
import type { PendingImage } from '../features';
import { decodeInOrder, resizeKernelOf } from '../preprocess';
import type { ImageRef } from '../split';
import type { Plan } from './plan';
import type { RunResources } from './resources';
import type { ImageSet, TrainContext } from './types';

export interface Prepared {
  /** Every image in split order (train, validation, test), as it decodes. */
  pending: PendingImage[];
  /** The training images of `pending`. */
  trainPending: PendingImage[];
  /** Waits for every image, then gives the splits (memoized). */
  sets(): Promise<Sets>;
}

export interface Sets {
  train: ImageSet;
  validation: ImageSet;
  test: ImageSet;
  skipped: number;
}

export async function prepare(ctx: TrainContext, p: Plan, res: RunResources): Promise<Prepared> {
  res.progress.phase('preparing');
  const { train, validation, test } = p.splits;
  const all = [...train, ...validation, ...test];
  const overlap = p.method !== 'scratch' && p.cachedMode;
  const pending = decodeInOrder(all.length, (i) => ctx.opts.readImage(all[i]!.key), p.size, {
    kernel: resizeKernelOf(p.preprocessing),
    signal: ctx.signal,
    onProgress: overlap ? undefined : (done, total) => res.progress.update('preparing', done / total),
  });
  let settled: Promise<Sets> | null = null;
  const sets = () => (settled ??= settle(ctx, pending, [train, validation, test]));
  if (!overlap) await sets();
  throwIfAborted(ctx.signal);
  return { pending, trainPending: pending.slice(0, train.length), sets };
}

async function settle(ctx: TrainContext, pending: PendingImage[], splits: [ImageRef[], ImageRef[], ImageRef[]]): Promise<Sets> {
  const decoded = await Promise.all(pending);
  let skipped = 0;
  let offset = 0;
  const take = (refs: ImageRef[]): ImageSet => {
    const out: ImageSet = { images: [], labels: [], keys: [] };
    refs.forEach((r, i) => {
      const d = decoded[offset + i]!;
      if (d instanceof Uint8Array) {
        out.images.push(d);
        out.labels.push(r.label);
        out.keys.push(r.key);
      } else {
        skipped++;
        ctx.log({ key: r.key, err: d.message }, 'skipping an image that cannot be decoded');
      }
    });
    offset += refs.length;
    return out;
  };
  const [train, validation, test] = splits.map(take) as [ImageSet, ImageSet, ImageSet];
  if (train.images.length === 0) throw new VisionError('EMPTY_TRAINING_SET', 'none of the training images can be decoded');
  return { train, validation, test, skipped };
}
