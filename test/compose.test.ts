// The compose file is validated against the Compose schema (dclint, offline) and checked for what
// production needs: Redis persistence without eviction, a GPU reservation for the worker, images built here.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import YAML from 'yaml';

const root = path.resolve(import.meta.dirname, '..');
const dclint = path.join(path.dirname(createRequire(import.meta.url).resolve('dclint/package.json')), 'bin/dclint.cjs');
const lint = (file: string) => spawnSync(process.execPath, [dclint, '-q', '-f', 'json', file], { encoding: 'utf8' });

describe('docker-compose.yml', () => {
  it('passes the Compose schema and lint rules', () => {
    const r = lint(path.join(root, 'docker-compose.yml'));
    expect(r.stdout + r.stderr).not.toMatch(/"severity":\s*2|error/i);
    expect(r.status).toBe(0);
  });

  it('fails the validator when the schema is broken (the check can fail)', () => {
    const bad = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'compose-')), 'docker-compose.yml');
    fs.writeFileSync(bad, 'services:\n  api:\n    image: graft\n    restart_policy: always\n');
    const r = lint(bad);
    expect(r.status).not.toBe(0);
  });

  it('configures redis persistence, an S3 server, the api and a GPU worker', () => {
    const doc = YAML.parse(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'));
    const redisCmd = doc.services.redis.command.join(' ');
    expect(redisCmd).toContain('--appendonly yes');
    expect(redisCmd).toContain('--maxmemory-policy noeviction');
    expect(doc.services.s3).toBeDefined();
    expect(doc.services.api.build.dockerfile).toBe('docker/api.Dockerfile');
    const worker = doc.services.worker;
    expect(worker.build.dockerfile).toBe('docker/worker-gpu.Dockerfile');
    expect(worker.deploy.resources.reservations.devices[0].capabilities).toEqual(expect.arrayContaining(['gpu', 'graphics']));
    expect(worker.environment.NVIDIA_DRIVER_CAPABILITIES.split(',')).toEqual(expect.arrayContaining(['compute', 'utility', 'graphics']));
    for (const f of [doc.services.api.build.dockerfile, worker.build.dockerfile, doc.services['worker-cpu'].build.dockerfile]) {
      expect(fs.existsSync(path.join(root, f)), f).toBe(true);
    }
    const gpu = fs.readFileSync(path.join(root, 'docker/worker-gpu.Dockerfile'), 'utf8');
    expect(gpu).toMatch(/tfjs-node-gpu/);
    // The WebGPU backend's packages are checked at build time: an image without them would fall back to the CPU.
    expect(gpu).toMatch(/'webgpu', '@tensorflow\/tfjs-backend-webgpu'.*require\.resolve/);
    // The image asks for no backend by name, so the chooser can fall back to WebGPU, which needs Vulkan and the
    // driver's graphics capability.
    expect(gpu).not.toMatch(/^ENV GRAFT_TF_BACKEND/m);
    expect(gpu).toMatch(/libvulkan1/);
    expect(gpu).toMatch(/NVIDIA_DRIVER_CAPABILITIES=.*graphics/);
  });
});
