// Every error class of the engine states whether it is permanent, and the errors that real failures raise carry
// the right answer: the worker retries a job only where its error is not permanent.
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { BatcherClosedError, InvalidImageError, UnsupportedLayerError, decodeAll } from '@graft/inference';
import { ARCHITECTURES, InputSizeError, loadKerasH5Weights } from '../src/architectures';
import { KerasH5Error } from '../src/architectures/h5';
import { AbortError, ImageDecodeError, isPermanent, throwIfAborted, VisionError } from '../src/errors';
import { decodeImages } from '../src/preprocess';

const garbage = new Uint8Array([1, 2, 3, 4]);

async function rejection(p: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

describe('engine errors', () => {
  it('a file that is not Keras HDF5 weights is permanent', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
    try {
      const err = await rejection(loadKerasH5Weights(model, garbage));
      expect(err).toBeInstanceOf(KerasH5Error);
      expect(err).toMatchObject({ code: 'INVALID_KERAS_WEIGHTS', permanent: true });
    } finally {
      model.dispose();
    }
  });

  it('an input size an architecture cannot take is permanent', async () => {
    const err = await rejection(() => ARCHITECTURES.vgg16!.build(8));
    expect(err).toBeInstanceOf(InputSizeError);
    expect(err).toMatchObject({ code: 'INVALID_INPUT_SIZE', permanent: true });
  });

  it('undecodable images are permanent, for training and for prediction', async () => {
    const [decoded] = await decodeImages(1, async () => garbage, 32, { kernel: 'lanczos3' });
    expect(decoded).toBeInstanceOf(ImageDecodeError);
    expect(decoded).toMatchObject({ code: 'IMAGE_DECODE_FAILED', permanent: true });
    const err = await rejection(decodeAll([garbage], 32, 'lanczos3'));
    expect(err).toBeInstanceOf(InvalidImageError);
    expect(err).toMatchObject({ code: 'INVALID_IMAGE', permanent: true });
  });

  it('an abort, a closed batcher and an unreachable source are not permanent', async () => {
    const c = new AbortController();
    c.abort();
    const abort = await rejection(() => throwIfAborted(c.signal));
    expect(abort).toBeInstanceOf(AbortError);
    expect(isPermanent(abort)).toBe(false);
    expect(new BatcherClosedError()).toMatchObject({ code: 'BATCHER_CLOSED', permanent: false });
    expect(isPermanent(new VisionError('BACKBONE_WEIGHTS_UNAVAILABLE', 'no answer', false))).toBe(false);
  });

  it('every class states it: VisionError by default permanent, a layer the converter lacks permanent', () => {
    expect(new VisionError('TOO_FEW_CLASSES', 'x').permanent).toBe(true);
    expect(new UnsupportedLayerError('Foo', 'foo')).toMatchObject({ code: 'UNSUPPORTED_LAYER', permanent: true });
    // An error that does not say (S3, the network) is not taken for permanent.
    expect(isPermanent(new Error('ECONNRESET'))).toBe(false);
    expect(isPermanent(undefined)).toBe(false);
  });
});
