// The only code that talks S3. Streams in and out; never buffers a large object unless asked to.
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  NoSuchKey,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Readable } from 'node:stream';

export interface S3Settings {
  endpoint: string | null;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
}

export class ObjectNotFoundError extends Error {
  constructor(public readonly key: string) {
    super(`object not found: ${key}`);
    this.name = 'ObjectNotFoundError';
  }
}

export function createS3Client(s: S3Settings): S3Client {
  // Graft runs on Node 20 with an AWS SDK version pinned by the lockfile; its notice about later SDK
  // versions needing Node 22 would otherwise be printed by every process.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    region: s.region,
    endpoint: s.endpoint ?? undefined,
    forcePathStyle: s.forcePathStyle,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
    // Plain PUT bodies: some S3-compatible servers store aws-chunked framing verbatim otherwise.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 4,
  });
}

export type Body = Uint8Array | Buffer | string | Readable;

export class Storage {
  readonly client: S3Client;
  readonly bucket: string;

  constructor(settings: S3Settings, client?: S3Client) {
    this.client = client ?? createS3Client(settings);
    this.bucket = settings.bucket;
  }

  /** The same connection on another bucket (for reading a user's import source). */
  forBucket(bucket: string): Storage {
    const s = Object.create(Storage.prototype) as Storage;
    Object.assign(s, { client: this.client, bucket });
    return s;
  }

  /** Creates the bucket where it does not exist. */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch {
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
      } catch (err: any) {
        if (!/BucketAlready(Exists|OwnedByYou)/.test(err?.name ?? '')) throw err;
      }
    }
  }

  /** Answers when the bucket can be reached (for /readyz). */
  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  async put(key: string, body: Body, contentType = 'application/octet-stream'): Promise<void> {
    if (typeof body === 'string' || body instanceof Uint8Array) {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
      );
      return;
    }
    // Streams of unknown length go up in parts; memory stays bounded by the part size.
    await new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body, ContentType: contentType },
      queueSize: 2,
      partSize: 8 * 1024 * 1024,
    }).done();
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.put(key, JSON.stringify(value), 'application/json');
  }

  async getStream(key: string): Promise<{ body: Readable; contentType?: string; contentLength?: number }> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return { body: r.Body as Readable, contentType: r.ContentType, contentLength: r.ContentLength };
    } catch (err) {
      throw this.notFound(err, key);
    }
  }

  async getBuffer(key: string): Promise<Buffer> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (err) {
      throw this.notFound(err, key);
    }
  }

  async getJson<T>(key: string): Promise<T> {
    return JSON.parse((await this.getBuffer(key)).toString('utf8')) as T;
  }

  /** The parsed object, or null where it does not exist. */
  async getJsonOrNull<T>(key: string): Promise<T | null> {
    try {
      return await this.getJson<T>(key);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return null;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err: any) {
      if (err?.$metadata?.httpStatusCode === 404 || err?.name === 'NotFound') return false;
      throw err;
    }
  }

  async *listObjects(prefix: string, delimiter?: string): AsyncGenerator<{ key: string; size: number }> {
    let token: string | undefined;
    do {
      const r = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, Delimiter: delimiter }),
      );
      for (const o of r.Contents ?? []) yield { key: o.Key!, size: o.Size ?? 0 };
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  /** Immediate "sub-folders" of a prefix (keys up to the next '/'). */
  async listPrefixes(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }),
      );
      for (const p of r.CommonPrefixes ?? []) out.push(p.Prefix!);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const chunk = keys.slice(i, i + 1000);
      await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true },
        }),
      );
    }
  }

  /** Deletes every object under a prefix; returns how many. */
  async deletePrefix(prefix: string): Promise<number> {
    const all: string[] = [];
    for await (const o of this.listObjects(prefix)) all.push(o.key);
    await this.deleteKeys(all);
    return all.length;
  }

  /** Copies every object under one prefix to another (used to publish staged artifacts). */
  async copyPrefix(from: string, to: string): Promise<void> {
    for await (const o of this.listObjects(from)) {
      await this.put(to + o.key.slice(from.length), await this.getBuffer(o.key));
    }
  }

  close(): void {
    this.client.destroy();
  }

  private notFound(err: unknown, key: string): unknown {
    const e = err as any;
    if (e instanceof NoSuchKey || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404) {
      return new ObjectNotFoundError(key);
    }
    return err;
  }
}
