// Datasets: upload (multipart or raw archive body), list, get, delete.
import type { FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { INGEST_ERROR_CODES as INGEST_ERRORS } from '@graft/layout';
import { NoContent, DatasetList, type ErrorCode, DatasetManifestSchema, IdParams, ImportBody, NAME_MAX, UploadQuery } from '@graft/contract';
import type { ApiDeps } from '../deps';
import { ApiError, notFound } from '../errors';
import { spool, storageQuotaExceeded, type DatasetService } from '../datasets/service';
import { detectArchiveFormat } from '../datasets/ingest';
import { checkImportAllowed, packPrefix, parseS3Source } from '../datasets/import';
import { TenantInflight } from '../http/tenant-inflight';

/** What an upload or import may fail with. */
const UPLOAD_ERRORS = [
  'DATASET_NAME_TAKEN',
  'STORAGE_QUOTA_EXCEEDED',
  ...INGEST_ERRORS,
] as const satisfies readonly ErrorCode[];

export const ARCHIVE_TYPES = [
  'application/zip',
  'application/x-zip-compressed',
  'application/x-tar',
  'application/gzip',
  'application/x-gzip',
  'application/x-gtar',
  'application/x-compressed-tar',
  'application/octet-stream',
];

/** The multipart 'name' field, held to the same rules as ?name=. */
function multipartName(value: unknown, truncated: boolean): string {
  const name = String(value);
  if (truncated || name.length > NAME_MAX) {
    throw new ApiError('VALIDATION_FAILED', `name must NOT have more than ${NAME_MAX} characters`, { field: 'name' });
  }
  if (name.length === 0) throw new ApiError('VALIDATION_FAILED', 'name must NOT have fewer than 1 characters', { field: 'name' });
  return name;
}

const datasetRoutes: FastifyPluginAsyncTypebox<{ deps: ApiDeps; datasets: DatasetService }> = async (app, opts) => {
  const { deps, datasets } = opts;
  const limit = deps.config.limits.uploadBytes;

  const ingests = new TenantInflight(deps.config.limits.tenantIngests, 'dataset uploads and imports', 'GRAFT_TENANT_INGESTS').hooks();

  /** The tenant's storage left; refused before the body is read where there is none, or less than it declares. */
  const roomFor = async (req: FastifyRequest): Promise<number> => {
    const { room } = await datasets.usage(req.tenant);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (room <= 0 || (!req.isMultipart() && declared > room)) {
      throw storageQuotaExceeded(deps.config.limits.tenantStorageBytes);
    }
    return room;
  };

  // Archives arrive as streams; the route spools them to disk with its own byte limit.
  app.addContentTypeParser(ARCHIVE_TYPES, { bodyLimit: limit }, (_req, payload, done) => done(null, payload));

  /** The archive spooled to disk, and the name from the query or the multipart 'name' field. */
  const receive = async (req: FastifyRequest, queryName: string | undefined): Promise<{ name?: string; upload: Awaited<ReturnType<typeof spool>> }> => {
    if (!req.isMultipart()) {
      if (!req.body || typeof (req.body as Readable).pipe !== 'function') {
        throw new ApiError(
          'UNSUPPORTED_MEDIA_TYPE',
          `send the archive as multipart/form-data (field 'file') or as a raw body with Content-Type ${ARCHIVE_TYPES.slice(0, 4).join(', ')}`,
        );
      }
      return { name: queryName, upload: await spool(req.body as Readable, limit) };
    }
    let name = queryName;
    let upload: Awaited<ReturnType<typeof spool>> | undefined;
    try {
      for await (const part of req.parts({ limits: { fileSize: limit, files: 1, fields: 10 } })) {
        if (part.type === 'file') {
          if (part.fieldname !== 'file' || upload) {
            part.file.resume();
            throw new ApiError('VALIDATION_FAILED', `unexpected file field '${part.fieldname}': send one archive in field 'file'`);
          }
          upload = await spool(part.file, limit);
        } else if (part.fieldname === 'name') {
          name = multipartName(part.value, part.valueTruncated);
        }
      }
    } catch (err) {
      upload?.cleanup();
      throw err;
    }
    if (!upload) throw new ApiError('VALIDATION_FAILED', "multipart body has no file field 'file'");
    return { name, upload };
  };

  app.post(
    '/v1/datasets',
    {
      ...ingests,
      config: { errors: UPLOAD_ERRORS },
      schema: {
        tags: ['datasets'],
        summary: 'Upload a labelled image set (zip, tar or tar.gz)',
        description:
          "multipart/form-data with a file field 'file' (and optional 'name'), or a raw archive body with Content-Type application/zip, application/x-tar or application/gzip and an optional ?name=. Layout: <class>/<image> or <split>/<class>/<image>.",
        querystring: UploadQuery,
        response: { 201: DatasetManifestSchema },
      },
    },
    async (req, reply) => {
      // A name given in the query is checked before the body is read.
      await datasets.assertNameFree(req.tenant, req.query.name);
      const room = await roomFor(req);
      const { name, upload } = await receive(req, req.query.name);
      try {
        if (upload.bytes === 0) throw new ApiError('INVALID_ARCHIVE', 'the upload is empty');
        const format = detectArchiveFormat(upload.head, req.headers['content-type']);
        if (!format) {
          throw new ApiError('INVALID_ARCHIVE', 'the upload is not a zip, tar or tar.gz archive', {
            contentType: req.headers['content-type'] ?? null,
          });
        }
        const manifest = await datasets.create(req.tenant, name, upload.file, format, room);
        reply.code(201).header('location', `/v1/datasets/${manifest.id}`);
        return manifest;
      } finally {
        upload.cleanup();
      }
    },
  );

  app.post(
    '/v1/datasets/import',
    {
      ...ingests,
      config: { errors: [...UPLOAD_ERRORS, 'IMPORT_NOT_ALLOWED'] },
      schema: {
        tags: ['datasets'],
        summary: 'Import a labelled image set from an S3 prefix among the import sources the operator allows (GRAFT_IMPORT_SOURCES)',
        body: ImportBody,
        response: { 201: DatasetManifestSchema },
      },
    },
    async (req, reply) => {
      const body = req.body;
      const { bucket, prefix } = parseS3Source(body.source);
      checkImportAllowed(req.tenant, { bucket, prefix }, deps.config.importSources);
      if (bucket === deps.config.s3.bucket && (prefix === '' || prefix.startsWith('tenants/'))) {
        // Graft's own tenant data is never a source: a tenant could otherwise read another's images.
        throw new ApiError('VALIDATION_FAILED', `source may not point into Graft's own data (s3://${bucket}/tenants/)`, { field: 'source' });
      }
      const room = await roomFor(req);
      const l = deps.config.limits;
      const packed = await packPrefix(deps.storage, bucket, prefix, { entries: l.archiveEntries, bytes: l.uncompressedBytes, objectBytes: l.entryBytes });
      try {
        const manifest = await datasets.create(req.tenant, body.name ?? (prefix.split('/').filter(Boolean).pop() || bucket), packed.file, 'tar', room);
        reply.code(201).header('location', `/v1/datasets/${manifest.id}`);
        return manifest;
      } finally {
        packed.cleanup();
      }
    },
  );

  app.get('/v1/datasets', { schema: { tags: ['datasets'], summary: 'List datasets, newest first', response: { 200: DatasetList } } }, async (req) => {
    const items = await datasets.list(req.tenant);
    return { items, total: items.length };
  });

  app.get(
    '/v1/datasets/:id',
    { config: { errors: ['DATASET_NOT_FOUND'] }, schema: { tags: ['datasets'], summary: 'A dataset', params: IdParams('ds'), response: { 200: DatasetManifestSchema } } },
    async (req) => {
      const { id } = req.params;
      const ds = await datasets.get(req.tenant, id);
      if (!ds) throw notFound('dataset', id);
      return ds;
    },
  );

  app.delete(
    '/v1/datasets/:id',
    {
      config: { errors: ['DATASET_NOT_FOUND', 'DATASET_IN_USE'] },
      schema: {
        tags: ['datasets'],
        summary: 'Delete a dataset (409 while a queued or running job uses it)',
        params: IdParams('ds'),
        response: { 204: NoContent('deleted') },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const ds = await datasets.get(req.tenant, id);
      if (!ds) throw notFound('dataset', id);
      const jobIds = await deps.queue.jobs.jobsOfDataset(req.tenant, id);
      for (const jid of jobIds) {
        const j = await deps.queue.jobs.get(jid);
        if (j && (j.state === 'queued' || j.state === 'running')) {
          throw new ApiError('DATASET_IN_USE', `dataset '${id}' is used by ${j.state} job '${jid}'; cancel it first`, {
            jobId: jid,
          });
        }
      }
      await datasets.delete(req.tenant, id);
      return reply.code(204).send();
    },
  );
};

export default datasetRoutes;
