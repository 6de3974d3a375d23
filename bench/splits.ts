// The images of a `<split>/<class>/*` folder as the vision package's ImageRefs (keys are file paths).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageRef } from '@graft/vision';

/** The class names of a dataset folder: the sub-folders of its train split, sorted. */
export function classLabels(dataset: string): string[] {
  return readdirSync(join(dataset, 'train')).sort();
}

/** Every file of a split folder, class by class in `labels` order, sorted by name. */
export function listSplit(dir: string, labels: string[]): ImageRef[] {
  const refs: ImageRef[] = [];
  labels.forEach((label, i) => {
    for (const f of readdirSync(join(dir, label)).sort()) refs.push({ key: join(dir, label, f), label: i });
  });
  return refs;
}
