// A dataset's images by id (the original bytes, a thumbnail, a listing with their archive paths) and its health
// report, made at upload.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  Binary,
  HealthReportSchema,
  IdParams,
  ImageListQuery,
  ImagePage,
  ImageParams,
  ThumbnailQuery,
  type DatasetIndex,
  type DatasetManifest,
  type HealthReport,
  type IndexedImage,
} from '@graft/contract';
import { keys } from '@graft/storage';
import type { ApiDeps } from '../deps';
import { ApiError, notFound } from '../errors';
import { Lru, Thumbnails } from '../datasets/thumbnails';


const datasetImageRoutes: FastifyPluginAsyncTypebox<{ deps: ApiDeps }> = async (app, opts) => {
  const { storage } = opts.deps;
  const indexes = new Lru<{ index: DatasetIndex; byId: Map<string, IndexedImage> }>(32);
  const thumbs = new Thumbnails(storage);

  const manifestOf = async (tenant: string, id: string) => {
    const manifest = await storage.getJsonOrNull<DatasetManifest>(keys.datasetManifest(tenant, id));
    if (!manifest) throw notFound('dataset', id);
    return manifest;
  };
  const indexOf = async (tenant: string, id: string) => {
    await manifestOf(tenant, id);
    const k = keys.datasetIndex(tenant, id);
    let hit = indexes.get(k);
    if (!hit) {
      const index = await storage.getJson<DatasetIndex>(k);
      hit = { index, byId: new Map(index.images.filter((im) => im.id).map((im) => [im.id!, im])) };
      indexes.set(k, hit);
    }
    return hit;
  };
  const imageOf = async (tenant: string, id: string, imageId: string) => {
    const image = (await indexOf(tenant, id)).byId.get(imageId);
    if (!image) throw new ApiError('IMAGE_NOT_FOUND', `dataset '${id}' has no image '${imageId}'`, { id: imageId });
    return image;
  };
  const view = (im: IndexedImage) => ({ imageId: im.id, path: im.path, split: im.split, label: im.label, width: im.width, height: im.height });

  app.get(
    '/v1/datasets/:id/health',
    {
      config: { errors: ['DATASET_NOT_FOUND', 'HEALTH_NOT_AVAILABLE'] },
      schema: {
        tags: ['datasets'],
        summary: "The dataset's health report: near-duplicates, leakage between splits, class balance, odd images",
        description:
          'Made at upload. Groups of near-identical images within a split, every near-identical pair across splits (leakage), ' +
          'byte-identical copies kept once, class balance and classes far smaller than the rest, tiny and extreme-aspect images. ' +
          'Images are named by their archive path and image id (GET /v1/datasets/:id/images/:imageId).',
        params: IdParams('ds'),
        response: { 200: HealthReportSchema },
      },
    },
    async (req) => {
      const { id } = req.params;
      await manifestOf(req.tenant, id);
      const report = await storage.getJsonOrNull<HealthReport>(keys.datasetHealth(req.tenant, id));
      if (!report) {
        throw new ApiError('HEALTH_NOT_AVAILABLE', `dataset '${id}' was uploaded before health reports existed; upload it again to get one`, { id });
      }
      // A report stored before the groups were listed by image id: its groups name their images in full.
      return { ...report, nearDuplicateImageIds: report.nearDuplicateImageIds ?? report.nearDuplicates.map((g) => g.images.map((im) => im.imageId)) };
    },
  );

  app.get(
    '/v1/datasets/:id/images',
    {
      config: { errors: ['DATASET_NOT_FOUND'] },
      schema: {
        tags: ['datasets'],
        summary: "The dataset's images: id, archive path, split, label, size",
        params: IdParams('ds'),
        querystring: ImageListQuery,
        response: { 200: ImagePage },
      },
    },
    async (req) => {
      const { id } = req.params;
      const q = req.query;
      const { index } = await indexOf(req.tenant, id);
      const all = index.images.filter((im) => (!q.split || im.split === q.split) && (q.class === undefined || im.label === q.class));
      const limit = q.limit ?? 50;
      const offset = q.offset ?? 0;
      return { items: all.slice(offset, offset + limit).map(view), total: all.length, limit, offset };
    },
  );

  app.get(
    '/v1/datasets/:id/images/:imageId',
    {
      config: { errors: ['DATASET_NOT_FOUND', 'IMAGE_NOT_FOUND'] },
      schema: { tags: ['datasets'], summary: 'One image as uploaded (its original bytes)', params: ImageParams, response: { 200: Binary(['image/jpeg', 'image/png', 'image/webp'], 'the image') } },
    },
    async (req, reply) => {
      const { id, imageId } = req.params;
      const image = await imageOf(req.tenant, id, imageId);
      const ext = image.key.slice(image.key.lastIndexOf('.') + 1);
      const type = ext === 'jpg' ? 'image/jpeg' : `image/${ext}`;
      reply.header('cache-control', 'private, max-age=86400, immutable').type(type);
      return storage.getBuffer(image.key);
    },
  );

  app.get(
    '/v1/datasets/:id/images/:imageId/thumbnail',
    {
      config: { errors: ['DATASET_NOT_FOUND', 'IMAGE_NOT_FOUND'] },
      schema: {
        tags: ['datasets'],
        summary: 'One image as a square JPEG thumbnail',
        params: ImageParams,
        querystring: ThumbnailQuery,
        response: { 200: Binary(['image/jpeg'], 'a JPEG thumbnail') },
      },
    },
    async (req, reply) => {
      const { id, imageId } = req.params;
      const { size = 128 } = req.query;
      const image = await imageOf(req.tenant, id, imageId);
      reply.header('cache-control', 'private, max-age=86400, immutable').type('image/jpeg');
      return thumbs.jpeg(image.key, size);
    },
  );
};

export default datasetImageRoutes;
