// The embedded S3 server's store: s3rver's FilesystemStore, made safe against a stop at any moment. s3rver writes
// an object's files in place: a server stopped in the middle of a PUT leaves the object cut short (an overwrite
// truncates the old one first) or its metadata file empty, and one unreadable metadata file fails every listing
// that covers it, HEAD of the bucket included (s3rver answers it with a listing): storage then looks down to every
// client for good. Here each file of an object is written beside its place and renamed over it once whole, so a
// stop leaves the old object or the new one; a metadata file that does not read (left by an earlier server) is
// removed when met, and the object is served with default metadata.
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const require = createRequire(import.meta.url);

/** What s3rver's FilesystemStore has that this store uses (s3rver ships no types). */
interface FilesystemStoreBase {
  rootDirectory: string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getMetadata(bucket: string, key: string): Promise<Record<string, unknown>>;
  getBucket(bucket: string): Promise<object | null>;
}
interface StoredObject {
  bucket: string;
  key: string;
  metadata: Record<string, string>;
  content: Buffer | Readable;
}

const FilesystemStore = require('s3rver/lib/stores/filesystem.js') as new (root: string) => FilesystemStoreBase;
const S3Object = require('s3rver/lib/models/object.js') as { ALLOWED_METADATA: string[] };

/** Files being written end so; a stop leaves at most such a file, which no listing shows and start removes. */
export const PARTIAL_SUFFIX = '.partial';

/**
 * Writes `file` whole or not at all: `write` fills a file beside it, which is then renamed over it (and removed
 * where anything fails).
 */
async function writeWhole(file: string, write: (partial: string) => Promise<void>): Promise<void> {
  const partial = `${file}.${crypto.randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`;
  try {
    await write(partial);
    await fs.promises.rename(partial, file);
  } catch (err) {
    await fs.promises.rm(partial, { force: true });
    throw err;
  }
}

/** The metadata s3rver keeps of an object: the allowed headers and the user's x-amz-meta-* ones. */
function storedMetadata(metadata: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(metadata).filter(([k]) => S3Object.ALLOWED_METADATA.includes(k) || k.startsWith('x-amz-meta-')),
  );
}

export class CrashSafeStore extends FilesystemStore {
  /** Called with the path of each unreadable metadata file removed. */
  onRepair: (file: string) => void = () => {};

  /**
   * The object is written beside its place; its old checksum is removed before the rename (s3rver computes a
   * missing one from the object), so a stop at any point leaves an object whose ETag is its content's.
   */
  async putObject(object: StoredObject): Promise<{ size: number; md5: string }> {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
    const hash = crypto.createHash('md5');
    let size = 0;
    const content = object.content;
    await writeWhole(objectPath, async (partial) => {
      if (Buffer.isBuffer(content)) {
        hash.update(content);
        size = content.length;
        await fs.promises.writeFile(partial, content);
      } else {
        await pipeline(
          content,
          async function* (chunks: AsyncIterable<Buffer>) {
            for await (const chunk of chunks) {
              hash.update(chunk);
              size += chunk.length;
              yield chunk;
            }
          },
          fs.createWriteStream(partial),
        );
      }
      await fs.promises.rm(this.getResourcePath(object.bucket, object.key, 'object.md5'), { force: true });
    });
    const md5 = hash.digest('hex');
    await this.putMetadata(object.bucket, object.key, object.metadata, md5);
    return { size, md5 };
  }

  async putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5?: string): Promise<void> {
    const put = (resource: string, text: string) => writeWhole(this.getResourcePath(bucket, key, resource), (partial) => fs.promises.writeFile(partial, text));
    if (md5) await put('object.md5', md5);
    await put('metadata.json', JSON.stringify(storedMetadata(metadata), null, 2));
  }

  async getMetadata(bucket: string, key: string): Promise<Record<string, unknown>> {
    try {
      return await super.getMetadata(bucket, key);
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      const file = this.getResourcePath(bucket, key, 'metadata.json');
      await fs.promises.rm(file, { force: true });
      this.onRepair(file);
      return super.getMetadata(bucket, key);
    }
  }

  /** Removes what writes cut short by an earlier stop left (files ending in PARTIAL_SUFFIX); returns how many. */
  removePartials(): number {
    let removed = 0;
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith(PARTIAL_SUFFIX)) {
          fs.rmSync(p, { force: true });
          removed++;
        }
      }
    };
    walk(this.rootDirectory);
    return removed;
  }
}
