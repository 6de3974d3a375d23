// The one stored format of a checkpoint: weight files under a fresh number, then its meta in one of two slots.
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Checkpoints, checkpointWeights, makeCheckpoint, type Checkpoint } from '../src/checkpoint';
import { newPhaseState } from '../src/fit';
import { memoryCheckpointStore } from './fixtures';

function checkpointAt(epoch: number, variables: tf.LayerVariable[], withBest: boolean): Checkpoint {
  const state = { ...newPhaseState(), epoch, bestEpoch: 1, bestValLoss: 0.5, best: withBest ? variables.map((v) => new Float32Array(v.shape.reduce((a: number, b) => a * (b ?? 1), 1)).fill(-epoch)) : null };
  const current = variables.map((v) => new Float32Array(v.shape.reduce((a: number, b) => a * (b ?? 1), 1)).fill(epoch));
  return makeCheckpoint({ method: 'feature_extraction', backbone: 'b', inputSize: 32, labels: ['a', 'b'], phase: 'training_head', state, history: [], variables, current });
}

describe('stored checkpoints', () => {
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [2], name: 'd' })] });
  const variables = model.trainableWeights;

  it('come back as they were saved; the newest is loaded and only the two newest are kept', async () => {
    const { store, files } = memoryCheckpointStore();
    expect(await new Checkpoints(store).load()).toBeNull();
    const writer = new Checkpoints(store);
    for (const epoch of [1, 2, 3]) await writer.save(checkpointAt(epoch, variables, epoch > 1));
    expect([...files.keys()].sort()).toEqual(['1/best.bin', '1/weights.bin', '2/best.bin', '2/weights.bin', 'slot-0.json', 'slot-1.json']);
    const back = (await new Checkpoints(store).load())!;
    expect(back.meta.epoch).toBe(3);
    const { current, best } = checkpointWeights(back, variables);
    expect(Array.from(current[0]!)).toEqual([3, 3, 3, 3, 3, 3]);
    expect(Array.from(best![1]!)).toEqual([-3, -3, -3]);
  });

  it('a save that stops half way leaves the checkpoint before it whole', async () => {
    const { store } = memoryCheckpointStore();
    await new Checkpoints(store).save(checkpointAt(1, variables, true));
    let writes = 0;
    const failing = { ...store, write: async (name: string, bytes: Uint8Array) => (++writes === 2 ? Promise.reject(new Error('connection lost')) : store.write(name, bytes)) };
    const writer = new Checkpoints(failing);
    await writer.load();
    await expect(writer.save(checkpointAt(2, variables, true))).rejects.toThrow(/connection lost/);
    const back = (await new Checkpoints(store).load())!;
    expect(back.meta.epoch).toBe(1);
    expect(Array.from(checkpointWeights(back, variables).current[0]!)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('a meta or a file cut short costs only its own checkpoint, and the next save never goes over the one loaded', async () => {
    const { store, files } = memoryCheckpointStore();
    const warnings: string[] = [];
    const log = { warn: (_: object, msg: string) => void warnings.push(msg) };
    const writer = new Checkpoints(store, log);
    for (const epoch of [1, 2, 3]) await writer.save(checkpointAt(epoch, variables, false));
    // Checkpoint 3 (number 2, slot 0): its weights cut short.
    files.set('2/weights.bin', files.get('2/weights.bin')!.subarray(0, 10));
    const reader = new Checkpoints(store, log);
    expect((await reader.load())?.meta.epoch).toBe(2);
    expect(warnings.at(-1)).toMatch(/cut short/);
    await reader.save(checkpointAt(3, variables, false));
    expect((await new Checkpoints(store, log).load())?.meta.epoch).toBe(3);
    // Its meta cut short: the one before is whole.
    files.set('slot-0.json', files.get('slot-0.json')!.subarray(0, 40));
    expect((await new Checkpoints(store, log).load())?.meta.epoch).toBe(2);
    expect(warnings.at(-1)).toMatch(/meta cannot be read/);
  });

  it('are all removed by drop, the metas first', async () => {
    const { store, files } = memoryCheckpointStore();
    const removed: string[] = [];
    const c = new Checkpoints({ ...store, removeFolder: async (f) => void (removed.push(f), await store.removeFolder(f)) });
    for (const epoch of [1, 2]) await c.save(checkpointAt(epoch, variables, false));
    await c.drop();
    expect(removed).toEqual(['slot-', '']);
    expect(files.size).toBe(0);
    expect(await new Checkpoints(store).load()).toBeNull();
  });
});
