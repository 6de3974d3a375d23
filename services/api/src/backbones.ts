// The backbone registry as the API sees it (packages/vision owns it).
import { backboneNames, getBackboneSpec, describeBackbone, type BackboneDescription, type BackboneSource } from '@graft/vision';

export function findBackbone(name: string): { name: string; inputSize: number; minInputSize?: number } | null {
  return backboneNames().includes(name) ? getBackboneSpec(name) : null;
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
