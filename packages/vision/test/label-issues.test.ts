import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { classThresholds, confidentClass, confidentJoint, rankLabelIssues } from '../src/label-issues';
import { assignFolds, crossValidate } from '../src/cross-validate';
import { createRng } from '../src/random';

describe('rankLabelIssues', () => {
  it('uses per-class thresholds: the mean self-confidence of each class', () => {
    const probs = [
      [0.9, 0.1],
      [0.7, 0.3],
      [0.4, 0.6],
      [0.2, 0.8],
    ];
    expect(classThresholds(probs, [0, 0, 1, 1], 2)).toEqual([0.8, 0.7]);
    // A class no image is given cannot be confidently any image's class.
    expect(classThresholds(probs, [0, 0, 0, 0], 2)[1]).toBe(Infinity);
    expect(confidentClass([0.85, 0.15], [0.8, 0.7])).toBe(0);
    expect(confidentClass([0.75, 0.25], [0.8, 0.7])).toBeNull();
  });

  it('flags images confidently of another class than their label, most suspicious first', () => {
    // Class 0 is easy (images labelled 0 average 0.9 on it), class 1 hard (0.5): a global cut at 0.5 would flag
    // the last image of class 0 too, the per-class threshold does not.
    const probs = [
      [0.95, 0.05],
      [0.95, 0.05],
      [0.95, 0.05],
      [0.75, 0.25], // labelled 0, below class 0's threshold, not above class 1's: not flagged
      [0.5, 0.5],
      [0.5, 0.5],
      [0.4, 0.6],
      [0.97, 0.03], // labelled 1, confidently 0: the most suspicious
      [0.92, 0.08], // labelled 1, confidently 0
      [0.3, 0.7],
    ];
    const labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
    const t = classThresholds(probs, labels, 2);
    expect(t[0]).toBeCloseTo(0.9, 6);
    expect(t[1]).toBeCloseTo((0.5 + 0.5 + 0.6 + 0.03 + 0.08 + 0.7) / 6, 6);
    const issues = rankLabelIssues(probs, labels, 2);
    expect(issues.map((i) => i.index)).toEqual([7, 8]);
    expect(issues.every((i) => i.label === 1 && i.suggested === 0)).toBe(true);
    expect(issues[0]!.score).toBeCloseTo((0.97 - 0.03 + 1) / 2, 6);
    expect(issues[0]!.score).toBeGreaterThan(issues[1]!.score);
  });

  it('takes as many images per pair of labels as the confident joint counts, suggesting their confident class', () => {
    const probs = [
      [0.8, 0.1, 0.1],
      [0.1, 0.8, 0.1],
      [0.1, 0.1, 0.8],
      [0.1, 0.5, 0.4], // labelled 0: class 1 is more probable, but only class 2 passes its threshold
      [0.05, 0.1, 0.85], // labelled 0, confidently 2
    ];
    const labels = [0, 1, 2, 0, 0];
    const thresholds = [0.5, 0.6, 0.35];
    expect(confidentJoint(probs, labels, thresholds)).toEqual([
      [1, 0, 2],
      [0, 1, 0],
      [0, 0, 1],
    ]);
    expect(rankLabelIssues(probs, labels, 3, thresholds)).toEqual([
      { index: 4, label: 0, suggested: 2, score: expect.closeTo(0.9, 6) },
      { index: 3, label: 0, suggested: 2, score: expect.closeTo(0.7, 6) },
    ]);
  });

  it('calibrates the joint to the count of each label and never flags an image classified as its label', () => {
    // Of four images given 0, one has a confident class (1) and one none: the row is scaled from 2 counted to 4,
    // so two images given 0 are taken, the one classified as 0 is not.
    const probs = [
      [0.9, 0.1],
      [0.2, 0.8],
      [0.45, 0.55],
      [0.6, 0.4],
      [0.1, 0.9],
    ];
    const labels = [0, 0, 0, 0, 1];
    const thresholds = [0.85, 0.7];
    expect(confidentJoint(probs, labels, thresholds)[0]).toEqual([2, 2]);
    expect(rankLabelIssues(probs, labels, 2, thresholds).map((i) => i.index)).toEqual([1, 2]);
  });
});

describe('crossValidate', () => {
  beforeAll(async () => {
    await initBackend();
  });

  it('keeps all samples of an image in one fold, stratified by label', () => {
    const groups = [0, 0, 1, 1, 2, 3, 4, 5, 6, 7];
    const labels = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
    const fold = assignFolds(groups, labels, 2, 3);
    expect(new Set(fold.keys())).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7]));
    const perFold = (y: number) => [0, 1].map((f) => [...fold].filter(([g, k]) => k === f && labels[groups.indexOf(g)] === y).length);
    expect(perFold(0)).toEqual([2, 2]);
    expect(perFold(1)).toEqual([2, 2]);
  });

  it('scores every image out of sample, so flipped labels stand out', async () => {
    // Three classes, clusters in 64 dimensions (few enough images that a model could learn them by heart), two augmented copies per image; 8 of 90 images carry a wrong label.
    const rng = createRng(7);
    const gauss = () => Math.sqrt(-2 * Math.log(rng() + 1e-12)) * Math.cos(2 * Math.PI * rng());
    const centres = [0, 1, 2].map(() => Float32Array.from({ length: 64 }, () => 2 * gauss()));
    const vectors: Float32Array[] = [];
    const labels: number[] = [];
    const groups: number[] = [];
    const flipped = new Set([3, 14, 25, 40, 51, 62, 77, 88]);
    for (let img = 0; img < 90; img++) {
      const truth = img % 3;
      const given = flipped.has(img) ? (truth + 1) % 3 : truth;
      const base = centres[truth]!.map((c) => c + gauss());
      for (let copy = 0; copy < 3; copy++) {
        vectors.push(base.map((v) => v + 0.2 * gauss()));
        labels.push(given);
        groups.push(img);
      }
    }
    const before = tf.memory().numTensors;
    const others = [centres[2]!.map((c) => c + 0.5 * gauss())];
    const cv = await crossValidate({ vectors, labels, groups, numClasses: 3, seed: 1, others });
    expect(tf.memory().numTensors).toBe(before);
    expect(cv.folds).toBe(5);
    expect(cv.groups).toEqual([...Array(90).keys()]);
    expect(cv.labels.filter((y, i) => y !== i % 3).length).toBe(flipped.size);
    for (const p of cv.probabilities) expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    expect(cv.others[0]!.indexOf(Math.max(...cv.others[0]!))).toBe(2);
    const issues = rankLabelIssues(cv.probabilities, cv.labels, 3);
    const top = issues.slice(0, flipped.size).map((i) => cv.groups[i.index]!);
    expect(new Set(top)).toEqual(flipped);
    for (const i of issues.slice(0, flipped.size)) expect(i.suggested).toBe(cv.groups[i.index]! % 3);
  });
});
