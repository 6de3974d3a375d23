// The one stored format of a checkpoint: weight files in a folder per epoch, then checkpoint.json naming it.
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { checkpointWeights, loadCheckpoint, makeCheckpoint, saveCheckpoint, type Checkpoint } from '../src/checkpoint';
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

  it('come back as they were saved; a newer one replaces the older and its files', async () => {
    const { store, files } = memoryCheckpointStore();
    expect(await loadCheckpoint(store)).toBeNull();
    await saveCheckpoint(store, checkpointAt(1, variables, false));
    await saveCheckpoint(store, checkpointAt(2, variables, true));
    expect([...files.keys()].sort()).toEqual(['checkpoint.json', 'training_head-2/best.bin', 'training_head-2/weights.bin']);
    const back = (await loadCheckpoint(store))!;
    expect(back.meta.epoch).toBe(2);
    const { current, best } = checkpointWeights(back, variables);
    expect(Array.from(current[0]!)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(Array.from(best![1]!)).toEqual([-2, -2, -2]);
  });

  it('a save that stops half way leaves the checkpoint before it whole', async () => {
    const { store, files } = memoryCheckpointStore();
    await saveCheckpoint(store, checkpointAt(1, variables, true));
    let writes = 0;
    const failing = { ...store, write: async (name: string, bytes: Uint8Array) => (++writes === 2 ? Promise.reject(new Error('connection lost')) : store.write(name, bytes)) };
    await expect(saveCheckpoint(failing, checkpointAt(2, variables, true))).rejects.toThrow(/connection lost/);
    expect(files.has('training_head-2/weights.bin')).toBe(true);
    const back = (await loadCheckpoint(store))!;
    expect(back.meta.epoch).toBe(1);
    expect(Array.from(checkpointWeights(back, variables).current[0]!)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('a checkpoint.json whose weight files are missing is refused, naming what is missing', async () => {
    const { store, files } = memoryCheckpointStore();
    await saveCheckpoint(store, checkpointAt(3, variables, false));
    files.delete('training_head-3/weights.bin');
    await expect(loadCheckpoint(store)).rejects.toThrow(/training_head-3\/ has no weights.bin/);
  });
});
