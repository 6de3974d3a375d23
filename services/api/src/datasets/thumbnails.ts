// Square JPEG thumbnails of stored dataset images, cached by key and size: images are stored under their content
// hash, so a thumbnail never changes. Shared by the dashboard's previews and the per-image thumbnail route.
import sharp from 'sharp';
import type { Storage } from '@graft/storage';

/** A small least-recently-used cache. */
export class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

export class Thumbnails {
  private readonly cache = new Lru<Buffer>(2048);
  constructor(private readonly storage: Storage) {}

  /** The image at `key` turned upright, cut to a `size` px square (cover), on white, as JPEG. */
  async jpeg(key: string, size: number): Promise<Buffer> {
    const k = `${key}@${size}`;
    const hit = this.cache.get(k);
    if (hit) return hit;
    const jpeg = await sharp(await this.storage.getBuffer(key))
      .rotate()
      .resize(size, size, { fit: 'cover' })
      .flatten({ background: '#ffffff' })
      .jpeg({ quality: 78 })
      .toBuffer();
    this.cache.set(k, jpeg);
    return jpeg;
  }

  async dataUrl(key: string, size: number): Promise<string> {
    return `data:image/jpeg;base64,${(await this.jpeg(key, size)).toString('base64')}`;
  }
}
