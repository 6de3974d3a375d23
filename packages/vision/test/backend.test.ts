import { describe, expect, it } from 'vitest';
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
      expect(Object.keys(chosen.obj.skipped)).toEqual(['tensorflow-gpu', 'tensorflow']);
      expect(chosen.obj.skipped.tensorflow).toMatch(/tfjs-node/);
      // the training kernels the wasm backend lacks are registered
      expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    }
    const again = await initBackend({ log: (obj, msg) => logs.push({ obj, msg }) });
    expect(again).toBe(name);
    expect(logs.filter((l) => l.msg.startsWith('TensorFlow.js backend'))).toHaveLength(1);
  });
});
