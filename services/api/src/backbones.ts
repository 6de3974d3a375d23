// The backbone registry as the API sees it (packages/vision owns it).
import { backboneNames, getBackboneSpec, describeBackbone, SCRATCH_INPUT_SIZE, type BackboneDescription, type BackboneSource } from '@graft/vision';
import type { TrainingConfig } from '@graft/vision/config';

export function findBackbone(name: string): { name: string; inputSize: number; trainingInputSize?: number; minInputSize?: number } | null {
  return backboneNames().includes(name) ? getBackboneSpec(name) : null;
}

/** The input size a job trains at: the config's, else the backbone's training size, else the scratch network's. */
export function jobInputSize(config: Pick<TrainingConfig, 'method' | 'backbone' | 'inputSize'>): number {
  if (config.inputSize !== null) return config.inputSize;
  if (config.method === 'scratch') return SCRATCH_INPUT_SIZE;
  const bb = findBackbone(config.backbone);
  return bb ? (bb.trainingInputSize ?? bb.inputSize) : SCRATCH_INPUT_SIZE;
}

/**
 * Parameter count and feature shape of the backbones at source, at an input size: each (name, size) built once
 * and remembered (a failure is not, so weights added to the source later are found).
 */
export function backboneDescriber(source: BackboneSource): (name: string, inputSize?: number) => Promise<BackboneDescription> {
  const described = new Map<string, Promise<BackboneDescription>>();
  return (name, inputSize) => {
    const key = `${name}@${inputSize ?? 'default'}`;
    let p = described.get(key);
    if (!p) {
      p = describeBackbone(name, source, inputSize);
      p.catch(() => described.delete(key));
      described.set(key, p);
    }
    return p;
  };
}
