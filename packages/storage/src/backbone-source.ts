// Backbone weights kept in object storage (GRAFT_BACKBONES=s3://bucket/prefix): the files of the prefix
// (`<name>/model.json` and its shards, `<name>.h5`, ...) as a source that @graft/vision reads through code,
// so that package needs no S3 client.
import { ObjectNotFoundError, type Storage } from './storage';
import { parseS3Url } from './s3-url';

/** Files of a backbone source by path relative to it; the shape @graft/vision takes as a BackboneSource. */
export interface BackboneObjectFiles {
  /** The bytes of a file; rejects with ObjectNotFoundError, naming its s3:// URL, where it is not there. */
  read(path: string): Promise<Uint8Array>;
  /** Whether a file is there (a HEAD request, nothing downloaded). */
  exists(path: string): Promise<boolean>;
  /** The s3:// URL of a path of the source. */
  describe(path: string): string;
}

/** The backbone files under an `s3://bucket/prefix` URL, read with the service's S3 connection. */
export function s3BackboneFiles(url: string, storage: Storage): BackboneObjectFiles {
  const location = parseS3Url(url);
  if (!location) throw new Error(`backbone source must look like s3://bucket/prefix (got ${JSON.stringify(url)})`);
  const { bucket, prefix } = location;
  const objects = storage.forBucket(bucket);
  const urlOf = (path: string) => `s3://${bucket}/${prefix}${path}`;
  return {
    async read(path) {
      try {
        return await objects.getBuffer(prefix + path);
      } catch (err) {
        if (err instanceof ObjectNotFoundError) {
          const missing = new ObjectNotFoundError(prefix + path);
          missing.message = `${urlOf(path)} is not there`;
          throw missing;
        }
        throw new Error(`cannot read ${urlOf(path)}: ${(err as Error).message}`, { cause: err });
      }
    },
    exists: (path) => objects.exists(prefix + path),
    describe: urlOf,
  };
}

/**
 * The backbone source a configured GRAFT_BACKBONES value stands for: the files of an s3:// prefix, read with
 * storage's connection; any other value (a folder, a file:// or http(s):// URL) as it is.
 */
export function backboneSource(value: string, storage: Storage): string | BackboneObjectFiles {
  return value.startsWith('s3://') ? s3BackboneFiles(value, storage) : value;
}
