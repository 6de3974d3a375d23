// A dataset's images by id (the original bytes, a thumbnail, a listing with their archive paths) and its health
// report, made at upload.
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { keys } from '@graft/storage';
import type { ApiDeps } from '../deps';
import { ApiError, notFound } from '../errors';
import { ID_PATTERN } from '../ids';
import { Pagination } from '../schemas/common';
import { healthKey, indexKey, type DatasetIndex, type DatasetManifest } from '../datasets/service';
import { Lru, Thumbnails } from '../datasets/thumbnails';

const IMAGE_ID_PATTERN = '^img_[0-9a-f]{20}$';
const DatasetParams = Type.Object({ id: Type.String({ pattern: ID_PATTERN.ds }) });
const ImageParams = Type.Object({ id: Type.String({ pattern: ID_PATTERN.ds }), imageId: Type.String({ pattern: IMAGE_ID_PATTERN }) });
const SplitSchema = Type.Union([Type.Literal('train'), Type.Literal('validation'), Type.Literal('test')]);
const ListQuery = Type.Intersect([
  Pagination,
  Type.Object({ split: Type.Optional(SplitSchema), class: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }),
]);
const ThumbQuery = Type.Object({ size: Type.Optional(Type.Integer({ minimum: 32, maximum: 512, default: 128, description: 'edge of the square, px' })) });

type IndexedImage = DatasetIndex['images'][number];

export default async function datasetImageRoutes(app: FastifyInstance, opts: { deps: ApiDeps }) {
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
    const k = indexKey(tenant, id);
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
      schema: {
        tags: ['datasets'],
        summary: "The dataset's health report: near-duplicates, leakage between splits, class balance, odd images",
        description:
          'Made at upload. Groups of near-identical images within a split, every near-identical pair across splits (leakage), ' +
          'byte-identical copies kept once, class balance and classes far smaller than the rest, tiny and extreme-aspect images. ' +
          'Images are named by their archive path and image id (GET /v1/datasets/:id/images/:imageId).',
        params: DatasetParams,
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      await manifestOf(req.tenant, id);
      const report = await storage.getJsonOrNull<Record<string, unknown>>(healthKey(req.tenant, id));
      if (!report) {
        throw new ApiError('HEALTH_NOT_AVAILABLE', `dataset '${id}' was uploaded before health reports existed; upload it again to get one`, { id });
      }
      return report;
    },
  );

  app.get(
    '/v1/datasets/:id/images',
    { schema: { tags: ['datasets'], summary: "The dataset's images: id, archive path, split, label, size", params: DatasetParams, querystring: ListQuery } },
    async (req) => {
      const { id } = req.params as { id: string };
      const q = req.query as Static<typeof ListQuery>;
      const { index } = await indexOf(req.tenant, id);
      const all = index.images.filter((im) => (!q.split || im.split === q.split) && (q.class === undefined || im.label === q.class));
      const limit = q.limit ?? 50;
      const offset = q.offset ?? 0;
      return { items: all.slice(offset, offset + limit).map(view), total: all.length, limit, offset };
    },
  );

  app.get(
    '/v1/datasets/:id/images/:imageId',
    { schema: { tags: ['datasets'], summary: 'One image as uploaded (its original bytes)', params: ImageParams } },
    async (req, reply) => {
      const { id, imageId } = req.params as Static<typeof ImageParams>;
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
      schema: {
        tags: ['datasets'],
        summary: 'One image as a square JPEG thumbnail',
        params: ImageParams,
        querystring: ThumbQuery,
      },
    },
    async (req, reply) => {
      const { id, imageId } = req.params as Static<typeof ImageParams>;
      const { size = 128 } = req.query as Static<typeof ThumbQuery>;
      const image = await imageOf(req.tenant, id, imageId);
      reply.header('cache-control', 'private, max-age=86400, immutable').type('image/jpeg');
      return thumbs.jpeg(image.key, size);
    },
  );
}
