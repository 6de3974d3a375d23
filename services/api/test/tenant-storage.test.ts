// The per-tenant storage quota on datasets, against a real S3: a dataset that does not fit is removed again and
// refused, a tenant with no room left is refused before its upload is read, other tenants are unaffected.
import { describe, expect, it } from 'vitest';
import { keys } from '@graft/storage';
import { buildApp } from '../src/app';
import { createDeps } from '../src/deps';
import { testConfig } from '../../../test/support/services';
import { patternDataset, zipOf } from '../../../test/support/images';

const A = 'storage-key-a-0123456789';
const B = 'storage-key-b-0123456789';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

describe('tenant storage quota', () => {
  it('refuses the dataset that would go over, leaves nothing of it, and refuses a full tenant up front', async () => {
    const small = await zipOf(await patternDataset({ train: 3 }, 1));
    // Room for one dataset of this size, not two.
    const probe = createDeps(testConfig());
    await probe.storage.ensureBucket();
    const probeApp = await buildApp(probe);
    const one = (await probeApp.inject({ method: 'POST', url: '/v1/datasets', headers: { 'content-type': 'application/zip' }, payload: small })).json().bytes as number;
    await probeApp.close();
    await probe.close();

    const deps = createDeps(testConfig({ GRAFT_API_KEYS: `alpha:${A},beta:${B}`, GRAFT_MAX_TENANT_STORAGE_BYTES: String(Math.round(one * 1.5)) }));
    await deps.storage.ensureBucket();
    const app = await buildApp(deps);
    const upload = (key: string) =>
      app.inject({ method: 'POST', url: '/v1/datasets', headers: { ...auth(key), 'content-type': 'application/zip' }, payload: small });
    try {
      expect((await upload(A)).statusCode).toBe(201);
      const over = await upload(A);
      expect(over.statusCode).toBe(413);
      expect(over.json().error.code).toBe('STORAGE_QUOTA_EXCEEDED');
      expect((await app.inject({ url: '/v1/datasets', headers: auth(A) })).json().total).toBe(1);
      const objects: string[] = [];
      for await (const o of deps.storage.listObjects(keys.datasets('alpha'))) objects.push(o.key);
      expect(new Set(objects.map((k) => k.split('/')[3])).size).toBe(1);

      expect((await upload(B)).statusCode).toBe(201);

      // Full: refused by its declared size, before the body is read.
      const full = await app.inject({
        method: 'POST', url: '/v1/datasets', headers: { ...auth(A), 'content-type': 'application/zip', 'content-length': String(one) }, payload: Buffer.alloc(one),
      });
      expect(full.statusCode).toBe(413);
      expect(full.json().error.code).toBe('STORAGE_QUOTA_EXCEEDED');
    } finally {
      await app.close();
      await deps.close();
    }
  });
});
