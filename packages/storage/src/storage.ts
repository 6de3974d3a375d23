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
import { throughOutage, type OutagePolicy } from './outage';

export interface S3Settings {
  endpoint: string | null;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
  /** How long a request's connection may stay silent before it fails as a timeout (default 60 s). */
  socketTimeoutMs?: number;
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
    // A server that does not take the connection, or takes it and then says nothing, is an outage (a timeout)
    // within seconds, not a request that waits forever: a hung read would otherwise hold, for instance, a model's
    // load in the API's model cache, and every /predict of that model would wait on it.
    requestHandler: { connectionTimeout: 5_000, socketTimeout: s.socketTimeoutMs ?? 60_000 },
  });
}

export type Body = Uint8Array | Buffer | string | Readable;

export class Storage {
  readonly client: S3Client;
  readonly bucket: string;
  /** How operations wait through an outage; null: they fail at once (request paths answer 503 instead). */
  private readonly patience: OutagePolicy | null = null;

  constructor(settings: S3Settings, client?: S3Client) {
    this.client = client ?? createS3Client(settings);
    this.bucket = settings.bucket;
  }

  /** The same connection on another bucket (for reading a user's import source). */
  forBucket(bucket: string): Storage {
    return this.derive({ bucket });
  }

  /**
   * The same connection and bucket, with every operation waiting through an outage of the storage server as the
   * policy says (for background work such as training; see outage.ts). Streamed uploads are not repeated.
   */
  withPatience(policy: Omit<OutagePolicy, 'dependency'>): Storage {
    return this.derive({ patience: { ...policy, dependency: 'storage' } });
  }

  private derive(fields: Partial<Pick<Storage, 'bucket'>> & { patience?: OutagePolicy | null }): Storage {
    const s = Object.create(Storage.prototype) as Storage;
    Object.assign(s, { client: this.client, bucket: this.bucket, patience: this.patience }, fields);
    return s;
  }

  /** Runs one repeatable S3 operation, through outages where this Storage has patience. */
  private run<T>(op: () => Promise<T>): Promise<T> {
    return this.patience ? throughOutage(op, this.patience) : op();
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
      await this.run(() =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType })),
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

  /**
   * Writes an object and reads it back, writing it again where what comes back differs: an object is only taken
   * as written once it can be read whole (a server that stops just after answering a PUT may not have kept it).
   */
  async putVerified(key: string, body: Uint8Array | string, contentType = 'application/octet-stream'): Promise<void> {
    const expected = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    for (let tries = 1; ; tries++) {
      await this.put(key, body, contentType);
      const back = await this.getBuffer(key).catch((err) => {
        if (err instanceof ObjectNotFoundError) return null;
        throw err;
      });
      if (back && back.equals(expected)) return;
      if (tries >= 3) {
        throw new Error(`${key} does not read back as written (${back ? `${back.length} of ${expected.length} bytes, different` : 'missing'})`);
      }
    }
  }

  async getStream(key: string): Promise<{ body: Readable; contentType?: string; contentLength?: number }> {
    try {
      const r = await this.run(() => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })));
      return { body: r.Body as Readable, contentType: r.ContentType, contentLength: r.ContentLength };
    } catch (err) {
      throw this.notFound(err, key);
    }
  }

  async getBuffer(key: string): Promise<Buffer> {
    try {
      return await this.run(async () => {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
        return Buffer.from(await r.Body!.transformToByteArray());
      });
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
      await this.run(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })));
      return true;
    } catch (err: any) {
      if (err?.$metadata?.httpStatusCode === 404 || err?.name === 'NotFound') return false;
      throw err;
    }
  }

  async *listObjects(prefix: string, delimiter?: string): AsyncGenerator<{ key: string; size: number }> {
    let token: string | undefined;
    do {
      const r = await this.run(() =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, Delimiter: delimiter })),
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
      const r = await this.run(() =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token })),
      );
      for (const p of r.CommonPrefixes ?? []) out.push(p.Prefix!);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const chunk = keys.slice(i, i + 1000);
      await this.run(() =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } })),
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
