import { describe, expect, it } from 'vitest';
import { spread } from '../src/int8';

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
