// The backbone registry as the API sees it (packages/vision owns it).
import { backboneNames, getBackboneSpec, describeBackbone, type BackboneDescription } from '@graft/vision';

export function findBackbone(name: string): { name: string; inputSize: number; minInputSize?: number } | null {
  return backboneNames().includes(name) ? getBackboneSpec(name) : null;
}

const described = new Map<string, Promise<BackboneDescription>>();

/** Parameter count and feature shape at an input size; built once per (name, size) and remembered. */
export function describeCached(name: string, source: string, inputSize?: number): Promise<BackboneDescription> {
  const key = `${name}@${inputSize ?? 'default'}`;
  let p = described.get(key);
  if (!p) {
    p = describeBackbone(name, source, inputSize);
    p.catch(() => described.delete(key));
    described.set(key, p);
  }
  return p;
}
