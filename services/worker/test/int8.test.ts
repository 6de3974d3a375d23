import { describe, expect, it } from 'vitest';
import { spread } from '@graft/vision';
import { int8Splits } from '../src/int8';

describe('spread (which images the int8 check takes)', () => {
  it('takes every item where there are no more than asked, else items spread evenly over all of them', () => {
    expect(spread([1, 2, 3], 5)).toEqual([1, 2, 3]);
    const items = Array.from({ length: 10 }, (_, i) => i);
    expect(spread(items, 5)).toEqual([0, 2, 4, 6, 8]);
    // A split listed class after class still gives images of each class.
    const labels = [...Array(6).fill('cat'), ...Array(6).fill('dog')];
    expect(new Set(spread(labels, 4))).toEqual(new Set(['cat', 'dog']));
  });
});

describe('int8Splits (which images the int8 check compares and calibrates on)', () => {
  const train = [
    { key: 'train/a/1.jpg', label: 0 },
    { key: 'train/a/2.jpg', label: 0 },
    { key: 'train/b/1.jpg', label: 1 },
    { key: 'train/b/2.jpg', label: 1 },
  ];
  it('takes the validation images training carved out of train with their predicted classes, and calibrates on the training images left', () => {
    const carved = [
      { key: 'train/a/2.jpg', label: 0, predicted: 0, probabilities: [0.9, 0.1] },
      { key: 'train/b/1.jpg', label: 1, predicted: 0, probabilities: [0.6, 0.4] },
    ];
    const s = int8Splits({ train, validation: [] }, { predictions: { validation: carved }, exportedValidationClasses: [0, 0] });
    expect(s.validation).toEqual([
      { key: 'train/a/2.jpg', label: 0, predicted: 0 },
      { key: 'train/b/1.jpg', label: 1, predicted: 0 },
    ]);
    expect(s.train.map((x) => x.key)).toEqual(['train/a/1.jpg', 'train/b/2.jpg']);
    // After a refit the evaluated predictions are the chosen model's: the classes compared with are model.onnx's.
    const refitted = int8Splits({ train, validation: [] }, { predictions: { validation: carved }, exportedValidationClasses: [0, 1] });
    expect(refitted.validation).toEqual([
      { key: 'train/a/2.jpg', label: 0, predicted: 0 },
      { key: 'train/b/1.jpg', label: 1, predicted: 1 },
    ]);
    expect(refitted.train).toEqual(s.train);
  });
  it("keeps the dataset's own splits where training evaluated no validation images", () => {
    const validation = [{ key: 'validation/a/1.jpg', label: 0 }];
    expect(int8Splits({ train, validation }, { predictions: { validation: null }, exportedValidationClasses: null })).toEqual({ train, validation });
  });
});
