import { describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';

describe('initBackend', () => {
  it('skips the absent native packages, starts wasm with its training kernels, and is idempotent', async () => {
    const logs: { obj: any; msg: string }[] = [];
    const name = await initBackend({ log: (obj, msg) => logs.push({ obj, msg }) });
    expect(name).toBe(tf.getBackend());
    // tfjs-node(-gpu) are optional and not installed here; where they are, they win.
    const chosen = logs.find((l) => l.msg.startsWith('TensorFlow.js backend'))!;
    if (name === 'wasm') {
      expect(Object.keys(chosen.obj.skipped)).toEqual(['tensorflow-gpu', 'webgpu', 'tensorflow']);
      expect(chosen.obj.skipped.tensorflow).toMatch(/tfjs-node/);
      // the training kernels the wasm backend lacks are registered
      expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    }
    const again = await initBackend({ log: (obj, msg) => logs.push({ obj, msg }) });
    expect(again).toBe(name);
    expect(logs.filter((l) => l.msg.startsWith('TensorFlow.js backend'))).toHaveLength(1);
  });
});

describe('the WebGPU backend', () => {
  it('is tried after tfjs-node-gpu and skipped with its reason where there is no adapter', async () => {
    const logs: { obj: any; msg: string }[] = [];
    const name = await initBackend({ log: (obj, msg) => logs.push({ obj, msg }) });
    if (name === 'webgpu') return; // a machine with a GPU adapter: nothing was skipped for WebGPU
    const chosen = logs.find((l) => l.msg.startsWith('TensorFlow.js backend'));
    // initBackend may have been called by the test above: the first call's log is the one with the reasons.
    const skipped = (chosen?.obj.skipped ?? (await freshSkipped())) as Record<string, string>;
    expect(Object.keys(skipped).slice(0, 2)).toEqual(['tensorflow-gpu', 'webgpu']);
    expect(skipped.webgpu).toMatch(/no Vulkan loader|no Vulkan driver|no WebGPU adapter|software renderer/);
  });

  it('answers BACKEND_UNAVAILABLE naming why when it is asked for and cannot start', async () => {
    vi.resetModules();
    const fresh = await import('../src/backend');
    const tfNow = await import('@tensorflow/tfjs');
    const before = tfNow.getBackend();
    const logs: string[] = [];
    const err = await fresh.initBackend({ prefer: 'webgpu', log: (_o, msg) => logs.push(msg) }).catch((e: unknown) => e);
    if (typeof err === 'string') {
      // It started: this machine has a GPU adapter, or a software one (lavapipe) that is used only when asked for,
      // as the test above shows, and said so; Graft's weight-gradient kernels are registered.
      const auto = await freshSkipped();
      if (auto.webgpu) expect(logs).toContain('WebGPU adapter is a software renderer: it runs on the CPU (requested)');
      expect(logs.some((m) => /registered webgpu training kernels/.test(m))).toBe(true);
      return;
    }
    expect(err).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    expect((err as Error).message).toMatch(/'webgpu' cannot be used: (no Vulkan loader|no WebGPU adapter|the WebGPU adapter is a software renderer)/);
    // the backend in use is left as it was
    expect(tfNow.getBackend()).toBe(before);
  });
});

async function freshSkipped(): Promise<Record<string, string>> {
  vi.resetModules();
  const fresh = await import('../src/backend');
  const logs: { obj: any; msg: string }[] = [];
  await fresh.initBackend({ log: (obj, msg) => logs.push({ obj, msg }) });
  return logs.find((l) => l.msg.startsWith('TensorFlow.js backend'))!.obj.skipped;
}
