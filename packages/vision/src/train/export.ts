// Phase "export": the trained classifier as one TensorFlow.js layers model (the backbone with the head on top,
// or the scratch convnet) with its graft.json manifest, and the out-of-distribution feature bank where there is one.
import * as tf from '@tensorflow/tfjs';
import { exportClassifier, makeManifest, type GraftManifest } from '../export';
import type { OodStats } from './ood';
import type { Plan } from './plan';
import type { RunResources } from './resources';
import type { Network } from './transfer';
import type { TrainContext } from './types';

export async function exportModel(
  ctx: TrainContext,
  p: Plan,
  res: RunResources,
  trained: Network,
  calibration: GraftManifest['calibration'],
  ood: OodStats | null,
): Promise<{ graft: GraftManifest; artifacts: Record<string, Uint8Array> }> {
  res.progress.phase('exporting');
  const classifier =
    'transfer' in trained
      ? tf.model({ inputs: trained.transfer.backbone.inputs, outputs: trained.transfer.head.applySymbolic(trained.transfer.backbone.outputs[0]!), name: 'graft_classifier' })
      : trained.model;
  const graft = makeManifest({
    labels: ctx.labels,
    inputSize: p.size,
    backbone: p.backboneName,
    method: p.method,
    preprocessing: p.preprocessing,
    outputActivation: ctx.kind === 'binary' ? 'sigmoid' : 'softmax',
    calibration,
    outOfDistribution: ood?.manifest ?? null,
  });
  const artifacts = await exportClassifier(classifier, graft);
  if (ood) artifacts[ood.manifest.bankFile] = ood.bank;
  res.progress.update('exporting', 1, {}, true);
  return { graft, artifacts };
}
