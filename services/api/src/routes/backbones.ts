// Backbones: the pretrained bases a job can use, with their parameter counts and feature shapes.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { BackboneList, BackboneParams, BackboneQuery, BackboneSchema } from '@graft/contract';
import { listBackbones } from '@graft/vision';
import { backboneSource } from '@graft/storage';
import type { ApiDeps } from '../deps';
import { ApiError, notFound } from '../errors';
import { backboneDescriber, findBackbone } from '../backbones';

const backboneRoutes: FastifyPluginAsyncTypebox<{ deps: ApiDeps }> = async (app, opts) => {
  // GRAFT_BACKBONES: a folder, an http(s):// URL base, or an s3:// prefix read with the service's S3 connection.
  const source = backboneSource(opts.deps.config.backbones, opts.deps.storage);
  const describeCached = backboneDescriber(source);

  const describe = async (name: string, inputSize?: number) => {
    try {
      return await describeCached(name, inputSize);
    } catch (err: any) {
      if (err?.code === 'INVALID_INPUT_SIZE') throw new ApiError('VALIDATION_FAILED', err.message, { field: 'inputSize' });
      return null;
    }
  };

  app.get('/v1/backbones', { schema: { tags: ['backbones'], summary: 'Pretrained backbones', response: { 200: BackboneList } } }, async () => {
    const all = await listBackbones(source);
    return Promise.all(
      all.map(async (b) => {
        const d = await describe(b.name);
        return { ...b, params: d?.params ?? null, featureShape: d?.featureShape ?? null };
      }),
    );
  });

  app.get(
    '/v1/backbones/:name',
    {
      config: { errors: ['BACKBONE_NOT_FOUND'] },
      schema: {
        tags: ['backbones'],
        summary: 'One backbone built at an input size: parameters and feature shape',
        params: BackboneParams,
        querystring: BackboneQuery,
        response: { 200: BackboneSchema },
      },
    },
    async (req) => {
      const { name } = req.params;
      const { inputSize } = req.query;
      if (!findBackbone(name)) throw notFound('backbone', name);
      const listing = (await listBackbones(source)).find((b) => b.name === name)!;
      const d = await describeCached(name, inputSize).catch((err: any) => {
        if (err?.code === 'INVALID_INPUT_SIZE') throw new ApiError('VALIDATION_FAILED', err.message, { field: 'inputSize' });
        throw new ApiError('BACKBONE_NOT_FOUND', `backbone '${name}' cannot be built: ${err.message}`);
      });
      return { ...listing, inputSize: d.inputSize, params: d.params, featureShape: d.featureShape };
    },
  );
};

export default backboneRoutes;
