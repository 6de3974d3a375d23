// RunResources: what a training run holds, freed however the run ends.
import { describe, expect, it } from 'vitest';
import type { TrainEvent } from '../src/progress';
import { FINE_TUNING_STEP_COST, RunResources } from '../src/train/resources';
import { stepsOnOnnxRuntime } from '../src/train/epochs';

describe('RunResources', () => {
  it('frees what was registered, the last first, past a failure to free one, once', async () => {
    const events: TrainEvent[] = [];
    const res = new RunResources({ preparing: 1, training_head: 3 }, (e) => events.push(e));
    const freed: string[] = [];
    res.own('backbone', (n) => freed.push(n));
    res.own('session', async () => {
      throw new Error('worker already gone');
    });
    res.own('optimizer', (n) => freed.push(n));
    await res.dispose();
    await res.dispose();
    expect(freed).toEqual(['optimizer', 'backbone']);

    // Something created after the run ended is freed at once, and the phase that made it hears so.
    expect(() => res.own('late replica', (n) => freed.push(n), 'replicas')).toThrow(/has ended; replicas was freed/);
    expect(freed).toEqual(['optimizer', 'backbone', 'late replica']);
  });

  it('holds the progress of the run, weighted by the planned work of each phase', () => {
    const events: TrainEvent[] = [];
    const res = new RunResources({ preparing: 1, training_head: 3 }, (e) => events.push(e));
    res.progress.phase('preparing');
    res.progress.update('preparing', 1, {}, true);
    res.progress.phase('training_head');
    res.progress.update('training_head', 0.5, {}, true);
    const progress = events.filter((e): e is Extract<TrainEvent, { type: 'progress' }> => e.type === 'progress').map((e) => e.progress);
    expect(progress).toEqual([0, 0.25, 0.25, 0.625]);
  });
});

describe('the planned cost of a fine-tuning step', () => {
  it("is ONNX Runtime's on the single-threaded backends unless TensorFlow.js is asked for, TensorFlow.js's on a GPU", () => {
    const on = (backend: string, trainEngine?: 'auto' | 'onnxruntime' | 'tfjs') => stepsOnOnnxRuntime({ backend, opts: { trainEngine } as never });
    expect([on('wasm'), on('cpu', 'auto'), on('wasm', 'onnxruntime')]).toEqual([true, true, true]);
    expect([on('wasm', 'tfjs'), on('webgpu'), on('tensorflow')]).toEqual([false, false, false]);
    expect(FINE_TUNING_STEP_COST.onnxruntime).toBeLessThan(FINE_TUNING_STEP_COST.tfjs);
  });
});
