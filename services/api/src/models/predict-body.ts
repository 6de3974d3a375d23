// The request body of /predict: checked before it is read (content type, declared size, the model exists: see
// beforeBody, run in preParsing after authentication), then read within GRAFT_MAX_PREDICT_BYTES in total, whatever
// its form (multipart parts, a raw image, JSON base64), and its images checked by their headers.
import type { FastifyRequest } from 'fastify';
import type { GraftConfig } from '@graft/config';
import { ApiError, notFound } from '../errors';
import { isId } from '@graft/contract';
import type { ModelRecord, ModelService } from './service';
import { checkPredictImages } from './predict-images';

export const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp'];
const PREDICT_TYPES = [...IMAGE_TYPES, 'multipart/form-data', 'application/json'];

export function predictBody(models: ModelService, limits: GraftConfig['limits']) {
  const tooLarge = () =>
    new ApiError('PAYLOAD_TOO_LARGE', `the images of one request may take at most ${limits.predictBodyBytes} bytes together (GRAFT_MAX_PREDICT_BYTES)`, {
      limit: limits.predictBodyBytes,
    });
  const tooMany = () =>
    new ApiError('TOO_MANY_IMAGES', `at most ${limits.predictImages} images per request (GRAFT_MAX_PREDICT_IMAGES)`);

  /** The file parts of a multipart body, counted together against GRAFT_MAX_PREDICT_BYTES as they arrive. */
  const readMultipart = async (req: FastifyRequest): Promise<Uint8Array[]> => {
    const images: Uint8Array[] = [];
    let total = 0;
    let over = false;
    try {
      for await (const part of req.parts({ limits: { fileSize: limits.predictBodyBytes, files: limits.predictImages + 1 } })) {
        if (part.type !== 'file') continue;
        if (part.fieldname !== 'image') {
          throw new ApiError('VALIDATION_FAILED', `unexpected file field '${part.fieldname}': send images in fields named 'image'`, {
            field: part.fieldname,
          });
        }
        if (images.length >= limits.predictImages) throw tooMany();
        const chunks: Buffer[] = [];
        for await (const chunk of part.file as AsyncIterable<Buffer>) {
          total += chunk.length;
          if (total > limits.predictBodyBytes) {
            over = true;
            throw tooLarge();
          }
          chunks.push(chunk);
        }
        images.push(Buffer.concat(chunks));
      }
    } catch (err) {
      // Leaving a part half read ends the multipart parser with an error of its own; the limit is the reason.
      throw over ? tooLarge() : err;
    }
    return images;
  };

  /** The request's images, checked, and their pixels together. */
  const readImages = async (req: FastifyRequest): Promise<{ images: Uint8Array[]; pixels: number }> => {
    const images: Uint8Array[] = [];
    if (req.isMultipart()) {
      images.push(...(await readMultipart(req)));
    } else if (Buffer.isBuffer(req.body)) {
      images.push(req.body);
    } else if (req.body && typeof req.body === 'object') {
      const list = (req.body as { images?: unknown }).images;
      if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
        throw new ApiError('VALIDATION_FAILED', 'images must be an array of base64 strings', { field: 'images' });
      }
      if (list.length > limits.predictImages) throw tooMany();
      list.forEach((s: string, i: number) => {
        const clean = s.replace(/^data:[^,]*,/, '');
        if (!/^[A-Za-z0-9+/=\s_-]*$/.test(clean)) {
          throw new ApiError('INVALID_IMAGE', `images[${i}] is not base64`, { index: i });
        }
        images.push(Buffer.from(clean, 'base64'));
      });
    } else {
      throw new ApiError(
        'UNSUPPORTED_MEDIA_TYPE',
        'send images as multipart/form-data (fields named image), a raw image/jpeg, image/png or image/webp body, or JSON {"images": ["<base64>"]}',
      );
    }
    if (!images.length) throw new ApiError('VALIDATION_FAILED', 'no image in the request');
    images.forEach((b, i) => {
      if (b.length === 0) throw new ApiError('INVALID_IMAGE', `image ${i} is empty`, { index: i });
    });
    return { images, pixels: await checkPredictImages(images, limits) };
  };

  const modelOfRequest = new WeakMap<FastifyRequest, ModelRecord>();
  /**
   * Runs before the body is read (after authentication): a body declared over the limit, or one for a model
   * that does not exist, is refused without reading it.
   */
  const beforeBody = async (req: FastifyRequest) => {
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type && !PREDICT_TYPES.includes(type)) {
      throw new ApiError('UNSUPPORTED_MEDIA_TYPE', `unsupported Content-Type '${type}': send multipart/form-data, ${IMAGE_TYPES.join(', ')} or application/json`);
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limits.predictBodyBytes) throw tooLarge();
    const { id } = req.params as { id: string };
    if (!isId('mdl', id)) return; // the params schema answers
    const model = await models.getCached(req.tenant, id);
    if (!model) throw notFound('model', id);
    modelOfRequest.set(req, model);
  };

  return { beforeBody, readImages, modelOf: (req: FastifyRequest) => modelOfRequest.get(req) };
}
